import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  ABANDONED_LEASE_RETENTION_MS,
  blockedOutcome,
  type ClaimCompletedOutcome,
  type ClaimOutcome,
  type Clock,
  type CompletedRecord,
  type Completion,
  checkArgs,
  type IdempotencyRecord,
  type IdempotencyRef,
  type IdempotencyStore,
  isRecordGone,
  type LeaseRequest,
  newInProgressRecord,
  type StoreClockOption,
  storeFailure,
} from '../idempotency.js';
import {
  DEFAULT_REDIS_PREFIX,
  keyPart,
  LuaScript,
  markerGuardLua,
  REDIS_NOW_LUA,
  RedisStateGuard,
  redisNowInlineLua,
} from './connection.js';

/** The prefix of every key: the idempotency records live under `{prefix}idem:`. */
export const DEFAULT_REDIS_KEY_PREFIX = DEFAULT_REDIS_PREFIX;

export interface RedisStoreOptions extends StoreClockOption {
  /** A connected ioredis client; shared clients stay open on `close()` unless `ownsClient`. */
  readonly client: Redis;
  readonly ownsClient?: boolean;
  /** Prefix of every Redis key the store writes (records under `{prefix}idem:`); default DEFAULT_REDIS_KEY_PREFIX. */
  readonly keyPrefix?: string;
}

/*
 * Each record is one Redis string, `{prefix}idem:{tenant}:{key}` (both parts encoded, see connection.ts), holding the
 * record as JSON. Every write is a Lua script, so the check and the write are one atomic step on the server: there is
 * never a check-then-set across round trips. A claim on a new key is a single `SET NX PX GET`, which both tests and
 * writes. Every script first checks the marker (connection.ts), so a wiped Redis fails instead of letting a key be
 * claimed twice. Expiry decisions compare the stored timestamps with the SERVER's time (TIME), so instances whose clocks
 * disagree never take over a live lease; only a test's `clock` overrides it. PX (relative) only makes Redis evict a
 * record once it is gone anyway.
 *
 * Earlier versions kept each record as a hash. Such a record is still read and honoured until it expires, and the next
 * write to it (a renewal, a done mark, a take-over) stores it as JSON, so an upgrade needs no migration step.
 */

/** Lua: a whole number as text, without an exponent. */
const luaInt = (n: string): string => `string.format('%d', ${n})`;

/** Lua expression: `,"fingerprint":…` when the Lua value `fingerprint` is a string, else ''. */
const fingerprintJsonLua = (fingerprint: string): string =>
  `(type(${fingerprint}) == 'string' and (',"fingerprint":' .. cjson.encode(${fingerprint})) or '')`;

/** Lua expression: an in-progress record as JSON, from Lua expressions for its fields. */
const inProgressJsonLua = (createdAt: string, owner: string, leaseExpiresAt: string, fingerprint: string | null): string =>
  `'{"state":"in_progress","createdAt":' .. ${luaInt(`tonumber(${createdAt})`)} .. ',"owner":' .. cjson.encode(${owner}) ..
    ',"leaseExpiresAt":' .. ${luaInt(leaseExpiresAt)} .. ${fingerprint === null ? "''" : fingerprintJsonLua(fingerprint)} .. '}'`;

/** Lua expression: a completed record as JSON, from Lua expressions for its fields. */
const completedJsonLua = (createdAt: string, completedAt: string, expiresAt: string, result: string, fingerprint: string | null): string =>
  `'{"state":"completed","createdAt":' .. ${luaInt(`tonumber(${createdAt})`)} .. ',"completedAt":' .. ${luaInt(completedAt)} ..
    ',"expiresAt":' .. ${luaInt(expiresAt)} .. ',"result":' .. cjson.encode(${result}) ..
    ${fingerprint === null ? "''" : fingerprintJsonLua(fingerprint)} .. '}'`;

// Reads records in either format; decides whether a record still exists at \`now\` (the same rule as isRecordGone).
const READERS = `
local function is_live(r, now, retention)
  if r == nil then return false end
  if r.state == 'completed' then return tonumber(r.expiresAt) > now end
  return tonumber(r.leaseExpiresAt) + retention > now
end
local function hash_record(key)
  local flat = redis.call('HGETALL', key)
  local r = {}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  return r, cjson.encode(r)
end
-- \`value\`: what GET (or SET ... GET) answered for \`key\`: false, the JSON text, or a WRONGTYPE error for a hash.
local function decode(key, value)
  if not value then return nil, nil end
  if type(value) == 'table' and value.err then return hash_record(key) end
  return cjson.decode(value), value
end
local function read(key) return decode(key, redis.pcall('GET', key)) end
`;

