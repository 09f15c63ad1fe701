import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { manualClock } from '../../../../shared/clock.js';
import { SqliteOutboxStore } from '../../../../shared/outbox/index.js';
import { eventFilterSql } from '../../../../shared/state/outbox-rows.js';
import { activitySql, listEventsSql, POSSIBLE_DUPLICATES_SQL } from '../../../../shared/state/sqlite/outbox.js';
import { describeOutboxStoreContract, outboxEvent } from '../outbox-contract.js';

const dirs: string[] = [];
function tempDbPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'oncekit-outbox-'));
  dirs.push(dir);
  return join(dir, 'oncekit.db');
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describeOutboxStoreContract('sqlite', { durable: true }, async () => {
  const path = tempDbPath();
  return {
    // Each handle is its own connection to the same file.
    open: async (clock) => new SqliteOutboxStore({ path, clock }),
    dispose: async () => {},
  };
});

const BUILT_STORE = fileURLToPath(new URL('../../../../dist/shared/state/sqlite/outbox.js', import.meta.url));

/** A separate process that leases batches until none is left and prints the ids it got, one per line. */
function leaseInChildProcess(path: string, owner: string): Promise<string[]> {
  const program = `
    const { SqliteOutboxStore } = await import(${JSON.stringify(BUILT_STORE)});
    const store = new SqliteOutboxStore({ path: ${JSON.stringify(path)} });
    for (;;) {
      const batch = await store.lease({ tenant: 'acme', target: 'https://a.target.test', owner: ${JSON.stringify(owner)}, limit: 7, leaseMs: 60000 });
      if (batch.length === 0) break;
      process.stdout.write(batch.map((event) => event.id).join('\\n') + '\\n');
    }
    await store.close();`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out.split('\n').filter(Boolean)) : reject(new Error(`leaser exited ${code}: ${err}`)),
    );
  });
}

/** SQLite's plan for `sql` on the file at `path`, opened read-only: its detail lines. */
function queryPlan(path: string, sql: string, params: readonly unknown[]): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare<unknown[], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
      .all(...params)
      .map((row) => row.detail);
  } finally {
    db.close();
  }
}

