import type { Clock } from '../clock.js';
import type { OutboxStore } from '../outbox/types.js';
import type { CheckpointStore } from './checkpoints.js';
import { type IdempotencyStore, type StoreClockOption, storeFailure } from './idempotency.js';
import type { StoreLocation } from './location.js';
import { MemoryCheckpointStore } from './memory/checkpoints.js';
import { MemoryIdempotencyStore } from './memory/idempotency.js';
import { MemoryOutboxStore } from './memory/outbox.js';
import type { RedisPersistenceOptions } from './redis/connection.js';
import type { SqliteDatabase } from './sqlite/database.js';

// Each engine (and its driver: better-sqlite3, pg, ioredis) is loaded when a store of its kind is opened, so a
// process pays the memory of the one it uses.

/** Everything oncekit keeps durable, over one file, connection or pool per process. */
export interface State {
  readonly location: StoreLocation;
  /** Inbound dedup (the inbox) and request idempotency, each in its own key space. */
  readonly idempotency: IdempotencyStore;
  /** Events on their way to the target, and the ledger of what happened to each. */
  readonly outbox: OutboxStore;
  /** Positions in replayable streams (e.g. Platform Event replay ids). */
  readonly checkpoints: CheckpointStore;
  /** Closes the stores, then the file, connection or pool. */
  close(): Promise<void>;
}

export interface OpenStateOptions extends StoreClockOption, RedisPersistenceOptions {
  /** Redis only: prefix of every key; default `oncekit:`. */
  readonly redisKeyPrefix?: string;
  /** Redis only: how long a connect or a command may take before the store reports itself unavailable; default 5000. */
  readonly redisTimeoutMs?: number;
  /** PostgreSQL only: the schema of oncekit's tables; default the location's `?schema=`, else `public`. */
  readonly postgresSchema?: string;
  /** SQLite only: the page cache in KiB; default OUTBOX_CACHE_KIB. A one-off bulk writer (import) keeps it small. */
  readonly sqliteCacheKib?: number;
}

/**
 * Opens oncekit's state at `location`: memory (tests), `sqlite:PATH` (embedded, one instance), `postgres://…` (many
 * instances) or `redis://…` (many instances, only when it persists). The three stores share one handle.
 */
export async function openState(location: StoreLocation, options: OpenStateOptions = {}): Promise<State> {
  const clock: { clock?: Clock } = options.clock ? { clock: options.clock } : {};
  switch (location.kind) {
    case 'memory':
      return {
        location,
        idempotency: new MemoryIdempotencyStore(clock),
        outbox: new MemoryOutboxStore(clock),
        checkpoints: new MemoryCheckpointStore(),
        close: async () => {},
      };
    case 'sqlite':
      return openSqliteState(location, options, clock);
    case 'postgres':
      return openPostgresState(location, options, clock);
    case 'redis':
      return openRedisState(location, options, clock);
  }
}

async function openSqliteState(
  location: Extract<StoreLocation, { kind: 'sqlite' }>,
  options: OpenStateOptions,
  clock: { clock?: Clock },
): Promise<State> {
  const [{ openSqliteDatabase }, { SqliteIdempotencyStore }, { OUTBOX_CACHE_KIB, SqliteOutboxStore }, { SqliteCheckpointStore }] =
    await Promise.all([
      import('./sqlite/database.js'),
      import('./sqlite/idempotency.js'),
      import('./sqlite/outbox.js'),
      import('./sqlite/checkpoints.js'),
    ]);
  let db: SqliteDatabase;
  try {
    db = openSqliteDatabase(location.path);
  } catch (error) {
    throw storeFailure('sqlite', `opening ${location.path}`, error);
  }
  try {
    // A big outbox outgrows SQLite's 2 MB default page cache (see OUTBOX_CACHE_KIB).
    db.pragma(`cache_size = -${options.sqliteCacheKib ?? OUTBOX_CACHE_KIB}`);
    const idempotency = new SqliteIdempotencyStore({ database: db, ...clock });
    const outbox = new SqliteOutboxStore({ db, ...clock });
    const checkpoints = new SqliteCheckpointStore(db);
    return {
      location,
      idempotency,
      outbox,
      checkpoints,
      close: async () => {
        await idempotency.close();
        await outbox.close();
        db.close();
      },
    };
  } catch (error) {
    db.close();
    throw error;
  }
}

async function openPostgresState(
  location: Extract<StoreLocation, { kind: 'postgres' }>,
  options: OpenStateOptions,
  clock: { clock?: Clock },
): Promise<State> {
  const [{ PostgresDatabase }, { PostgresIdempotencyStore }, { PostgresOutboxStore }, { PostgresCheckpointStore }] = await Promise.all([
    import('./postgres/database.js'),
    import('./postgres/idempotency.js'),
    import('./postgres/outbox.js'),
    import('./postgres/checkpoints.js'),
  ]);
  const database = new PostgresDatabase(location, options.postgresSchema);
  try {
    // Migrations run one module after the other, each under the schema's advisory lock.
    const idempotency = await PostgresIdempotencyStore.create({ database, ...clock });
    const outbox = await PostgresOutboxStore.create({ database, ...clock });
    const checkpoints = await PostgresCheckpointStore.create(database);
    return {
      location,
      idempotency,
      outbox,
      checkpoints,
      close: async () => {
        await idempotency.close();
        await outbox.close();
        await database.close();
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}

async function openRedisState(
  location: Extract<StoreLocation, { kind: 'redis' }>,
  options: OpenStateOptions,
  clock: { clock?: Clock },
): Promise<State> {
  const [
    { connectStateRedis, DEFAULT_REDIS_PREFIX, RedisStateGuard },
    { RedisIdempotencyStore },
    { RedisOutboxStore },
    { RedisCheckpointStore },
  ] = await Promise.all([
    import('./redis/connection.js'),
    import('./redis/idempotency.js'),
    import('./redis/outbox.js'),
    import('./redis/checkpoints.js'),
  ]);
  const client = await connectStateRedis(location.url, options.redisTimeoutMs ?? 5000, options);
  const keyPrefix = options.redisKeyPrefix ?? DEFAULT_REDIS_PREFIX;
  try {
    const idempotency = new RedisIdempotencyStore({ client, keyPrefix, ...clock });
    const outbox = new RedisOutboxStore({ client, keyPrefix, ...clock });
    await idempotency.ready();
    await outbox.ready();
    return {
      location,
      idempotency,
      outbox,
      checkpoints: new RedisCheckpointStore(new RedisStateGuard(client, keyPrefix), keyPrefix),
      close: async () => {
        await idempotency.close();
        await outbox.close();
        await client.quit();
      },
    };
  } catch (error) {
    client.disconnect();
    throw error;
  }
}