// Every script: KEYS[1] the record, KEYS[2] the marker; ARGV[1] the marker id, ARGV[2] a test clock's now or ''.
const GUARD = markerGuardLua('KEYS[2]', 'ARGV[1]');

/**
 * A claim: writes \`value\` (expiring after \`px\`) unless a live record is in the way; \`take_expired\`: an expired lease
 * may be taken over. The common case, nothing there, is one SET NX GET and defines nothing more. Replies now (a
 * number) when nothing was there, {'claimed', previous owner or '', now} after replacing a record that was gone or
 * whose lease had expired, or {'blocked', the record as JSON, now}.
 */
const claimLua = (setup: string): string => `${GUARD}${redisNowInlineLua('now', 'ARGV[2]')}${setup}
local old = redis.pcall('SET', KEYS[1], value, 'NX', 'PX', px, 'GET')
if not old then return now end
${READERS}
local r, text = decode(KEYS[1], old)
local previous = ''
if is_live(r, now, retention) then
  if take_expired and r.state == 'in_progress' and tonumber(r.leaseExpiresAt) <= now then
    previous = r.owner
  else
    return {'blocked', text, ${luaInt('now')}}
  end
end
redis.call('SET', KEYS[1], value, 'PX', px)
return {'claimed', previous, ${luaInt('now')}}
`;

// ARGV[3..]: retention, takeOver (0/1), owner, leaseMs, fingerprint (absent = none).
const CLAIM = claimLua(`
local retention, leaseMs = tonumber(ARGV[3]), tonumber(ARGV[6])
local value, px, take_expired = ${inProgressJsonLua('now', 'ARGV[5]', 'now + leaseMs', 'ARGV[7]')}, leaseMs + retention, ARGV[4] == '1'
`);

// Claim and complete in one step (claimCompleted). ARGV[3..]: retention, ttlMs, result. Takes over an expired lease.
const CLAIM_COMPLETED = claimLua(`
local retention, ttlMs = tonumber(ARGV[3]), tonumber(ARGV[4])
local value, px, take_expired = ${completedJsonLua('now', 'now', 'now + ttlMs', 'ARGV[5]', null)}, ttlMs, true
`);

// The guard of renew, complete and release: the caller holds a live in_progress record, which held() returns.
const HELD = `${REDIS_NOW_LUA}${GUARD}${READERS}
local now = oncekit_now(ARGV[2])
local function held(key, owner, retention)
  local r = read(key)
  if is_live(r, now, retention) and r.state == 'in_progress' and r.owner == owner then return r end
  return nil
end
`;

// ARGV[3..]: owner, retention, leaseMs.
const RENEW = `${HELD}
local retention, leaseMs = tonumber(ARGV[4]), tonumber(ARGV[5])
local r = held(KEYS[1], ARGV[3], retention)
if not r then return 0 end
redis.call('SET', KEYS[1], ${inProgressJsonLua('r.createdAt', 'r.owner', 'now + leaseMs', 'r.fingerprint')}, 'PX', leaseMs + retention)
return 1
`;

// ARGV[3..]: owner, retention, ttlMs, result.
const COMPLETE = `${HELD}
local ttlMs = tonumber(ARGV[5])
local r = held(KEYS[1], ARGV[3], tonumber(ARGV[4]))
if not r then return 0 end
redis.call('SET', KEYS[1], ${completedJsonLua('r.createdAt', 'now', 'now + ttlMs', 'ARGV[6]', 'r.fingerprint')}, 'PX', ttlMs)
return 1
`;

// ARGV[3..]: owner, retention. Compare-and-delete.
const RELEASE = `${HELD}
if not held(KEYS[1], ARGV[3], tonumber(ARGV[4])) then return 0 end
return redis.call('DEL', KEYS[1])
`;

