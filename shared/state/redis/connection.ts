import { createHash, randomUUID } from 'node:crypto';
import { type ChainableCommander, Redis } from 'ioredis';
import { z } from 'zod';
import { messageOf, OncekitError, StateLostError } from '../../errors.js';
import { jsonLineLogger, type Logger } from '../../log.js';
import { StoreUnavailableError } from '../idempotency.js';
import { describeStoreLocation } from '../location.js';

/*
 * What makes Redis safe to hold oncekit's state, shared by every Redis store (idempotency, outbox, replay checkpoints):
 *
 * - Persistence: the production openers refuse a Redis that keeps nothing on disk (requireRedisPersistence), unless
 *   the caller allows it for development (ONCEKIT_REDIS_ALLOW_VOLATILE=1, read at the edge), and then say so loudly.
 * - A marker: `{prefix}marker` (a hash: id, createdAt) is written at first use. Every script and every read checks,
 *   on the server and in the same atomic step, that the marker still carries the id this handle saw first. A wipe, a
 *   restart without persistence or a failover to an empty replica makes each operation fail with StateLostError
 *   instead of acting on empty state. (A process that starts after a wipe writes a new marker and cannot know better;
 *   the processes that were running stop, so the loss is seen.)
 * - Time: the scripts read the server's TIME (redisNowLua), so hosts whose clocks disagree still agree on when a lease
 *   or a record expires. Redis 7 replicates a script's effects, not the script, so reading TIME before writing is
 *   allowed. Tests pass their manual clock's now instead (the `clock` option): the contract suites assert exact times.
 * - Keys: one prefix (default `oncekit:`) in front of every key, and every part inside a key name encoded with
 *   keyPart, so a tenant, key or channel containing ':' cannot collide with another.
 */

export const DEFAULT_REDIS_PREFIX = 'oncekit:';

/** The variable the relay and the CLI read to allow a Redis without persistence (development only). */
export const REDIS_ALLOW_VOLATILE_ENV = 'ONCEKIT_REDIS_ALLOW_VOLATILE';

/** True when the environment allows a volatile Redis (`1`, `true` or `yes`). */
export function redisAllowVolatileFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return /^(1|true|yes)$/i.test(env[REDIS_ALLOW_VOLATILE_ENV]?.trim() ?? '');
}

/** One part of a key name: URI-encoded, so it never contains the ':' that separates parts. */
export const keyPart = (part: string): string => encodeURIComponent(part);

export const markerKeyOf = (prefix: string): string => `${prefix}marker`;

/** The error a script returns when the marker is gone or replaced; mapped to StateLostError. */
const STATE_LOST_REPLY = 'ONCEKIT_STATE_LOST';

/**
 * Lua: fails the script unless the marker hash `markerExpr` still has the id `idExpr`. Put it first in a script, before
 * anything is read or written.
 */
export function markerGuardLua(markerExpr: string, idExpr: string): string {
  return `if redis.call('HGET', ${markerExpr}, 'id') ~= ${idExpr} then
  return redis.error_reply('${STATE_LOST_REPLY} the marker key is gone or was replaced')
end
`;
}

/**
 * Lua: `oncekit_now(given)` is the time in epoch ms: the caller's `given` when it is not empty (a test's manual clock),
 * otherwise the server's TIME, so every instance decides expiry on one clock whatever its host's clock says.
 * `oncekit_text(n)` writes a whole number without an exponent.
 */
export const REDIS_NOW_LUA = `
local function oncekit_now(given)
  if given ~= nil and given ~= '' then return tonumber(given) end
  ${redisTimeLua('return')}
end
local function oncekit_text(n) return string.format('%d', n) end
`;

