import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { type RunningCommand, startOncekit } from '../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY } from '../sandbox/target/defaults.js';
import { silentLogger } from '../shared/log.js';
import type { NewOutboxEvent } from '../shared/outbox/types.js';
import { parseStoreLocation, type StoreLocation } from '../shared/state/location.js';
import { openState } from '../shared/state/open-state.js';
import { type BenchRow, compared, measureRate } from './measure.js';
import { dropSchema, postgresUrl, uniqueSchema } from './postgres.js';
import { byIdRequest, CONNECTIONS, drained, json, type Load, load, WARM_UP_SECONDS } from './relay.js';
import { runId } from './run-id.js';
import { REDIS_URL } from './settings.js';

const GROUP_SIZES = [1, 10, 100] as const;
/** Each store measurement runs this long (after measureRate's warm-up), or until MAX_EVENTS are in. */
const MEASURE_MS = 1500;
const MAX_EVENTS = 50_000;
const DRAIN_LIMIT_MS = 60_000;
const INSTANCES = 3;

async function deleteRedisPrefix(prefix: string): Promise<void> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await client.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}

interface Engine {
  readonly name: string;
  /** Opens the engine's location; `cleanup` removes whatever the run left. */
  setUp(): Promise<{ location: StoreLocation; redisKeyPrefix?: string; cleanup(): Promise<void> }>;
}