// Replies {the record as JSON or '', now}: the caller decides whether the record is gone at the server's now.
const GET = `${REDIS_NOW_LUA}${GUARD}${READERS}
local r, text = read(KEYS[1])
return {text or '', oncekit_text(oncekit_now(ARGV[2]))}
`;

const scripts = {
  claim: new LuaScript(CLAIM),
  claimCompleted: new LuaScript(CLAIM_COMPLETED),
  renew: new LuaScript(RENEW),
  complete: new LuaScript(COMPLETE),
  release: new LuaScript(RELEASE),
  get: new LuaScript(GET),
};

const numberText = z.coerce.number().int();
/** A number: claimed, nothing was there (the common case, kept to one integer reply). */
const claimReply = z.union([
  numberText,
  z.tuple([z.literal('claimed'), z.string(), numberText]),
  z.tuple([z.literal('blocked'), z.string(), numberText]),
]);
const getReply = z.tuple([z.string(), numberText]);
// Times are JSON numbers, or strings in a record kept from the earlier hash format.
const storedRecord = z.discriminatedUnion('state', [
  z.object({
    state: z.literal('in_progress'),
    owner: z.string(),
    createdAt: numberText,
    leaseExpiresAt: numberText,
    fingerprint: z.string().optional(),
  }),
  z.object({
    state: z.literal('completed'),
    createdAt: numberText,
    completedAt: numberText,
    expiresAt: numberText,
    result: z.string(),
    fingerprint: z.string().optional(),
  }),
]);

/** Many relay instances share one Redis; see the comment above for how atomicity, state loss and expiry work. */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly kind = 'redis';
  readonly #client: Redis;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #guard: RedisStateGuard;
  /** Only tests set it; without it every decision is made on the server's time. */
  readonly #clock: Clock | undefined;

  constructor(options: RedisStoreOptions) {
    this.#client = options.client;
    this.#ownsClient = options.ownsClient ?? false;
    this.#prefix = `${options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX}idem:`;
    this.#guard = new RedisStateGuard(options.client, options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX);
    this.#clock = options.clock;
  }

  /** Writes (or reads) the marker now rather than at the first operation; the openers call it. */
  async ready(): Promise<void> {
    await this.#run('open', () => this.#guard.markerId());
  }

  async claim(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#claim(ref, lease, false);
  }

  async takeOver(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#claim(ref, lease, true);
  }

  async renewLease(ref: IdempotencyRef, owner: string, leaseMs: number): Promise<boolean> {
    const key = this.#redisKey(checkArgs.ref(ref));
    checkArgs.owner(owner);
    checkArgs.leaseMs(leaseMs);
    return (await this.#script('renewLease', scripts.renew, key, [owner, ABANDONED_LEASE_RETENTION_MS, leaseMs])) === 1;
  }

  async complete(ref: IdempotencyRef, owner: string, completion: Completion): Promise<boolean> {
    const key = this.#redisKey(checkArgs.ref(ref));
    checkArgs.owner(owner);
    const { result, ttlMs } = checkArgs.completion(completion);
    return (await this.#script('complete', scripts.complete, key, [owner, ABANDONED_LEASE_RETENTION_MS, ttlMs, result])) === 1;
  }

  async claimCompleted(ref: IdempotencyRef, completion: Completion): Promise<ClaimCompletedOutcome> {
    const checkedRef = checkArgs.ref(ref);
    const { result, ttlMs } = checkArgs.completion(completion);
    const reply = await this.#script('claimCompleted', scripts.claimCompleted, this.#redisKey(checkedRef), [
      ABANDONED_LEASE_RETENTION_MS,
      ttlMs,
      result,
    ]);
    const { now, blockedBy, takenOverFrom } = claimVerdict('claimCompleted', checkedRef, reply);
    if (blockedBy) return blockedOutcome(blockedBy, now);
    const record: CompletedRecord = {
      state: 'completed',
      tenant: checkedRef.tenant,
      key: checkedRef.key,
      createdAt: now,
      completedAt: now,
      expiresAt: now + ttlMs,
      result,
    };
    return takenOverFrom === undefined ? { status: 'claimed', record } : { status: 'claimed', record, takenOverFrom };
  }

  async release(ref: IdempotencyRef, owner: string): Promise<boolean> {
    const key = this.#redisKey(checkArgs.ref(ref));
    checkArgs.owner(owner);
    return (await this.#script('release', scripts.release, key, [owner, ABANDONED_LEASE_RETENTION_MS])) === 1;
  }

  async get(ref: IdempotencyRef): Promise<IdempotencyRecord | undefined> {
    const checked = checkArgs.ref(ref);
    const reply = await this.#script('get', scripts.get, this.#redisKey(checked), []);
    const parsed = getReply.safeParse(reply);
    if (!parsed.success) throw storeFailure('redis', 'get', new Error(`unexpected reply ${JSON.stringify(reply)}`));
    const [text, now] = parsed.data;
    const record = text === '' ? undefined : parseRecord('get', checked, text);
    return record && !isRecordGone(record, now) ? record : undefined;
  }

  async purgeExpired(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {
    if (this.#ownsClient) await this.#client.quit().catch(() => this.#client.disconnect());
  }

  async #claim(ref: IdempotencyRef, lease: LeaseRequest, takeOverExpired: boolean): Promise<ClaimOutcome> {
    const checkedRef = checkArgs.ref(ref);
    const checkedLease = checkArgs.lease(lease);
    const args: (string | number)[] = [ABANDONED_LEASE_RETENTION_MS, takeOverExpired ? 1 : 0, checkedLease.owner, checkedLease.leaseMs];
    if (checkedLease.fingerprint !== undefined) args.push(checkedLease.fingerprint);
    const reply = await this.#script('claim', scripts.claim, this.#redisKey(checkedRef), args);
    const { now, blockedBy, takenOverFrom } = claimVerdict('claim', checkedRef, reply);
    if (blockedBy) return blockedOutcome(blockedBy, now);
    // The record as the script wrote it: the times come from the server's clock (or the test's).
    const record = newInProgressRecord(checkedRef, checkedLease, now);
    return takenOverFrom === undefined ? { status: 'claimed', record } : { status: 'claimed', record, takenOverFrom };
  }

  /** Both parts encoded, so neither contains the ':' between them and two (tenant, key) pairs never collide. */
  #redisKey(ref: IdempotencyRef): string {
    return `${this.#prefix}${keyPart(ref.tenant)}:${keyPart(ref.key)}`;
  }

  /** Runs a script on the record `key`; a test clock's now goes along, production sends '' so the script reads TIME. */
  #script(operation: string, script: LuaScript, key: string, args: readonly (string | number)[]): Promise<unknown> {
    const now = this.#clock === undefined ? '' : this.#clock.now();
    return this.#run(operation, () => this.#guard.run(script, [key, this.#guard.markerKey], [now, ...args]));
  }

  async #run<T>(operation: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw storeFailure('redis', operation, error);
    }
  }
}

