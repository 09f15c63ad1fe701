import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  IDEMPOTENCY_PROBLEM_TYPES,
  type IdempotencyPluginOptions,
  idempotencyPlugin,
  REPLAYED_HEADER,
} from '../../../shared/http/idempotency-plugin.js';
import { type IdempotencyStore, StoreUnavailableError } from '../../../shared/state/idempotency.js';
import { MemoryIdempotencyStore } from '../../../shared/state/memory/idempotency.js';
import { RedisIdempotencyStore } from '../../../shared/state/redis/idempotency.js';
import { openSqliteDatabase } from '../../../shared/state/sqlite/database.js';
import { SqliteIdempotencyStore } from '../../../shared/state/sqlite/idempotency.js';
import { connectTestRedis, deleteRedisKeys, skipRedisTests, uniqueRedisPrefix } from '../state/redis/test-env.js';
import { tempDir } from '../state/temp-dir.js';

interface TestApp {
  readonly url: string;
  readonly executions: Map<string, number>;
  /** Holds every /orders handler until released, so tests can overlap requests at will. */
  hold(): () => void;
  /** Lets new requests through without releasing the ones already held. */
  unhold(): void;
  close(): Promise<void>;
}

// Enough sockets for 100 truly concurrent requests.
const agent = new Agent({ connections: 200, pipelining: 0 });
afterAll(() => agent.close());

async function startApp(store: IdempotencyStore, options: Partial<IdempotencyPluginOptions> = {}): Promise<TestApp> {
  const app: FastifyInstance = Fastify();
  const executions = new Map<string, number>();
  const count = (name: string): number => {
    const next = (executions.get(name) ?? 0) + 1;
    executions.set(name, next);
    return next;
  };
  let gate: Promise<void> = Promise.resolve();
  await app.register(idempotencyPlugin, {
    store,
    keyHeaders: ['Idempotency-Key', 'X-SALESBRICKS-IDEMPOTENT-OPERATION-KEY'],
    resolveTenant: (req) => String(req.headers['x-tenant'] ?? 'default'),
    ...options,
  });
  app.post('/orders', async (req, reply) => {
    const n = count('orders');
    await gate;
    reply.code(201).header('location', `/orders/${n}`);
    return { order: n, received: req.body };
  });
  app.post('/fail', async () => {
    count('fail');
    throw new Error('boom');
  });
  app.post('/invalid', async (_req, reply) => {
    count('invalid');
    return reply.code(422).send({ error: 'bad amount' });
  });
  // A one-off transient fault (a store error) on the first call only.
  app.post('/flaky-store', async (_req, reply) => {
    if (count('flaky-store') === 1) throw new StoreUnavailableError('sqlite outbox store: enqueue failed: SQLITE_BUSY');
    return reply.code(201).send({ ok: true });
  });
  app.post('/throttled', async (_req, reply) => {
    count('throttled');
    return reply.code(429).send({ error: 'slow down' });
  });
  app.post('/required', { config: { idempotency: { key: 'required' } } }, async () => ({ n: count('required') }));
  app.post('/off', { config: { idempotency: false } }, async () => ({ n: count('off') }));
  app.put('/opt-in', { config: { idempotency: {} } }, async () => ({ n: count('opt-in') }));
  app.put('/uncovered', async () => ({ n: count('uncovered') }));
  app.post(
    '/validated',
    { schema: { body: { type: 'object', required: ['amount'], properties: { amount: { type: 'number' } } } } },
    async () => ({ n: count('validated') }),
  );
  app.post('/binary', async (_req, reply) => {
    const n = count('binary');
    return reply.type('application/octet-stream').send(Buffer.from([0, 255, n]));
  });
  app.post('/big', async () => 'x'.repeat(2000 + count('big')));
  app.post('/sent-by-reply', (_req, reply) => {
    const n = count('sent-by-reply');
    setTimeout(() => reply.code(202).send({ n }), 5);
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    executions,
    hold() {
      let release = (): void => {};
      gate = new Promise((resolve) => {
        release = resolve;
      });
      return release;
    },
    unhold() {
      gate = Promise.resolve();
    },
    close: () => app.close(),
  };
}

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json(): unknown;
}

