import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { KeyRejectedError } from '../../../shared/keys/decide.js';
import { createSender, type Sender, SenderClosedError, type SenderOptions } from '../../../shared/sender/sender.js';
import { dropTestSchema, skipPostgresTests, testPostgresUrl, uniqueTestSchema } from '../state/postgres/test-env.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from '../state/redis/test-env.js';

let sandbox: Sandbox;
let dir: string;
const open: Sender[] = [];

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'oncekit-sender-'));
});
afterEach(async () => {
  for (const sender of open.splice(0)) await sender.close({ timeoutMs: 0 }).catch(() => {});
  sandbox.reset();
});
afterAll(async () => {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

let tenants = 0;
const newTenant = (): string => `sender_${process.pid}_${++tenants}`;
// Fast retries: a test waits for the backoff of a failed attempt, not for minutes.
const FAST = { backoffBaseMs: 20, backoffMaxMs: 100, pollMs: 20 };

async function sender(tenant: string, overrides: Partial<SenderOptions> = {}): Promise<Sender> {
  const created = await createSender({
    target: { baseUrl: sandbox.url, tenant, apiKey: DEFAULT_SANDBOX_API_KEY },
    store: `sqlite:${join(dir, `${tenant}.db`)}`,
    delivery: FAST,
    ...overrides,
  });
  open.push(created);
  return created;
}

const purchase = (userId: string, n: number) => ({ userId, accountId: userId, events: [{ key: 'purchase', fields: { n } }] });

describe('createSender', () => {
  it('resolves once the event is durable, then delivers it in the background', async () => {
    const tenant = newTenant();
    const s = await sender(tenant);
    const receipt = await s.send(purchase('ann', 1), { idempotencyKey: 'order-0001' });
    expect(receipt).toMatchObject({ outcome: 'enqueued', key: 'order-0001', decision: { decision: 'kept' } });
    const report = await s.flush({ timeoutMs: 10_000 });
    expect(report).toMatchObject({ drained: true, left: 0 });
    expect((await s.status(receipt.id))?.state).toBe('delivered');
    const events = sandbox.inspect(tenant).events;
    expect(events.map((event) => event.idempotencyKey)).toEqual(['order-0001']);
  });

  it('answers the same key again as a duplicate, and the target records the event once', async () => {
    const tenant = newTenant();
    const s = await sender(tenant);
    const first = await s.send(purchase('bob', 1), { idempotencyKey: 'order-0002' });
    const again = await s.send(purchase('bob', 1), { idempotencyKey: 'order-0002' });
    expect(again).toMatchObject({ outcome: 'duplicate', id: first.id });
    await s.flush({ timeoutMs: 10_000 });
    const late = await s.send(purchase('bob', 1), { idempotencyKey: 'order-0002' });
    expect(late).toMatchObject({ outcome: 'duplicate', id: first.id, state: 'delivered' });
    expect(sandbox.inspect(tenant).events).toHaveLength(1);
  });

  it('loses nothing across close and reopen while the target fails, and sends each event once after', async () => {
    await closeAndReopen(newTenant(), {});
  });

  it.skipIf(skipPostgresTests)('does the same on a PostgreSQL store given by URL', async () => {
    const schema = uniqueTestSchema('sender');
    try {
      await closeAndReopen(newTenant(), { store: testPostgresUrl(schema) });
    } finally {
      await dropTestSchema(schema);
    }
  });

  it.skipIf(skipRedisTests)('does the same on a Redis store given by URL', async () => {
    const redisKeyPrefix = uniqueRedisPrefix('sender');
    try {
      // The test Redis keeps nothing on disk; a production store must (the sender refuses one that does not).
      await closeAndReopen(newTenant(), { store: redisEnv.url, redisKeyPrefix, allowVolatileRedis: true });
    } finally {
      const client = await connectTestRedis();
      await deleteRedisKeys(client, redisKeyPrefix);
      client.disconnect();
    }
  });

  async function closeAndReopen(tenant: string, store: Partial<SenderOptions>): Promise<void> {
    sandbox.faults.set('503=1');
    const first = await sender(tenant, store);
    const keys = ['reopen-key-1', 'reopen-key-2', 'reopen-key-3'];
    for (const [index, key] of keys.entries()) await first.send(purchase('cid', index), { idempotencyKey: key });
    const closing = await first.close({ timeoutMs: 200 });
    expect(closing).toMatchObject({ drained: false, left: 3 });
    expect(sandbox.inspect(tenant).events).toHaveLength(0);
    await expect(first.send(purchase('cid', 9), { idempotencyKey: 'after-close' })).rejects.toBeInstanceOf(SenderClosedError);

    sandbox.faults.clear();
    const second = await sender(tenant, store);
    expect(await second.flush({ timeoutMs: 10_000 })).toMatchObject({ drained: true, left: 0 });
    expect(await second.close()).toMatchObject({ drained: true, left: 0 });
    const recorded = sandbox.inspect(tenant).events.map((event) => event.idempotencyKey);
    expect(recorded.sort()).toEqual(keys);
  }

  it('puts the key through the key rules: dropped by default, refused under reject', async () => {
    const tenant = newTenant();
    const dropping = await sender(tenant);
    const dropped = await dropping.send(purchase('dee', 1), { idempotencyKey: 'short' });
    expect(dropped).toMatchObject({ outcome: 'enqueued', key: null, decision: { decision: 'dropped', reason: 'too_short' } });
    const hashing = await sender(newTenant(), { invalidKeyPolicy: 'hash' });
    expect((await hashing.send(purchase('dee', 2), { idempotencyKey: 'short' })).key).toMatch(/^oncekit-sha256-/);
    const rejecting = await sender(newTenant(), { invalidKeyPolicy: 'reject' });
    await expect(rejecting.send(purchase('dee', 3), { idempotencyKey: 'bad key!' })).rejects.toBeInstanceOf(KeyRejectedError);
  });

  it('refuses bad input and bad options naming the field', async () => {
    const s = await sender(newTenant());
    const bad = s.send({ userId: '', accountId: 'x', events: [{ key: 'purchase' }] }, { idempotencyKey: 'order-0003' });
    await expect(bad).rejects.toBeInstanceOf(InvalidInputError);
    await expect(bad).rejects.toThrow(/userId/);
    await expect(s.flush({ timeoutMs: -1 })).rejects.toThrow(/timeoutMs/);
    await expect(s.close({ timeoutMs: 1.5 })).rejects.toThrow(/timeoutMs/);
    const noUrl = createSender({ target: { baseUrl: 'not a url', tenant: 't', apiKey: 'k' }, store: 'memory' });
    await expect(noUrl).rejects.toThrow(/target\.baseUrl/);
    const badStore = createSender({ target: { baseUrl: sandbox.url, tenant: 't', apiKey: 'k' }, store: 'ftp://x' });
    await expect(badStore).rejects.toThrow(/store/);
  });
});