interface ClaimVerdict {
  /** The server's time (or the test clock's) at the claim. */
  readonly now: number;
  /** The live record in the way: nothing was written. */
  readonly blockedBy?: IdempotencyRecord;
  /** The owner whose expired lease was replaced. */
  readonly takenOverFrom?: string;
}

function claimVerdict(operation: string, ref: IdempotencyRef, reply: unknown): ClaimVerdict {
  // A bare number is the common case: nothing was there.
  if (typeof reply === 'number' && Number.isSafeInteger(reply)) return { now: reply };
  const parsed = claimReply.safeParse(reply);
  if (!parsed.success) throw storeFailure('redis', operation, new Error(`unexpected reply ${JSON.stringify(reply)}`));
  if (typeof parsed.data === 'number') return { now: parsed.data };
  const [verdict, detail, now] = parsed.data;
  if (verdict === 'blocked') return { now, blockedBy: parseRecord(operation, ref, detail) };
  return detail === '' ? { now } : { now, takenOverFrom: detail };
}

function parseRecord(operation: string, ref: IdempotencyRef, text: string): IdempotencyRecord {
  let parsed: ReturnType<typeof storedRecord.safeParse> | undefined;
  try {
    parsed = storedRecord.safeParse(JSON.parse(text));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) throw storeFailure('redis', operation, new Error(`malformed record for ${JSON.stringify(ref)}`));
  const { fingerprint, ...fields } = parsed.data;
  return { ...fields, tenant: ref.tenant, key: ref.key, ...(fingerprint === undefined ? {} : { fingerprint }) };
}
