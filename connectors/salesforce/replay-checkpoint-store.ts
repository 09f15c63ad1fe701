import { InvalidInputError } from '../../shared/errors.js';
import type { StoreLocation } from '../../shared/store/location.js';
import { connectStateRedis } from '../../shared/store/open-idempotency-store.js';
import { PostgresDatabase, SERVER_NOW_MS } from '../../shared/store/postgres-database.js';
import {
  DEFAULT_REDIS_PREFIX,
  keyPart,
  LuaScript,
  markerGuardLua,
  RedisStateGuard,
  type RedisStoreSettings,
} from '../../shared/store/redis-safety.js';
import { migrate, openSqliteDatabase } from '../../shared/store/sqlite-database.js';

/**
 * Where the Platform Event subscriber keeps, per channel, the replayId of the last event its sink took. Saved only
 * after the sink resolved, so a restart resumes right after it (within Salesforce's 72-hour retention). `openReplayCheckpointStore`
 * keeps them next to the rest of the relay's state.
 */
export interface ReplayCheckpointStore {
  load(channel: string): Promise<string | number | null>;
  save(channel: string, replayId: string | number): Promise<void>;
}

/** A stored checkpoint as the replay extension wants it: a whole number. */
export function checkpointReplayId(channel: string, value: string | number | null): number | null {
  if (value === null) return null;
  const replayId = typeof value === 'number' ? value : /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isSafeInteger(replayId) || replayId < 0) {
    throw new InvalidInputError([
      { field: `checkpoint(${channel})`, reason: `expected a stored replayId (a whole number ≥ 0), got ${JSON.stringify(value)}` },
    ]);
  }
  return replayId;
}

export interface MemoryReplayCheckpointStore extends ReplayCheckpointStore {
  /** Every save, in order, for tests and status pages. */
  readonly saves: readonly { readonly channel: string; readonly replayId: string | number }[];
  current(channel: string): string | number | null;
}

/** Keeps checkpoints in memory: for tests, and for a relay that accepts replaying from -1/-2 after a restart. */
export function memoryReplayCheckpointStore(initial: Readonly<Record<string, string | number>> = {}): MemoryReplayCheckpointStore {
  const checkpoints = new Map<string, string | number>(Object.entries(initial));
  const saves: { channel: string; replayId: string | number }[] = [];
  return {
    saves,
    current: (channel) => checkpoints.get(channel) ?? null,
    async load(channel) {
      return checkpoints.get(channel) ?? null;
    },
    async save(channel, replayId) {
      checkpoints.set(channel, replayId);
      saves.push({ channel, replayId });
    },
  };
}

export interface DurableReplayCheckpointStore extends ReplayCheckpointStore {
  close(): Promise<void>;
}

/** Redis only: the persistence settings and the key prefix (checkpoints under `{prefix}sf-replay:`). */
export type OpenReplayCheckpointStoreOptions = RedisStoreSettings;

// KEYS[1] the checkpoint, KEYS[2] the marker; ARGV[1] the marker id. Both check the marker (see redis-safety.ts).
const LOAD = new LuaScript(`${markerGuardLua('KEYS[2]', 'ARGV[1]')}return redis.call('GET', KEYS[1])`);
// ARGV[2] the replayId.
const SAVE = new LuaScript(`${markerGuardLua('KEYS[2]', 'ARGV[1]')}return redis.call('SET', KEYS[1], ARGV[2])`);

/**
 * Where the Platform Event subscriber keeps the last replayId it handed to the outbox, next to the rest of the relay's
 * state, so a restart resumes there (within Salesforce's 72 h retention). On Redis: `{prefix}sf-replay:{tenant}:{channel}`
 * (both parts encoded), behind the same persistence check and marker as the other Redis stores.
 */