describe('SQLite outbox query plans', () => {
  it('counts possible duplicates off their own partial index, never by reading every event of the tenant', async () => {
    const path = tempDbPath();
    const store = new SqliteOutboxStore({ path });
    await store.enqueue(Array.from({ length: 50 }, (_, index) => outboxEvent({ dedupKey: `plan-${index}` })));
    try {
      const plan = queryPlan(path, POSSIBLE_DUPLICATES_SQL, ['acme', null, null, null, null]);
      expect(plan).toEqual(['SEARCH outbox_events USING INDEX outbox_events_possible_duplicates (tenant=?)']);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite outbox activity window', () => {
  it('reads only the events of the window and those still waiting: ranges of four indexes, never the whole ledger', async () => {
    const path = tempDbPath();
    const store = new SqliteOutboxStore({ path });
    await store.enqueue([outboxEvent()]);
    try {
      const { where } = eventFilterSql('acme', { until: 2 }, () => '?');
      const plan = queryPlan(path, activitySql(where), ['acme', 2, 1, 1, 1, 'acme', 2, 1, 'acme', 2, 1, 'acme', 2, 1, 10]).filter(
        (detail) => detail.startsWith('SEARCH') || detail.startsWith('SCAN'),
      );
      expect(plan).toEqual([
        'SEARCH outbox_events USING INDEX outbox_events_enqueued (tenant=? AND enqueued_at>? AND enqueued_at<?)',
        'SEARCH outbox_events USING INDEX outbox_events_settled (updated_at>?)',
        'SEARCH outbox_events USING INDEX outbox_events_due (tenant=?)',
        'SEARCH outbox_events USING INDEX outbox_events_leased (tenant=?)',
      ]);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite outbox listing by state', () => {
  it.each([
    ['dead', 'outbox_events_dead'],
    ['pending', 'outbox_events_due'],
    ['leased', 'outbox_events_leased'],
  ] as const)('lists %s events off their own partial index, not by walking every event of the tenant', async (state, index) => {
    const path = tempDbPath();
    const store = new SqliteOutboxStore({ path });
    await store.enqueue([outboxEvent()]);
    try {
      const { where, params } = eventFilterSql('acme', { state }, () => '?');
      const plan = queryPlan(path, listEventsSql(where, { state }), [...params, 10, 0]);
      expect(plan).toEqual([`SEARCH outbox_events USING INDEX ${index} (tenant=?)`, 'USE TEMP B-TREE FOR ORDER BY']);
      expect((await store.listEvents('acme', { state: 'pending' })).entries).toHaveLength(1);
    } finally {
      await store.close();
    }
  });

  it.each([
    ['a key', { key: 'plan-key-7' }, 'outbox_events_key (tenant=? AND idempotency_key=?)'],
    ['a key and a state', { key: 'plan-key-7', state: 'dead' }, 'outbox_events_key (tenant=? AND idempotency_key=?)'],
    ['a source id', { sourceId: 'row:7' }, 'outbox_events_source_id (tenant=? AND source_id=?)'],
    ['a source id and a state', { sourceId: 'row:7', state: 'pending' }, 'outbox_events_source_id (tenant=? AND source_id=?)'],
  ] as const)("lists by %s off that column's index, not by walking every event of the tenant", async (_, filter, search) => {
    const path = tempDbPath();
    const store = new SqliteOutboxStore({ path });
    // Twenty pending events, one per key and source id.
    await store.enqueue(Array.from({ length: 20 }, (_, index) => outboxEvent({ key: `plan-key-${index}`, sourceId: `row:${index}` })));
    try {
      const { where, params } = eventFilterSql('acme', filter, () => '?');
      const plan = queryPlan(path, listEventsSql(where, filter), [...params, 10, 0]);
      expect(plan).toEqual([`SEARCH outbox_events USING INDEX ${search}`, 'USE TEMP B-TREE FOR ORDER BY']);
      const listed = await store.listEvents('acme', filter);
      const expected = 'state' in filter && filter.state === 'dead' ? [] : [['plan-key-7', 'row:7']];
      expect(listed.entries.map((entry) => [entry.key, entry.sourceId])).toEqual(expected);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite outbox listing by source', () => {
  it("lists one source's events off its own index, newest first and already in order: never a walk over the tenant", async () => {
    const path = tempDbPath();
    const clock = manualClock();
    const store = new SqliteOutboxStore({ path, clock });
    try {
      // Many events of one source, and three of another among them, each a millisecond apart.
      for (let index = 0; index < 60; index += 1) {
        const source = index % 20 === 7 ? 'keygen' : 'segment';
        await store.enqueue([outboxEvent({ source, sourceId: `${source}-${index}`, dedupKey: `source-plan-${index}` })]);
        clock.advance(1);
      }
      const filter = { source: 'keygen' };
      const { where, params } = eventFilterSql('acme', filter, () => '?');
      expect(queryPlan(path, listEventsSql(where, filter), [...params, 10, 0])).toEqual([
        'SEARCH outbox_events USING INDEX outbox_events_source (tenant=? AND source=?)',
      ]);
      const listed = await store.listEvents('acme', { source: 'keygen', limit: 2 });
      expect(listed.entries.map((entry) => entry.sourceId)).toEqual(['keygen-47', 'keygen-27']);
      expect(listed.hasMore).toBe(true);
      expect((await store.listEvents('acme', { source: 'keygen', offset: 2 })).entries.map((entry) => entry.sourceId)).toEqual([
        'keygen-7',
      ]);
    } finally {
      await store.close();
    }
  });

  it('lists a source in a state that has its own partial index off that index (fewer events than the source has)', async () => {
    const path = tempDbPath();
    const store = new SqliteOutboxStore({ path });
    await store.enqueue([outboxEvent({ source: 'keygen' })]);
    try {
      const filter = { source: 'keygen', state: 'pending' } as const;
      const { where, params } = eventFilterSql('acme', filter, () => '?');
      expect(queryPlan(path, listEventsSql(where, filter), [...params, 10, 0])).toEqual([
        'SEARCH outbox_events USING INDEX outbox_events_due (tenant=?)',
        'USE TEMP B-TREE FOR ORDER BY',
      ]);
      expect((await store.listEvents('acme', filter)).entries).toHaveLength(1);
    } finally {
      await store.close();
    }
  });
});

describe('SQLite outbox across processes', () => {
  it('gives each event to exactly one of four processes leasing the same file at once', async () => {
    const path = tempDbPath();
    const store = new SqliteOutboxStore({ path });
    const enqueued = await store.enqueue(Array.from({ length: 600 }, () => outboxEvent()));
    await store.close();
    const leased = (await Promise.all(['p1', 'p2', 'p3', 'p4'].map((owner) => leaseInChildProcess(path, owner)))).flat();
    expect(leased).toHaveLength(600);
    expect(new Set(leased)).toEqual(new Set(enqueued.map((result) => result.id)));
  });
});