async function send(
  app: TestApp,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
  method: 'POST' | 'PUT' = 'POST',
): Promise<Answer> {
  const response = await request(`${app.url}${path}`, {
    method,
    dispatcher: agent,
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.body.text();
  return { status: response.statusCode, headers: response.headers, text, json: () => JSON.parse(text) };
}

const key = (value: string) => ({ 'idempotency-key': value });

describe('idempotency plugin (memory store, real Fastify over loopback)', () => {
  let app: TestApp;
  afterEach(async () => {
    await app.close();
  });

  it('executes once and replays the first response with Idempotent-Replayed: true', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    const first = await send(app, '/orders', { amount: 5, currency: 'USD' }, key('order-1'));
    expect(first.status).toBe(201);
    expect(first.headers[REPLAYED_HEADER]).toBeUndefined();
    const second = await send(app, '/orders', { currency: 'USD', amount: 5 }, key('order-1'));
    expect(second.status).toBe(201);
    expect(second.headers[REPLAYED_HEADER]).toBe('true');
    expect(second.headers.location).toBe('/orders/1');
    expect(second.headers['content-type']).toBe(first.headers['content-type']);
    expect(second.text).toBe(first.text);
    expect(app.executions.get('orders')).toBe(1);
  });

  it('reads the key from a vendor header as well', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    await send(app, '/orders', { a: 1 }, { 'x-salesbricks-idempotent-operation-key': 'sb-1' });
    const again = await send(app, '/orders', { a: 1 }, { 'x-salesbricks-idempotent-operation-key': 'sb-1' });
    expect(again.headers[REPLAYED_HEADER]).toBe('true');
    const disagree = await send(app, '/orders', { a: 1 }, { 'x-salesbricks-idempotent-operation-key': 'sb-2', 'idempotency-key': 'other' });
    expect(disagree.status).toBe(400);
    expect(disagree.json()).toMatchObject({ type: IDEMPOTENCY_PROBLEM_TYPES.keyInvalid });
    expect(app.executions.get('orders')).toBe(1);
  });

  it('refuses the same key with a different payload: 400 problem+json by default', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    await send(app, '/orders', { amount: 5 }, key('order-2'));
    const reused = await send(app, '/orders', { amount: 6 }, key('order-2'));
    expect(reused.status).toBe(400);
    expect(reused.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(reused.json()).toMatchObject({ type: IDEMPOTENCY_PROBLEM_TYPES.keyReused, status: 400 });
    expect(reused.headers[REPLAYED_HEADER]).toBeUndefined();
    // A different route is a different request too.
    expect((await send(app, '/binary', { amount: 5 }, key('order-2'))).status).toBe(400);
    expect(app.executions.get('orders')).toBe(1);
    expect(app.executions.get('binary')).toBeUndefined();
  });

  it('answers a payload mismatch with 422 when configured', async () => {
    app = await startApp(new MemoryIdempotencyStore(), { mismatchStatus: 422 });
    await send(app, '/orders', { amount: 5 }, key('order-3'));
    const reused = await send(app, '/orders', { amount: 6 }, key('order-3'));
    expect(reused.status).toBe(422);
    expect(reused.json()).toMatchObject({ type: IDEMPOTENCY_PROBLEM_TYPES.keyReused, status: 422 });
  });

  it('answers a concurrent duplicate with 409 and Retry-After, then replays once the first is done', async () => {
    app = await startApp(new MemoryIdempotencyStore(), { retryAfterSeconds: 2 });
    const release = app.hold();
    const first = send(app, '/orders', { amount: 1 }, key('order-4'));
    await waitFor(() => app.executions.get('orders') === 1);
    const duplicate = await send(app, '/orders', { amount: 1 }, key('order-4'));
    expect(duplicate.status).toBe(409);
    expect(duplicate.headers['retry-after']).toBe('2');
    expect(duplicate.json()).toMatchObject({ type: IDEMPOTENCY_PROBLEM_TYPES.inProgress, status: 409 });
    // A different payload while in progress is a mismatch, not a conflict.
    expect((await send(app, '/orders', { amount: 2 }, key('order-4'))).status).toBe(400);
    release();
    expect((await first).status).toBe(201);
    expect((await send(app, '/orders', { amount: 1 }, key('order-4'))).headers[REPLAYED_HEADER]).toBe('true');
    expect(app.executions.get('orders')).toBe(1);
  });

  it('stores and replays a deterministic 4xx once the handler has run', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    const first = await send(app, '/invalid', {}, key('invalid-1'));
    expect(first.status).toBe(422);
    const again = await send(app, '/invalid', {}, key('invalid-1'));
    expect(again.status).toBe(422);
    expect(again.headers[REPLAYED_HEADER]).toBe('true');
    expect(again.text).toBe(first.text);
    expect(app.executions.get('invalid')).toBe(1);
  });

  it.each(['deterministic', 'stripe-v1', 'success-only'] as const)(
    'never stores a 5xx (%s): a one-off store error is not replayed, the retry with the same key runs',
    async (storePolicy) => {
      app = await startApp(new MemoryIdempotencyStore(), { storePolicy });
      expect((await send(app, '/flaky-store', {}, key('flaky-1'))).status).toBe(500);
      const retry = await send(app, '/flaky-store', {}, key('flaky-1'));
      expect(retry.status).toBe(201);
      expect(retry.headers[REPLAYED_HEADER]).toBeUndefined();
      const replayed = await send(app, '/flaky-store', {}, key('flaky-1'));
      expect(replayed.status).toBe(201);
      expect(replayed.headers[REPLAYED_HEADER]).toBe('true');
      expect(app.executions.get('flaky-store')).toBe(2);
      await send(app, '/fail', {}, key('fail-1'));
      await send(app, '/fail', {}, key('fail-1'));
      expect(app.executions.get('fail')).toBe(2);
    },
  );

  it('never stores a 429: the key is released and the retry executes', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    expect((await send(app, '/throttled', {}, key('t-1'))).status).toBe(429);
    const retry = await send(app, '/throttled', {}, key('t-1'));
    expect(retry.status).toBe(429);
    expect(retry.headers[REPLAYED_HEADER]).toBeUndefined();
    expect(app.executions.get('throttled')).toBe(2);
  });

  it('refuses a body nested 100,000 levels deep with a 400 naming the path, before any claim', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    const depth = 100_000;
    const response = await request(`${app.url}/orders`, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/json', 'idempotency-key': 'deep-1' },
      body: `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
    });
    const problem = (await response.body.json()) as { type: string; detail: string };
    expect(response.statusCode).toBe(400);
    expect(problem.type).toBe(IDEMPOTENCY_PROBLEM_TYPES.requestInvalid);
    expect(problem.detail).toMatch(/^body\.a\.a\.a.*: nested deeper than 64 levels$/);
    expect(app.executions.get('orders')).toBeUndefined();
    expect((await send(app, '/orders', { a: 1 }, key('deep-1'))).status).toBe(201);
  });

  it('with success-only, a 500 is not stored', async () => {
    app = await startApp(new MemoryIdempotencyStore(), { storePolicy: 'success-only' });
    await send(app, '/fail', {}, key('fail-2'));
    await send(app, '/fail', {}, key('fail-2'));
    expect(app.executions.get('fail')).toBe(2);
  });

  it('validates the key: too long or bad characters is 400 problem+json, and nothing is stored', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    const longest = 'k'.repeat(255);
    expect((await send(app, '/orders', {}, key(longest))).status).toBe(201);
    const tooLong = await send(app, '/orders', {}, key('k'.repeat(256)));
    expect(tooLong.status).toBe(400);
    expect(tooLong.json()).toMatchObject({ type: IDEMPOTENCY_PROBLEM_TYPES.keyInvalid, detail: expect.stringContaining('255') });
    const quoted = await send(app, '/orders', {}, key('has"quote'));
    expect(quoted.status).toBe(400);
    expect(app.executions.get('orders')).toBe(1);
  });

  it('a missing key is allowed by default and required where the route says so', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    await send(app, '/orders', { a: 1 });
    await send(app, '/orders', { a: 1 });
    expect(app.executions.get('orders')).toBe(2);
    const missing = await send(app, '/required', {});
    expect(missing.status).toBe(400);
    expect(missing.json()).toMatchObject({
      type: IDEMPOTENCY_PROBLEM_TYPES.keyMissing,
      detail: expect.stringContaining('Idempotency-Key'),
    });
    expect(app.executions.get('required')).toBeUndefined();
    await send(app, '/required', {}, key('r-1'));
    expect((await send(app, '/required', {}, key('r-1'))).headers[REPLAYED_HEADER]).toBe('true');
    expect(app.executions.get('required')).toBe(1);
  });

  it('can require the key for every covered route', async () => {
    app = await startApp(new MemoryIdempotencyStore(), { key: 'required' });
    expect((await send(app, '/orders', {})).status).toBe(400);
    expect(app.executions.get('orders')).toBeUndefined();
  });

  it('covers POST and PATCH by default; routes opt out or in through config', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    await send(app, '/off', {}, key('o-1'));
    await send(app, '/off', {}, key('o-1'));
    expect(app.executions.get('off')).toBe(2);
    await send(app, '/uncovered', {}, key('u-1'), 'PUT');
    await send(app, '/uncovered', {}, key('u-1'), 'PUT');
    expect(app.executions.get('uncovered')).toBe(2);
    await send(app, '/opt-in', {}, key('i-1'), 'PUT');
    expect((await send(app, '/opt-in', {}, key('i-1'), 'PUT')).headers[REPLAYED_HEADER]).toBe('true');
    expect(app.executions.get('opt-in')).toBe(1);
  });

  it('does not store a schema validation failure: the corrected request with the same key executes', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    expect((await send(app, '/validated', { amount: 'five' }, key('v-1'))).status).toBe(400);
    expect(app.executions.get('validated')).toBeUndefined();
    expect((await send(app, '/validated', { amount: 5 }, key('v-1'))).status).toBe(200);
    expect(app.executions.get('validated')).toBe(1);
  });

  it('scopes keys by tenant', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    await send(app, '/orders', { a: 1 }, { ...key('shared'), 'x-tenant': 'acme' });
    const other = await send(app, '/orders', { a: 1 }, { ...key('shared'), 'x-tenant': 'globex' });
    expect(other.headers[REPLAYED_HEADER]).toBeUndefined();
    expect(app.executions.get('orders')).toBe(2);
  });

  it('replays binary bodies byte for byte, and handlers that send through reply', async () => {
    app = await startApp(new MemoryIdempotencyStore());
    const first = await request(`${app.url}/binary`, { method: 'POST', dispatcher: agent, headers: key('b-1') });
    const firstBytes = Buffer.from(await first.body.arrayBuffer());
    const again = await request(`${app.url}/binary`, { method: 'POST', dispatcher: agent, headers: key('b-1') });
    expect(again.headers[REPLAYED_HEADER]).toBe('true');
    expect(again.headers['content-type']).toBe('application/octet-stream');
    expect(Buffer.from(await again.body.arrayBuffer())).toEqual(firstBytes);
    expect((await send(app, '/sent-by-reply', {}, key('s-1'))).status).toBe(202);
    const replayed = await send(app, '/sent-by-reply', {}, key('s-1'));
    expect([replayed.status, replayed.headers[REPLAYED_HEADER], replayed.json()]).toEqual([202, 'true', { n: 1 }]);
  });

  it('replays the status and headers only when the body is larger than the limit', async () => {
    app = await startApp(new MemoryIdempotencyStore(), { maxStoredBodyBytes: 1000 });
    await send(app, '/big', {}, key('big-1'));
    const again = await send(app, '/big', {}, key('big-1'));
    expect([again.status, again.headers[REPLAYED_HEADER], again.headers['idempotent-replay-body-omitted'], again.text]).toEqual([
      200,
      'true',
      'too-large',
      '',
    ]);
    expect(app.executions.get('big')).toBe(1);
  });

  it('fails closed with 503 problem+json when the store fails, and stores nothing', async () => {
    const dir = tempDir();
    const db = openSqliteDatabase(join(dir.path, 'broken.db'));
    const store = new SqliteIdempotencyStore({ database: db });
    db.close();
    app = await startApp(store, { retryAfterSeconds: 3 });
    const answer = await send(app, '/orders', {}, key('down-1'));
    expect(answer.status).toBe(503);
    expect(answer.headers['retry-after']).toBe('3');
    expect(answer.json()).toMatchObject({ type: IDEMPOTENCY_PROBLEM_TYPES.storeUnavailable });
    expect(app.executions.get('orders')).toBeUndefined();
    // Without a key nothing touches the store, so the request executes.
    expect((await send(app, '/orders', {})).status).toBe(201);
    dir.remove();
  });

  it('a request whose handler stalled past its lease is taken over by the retry; the stalled response is not stored', async () => {
    let now = Date.UTC(2025, 0, 1);
    app = await startApp(new MemoryIdempotencyStore({ clock: { now: () => now } }), { leaseMs: 10_000 });
    const releaseStalled = app.hold();
    const stalled = send(app, '/orders', { amount: 7 }, key('crash-1'));
    await waitFor(() => app.executions.get('orders') === 1);
    expect((await send(app, '/orders', { amount: 7 }, key('crash-1'))).status).toBe(409);
    now += 10_000;
    app.unhold();
    // Only the same request may take the expired lease over; a different one is a key reuse.
    expect((await send(app, '/orders', { amount: 8 }, key('crash-1'))).status).toBe(400);
    const retry = await send(app, '/orders', { amount: 7 }, key('crash-1'));
    expect([retry.status, retry.headers[REPLAYED_HEADER], retry.json()]).toEqual([201, undefined, { order: 2, received: { amount: 7 } }]);
    releaseStalled();
    expect((await stalled).json()).toMatchObject({ order: 1 });
    const replay = await send(app, '/orders', { amount: 7 }, key('crash-1'));
    expect([replay.headers[REPLAYED_HEADER], replay.text]).toEqual(['true', retry.text]);
    expect(app.executions.get('orders')).toBe(2);
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface StoreCase {
  readonly name: string;
  readonly skip: boolean;
  open(): Promise<{ store: IdempotencyStore; dispose(): Promise<void> }>;
}

const storeCases: StoreCase[] = [
  { name: 'memory', skip: false, open: async () => ({ store: new MemoryIdempotencyStore(), dispose: async () => {} }) },
  {
    name: 'sqlite',
    skip: false,
    open: async () => {
      const dir = tempDir();
      const store = SqliteIdempotencyStore.open(join(dir.path, 'plugin.db'));
      return { store, dispose: async () => dir.remove() };
    },
  },
  {
    name: 'redis',
    skip: skipRedisTests,
    open: async () => {
      const client: Redis = await connectTestRedis();
      const keyPrefix = uniqueRedisPrefix('plugin');
      const store = new RedisIdempotencyStore({ client, keyPrefix });
      return {
        store,
        dispose: async () => {
          await deleteRedisKeys(client, keyPrefix);
          await client.quit();
        },
      };
    },
  },
];

describe('concurrency: 100 identical requests with one key', () => {
  for (const storeCase of storeCases) {
    it.skipIf(storeCase.skip)(`${storeCase.name}: exactly one executes; the rest get a replay or 409`, async () => {
      const { store, dispose } = await storeCase.open();
      const app = await startApp(store);
      try {
        // Hold the handler until every request is in flight, so they overlap for sure.
        const release = app.hold();
        const answers = Array.from({ length: 100 }, () => send(app, '/orders', { amount: 42, note: 'same' }, key('concurrent-1')));
        await waitFor(() => app.executions.get('orders') === 1);
        await new Promise((resolve) => setTimeout(resolve, 50));
        release();
        const settled = await Promise.all(answers);
        const originals = settled.filter((answer) => answer.status === 201 && answer.headers[REPLAYED_HEADER] === undefined);
        const replays = settled.filter((answer) => answer.status === 201 && answer.headers[REPLAYED_HEADER] === 'true');
        const conflicts = settled.filter((answer) => answer.status === 409 && answer.headers['retry-after'] === '1');
        expect(app.executions.get('orders')).toBe(1);
        expect(originals).toHaveLength(1);
        expect(originals.length + replays.length + conflicts.length).toBe(100);
        expect(conflicts.length).toBeGreaterThan(0);
        for (const replay of replays) expect(replay.text).toBe(originals[0]?.text);
      } finally {
        await app.close();
        await store.close();
        await dispose();
      }
    });
  }
});
