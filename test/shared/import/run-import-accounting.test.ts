import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { runImport } from '../../../shared/import/index.js';
import { createOutboxWorker, type OutboxTarget, outboxTargetId } from '../../../shared/outbox/worker.js';
import { SqliteOutboxStore } from '../../../shared/state/sqlite/outbox.js';
import { type ClosableTransport, undiciTransport } from '../../../shared/target/transport-undici.js';

const ROWS = 50;

// Only existing users may get events: no user exists, so the target refuses every row (404) and each becomes a dead letter.
let strict: Sandbox;
let transport: ClosableTransport;
let dir: string;
let tenant: string;
let count = 0;

beforeAll(async () => {
  strict = await startSandbox({ port: 0, strictUsers: true });
  transport = undiciTransport();
});
afterAll(async () => {
  await transport.close();
  await strict.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-import-accounting-'));
  count += 1;
  tenant = `accounting_${process.pid}_${count}`;
});
afterEach(() => {
  strict.faults.clear();
  rmSync(dir, { recursive: true, force: true });
});

const target = (): OutboxTarget => ({ baseUrl: strict.url, tenant, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send });

function writeRows(path: string): void {
  const rows = Array.from({ length: ROWS }, (_, index) =>
    JSON.stringify({
      userId: `ghost-${index + 1}`,
      accountId: `acct-${index + 1}`,
      idempotencyKey: `accounting-key-${String(index + 1).padStart(4, '0')}`,
      event: { key: 'purchase', fields: { n: index + 1 } },
    }),
  );
  writeFileSync(path, `${rows.join('\n')}\n`);
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let tries = 0; tries < 200; tries += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('import accounting', () => {
  it('a re-run reports every dead row of its file, and lists each in the errors file, when a relay on the same store settled them', async () => {
    const file = join(dir, 'events.jsonl');
    const storePath = join(dir, 'oncekit.db');
    writeRows(file);

    // An interrupted first run: paced, stopped once its first batch settled, so most rows stay pending in the outbox.
    const first = new SqliteOutboxStore({ path: storePath });
    const controller = new AbortController();
    const interrupted = await runImport({
      file,
      delivery: { store: first, target: target(), config: { batchSize: 10, concurrency: 1, maxEventsPerSecond: 20 } },
      signal: controller.signal,
      onProgress: (progress) => {
        if (progress.settled > 0) controller.abort();
      },
    });
    await first.close();
    expect(interrupted.interrupted).toBe(true);
    expect(interrupted.pending).toBeGreaterThan(0);

    // A relay on the same store takes the pending rows and, answered slowly, settles them while the re-run runs.
    const relayStore = new SqliteOutboxStore({ path: storePath });
    const importStore = new SqliteOutboxStore({ path: storePath });
    let settledByRelay = 0;
    strict.faults.enqueue({ kind: 'latency', ms: 1500 });
    const relay = createOutboxWorker({
      store: relayStore,
      target: target(),
      config: { batchSize: 100 },
      label: 'relay',
      onSettled: ({ settlement }) => {
        if (settlement.to === 'dead') settledByRelay += 1;
      },
    });
    try {
      relay.start();
      const filter = { target: outboxTargetId(target()), source: 'import' };
      await until(async () => {
        const counts = await relayStore.counts(tenant, filter);
        return counts.pending === 0 && counts.leased > 0;
      }, 'the relay to lease the pending rows');

      const rerun = await runImport({ file, delivery: { store: importStore, target: target() } });
      expect(settledByRelay).toBe(interrupted.pending);
      expect(rerun).toMatchObject({ rows: ROWS, enqueued: 0, skipped: ROWS, accepted: 0, rejected: ROWS, deadLetters: ROWS, pending: 0 });
      // Each dead row as it was in the file, with its record number and the target's answer.
      expect(rerun.errorsFile).toBe(`${file}.errors.jsonl`);
      const errors = readFileSync(rerun.errorsFile ?? '', 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { recordNumber: number; error: string; userId: string });
      expect(errors.map((row) => row.recordNumber).sort((a, b) => a - b)).toEqual(Array.from({ length: ROWS }, (_, index) => index + 1));
      expect(errors.every((row) => row.error.startsWith('rejected by the target: HTTP 404'))).toBe(true);
      expect(errors.every((row) => row.userId === `ghost-${row.recordNumber}`)).toBe(true);
    } finally {
      await relay.stop();
      await relayStore.close();
      await importStore.close();
    }
  });
});
