import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { CachePersistenceLayer } from '@aws-lambda-powertools/idempotency/cache';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { Inbox } from '../shared/inbox/index.js';
import { connectRedis } from '../shared/state/redis/connection.js';
import { RedisIdempotencyStore } from '../shared/state/redis/idempotency.js';
import { type BenchRow, compared, measureRate } from './measure.js';

/** Operations in flight at once: a relay serves many webhook deliveries concurrently over one connection. */
const IN_FLIGHT = 50;
const LEASE_MS = 30_000;
/** Short, so what the bench writes leaves Redis soon even if the clean-up at the end does not run. */
const DONE_TTL_MS = 10 * 60 * 1000;
const DUPLICATE_POOL = 2000;

/**
 * Inbox decisions per second on one Redis, side by side in one run over the same ioredis connection:
 * raw `SET NX PX` (Keygen's receiver, no lease and no safe release), oncekit's inbox, and Powertools' Redis
 * persistence layer (CachePersistenceLayer, given the same connection through its small CacheClient interface).
 */
export async function runInboxBench(): Promise<BenchRow[]> {
  const url = process.env.ONCEKIT_REDIS_URL || 'redis://127.0.0.1:6379';
  let client: Redis;
  try {
    client = await connectRedis(url, 1000);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return [{ name: 'inbox on Redis: skipped', value: 0, unit: '', note: `${reason}. Start Redis or set ONCEKIT_REDIS_URL.` }];
  }
  const prefix = `oncekit-bench:${process.pid}-${Date.now().toString(36)}:`;
  try {
    return await measureAll(client, prefix);
  } finally {
    await deleteKeys(client, prefix);
    await client.quit();
  }
}

async function measureAll(client: Redis, prefix: string): Promise<BenchRow[]> {
  let sequence = 0;
  const nextToken = (): string => `t${++sequence}`;
  const inFlight = (operation: () => Promise<unknown>) => async (): Promise<void> => {
    await Promise.all(Array.from({ length: IN_FLIGHT }, operation));
  };

  const store = new RedisIdempotencyStore({ client, keyPrefix: `${prefix}oncekit:` });
  const inbox = new Inbox({ store, leaseMs: LEASE_MS, doneTtlMs: DONE_TTL_MS });
  const tenant = 'bench';
  const noop = async (): Promise<string> => 'ok';
  const powertools = powertoolsReceiver(client, `${prefix}powertools`);
  const rawKey = (token: string): string => `${prefix}raw:${token}`;

  // New deliveries: every token is seen for the first time.
  const rawNew = await measureRate(
    inFlight(() => client.set(rawKey(nextToken()), '1', 'PX', DONE_TTL_MS, 'NX')),
    IN_FLIGHT,
  );
  const claimNew = await measureRate(
    inFlight(() => store.claim({ tenant, key: nextToken() }, { owner: 'bench', leaseMs: LEASE_MS })),
    IN_FLIGHT,
  );
  const inboxNew = await measureRate(
    inFlight(() => inbox.deliver({ source: 'bench', tenant, token: nextToken() }, noop)),
    IN_FLIGHT,
  );
  const powertoolsNew = await measureRate(
    inFlight(() => powertools({ token: nextToken() })),
    IN_FLIGHT,
  );

  // Duplicates: every token was already processed.
  const done = Array.from({ length: DUPLICATE_POOL }, nextToken);
  for (const token of done) {
    await client.set(rawKey(token), '1', 'PX', DONE_TTL_MS, 'NX');
    await inbox.deliver({ source: 'bench', tenant, token }, noop);
    await powertools({ token });
  }
  let cursor = 0;
  const doneToken = (): string => done[cursor++ % done.length] as string;
  const rawDuplicate = await measureRate(
    inFlight(() => client.set(rawKey(doneToken()), '1', 'PX', DONE_TTL_MS, 'NX')),
    IN_FLIGHT,
  );
  const inboxDuplicate = await measureRate(
    inFlight(() => inbox.deliver({ source: 'bench', tenant, token: doneToken() }, noop)),
    IN_FLIGHT,
  );
  const powertoolsDuplicate = await measureRate(
    inFlight(() => powertools({ token: doneToken() })),
    IN_FLIGHT,
  );

  const unit = 'deliveries/s';
  const rawNewRow = compared(
    'new token: raw SET NX PX, same ioredis client (baseline)',
    rawNew.perSecond,
    unit,
    undefined,
    '1 round trip; no lease, no owner, no done mark',
  );
  const powertoolsNewRow = compared(
    'new token: Powertools CachePersistenceLayer (SET NX EX, then SET)',
    powertoolsNew.perSecond,
    unit,
    rawNewRow,
    '2 round trips; @aws-lambda-powertools/idempotency 2.35.0 on the same ioredis client; hashes the payload (md5)',
  );
  const rawDuplicateRow = compared('duplicate: raw SET NX PX, refused (baseline)', rawDuplicate.perSecond, unit);
  const powertoolsDuplicateRow = compared(
    'duplicate: Powertools (SET NX refused, then GET, replay)',
    powertoolsDuplicate.perSecond,
    unit,
    rawDuplicateRow,
  );
  return [
    rawNewRow,
    compared('new token: oncekit store.claim (Lua, lease + owner)', claimNew.perSecond, unit, rawNewRow, '1 round trip (EVALSHA)'),
    compared('new token: oncekit inbox.deliver (claim, process, done mark)', inboxNew.perSecond, unit, rawNewRow, '2 round trips'),
    powertoolsNewRow,
    compared('new token: oncekit inbox.deliver vs Powertools', inboxNew.perSecond, unit, powertoolsNewRow),
    rawDuplicateRow,
    compared('duplicate: oncekit inbox.deliver, acknowledged', inboxDuplicate.perSecond, unit, rawDuplicateRow, '1 round trip'),
    powertoolsDuplicateRow,
    compared('duplicate: oncekit inbox.deliver vs Powertools', inboxDuplicate.perSecond, unit, powertoolsDuplicateRow),
  ];
}

const setOptions = z.object({ EX: z.number().int().positive().optional(), NX: z.boolean().optional() }).optional();

/** A Keygen-style receiver made idempotent with Powertools, on the given connection. */
function powertoolsReceiver(client: Redis, keyPrefix: string): (event: { token: string }) => Promise<string> {
  // Powertools' CacheClient is node-redis shaped (`set(name, value, {EX, NX})`); this maps it onto ioredis.
  const cacheClient = {
    get: (name: string) => client.get(name),
    set: async (name: string | Uint8Array, value: unknown, options?: unknown): Promise<string | null> => {
      const parsed = setOptions.parse(options);
      const args: (string | number)[] = [typeof name === 'string' ? name : Buffer.from(name).toString(), String(value)];
      if (parsed?.EX !== undefined) args.push('EX', parsed.EX);
      if (parsed?.NX) args.push('NX');
      const reply = await client.call('SET', ...args);
      return typeof reply === 'string' ? reply : null;
    },
    del: (keys: string[]) => client.del(...keys),
  };
  const config = new IdempotencyConfig({ eventKeyJmesPath: 'token', expiresAfterSeconds: DONE_TTL_MS / 1000 });
  // Gives Powertools the same 30 s lease the inbox uses (it takes the lease from a Lambda context).
  config.registerLambdaContext({ getRemainingTimeInMillis: () => LEASE_MS });
  const persistenceStore = new CachePersistenceLayer({ client: cacheClient });
  return makeIdempotent(async (_event: { token: string }) => 'ok', { persistenceStore, config, keyPrefix });
}

async function deleteKeys(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}