/** Lua statements: the server's TIME in epoch ms, handed to `use` (e.g. `return` or `now =`). */
function redisTimeLua(use: string): string {
  return `local t = redis.call('TIME')
  ${use} tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
}

/**
 * The same as `local <name> = oncekit_now(<given>)`, inline: no function is defined, which the hottest scripts (a claim
 * on a new key) notice.
 */
export function redisNowInlineLua(name: string, given: string): string {
  return `local ${name}
if ${given} ~= nil and ${given} ~= '' then ${name} = tonumber(${given}) else
  ${redisTimeLua(`${name} =`)}
end
`;
}

// KEYS[1] marker; ARGV[1] a fresh id. Returns the marker's id: the one there, or ARGV[1] just written.
const ENSURE_MARKER = `${REDIS_NOW_LUA}
local id = redis.call('HGET', KEYS[1], 'id')
if id then return id end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'createdAt', oncekit_text(oncekit_now('')))
return ARGV[1]
`;

/** A Lua script sent by hash (EVALSHA), falling back to EVAL when the server does not know it yet. */
export class LuaScript {
  readonly body: string;
  readonly sha: string;
  constructor(body: string) {
    this.body = body;
    this.sha = createHash('sha1').update(body).digest('hex');
  }
  async run(client: Redis, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(this.body, keys.length, ...keys, ...args);
    }
  }
}

const ensureMarkerScript = new LuaScript(ENSURE_MARKER);

/**
 * One store handle's view of the marker: `markerId()` writes or reads it once; `run` and `read` fail with
 * StateLostError once it is gone or replaced.
 */
export class RedisStateGuard {
  readonly client: Redis;
  readonly markerKey: string;
  #id: Promise<string> | null = null;

  constructor(client: Redis, prefix: string) {
    this.client = client;
    this.markerKey = markerKeyOf(prefix);
  }

  /** The marker's id, written at first use; later calls return the id this handle saw first. */
  markerId(): Promise<string> {
    if (this.#id === null) {
      const pending = ensureMarkerScript.run(this.client, [this.markerKey], [randomUUID()]).then((id) => z.string().parse(id));
      this.#id = pending;
      // A failed first attempt (Redis down) is tried again next time.
      pending.catch(() => {
        if (this.#id === pending) this.#id = null;
      });
    }
    return this.#id;
  }

  /** Runs a script that starts with markerGuardLua; its STATE_LOST reply becomes a StateLostError. */
  async run(script: LuaScript, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const id = await this.markerId();
    try {
      return await script.run(this.client, keys, [id, ...args]);
    } catch (error) {
      throw this.#mapped(error);
    }
  }

  /**
   * Reads in one MULTI that first reads the marker: plain commands get the same guarantee as the scripts. Returns the
   * replies of `build`'s commands, in order; a failed command throws.
   */
  async read(build: (multi: ChainableCommander) => void): Promise<unknown[]> {
    const id = await this.markerId();
    const multi = this.client.multi().hget(this.markerKey, 'id');
    build(multi);
    const replies = (await multi.exec()) ?? [];
    const [markerReply, ...rest] = replies;
    if (markerReply?.[0]) throw markerReply[0];
    if (markerReply?.[1] !== id) throw this.lost();
    return rest.map(([error, value]) => {
      if (error) throw error;
      return value;
    });
  }

  lost(): StateLostError {
    return new StateLostError(
      `Redis data was lost: the marker key ${this.markerKey} is gone or was replaced (Redis restarted without persistence, ` +
        'was flushed, or failed over to an empty replica); nothing was done. Events acknowledged before the loss may be ' +
        'gone: check Redis and its persistence, then restart the relay.',
    );
  }

  #mapped(error: unknown): unknown {
    return error instanceof Error && error.message.includes(STATE_LOST_REPLY) ? this.lost() : error;
  }
}

/** What the server says about its persistence. */
export interface RedisPersistence {
  readonly aof: boolean;
  readonly rdb: boolean;
  /** `config`: CONFIG GET answered; `info`: CONFIG is disabled or renamed, so INFO persistence was read. */
  readonly source: 'config' | 'info';
}

const configReply = z.array(z.string());

/** Reads `CONFIG GET appendonly` and `CONFIG GET save`, or INFO persistence where CONFIG is disabled or renamed. */
export async function readRedisPersistence(client: Redis): Promise<RedisPersistence> {
  try {
    const [, appendonly = 'no'] = configReply.parse(await client.call('CONFIG', 'GET', 'appendonly'));
    const [, save = ''] = configReply.parse(await client.call('CONFIG', 'GET', 'save'));
    return { aof: appendonly === 'yes', rdb: save.trim() !== '', source: 'config' };
  } catch {
    // INFO has no field for the snapshot schedule: snapshots taken since start-up (Redis 7's rdb_saves) stand for it.
    const info = await client.info('persistence');
    const field = (name: string): string | undefined => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
    return { aof: field('aof_enabled') === '1', rdb: Number(field('rdb_saves') ?? 0) > 0, source: 'info' };
  }
}

/** The Redis keeps nothing on disk: a restart would silently lose every acknowledged event. */
export class RedisNotPersistentError extends OncekitError {
  constructor(message: string) {
    super('redis_not_persistent', message);
  }
}

export interface RedisPersistenceOptions {
  /** Open a Redis without persistence anyway (development); the opener then warns through `logger`. */
  readonly allowVolatile?: boolean;
  /** Where the warning goes; default JSON lines on stderr. */
  readonly logger?: Logger;
}

/** What every Redis opener takes: the persistence settings and the key prefix (default `oncekit:`). */
export interface RedisStoreSettings extends RedisPersistenceOptions {
  readonly redisKeyPrefix?: string;
}

/**
 * Refuses (RedisNotPersistentError) a Redis with neither AOF nor RDB snapshots, unless `allowVolatile`; then warns.
 * `where` names the server in messages (no password).
 */
export async function requireRedisPersistence(client: Redis, where: string, options: RedisPersistenceOptions = {}): Promise<void> {
  const persistence = await readRedisPersistence(client);
  if (persistence.aof || persistence.rdb) return;
  const what =
    persistence.source === 'config'
      ? 'appendonly is no and save is empty'
      : 'CONFIG is not available and INFO persistence shows no AOF and no snapshot';
  const problem = `the Redis at ${where} keeps nothing on disk (${what}): a restart would lose every acknowledged event`;
  if (!options.allowVolatile) {
    throw new RedisNotPersistentError(
      `${problem}. Turn persistence on: \`appendonly yes\` (or snapshots, e.g. \`save 60 1000\`) in redis.conf, or at ` +
        `runtime \`CONFIG SET appendonly yes\`; for development only, set ${REDIS_ALLOW_VOLATILE_ENV}=1 to open it anyway.`,
    );
  }
  (options.logger ?? jsonLineLogger()).warn(
    { event: 'redis_volatile', redis: where },
    `WARNING: ${problem}; opened anyway because ${REDIS_ALLOW_VOLATILE_ENV}=1 (development only)`,
  );
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
    // Commands issued in the same tick go out in one write (one syscall, one batch on the server): the inbox and the
    // outbox issue many small scripts concurrently. Each command still gets its own reply and error.
    enableAutoPipelining: true,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  // Without a listener ioredis prints every reconnect error; failures reach callers through their commands.
  client.on('error', () => {});
  try {
    await client.connect();
    return client;
  } catch (error) {
    client.disconnect();
    const reason = messageOf(error);
    throw new StoreUnavailableError(`no Redis answered at ${describeStoreLocation({ kind: 'redis', url })}: ${reason}`, { cause: error });
  }
}
