import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteOutboxStore } from '../../../../shared/state/sqlite/outbox.js';
import { failedAttempt } from '../outbox-contract.js';
import { tempDir } from '../temp-dir.js';

// The outbox's tables as version 1 wrote them, before events recorded their target.
const VERSION_1 = [
  'CREATE TABLE oncekit_schema (module TEXT PRIMARY KEY, version INTEGER NOT NULL)',
  `CREATE TABLE outbox_events (seq INTEGER PRIMARY KEY AUTOINCREMENT, tenant TEXT NOT NULL, source TEXT NOT NULL, source_id TEXT NOT NULL,
    dedup_key TEXT NOT NULL, idempotency_key TEXT, key_decision TEXT, input TEXT NOT NULL, state TEXT NOT NULL, enqueued_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, due_at INTEGER, owner TEXT, leased_at INTEGER, lease_expires_at INTEGER, first_attempt_at INTEGER,
    attempt_count INTEGER NOT NULL DEFAULT 0, last_outcome TEXT, dead_reason TEXT, dead_at INTEGER, UNIQUE (tenant, dedup_key))`,
  `CREATE TABLE outbox_counts (tenant TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (tenant, source, state)) WITHOUT ROWID`,
  `CREATE TABLE ledger_attempts (event_seq INTEGER NOT NULL REFERENCES outbox_events (seq) ON DELETE CASCADE, number INTEGER NOT NULL,
    started_at INTEGER NOT NULL, finished_at INTEGER NOT NULL, outcome TEXT NOT NULL, status INTEGER, message TEXT, api_error_code TEXT,
    rs_code TEXT, requests INTEGER NOT NULL, event_ids TEXT NOT NULL, PRIMARY KEY (event_seq, number)) WITHOUT ROWID`,
  "INSERT INTO oncekit_schema VALUES ('outbox', 1)",
];

const input = (n: number) => JSON.stringify({ userId: `u${n}`, accountId: `a${n}`, events: [{ key: 'purchase' }] });

/** Event n of tenant acme for `target`, identified by f:n and d:n. */
const event = (n: number, target = 'https://t.test') => ({
  tenant: 'acme',
  target,
  source: 'import',
  sourceId: `f:${n}`,
  dedupKey: `d:${n}`,
  input: JSON.parse(input(n)),
  keyDecision: null,
});

/** Makes the store's file at `path` an older version's: runs `statements` (taking out what it lacked), records `version`. */
function asVersion(path: string, version: number, statements: readonly string[]): void {
  const old = new Database(path);
  for (const statement of statements) old.exec(statement);
  old.prepare("UPDATE oncekit_schema SET version = ? WHERE module = 'outbox'").run(version);
  old.close();
}

/** What the file records as the outbox's schema version, and the named index if the file has it. */
function schemaOf(path: string, index = ''): { version: unknown; index: unknown } {
  const check = new Database(path);
  try {
    return {
      version: check.prepare("SELECT version FROM oncekit_schema WHERE module = 'outbox'").get(),
      index: check.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?").get(index),
    };
  } finally {
    check.close();
  }
}

describe('SQLite outbox upgrade from version 1', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.remove();
  });

  it('keeps every event, id, attempt and count; old events go to whichever target of their tenant leases first', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir.path, 'oncekit.db');
    const old = new Database(path);
    for (const statement of VERSION_1) old.exec(statement);
    const insert = old.prepare(
      `INSERT INTO outbox_events (tenant, source, source_id, dedup_key, input, state, enqueued_at, updated_at, due_at, attempt_count, last_outcome)
       VALUES ('acme', 'import', ?, ?, ?, ?, 1, 1, ?, ?, ?)`,
    );
    insert.run('f:1', 'd:1', input(1), 'pending', 1, 0, null);
    insert.run('f:2', 'd:2', input(2), 'delivered', null, 1, 'accepted');
    old.prepare("INSERT INTO ledger_attempts VALUES (2, 1, 1, 2, 'accepted', 200, NULL, NULL, NULL, 1, '[]')").run();
    old.exec("INSERT INTO outbox_counts VALUES ('acme', 'import', 'pending', 1), ('acme', 'import', 'delivered', 1)");
    // A later event was deleted: its id must never be handed out again.
    old.exec("UPDATE sqlite_sequence SET seq = 5 WHERE name = 'outbox_events'");
    old.close();

    const store = new SqliteOutboxStore({ path });
    try {
      const delivered = (await store.findBySourceId('acme', 'f:2'))[0];
      expect(delivered).toMatchObject({ target: '', state: 'delivered', attempts: [{ outcome: 'accepted', status: 200 }] });
      expect(await store.counts('acme')).toMatchObject({ pending: 1, delivered: 1 });
      const [leased] = await store.lease({ tenant: 'acme', target: 'https://any.target.test', owner: 'w', limit: 10, leaseMs: 1000 });
      expect(leased).toMatchObject({ sourceId: 'f:1', target: '' });
      const [fresh] = await store.enqueue([event(9, 'https://any.target.test')]);
      expect(fresh?.id).toBe(`ob_${(6).toString(36).padStart(11, '0')}`);
    } finally {
      await store.close();
    }
    // Opening again changes nothing.
    const again = new SqliteOutboxStore({ path });
    expect(await again.counts('acme')).toMatchObject({ pending: 1, leased: 1, delivered: 1 });
    await again.close();
  });
});

