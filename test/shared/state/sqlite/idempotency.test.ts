import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { manualClock } from '../../../../shared/clock.js';
import { StoreUnavailableError } from '../../../../shared/state/idempotency.js';
import { openSqliteDatabase } from '../../../../shared/state/sqlite/database.js';
import { SqliteIdempotencyStore } from '../../../../shared/state/sqlite/idempotency.js';
import { bundleForWorker } from '../bundle-for-worker.js';
import { describeIdempotencyStoreContract } from '../idempotency-contract.js';
import { openIdempotencyStore } from '../open-one.js';
import { tempDir } from '../temp-dir.js';
import type { RaceJob, RaceResult } from './race-worker.js';

describeIdempotencyStoreContract('sqlite', async () => {
  const dir = tempDir();
  const path = join(dir.path, 'oncekit.db');
  return {
    // Each handle is its own connection to the same file.
    open: async (clock) => SqliteIdempotencyStore.open(path, { clock }),
    dispose: async () => dir.remove(),
  };
});

describe('SQLite store specifics', () => {
  let dir: ReturnType<typeof tempDir>;
  let path: string;
  beforeEach(() => {
    dir = tempDir();
    path = join(dir.path, 'data', 'oncekit.db');
  });
  afterEach(() => dir.remove());

  it('keeps completed records and live leases across a restart (close and reopen the file)', async () => {
    const clock = manualClock();
    const before = await openIdempotencyStore({ kind: 'sqlite', path }, { clock });
    expect(before.kind).toBe('sqlite');
    await before.claim({ tenant: 't', key: 'done' }, { owner: 'w1', leaseMs: 30_000, fingerprint: 'fp' });
    await before.complete({ tenant: 't', key: 'done' }, 'w1', { result: '{"status":201}', ttlMs: 3_600_000 });
    await before.claim({ tenant: 't', key: 'held' }, { owner: 'crashed', leaseMs: 30_000 });
    await before.close();

    const after = await openIdempotencyStore({ kind: 'sqlite', path }, { clock });
    expect(await after.get({ tenant: 't', key: 'done' })).toMatchObject({
      state: 'completed',
      result: '{"status":201}',
      fingerprint: 'fp',
    });
    expect(await after.claim({ tenant: 't', key: 'held' }, { owner: 'w2', leaseMs: 30_000 })).toMatchObject({
      status: 'in_progress',
      owner: 'crashed',
    });
    clock.advance(30_000);
    expect(await after.takeOver({ tenant: 't', key: 'held' }, { owner: 'w2', leaseMs: 30_000 })).toMatchObject({
      status: 'claimed',
      takenOverFrom: 'crashed',
    });
    await after.close();
  });

  it('creates its tables through the shared migration helper, next to other modules', async () => {
    const db = openSqliteDatabase(path);
    db.exec('CREATE TABLE outbox_stand_in (id INTEGER PRIMARY KEY)');
    const store = new SqliteIdempotencyStore({ database: db });
    await store.claim({ tenant: 't', key: 'k' }, { owner: 'w', leaseMs: 1000 });
    await store.close();
    // The store was given the database, so it must leave it open for its other users.
    expect(db.open).toBe(true);
    expect(db.prepare("SELECT version FROM oncekit_schema WHERE module = 'idempotency'").get()).toEqual({ version: 1 });
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[];
    expect(tables.map((table) => table.name)).toEqual(['idempotency_records', 'oncekit_schema', 'outbox_stand_in']);
    db.close();
  });

  it('reports a failing database as StoreUnavailableError', async () => {
    const db = openSqliteDatabase(path);
    const store = new SqliteIdempotencyStore({ database: db });
    db.close();
    await expect(store.claim({ tenant: 't', key: 'k' }, { owner: 'w', leaseMs: 1000 })).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('reports an unopenable file as StoreUnavailableError', async () => {
    await expect(openIdempotencyStore({ kind: 'sqlite', path: dir.path })).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});

describe('SQLite store across worker threads (one connection each, one file)', () => {
  const THREADS = 6;
  const KEYS = Array.from({ length: 25 }, (_, i) => `key-${i}`);
  const NOW = Date.UTC(2025, 0, 1);
  let workerFile: string;
  let dir: ReturnType<typeof tempDir>;

  beforeAll(async () => {
    workerFile = await bundleForWorker(fileURLToPath(new URL('./race-worker.ts', import.meta.url)));
  });
  afterAll(() => rmSync(workerFile, { force: true }));
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => dir.remove());

  /** Starts every thread, waits until all stand at the gate, then opens it so they race. */
  async function race(path: string, operation: RaceJob['operation'], nowMs: number): Promise<RaceResult[]> {
    const gate = new SharedArrayBuffer(8);
    const flags = new Int32Array(gate);
    const done = Array.from({ length: THREADS }, () => {
      const job: RaceJob = { path, tenant: 't', keys: KEYS, operation, nowMs, leaseMs: 30_000, gate };
      const worker = new Worker(workerFile, { workerData: job });
      return new Promise<RaceResult[]>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    });
    while (Atomics.load(flags, 1) < THREADS) await new Promise((resolve) => setTimeout(resolve, 5));
    Atomics.store(flags, 0, 1);
    Atomics.notify(flags, 0);
    return (await Promise.all(done)).flat();
  }

  it('exactly one thread claims each key', async () => {
    const path = join(dir.path, 'race.db');
    await SqliteIdempotencyStore.open(path).close();
    const results = await race(path, 'claim', NOW);
    expect(results).toHaveLength(THREADS * KEYS.length);
    for (const key of KEYS) {
      const forKey = results.filter((result) => result.key === key);
      expect(
        forKey.filter((result) => result.status === 'claimed'),
        key,
      ).toHaveLength(1);
      expect(
        forKey.filter((result) => result.status === 'in_progress'),
        key,
      ).toHaveLength(THREADS - 1);
    }
  });

  it('exactly one thread takes over each expired lease', async () => {
    const path = join(dir.path, 'takeover.db');
    const setup = SqliteIdempotencyStore.open(path, { clock: { now: () => NOW } });
    for (const key of KEYS) await setup.claim({ tenant: 't', key }, { owner: 'crashed', leaseMs: 1000 });
    await setup.close();
    const results = await race(path, 'takeOver', NOW + 5000);
    for (const key of KEYS) {
      const winners = results.filter((result) => result.key === key && result.status === 'claimed');
      expect(winners, key).toHaveLength(1);
      expect(winners[0]?.takenOverFrom).toBe('crashed');
    }
    const check = SqliteIdempotencyStore.open(path, { clock: { now: () => NOW + 5000 } });
    for (const key of KEYS) {
      const winner = results.find((result) => result.key === key && result.status === 'claimed');
      expect(await check.get({ tenant: 't', key })).toMatchObject({ state: 'in_progress', owner: winner?.owner });
    }
    await check.close();
  });
});
