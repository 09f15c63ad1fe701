import { Redis } from 'ioredis';
import { type IdempotencyStore, type StoreClockOption, StoreUnavailableError } from './idempotency-store.js';
import { describeStoreLocation, type StoreLocation } from './location.js';
import { MemoryIdempotencyStore } from './memory-store.js';
import { PostgresIdempotencyStore } from './postgres-store.js';
import { RedisIdempotencyStore } from './redis-store.js';
import { SqliteIdempotencyStore } from './sqlite-store.js';

export interface OpenIdempotencyStoreOptions extends StoreClockOption {
  /** Redis only: prefix of every key; default DEFAULT_REDIS_KEY_PREFIX. */
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
  const client = await connectRedis(location.url, options.redisTimeoutMs ?? 2000);
  return new RedisIdempotencyStore({
    client,
    ownsClient: true,
    ...clock,
    ...(options.redisKeyPrefix === undefined ? {} : { keyPrefix: options.redisKeyPrefix }),
  });
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