describe('SQLite outbox upgrade from version 4 (to 5: unmappable dead letters)', () => {
  it('adds the unmappable column once, keeps every event, and records unmappable events from then on', async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'oncekit.db');
      // A version 4 file: what the store wrote before version 5, i.e. today's tables without the new column.
      const first = new SqliteOutboxStore({ path });
      await first.enqueue([event(1)]);
      await first.close();
      asVersion(path, 4, ['ALTER TABLE outbox_events DROP COLUMN unmappable']);

      const store = new SqliteOutboxStore({ path });
      const [kept] = await store.findBySourceId('acme', 'f:1');
      expect(kept).toMatchObject({ state: 'pending', input: { userId: 'u1' }, unmappable: null });
      const raw = { text: '{}', bytes: 2, truncated: false };
      const [dead] = await store.recordUnmappable([
        {
          tenant: 'acme',
          target: 'https://t.test',
          source: 'webhook',
          sourceId: 'w:1',
          dedupKey: 'w:1',
          reason: 'could not be mapped',
          raw,
        },
      ]);
      expect(await store.get('acme', dead?.id ?? '')).toMatchObject({ state: 'dead', unmappable: raw });
      await store.close();
      const schema = schemaOf(path, 'outbox_events_enqueued');
      expect(schema.version).toEqual({ version: 8 });
      // Version 6: the listing's index by enqueue time.
      expect(schema.index).toBeDefined();
      // Opening again changes nothing.
      const again = new SqliteOutboxStore({ path });
      expect(await again.counts('acme')).toMatchObject({ pending: 1, dead: 1 });
      await again.close();
    } finally {
      dir.remove();
    }
  });
});

describe('SQLite outbox upgrade from version 3 (requests with an unknown outcome, then unmappable dead letters)', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.remove();
  });

  it('adds the columns, marks events whose recorded attempts may have landed, and counts the keyless delivered ones', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = join(dir.path, 'oncekit.db');
    // A version 3 database: today's tables without the version 4 (and 6) columns.
    const fresh = new SqliteOutboxStore({ path });
    await fresh.close();
    const old = new Database(path);
    old.exec('ALTER TABLE ledger_attempts DROP COLUMN handled_by');
    old.exec('DROP INDEX outbox_events_possible_duplicates');
    old.exec('ALTER TABLE outbox_events DROP COLUMN landed_since');
    old.exec('ALTER TABLE outbox_events DROP COLUMN may_have_landed');
    old.exec('ALTER TABLE ledger_attempts DROP COLUMN uncertain_requests');
    old.exec("UPDATE oncekit_schema SET version = 3 WHERE module = 'outbox'");
    const insert = old.prepare(
      `INSERT INTO outbox_events (tenant, target, source, source_id, dedup_key, idempotency_key, input, state, enqueued_at, updated_at, attempt_count, last_outcome)
       VALUES ('acme', 't', 'import', ?, ?, ?, ?, 'delivered', 1, 1, 2, 'accepted')`,
    );
    const attempt = old.prepare("INSERT INTO ledger_attempts VALUES (?, ?, 1, 2, ?, ?, NULL, NULL, NULL, 1, '[]')");
    // seq 1: keyless, a 503 then accepted: a possible duplicate. seq 2: keyless, a 429 then accepted: certain.
    // seq 3: keyed, a timeout then accepted: the key dedups it. seq 4: keyless, abandoned then accepted.
    insert.run('f:1', 'd:1', null, input(1));
    insert.run('f:2', 'd:2', null, input(2));
    insert.run('f:3', 'd:3', 'key-3-abcdef', input(3));
    insert.run('f:4', 'd:4', null, input(4));
    for (const [seq, first, status] of [
      [1, 'failed', 503],
      [2, 'failed', 429],
      [3, 'failed', null],
      [4, 'abandoned', null],
    ] as const) {
      attempt.run(seq, 1, first, status);
      attempt.run(seq, 2, 'accepted', 200);
    }
    old.close();

    const store = new SqliteOutboxStore({ path });
    try {
      expect(await store.countPossibleDuplicates('acme')).toBe(2);
      // Older attempts count their final answer: the 503 may have landed, the 429 did not.
      const [entry] = await store.findBySourceId('acme', 'f:1');
      expect(entry?.attempts.map((a) => a.uncertainRequests)).toEqual([1, 0]);
      const [throttled] = await store.findBySourceId('acme', 'f:2');
      expect(throttled?.attempts.map((a) => a.uncertainRequests)).toEqual([0, 0]);
      const [again] = await store.enqueue([event(4, 't')]);
      expect(again).toMatchObject({ outcome: 'existing', mayHaveLanded: true });
      // Version 7: the marked events know since when (their attempts that may have landed started at 1).
      const landed = await Promise.all(
        ['f:1', 'f:2', 'f:3', 'f:4'].map(async (id) => (await store.findBySourceId('acme', id))[0]?.landedSince),
      );
      expect(landed).toEqual([1, null, 1, 1]);
    } finally {
      await store.close();
    }
    expect(schemaOf(path).version).toEqual({ version: 8 });
  });
});