export async function openReplayCheckpointStore(
  location: StoreLocation,
  tenant: string,
  options: OpenReplayCheckpointStoreOptions = {},
): Promise<DurableReplayCheckpointStore> {
  if (location.kind === 'memory') {
    const store = memoryReplayCheckpointStore();
    return { load: (channel) => store.load(channel), save: (channel, id) => store.save(channel, id), close: async () => {} };
  }
  if (location.kind === 'sqlite') {
    const db = openSqliteDatabase(location.path);
    migrate(db, 'salesforce_replay', 1, [
      `CREATE TABLE IF NOT EXISTS salesforce_replay_checkpoints (
         tenant TEXT NOT NULL, channel TEXT NOT NULL, replay_id TEXT NOT NULL, saved_at INTEGER NOT NULL,
         PRIMARY KEY (tenant, channel))`,
    ]);
    const read = db.prepare<[string, string], { replay_id: string }>(
      'SELECT replay_id FROM salesforce_replay_checkpoints WHERE tenant = ? AND channel = ?',
    );
    const write = db.prepare<[string, string, string, number]>(
      `INSERT INTO salesforce_replay_checkpoints (tenant, channel, replay_id, saved_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (tenant, channel) DO UPDATE SET replay_id = excluded.replay_id, saved_at = excluded.saved_at`,
    );
    return {
      load: async (channel) => read.get(tenant, channel)?.replay_id ?? null,
      save: async (channel, replayId) => {
        write.run(tenant, channel, String(replayId), Date.now());
      },
      close: async () => {
        db.close();
      },
    };
  }
  if (location.kind === 'postgres') return openPostgresCheckpoints(location, tenant);
  const redis = await connectStateRedis(location.url, 5000, options);
  const prefix = options.redisKeyPrefix ?? DEFAULT_REDIS_PREFIX;
  const guard = new RedisStateGuard(redis, prefix);
  try {
    await guard.markerId();
  } catch (error) {
    redis.disconnect();
    throw error;
  }
  const keysOf = (channel: string): string[] => [`${prefix}sf-replay:${keyPart(tenant)}:${keyPart(channel)}`, guard.markerKey];
  return {
    load: async (channel) => {
      const value = await guard.run(LOAD, keysOf(channel), []);
      return typeof value === 'string' ? value : null;
    },
    save: async (channel, replayId) => {
      await guard.run(SAVE, keysOf(channel), [String(replayId)]);
    },
    close: async () => {
      await redis.quit();
    },
  };
}

/** PostgreSQL: one row per (tenant, channel) in the location's schema, saved with the server's time. A pool of its own for now. */
async function openPostgresCheckpoints(
  location: Extract<StoreLocation, { kind: 'postgres' }>,
  tenant: string,
): Promise<DurableReplayCheckpointStore> {
  const db = await PostgresDatabase.open(location, 'salesforce_replay', [
    [
      `CREATE TABLE salesforce_replay_checkpoints (
         tenant text NOT NULL, channel text NOT NULL, replay_id text NOT NULL, saved_at bigint NOT NULL,
         PRIMARY KEY (tenant, channel))`,
    ],
  ]);
  const run = async <T>(operation: string, work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      throw db.unavailable(`${operation} a replay checkpoint`, error);
    }
  };
  return {
    load: (channel) =>
      run('loading', async () => {
        const result = await db.pool.query<{ replay_id: string }>(
          'SELECT replay_id FROM salesforce_replay_checkpoints WHERE tenant = $1 AND channel = $2',
          [tenant, channel],
        );
        return result.rows[0]?.replay_id ?? null;
      }),
    save: (channel, replayId) =>
      run('saving', async () => {
        await db.pool.query(
          `INSERT INTO salesforce_replay_checkpoints (tenant, channel, replay_id, saved_at) VALUES ($1, $2, $3, ${SERVER_NOW_MS})
           ON CONFLICT (tenant, channel) DO UPDATE SET replay_id = excluded.replay_id, saved_at = excluded.saved_at`,
          [tenant, channel, String(replayId)],
        );
      }),
    close: () => db.close(),
  };
}
