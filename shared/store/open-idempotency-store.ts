import { Redis } from 'ioredis';
import { type IdempotencyStore, type StoreClockOption, StoreUnavailableError } from './idempotency-store.js';
import { describeStoreLocation, type StoreLocation } from './location.js';
import { MemoryIdempotencyStore } from './memory-store.js';
import { PostgresIdempotencyStore } from './postgres-store.js';
import { type RedisPersistenceOptions, requireRedisPersistence } from './redis-safety.js';
import { RedisIdempotencyStore } from './redis-store.js';
import { SqliteIdempotencyStore } from './sqlite-store.js';

export interface OpenIdempotencyStoreOptions extends StoreClockOption, RedisPersistenceOptions {
  /** Redis only: prefix of every key (records under `{prefix}idem:`); default `oncekit:`. */
  readonly redisKeyPrefix?: string;
  /** Redis only: how long a connect or a command may take before the store reports itself unavailable; default 2000. */
  readonly redisTimeoutMs?: number;
  /** PostgreSQL only: the schema of oncekit's tables; default the location's `?schema=`, else `public`. */
  readonly postgresSchema?: string;
}

/** Opens the idempotency store at `location`; `close()` closes the file, connection or pool it opened. */
export async function openIdempotencyStore(location: StoreLocation, options: OpenIdempotencyStoreOptions = {}): Promise<IdempotencyStore> {
  const clock = options.clock ? { clock: options.clock } : {};
  if (location.kind === 'memory') return new MemoryIdempotencyStore(clock);
  if (location.kind === 'sqlite') return SqliteIdempotencyStore.open(location.path, clock);
  // A pool of its own for now; production time comes from the server's clock (see postgres-database.ts).
  if (location.kind === 'postgres') {
    return PostgresIdempotencyStore.open(location, {
      ...clock,
      ...(options.postgresSchema === undefined ? {} : { schema: options.postgresSchema }),
    });
  }
  const client = await connectStateRedis(location.url, options.redisTimeoutMs ?? 2000, options);
  const store = new RedisIdempotencyStore({
    client,
    ownsClient: true,
    ...clock,
    ...(options.redisKeyPrefix === undefined ? {} : { keyPrefix: options.redisKeyPrefix }),
  });
  try {
    await store.ready();
    return store;
  } catch (error) {
    await store.close();
    throw error;
  }
}

/**
 * Connects to a Redis that is to hold oncekit's state: refuses one that keeps nothing on disk (RedisNotPersistentError)
 * unless `allowVolatile`, which warns. Every production opener goes through here.
 */
export async function connectStateRedis(url: string, timeoutMs: number, options: RedisPersistenceOptions = {}): Promise<Redis> {
  const client = await connectRedis(url, timeoutMs);
  try {
    await requireRedisPersistence(client, describeStoreLocation({ kind: 'redis', url }), options);
    return client;
  } catch (error) {
    client.disconnect();
    throw error;
  }
}

/** Connects, failing fast: a request must get a 503 quickly rather than queue while Redis is down. */
export async function connectRedis(url: string, timeoutMs: number): Promise<Redis> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  // Without a listener ioredis prints every reconnect error; failures reach callers through their commands.
  client.on('error', () => {});
  try {
    await client.connect();
    return client;
  } catch (error) {
    client.disconnect();
    const reason = error instanceof Error ? error.message : String(error);
    throw new StoreUnavailableError(`no Redis answered at ${describeStoreLocation({ kind: 'redis', url })}: ${reason}`, { cause: error });
  }
}