describe('SQLite outbox upgrade from version 6 (to 7: when an attempt that may have landed started)', () => {
  it('gives each marked event the earliest start of its attempts that may have landed, once', async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'oncekit.db');
      const first = new SqliteOutboxStore({ path });
      const [uncertain, certain] = await first.enqueue([event(1), event(2)]);
      const lease = () => first.lease({ tenant: 'acme', target: 'https://t.test', owner: 'w', limit: 10, leaseMs: 60_000 });
      await lease();
      await first.settle([
        { id: uncertain?.id ?? '', owner: 'w', attempt: failedAttempt(9000, 429, 0), to: 'pending', dueAt: 0 },
        { id: certain?.id ?? '', owner: 'w', attempt: failedAttempt(9000, 429, 0), to: 'pending', dueAt: 0 },
      ]);
      await lease();
      await first.settle([
        { id: uncertain?.id ?? '', owner: 'w', attempt: failedAttempt(5000, 503, 1), to: 'pending', dueAt: 0 },
        { id: certain?.id ?? '', owner: 'w', attempt: failedAttempt(7000, 429, 0), to: 'dead', reason: 'horizon' },
      ]);
      await lease();
      await first.settle([{ id: uncertain?.id ?? '', owner: 'w', attempt: failedAttempt(8000, 503, 1), to: 'dead', reason: 'horizon' }]);
      await first.close();
      // A version 6 file: today's tables without the new column.
      asVersion(path, 6, ['ALTER TABLE outbox_events DROP COLUMN landed_since']);

      const store = new SqliteOutboxStore({ path });
      expect((await store.get('acme', uncertain?.id ?? ''))?.landedSince).toBe(5000);
      expect((await store.get('acme', certain?.id ?? ''))?.landedSince).toBeNull();
      // The requeued event carries it to its next lease.
      await store.requeueDead({ tenant: 'acme', ids: [uncertain?.id ?? ''] });
      expect(await store.lease({ tenant: 'acme', target: 'https://t.test', owner: 'v', limit: 10, leaseMs: 1000 })).toEqual([
        expect.objectContaining({ id: uncertain?.id, landedSince: 5000, mayHaveLanded: true }),
      ]);
      await store.close();
      expect(schemaOf(path).version).toEqual({ version: 8 });
    } finally {
      dir.remove();
    }
  });
});

describe('SQLite outbox upgrade from version 7 (to 8: the listing of one source)', () => {
  it("indexes the events already there by source and enqueue time, and lists a source's events off it", async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'oncekit.db');
      const first = new SqliteOutboxStore({ path });
      await first.enqueue([event(1), { ...event(2), source: 'keygen', sourceId: 'keygen-2' }, event(3)]);
      await first.close();
      // A version 7 file: today's tables without the new index.
      asVersion(path, 7, ['DROP INDEX outbox_events_source']);

      const store = new SqliteOutboxStore({ path });
      expect((await store.listEvents('acme', { source: 'keygen' })).entries.map((entry) => entry.sourceId)).toEqual(['keygen-2']);
      await store.close();
      const schema = schemaOf(path, 'outbox_events_source');
      expect(schema.version).toEqual({ version: 8 });
      expect(schema.index).toBeDefined();
    } finally {
      dir.remove();
    }
  });
});
