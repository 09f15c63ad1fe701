import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../../shared/clock.js';
import { PostgresOutboxStore } from '../../../../shared/outbox/index.js';
import { StoreUnavailableError } from '../../../../shared/state/idempotency.js';
import { openOutboxStore } from '../open-one.js';
import { describeOutboxStoreContract, failedAttempt, outboxEvent } from '../outbox-contract.js';
import { dropTestSchema, postgresEnv, skipPostgresTests, testPostgresLocation, uniqueTestSchema } from './test-env.js';

const BUILT_OUTBOX = fileURLToPath(new URL('../../../../dist/shared/state/postgres/outbox.js', import.meta.url));
const BUILT_IDEMPOTENCY = fileURLToPath(new URL('../../../../dist/shared/state/postgres/idempotency.js', import.meta.url));
/** The target outboxEvent() binds events to. */
const TARGET = 'https://a.target.test';

/** A separate process that opens both stores on `schema` (running their migrations) and leases what it can. */
function openAndLeaseInChildProcess(schema: string, owner: string): Promise<string[]> {
  const location = JSON.stringify(testPostgresLocation({ poolMax: 2 }));
  const program = `
    const { PostgresOutboxStore } = await import(${JSON.stringify(BUILT_OUTBOX)});
    const { PostgresIdempotencyStore } = await import(${JSON.stringify(BUILT_IDEMPOTENCY)});
    const [outbox, idempotency] = await Promise.all([
      PostgresOutboxStore.open(${location}, { schema: ${JSON.stringify(schema)} }),
      PostgresIdempotencyStore.open(${location}, { schema: ${JSON.stringify(schema)} }),
    ]);
    await outbox.enqueue(Array.from({ length: 20 }, (_, i) => ({ tenant: 'acme', target: ${JSON.stringify(TARGET)}, source: 'test',
      sourceId: String(i), dedupKey: 'k' + i, input: { userId: 'u', accountId: 'a', events: [{ key: 'e' }] }, keyDecision: null })));
    const leased = await outbox.lease({ tenant: 'acme', target: ${JSON.stringify(TARGET)}, owner: ${JSON.stringify(owner)}, limit: 20,
      leaseMs: 60000 });
    process.stdout.write(leased.map((event) => event.id).join('\\n'));
    await Promise.all([outbox.close(), idempotency.close()]);`;
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
      code === 0 ? resolve(out.split('\n').filter(Boolean)) : reject(new Error(`child exited ${code}: ${err}`)),
    );
  });
}