const engines: readonly Engine[] = [
  {
    name: 'SQLite (synchronous = FULL)',
    async setUp() {
      const dir = await mkdtemp(join(tmpdir(), 'oncekit-bench-state-'));
      return { location: { kind: 'sqlite', path: join(dir, 'oncekit.db') }, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'PostgreSQL',
    async setUp() {
      const schema = uniqueSchema('store');
      return { location: parseStoreLocation(postgresUrl(schema)), cleanup: () => dropSchema(schema) };
    },
  },
  {
    name: 'Redis (no persistence)',
    async setUp() {
      const prefix = `oncekit-bench-${runId}-${randomBytes(3).toString('hex')}:`;
      return { location: { kind: 'redis', url: REDIS_URL }, redisKeyPrefix: prefix, cleanup: () => deleteRedisPrefix(prefix) };
    },
  },
  {
    name: 'memory (reference)',
    async setUp() {
      return { location: { kind: 'memory' }, cleanup: async () => {} };
    },
  },
];

let eventSequence = 0;
function storeEvent(tenant: string): NewOutboxEvent {
  eventSequence += 1;
  const id = `u-${eventSequence % 1000}@bench.test`;
  const key = `bench-${runId}-store-${eventSequence}`;
  return {
    tenant,
    target: 'bench-target',
    source: 'bench',
    sourceId: `bench:${eventSequence}`,
    dedupKey: key,
    input: {
      userId: id,
      accountId: id,
      events: [{ key: 'purchase', fields: { revenue: 42, currency: 'USD', orderId: `o-${eventSequence}` } }],
      idempotencyKey: key,
    },
    keyDecision: null,
  };
}

/** (1) Enqueue cost per event on each engine, by the number of events one enqueue (one transaction) carries. */
async function storeRows(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const engine of engines) {
    let single: BenchRow | undefined;
    for (const group of GROUP_SIZES) {
      const { location, redisKeyPrefix, cleanup } = await engine.setUp();
      try {
        const state = await openState(location, {
          allowVolatile: true,
          logger: silentLogger, // the engine's name says it keeps nothing on disk
          ...(redisKeyPrefix ? { redisKeyPrefix } : {}),
        });
        const tenant = `store-${runId}-${group}-${randomBytes(3).toString('hex')}`;
        let rate: Awaited<ReturnType<typeof measureRate>>;
        try {
          rate = await measureRate(
            async () => {
              await state.outbox.enqueue(Array.from({ length: group }, () => storeEvent(tenant)));
            },
            group,
            MEASURE_MS,
            MAX_EVENTS,
          );
        } finally {
          await state.close();
        }
        const perEventUs = 1e6 / rate.perSecond;
        const note = `${rate.operations.toLocaleString('en-US')} events in ${rate.seconds.toFixed(2)} s (${Math.round(rate.perSecond).toLocaleString('en-US')} events/s), fresh tenant`;
        const row = compared(`${engine.name}: group ${group}`, perEventUs, 'µs/event', group === 1 ? undefined : single, note);
        if (group === 1) single = row;
        rows.push(row);
      } catch (error) {
        rows.push(compared(`${engine.name}: group ${group}`, Number.NaN, 'µs/event', undefined, `skipped: ${String(error)}`));
      } finally {
        await cleanup().catch(() => undefined);
      }
    }
  }
  return rows;
}

/** Starts a relay on `store` against the sandbox, with its own secret and tenant. */
async function startRelay(
  store: string,
  sandboxUrl: string,
  tenant: string,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ relay: RunningCommand; url: string; auth: Record<string, string> }> {
  const secret = randomBytes(24).toString('base64url');
  const relay = await startOncekit(['relay', '--port', '0', '--target-url', sandboxUrl, '--tenant', tenant, '--store', store], {
    PATH: process.env.PATH,
    ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
    ONCEKIT_RELAY_SECRET: secret,
    ONCEKIT_LOG_LEVEL: 'warn',
    ...extraEnv,
  });
  return { relay, url: relay.url ?? '', auth: { authorization: `Bearer ${secret}` } };
}

const failures = (failed: number) => (failed > 0 ? `; ${failed} requests failed` : '');

/** (2) Group commit on (as shipped) beside off, one SQLite relay, 10 connections, one event per request. */
async function groupCommitRows(sandboxUrl: string, seconds: number): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'oncekit-bench-state-relay-'));
  const results: Record<'on' | 'off', Load> = {} as Record<'on' | 'off', Load>;
  try {
    for (const mode of ['off', 'on'] as const) {
      const { relay, url, auth } = await startRelay(`sqlite:${join(dir, `group-commit-${mode}.db`)}`, sandboxUrl, `gc-${mode}-${runId}`, {
        ONCEKIT_GROUP_COMMIT: mode,
      });
      try {
        results[mode] = await load(url, seconds, byIdRequest, { ...auth, 'content-type': 'application/json' });
      } finally {
        await relay.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const how = `${CONNECTIONS} connections, 1 event/request, by-id route, ${seconds} s after a ${WARM_UP_SECONDS} s warm-up`;
  const off = compared(
    'relay, SQLite, group commit off (ONCEKIT_GROUP_COMMIT=off)',
    results.off.perSecond,
    'acked events/s',
    undefined,
    `${how}${failures(results.off.failed)}`,
  );
  const on = compared(
    'relay, SQLite, group commit on (as shipped)',
    results.on.perSecond,
    'acked events/s',
    off,
    failures(results.on.failed) || undefined,
  );
  const offP99 = compared('  p99, group commit off', results.off.p99Ms, 'ms');
  return [off, on, offP99, compared('  p99, group commit on', results.on.p99Ms, 'ms', offP99)];
}

interface ScaleRun {
  readonly ackedPerSecond: number;
  readonly p99Ms: number;
  readonly deliveredPerSecond: number;
  readonly acked: number;
  readonly recordedOnce: number;
  readonly recordedMoreThanOnce: number;
  readonly ackedMissing: number;
  readonly failed: number;
  readonly drainSeconds: number;
}

/** Loads `instances` relays on one fresh PostgreSQL schema with `connections` in all, spread evenly. */
async function scaleRun(sandboxUrl: string, instances: number, connections: number, seconds: number): Promise<ScaleRun> {
  const schema = uniqueSchema(`relay${instances}`);
  const tenant = `pg-${instances}-${runId}`;
  const relays: Awaited<ReturnType<typeof startRelay>>[] = [];
  try {
    // One after the other: the first runs the migrations, the others find them done.
    for (let i = 0; i < instances; i += 1) relays.push(await startRelay(postgresUrl(schema), sandboxUrl, tenant));
    const acked = new Set<string>();
    const onResponse = (status: number, body: string) => {
      if (status < 200 || status >= 300) return;
      const { results } = JSON.parse(body) as { results: { ok: boolean; idempotencyKey?: string | null }[] };
      for (const result of results) if (result.ok && result.idempotencyKey) acked.add(result.idempotencyKey);
    };
    const started = performance.now();
    const loads = await Promise.all(
      relays.map(({ url, auth }) =>
        load(
          url,
          seconds,
          byIdRequest,
          { ...auth, 'content-type': 'application/json' },
          { connections: connections / instances, onResponse },
        ),
      ),
    );
    const loadEnded = performance.now();
    await drained((relays[0] as (typeof relays)[number]).url, (relays[0] as (typeof relays)[number]).auth, DRAIN_LIMIT_MS);
    const drainedAt = performance.now();
    const { events } = await json<{ events: { idempotencyKey: string | null }[] }>(`${sandboxUrl}/__sandbox/tenants/${tenant}`);
    const counts = new Map<string, number>();
    for (const event of events) if (event.idempotencyKey) counts.set(event.idempotencyKey, (counts.get(event.idempotencyKey) ?? 0) + 1);
    let recordedOnce = 0;
    let ackedMissing = 0;
    for (const key of acked) {
      const count = counts.get(key) ?? 0;
      if (count === 1) recordedOnce += 1;
      if (count === 0) ackedMissing += 1;
    }
    return {
      ackedPerSecond: loads.reduce((sum, result) => sum + result.perSecond, 0),
      p99Ms: Math.max(...loads.map((result) => result.p99Ms)),
      deliveredPerSecond: events.length / ((drainedAt - started) / 1000),
      acked: acked.size,
      recordedOnce,
      recordedMoreThanOnce: [...counts.values()].filter((count) => count > 1).length,
      ackedMissing,
      failed: loads.reduce((sum, result) => sum + result.failed, 0),
      drainSeconds: (drainedAt - loadEnded) / 1000,
    };
  } finally {
    for (const { relay } of relays) await relay.stop().catch(() => undefined);
    await dropSchema(schema).catch(() => undefined);
  }
}

/** (3) Three relays on one PostgreSQL beside one, the same connections in all. */
async function scaleRows(sandboxUrl: string, seconds: number): Promise<BenchRow[]> {
  const connections = CONNECTIONS * INSTANCES;
  const one = await scaleRun(sandboxUrl, 1, connections, seconds);
  const many = await scaleRun(sandboxUrl, INSTANCES, connections, seconds);
  const onceNote = (run: ScaleRun) =>
    `${run.recordedOnce} of ${run.acked} acked keys recorded exactly once (${run.ackedMissing} missing, ${run.recordedMoreThanOnce} keys recorded more than once), warm-up included`;
  const label = (instances: number) => (instances === 1 ? '1 relay' : `${instances} relays`);
  const rows: BenchRow[] = [];
  const oneAcked = compared(
    `${label(1)}, PostgreSQL: acked`,
    one.ackedPerSecond,
    'events/s',
    undefined,
    `${connections} connections on it, 1 event/request, ${seconds} s after a ${WARM_UP_SECONDS} s warm-up${failures(one.failed)}`,
  );
  const manyAcked = compared(
    `${label(INSTANCES)}, PostgreSQL: acked`,
    many.ackedPerSecond,
    'events/s',
    oneAcked,
    `${connections / INSTANCES} connections on each; the instances share this machine's cores with the load and PostgreSQL, so this is their coordination cost, not scale-out capacity${failures(many.failed)}`,
  );
  const oneP99 = compared(`${label(1)}: p99`, one.p99Ms, 'ms');
  const manyP99 = compared(`${label(INSTANCES)}: p99 (worst instance)`, many.p99Ms, 'ms', oneP99);
  const delivered = (run: ScaleRun) => `all recorded by the sandbox ÷ (warm-up + load + drain of ${run.drainSeconds.toFixed(1)} s)`;
  const oneDelivered = compared(`${label(1)}: delivered`, one.deliveredPerSecond, 'events/s', undefined, delivered(one));
  const manyDelivered = compared(`${label(INSTANCES)}: delivered`, many.deliveredPerSecond, 'events/s', oneDelivered, delivered(many));
  const oneOnce = compared(`${label(1)}: exactly once`, (100 * one.recordedOnce) / one.acked, '% of acked', undefined, onceNote(one));
  const manyOnce = compared(
    `${label(INSTANCES)}: exactly once`,
    (100 * many.recordedOnce) / many.acked,
    '% of acked',
    oneOnce,
    onceNote(many),
  );
  rows.push(oneAcked, manyAcked, oneP99, manyP99, oneDelivered, manyDelivered, oneOnce, manyOnce);
  return rows;
}

/**
 * Durable state: (1) the outbox's enqueue cost per event on each engine by group size, (2) what group commit gives a
 * SQLite relay, (3) three relays on PostgreSQL beside one. ONCEKIT_BENCH_SECONDS sets each load's length (default 5).
 */
export async function runStateBench(): Promise<BenchRow[]> {
  const seconds = Number(process.env.ONCEKIT_BENCH_SECONDS ?? 5);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error('ONCEKIT_BENCH_SECONDS must be a positive number');
  const rows = await storeRows();
  const sandbox = await startOncekit(['sandbox', '--port', '0'], { PATH: process.env.PATH, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY });
  try {
    const sandboxUrl = sandbox.url ?? '';
    rows.push(...(await groupCommitRows(sandboxUrl, seconds)));
    rows.push(...(await scaleRows(sandboxUrl, seconds)));
  } finally {
    await sandbox.stop();
  }
  const last = rows[rows.length - 1] as BenchRow;
  rows[rows.length - 1] = {
    ...last,
    note: `${last.note}. Every process (autocannon here, the sandbox, the relays, PostgreSQL) shares ${cpus().length} cores; logs at warn`,
  };
  return rows;
}
