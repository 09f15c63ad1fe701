import type { StoreLocation } from '../store/location.js';
import { connectStateRedis } from '../store/open-idempotency-store.js';
import type { RedisPersistenceOptions } from '../store/redis-safety.js';
import { MemoryOutboxStore } from './memory-store.js';
import { PostgresOutboxStore } from './postgres-store.js';
import { RedisOutboxStore } from './redis-store.js';
import { SqliteOutboxStore } from './sqlite-store.js';
import type { OutboxStoreOptions } from './store-support.js';
import type { OutboxStore } from './types.js';

export interface OpenOutboxStoreOptions extends OutboxStoreOptions, RedisPersistenceOptions {
  /** Redis only: prefix of every key (the outbox under `{prefix}outbox:`); default DEFAULT_OUTBOX_REDIS_PREFIX. */
  readonly redisKeyPrefix?: string;
  /** Redis only: how long a connect or a command may take; default 5000. */
  readonly redisTimeoutMs?: number;
  /** PostgreSQL only: the schema of oncekit's tables; default the location's `?schema=`, else `public`. */
  readonly postgresSchema?: string;
}

/**
 * Opens the outbox at `location` (memory, sqlite:PATH, redis://… or postgres://…); `close()` closes the file,
 * connection or pool it opened.
 */
export async function openOutboxStore(location: StoreLocation, options: OpenOutboxStoreOptions = {}): Promise<OutboxStore> {
  const clock = options.clock ? { clock: options.clock } : {};
  if (location.kind === 'memory') return new MemoryOutboxStore(clock);
  if (location.kind === 'sqlite') return new SqliteOutboxStore({ path: location.path, ...clock });
  // A pool of its own for now; production time comes from the server's clock (see postgres-database.ts).
  if (location.kind === 'postgres') {
    return PostgresOutboxStore.open(location, {
      ...clock,
      ...(options.postgresSchema === undefined ? {} : { schema: options.postgresSchema }),
    });
  }
  const client = await connectStateRedis(location.url, options.redisTimeoutMs ?? 5000, options);
  const store = new RedisOutboxStore({
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