// Whether PostgreSQL answers is asked once per run (test/setup/postgres.ts), which also prints the one line saying it is skipped.
describe.skipIf(skipPostgresTests)(`outbox on PostgreSQL at ${postgresEnv.url}`, () => {
  it('answers (ONCEKIT_REQUIRE_POSTGRES=1 makes a missing PostgreSQL fail here)', () => {
    expect(postgresEnv.answers, `no PostgreSQL answered at ${postgresEnv.url}`).toBe(true);
  });

  describeOutboxStoreContract('postgres', { durable: true }, async () => {
    const schema = uniqueTestSchema('outbox');
    return {
      // Each handle is its own pool onto the same schema, as separate processes would have.
      open: (clock) => PostgresOutboxStore.open(testPostgresLocation(), { clock, schema }),
      dispose: () => dropTestSchema(schema),
    };
  });

  describe('PostgreSQL outbox specifics', () => {
    it('gives each event to exactly one of six store handles (separate pools, like processes) leasing at once', async () => {
      const schema = uniqueTestSchema('race');
      const handles = await Promise.all(
        Array.from({ length: 6 }, () => PostgresOutboxStore.open(testPostgresLocation({ poolMax: 2 }), { schema })),
      );
      try {
        const enqueued = await handles[0]?.enqueue(Array.from({ length: 600 }, () => outboxEvent()));
        const leaseAll = async (store: PostgresOutboxStore, owner: string): Promise<string[]> => {
          const ids: string[] = [];
          for (;;) {
            const batch = await store.lease({ tenant: 'acme', target: TARGET, owner, limit: 7, leaseMs: 60_000 });
            if (batch.length === 0) return ids;
            ids.push(...batch.map((event) => event.id));
          }
        };
        // Two leasers per handle, so the pools' connections race each other too.
        const leased = (
          await Promise.all(handles.flatMap((store, index) => [leaseAll(store, `p${index}a`), leaseAll(store, `p${index}b`)]))
        ).flat();
        expect(leased).toHaveLength(600);
        expect(new Set(leased)).toEqual(new Set(enqueued?.map((result) => result.id)));
        expect(await handles[1]?.counts('acme')).toMatchObject({ pending: 0, leased: 600 });
      } finally {
        await Promise.all(handles.map((store) => store.close()));
        await dropTestSchema(schema);
      }
    });

    it('lets two processes that start at once on a fresh schema both migrate, enqueue the same events once, and lease them once', async () => {
      const schema = uniqueTestSchema('procs');
      try {
        const [first, second] = await Promise.all([openAndLeaseInChildProcess(schema, 'p1'), openAndLeaseInChildProcess(schema, 'p2')]);
        const leased = [...(first ?? []), ...(second ?? [])];
        expect(leased).toHaveLength(20);
        expect(new Set(leased).size).toBe(20);
      } finally {
        await dropTestSchema(schema);
      }
    });

    it('dedups per target across handles enqueueing the same events for two targets at once', async () => {
      const schema = uniqueTestSchema('targets');
      const handles = await Promise.all(
        Array.from({ length: 3 }, () => PostgresOutboxStore.open(testPostgresLocation({ poolMax: 2 }), { schema })),
      );
      try {
        const other = 'https://b.target.test';
        const events = Array.from({ length: 40 }, () => outboxEvent());
        // Every handle enqueues every event for both targets, at once: each (target, dedupKey) is created exactly once.
        const batches = await Promise.all(
          handles.flatMap((store) => [store.enqueue(events), store.enqueue(events.map((event) => ({ ...event, target: other })))]),
        );
        const created = batches.flat().filter((result) => result.outcome === 'created');
        expect(created).toHaveLength(80);
        expect(new Set(batches.flat().map((result) => result.id)).size).toBe(80);
        const [a, b] = await Promise.all([
          handles[1]?.lease({ tenant: 'acme', target: TARGET, owner: 'wa', limit: 100, leaseMs: 60_000 }),
          handles[2]?.lease({ tenant: 'acme', target: other, owner: 'wb', limit: 100, leaseMs: 60_000 }),
        ]);
        expect(a?.map((event) => event.target)).toEqual(Array.from({ length: 40 }, () => TARGET));
        expect(b?.map((event) => event.target)).toEqual(Array.from({ length: 40 }, () => other));
        expect(await handles[0]?.counts('acme', { target: other, source: 'import' })).toMatchObject({ pending: 0, leased: 40 });
        expect(await handles[0]?.counts('acme', { target: 'https://c.target.test' })).toMatchObject({ pending: 0, leased: 0 });
      } finally {
        await Promise.all(handles.map((store) => store.close()));
        await dropTestSchema(schema);
      }
    });

    it('keeps ids unique and increasing across handles enqueueing at once', async () => {
      const schema = uniqueTestSchema('ids');
      const handles = await Promise.all(
        Array.from({ length: 3 }, () => PostgresOutboxStore.open(testPostgresLocation({ poolMax: 2 }), { schema })),
      );
      try {
        const batches = await Promise.all(handles.map((store) => store.enqueue(Array.from({ length: 50 }, () => outboxEvent()))));
        const ids = batches.flat().map((result) => result.id);
        expect(new Set(ids).size).toBe(150);
        for (const batch of batches) {
          const inBatch = batch.map((result) => result.id);
          expect([...inBatch].sort()).toEqual(inBatch);
        }
      } finally {
        await Promise.all(handles.map((store) => store.close()));
        await dropTestSchema(schema);
      }
    });

    it('wakes a listener on another instance when events are enqueued (LISTEN/NOTIFY), with the tenant', async () => {
      const schema = uniqueTestSchema('notify');
      const listener = await PostgresOutboxStore.open(testPostgresLocation(), { schema });
      const producer = await openOutboxStore(testPostgresLocation({ schema }));
      try {
        const heard: string[] = [];
        const unsubscribe = listener.onEnqueued((tenant) => heard.push(tenant));
        expect(await listener.listening()).toBe(true);
        await producer.enqueue([outboxEvent(), outboxEvent()]);
        await expect.poll(() => heard, { timeout: 5000 }).toEqual(['acme']);
        unsubscribe();
        await producer.enqueue([outboxEvent()]);
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(heard).toEqual(['acme']);
      } finally {
        await producer.close();
        await listener.close();
        await dropTestSchema(schema);
      }
    });

    it('migrates a schema of version 4: marked events get the earliest start of their attempts that may have landed', async () => {
      const schema = uniqueTestSchema('landed');
      const clock = manualClock();
      const store = await PostgresOutboxStore.open(testPostgresLocation(), { schema, clock });
      const admin = new pg.Client({ connectionString: testPostgresLocation().url });
      await admin.connect();
      try {
        const [uncertain, certain] = await store.enqueue([outboxEvent(), outboxEvent()]);
        const lease = () => store.lease({ tenant: 'acme', target: TARGET, owner: 'w', limit: 10, leaseMs: 60_000 });
        await lease();
        await store.settle([
          { id: uncertain?.id ?? '', owner: 'w', attempt: failedAttempt(9000, 429, 0), to: 'pending', dueAt: clock.now() },
          { id: certain?.id ?? '', owner: 'w', attempt: failedAttempt(9000, 429, 0), to: 'dead', reason: 'horizon' },
        ]);
        await lease();
        await store.settle([
          { id: uncertain?.id ?? '', owner: 'w', attempt: failedAttempt(5000, 503, 1), to: 'pending', dueAt: clock.now() },
        ]);
        await lease();
        await store.settle([{ id: uncertain?.id ?? '', owner: 'w', attempt: failedAttempt(8000, 503, 1), to: 'dead', reason: 'horizon' }]);
        await store.close();
        // As version 4 left it: no column, no migration 5.
        await admin.query(`ALTER TABLE ${schema}.outbox_events DROP COLUMN landed_since`);
        await admin.query(`DELETE FROM ${schema}.oncekit_migrations WHERE module = 'outbox' AND version = 5`);
        const upgraded = await PostgresOutboxStore.open(testPostgresLocation(), { schema, clock });
        try {
          expect((await upgraded.get('acme', uncertain?.id ?? ''))?.landedSince).toBe(5000);
          expect((await upgraded.get('acme', certain?.id ?? ''))?.landedSince).toBeNull();
        } finally {
          await upgraded.close();
        }
      } finally {
        await admin.end();
        await dropTestSchema(schema);
      }
    });

    it('uses the server clock when no clock is injected', async () => {
      const schema = uniqueTestSchema('clock');
      const store = await PostgresOutboxStore.open(testPostgresLocation(), { schema });
      try {
        const before = Date.now();
        const [result] = await store.enqueue([outboxEvent()]);
        expect(Math.abs((result?.updatedAt ?? 0) - before)).toBeLessThan(5000);
        const [leased] = await store.lease({ tenant: 'acme', target: TARGET, owner: 'w', limit: 1, leaseMs: 60_000 });
        expect(leased?.leaseExpiresAt).toBe((leased?.leasedAt ?? 0) + 60_000);
      } finally {
        await store.close();
        await dropTestSchema(schema);
      }
    });
  });
});

describe('PostgreSQL outbox without a PostgreSQL', () => {
  it('fails to open with StoreUnavailableError', async () => {
    const location = { kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/postgres', poolMax: 1, statementTimeoutMs: 1000 } as const;
    await expect(openOutboxStore(location)).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
