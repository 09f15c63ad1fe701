import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { OutboxStoreError } from '../../../../shared/outbox/index.js';
import { openSqliteDatabase } from '../../../../shared/state/sqlite/database.js';
import { SqliteOutboxStore } from '../../../../shared/state/sqlite/outbox.js';
import { tempDir } from '../temp-dir.js';

describe('SQLite durability', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.remove();
  });

  it('syncs every commit to disk (synchronous = FULL), so an acknowledged event survives a power cut', () => {
    const dir = tempDir();
    dirs.push(dir);
    const db = openSqliteDatabase(join(dir.path, 'oncekit.db'));
    // 2 = FULL (0 OFF, 1 NORMAL, 3 EXTRA)
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  it('syncs enqueues and leases; a settlement alone commits unsynced (nothing waits on it) and FULL is restored after it', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const db = openSqliteDatabase(join(dir.path, 'oncekit.db'));
    const store = new SqliteOutboxStore({ db });
    // The store switches the sync level with exec; every switch is recorded.
    const switches: string[] = [];
    const exec = db.exec.bind(db);
    db.exec = (sql: string) => {
      if (/synchronous/i.test(sql)) switches.push(sql);
      return exec(sql);
    };
    const event = (n: number) => ({
      tenant: 't',
      target: 'x',
      source: 'test',
      sourceId: `row:${n}`,
      dedupKey: `d:${n}`,
      keyDecision: null,
      input: { userId: 'ann', accountId: 'ann', idempotencyKey: `durability-key-${n}`, events: [{ key: 'purchase' }] },
    });
    const [handed] = await store.enqueue([event(1)], { lease: { owner: 'w', leaseMs: 60_000 } });
    await store.enqueue([event(2)]);
    const [leased] = await store.lease({ tenant: 't', target: 'x', owner: 'w', limit: 10, leaseMs: 60_000 });
    expect(switches).toEqual([]);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    const settled = await store.settle(
      [handed?.id, leased?.id].map((id) => ({ id: id ?? '', owner: 'w', to: 'delivered' as const, attempt: null })),
    );
    expect(settled).toEqual([true, true]);
    expect(switches).toEqual(['PRAGMA synchronous = NORMAL', 'PRAGMA synchronous = 2']);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    db.close();
  });

  it('a settlement on a closed file fails as an OutboxStoreError, as an enqueue does', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const store = new SqliteOutboxStore({ path: join(dir.path, 'oncekit.db') });
    await store.close();
    const settlement = { id: 'ob_00000000001', owner: 'w', to: 'delivered' as const, attempt: null };
    await expect(store.settle([settlement])).rejects.toBeInstanceOf(OutboxStoreError);
    await expect(store.enqueue([])).rejects.toBeInstanceOf(OutboxStoreError);
  });
});
