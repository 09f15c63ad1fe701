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
import { DEFAULT_REDIS_PREFIX, keyPart, LuaScript, markerGuardLua, REDIS_NOW_LUA, RedisStateGuard } from './connection.js';

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
 * Each record is one Redis hash, `{prefix}idem:{tenant}:{key}` (both parts encoded, see redis-safety.ts). Every write
 * is a Lua script, so the check and the write are one atomic step on the server: there is never a check-then-set
 * across round trips. Every script first checks the marker (redis-safety.ts), so a wiped Redis fails instead of
 * letting a key be claimed twice. Expiry decisions compare the stored timestamps with the SERVER's time (TIME), so
 * instances whose clocks disagree never take over a live lease; only a test's `clock` overrides it. PEXPIRE (relative)
 * only makes Redis evict a record once it is gone anyway.
 */

// Decides, in Lua, whether the record in `r` still exists at `now` (the same rule as isRecordGone).
const LIVE_RECORD = `${REDIS_NOW_LUA}
local function is_live(r, now, retention)
  if not r.state then return false end
  if r.state == 'completed' then return tonumber(r.expiresAt) > now end
  return tonumber(r.leaseExpiresAt) + retention > now
end
local function read(key)
  local flat = redis.call('HGETALL', key)
  local r = {}
  for i = 1, #flat, 2 do r[flat[i]] = flat[i + 1] end
  return r, flat
end
`;

// Every script: KEYS[1] the record, KEYS[2] the marker; ARGV[1] the marker id, ARGV[2] a test clock's now or ''.
const GUARD = markerGuardLua('KEYS[2]', 'ARGV[1]');

// ARGV[3..]: retention, takeOver (0/1), owner, leaseMs, fingerprint (absent = none). Replies with the time it used.
const CLAIM = `${LIVE_RECORD}${GUARD}
local now, retention, leaseMs = oncekit_now(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[6])
local nowS = oncekit_text(now)
local r, flat = read(KEYS[1])
local previous = ''
if is_live(r, now, retention) then
  if ARGV[4] == '1' and r.state == 'in_progress' and tonumber(r.leaseExpiresAt) <= now then
    previous = r.owner
  else
    return {'blocked', flat, nowS}
  end
end
if #flat > 0 then redis.call('DEL', KEYS[1]) end
if ARGV[7] then
  redis.call('HSET', KEYS[1], 'state', 'in_progress', 'owner', ARGV[5], 'createdAt', nowS,
    'leaseExpiresAt', oncekit_text(now + leaseMs), 'fingerprint', ARGV[7])
else
  redis.call('HSET', KEYS[1], 'state', 'in_progress', 'owner', ARGV[5], 'createdAt', nowS,
    'leaseExpiresAt', oncekit_text(now + leaseMs))
end
redis.call('PEXPIRE', KEYS[1], leaseMs + retention)
return {'claimed', previous, nowS}
`;

// Claim and complete in one step (claimCompleted). ARGV[3..]: retention, ttlMs, result. Takes over an expired lease.
const CLAIM_COMPLETED = `${LIVE_RECORD}${GUARD}
local now, retention, ttlMs = oncekit_now(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local nowS = oncekit_text(now)
local r, flat = read(KEYS[1])
local previous = ''
if is_live(r, now, retention) then
  if r.state == 'in_progress' and tonumber(r.leaseExpiresAt) <= now then
    previous = r.owner
  else
    return {'blocked', flat, nowS}
  end
end
if #flat > 0 then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'state', 'completed', 'createdAt', nowS, 'completedAt', nowS,
  'expiresAt', oncekit_text(now + ttlMs), 'result', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ttlMs)
return {'claimed', previous, nowS}
`;

// The guard of renew, complete and release: the caller holds a live in_progress record.
const HELD = `${LIVE_RECORD}${GUARD}
local now = oncekit_now(ARGV[2])
local function held(key, owner, retention)
  local r = read(key)
  return is_live(r, now, retention) and r.state == 'in_progress' and r.owner == owner
end
`;

// ARGV[3..]: owner, retention, leaseMs.
const RENEW = `${HELD}
if not held(KEYS[1], ARGV[3], tonumber(ARGV[4])) then return 0 end
redis.call('HSET', KEYS[1], 'leaseExpiresAt', oncekit_text(now + tonumber(ARGV[5])))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]) + tonumber(ARGV[4]))
return 1
`;

// ARGV[3..]: owner, retention, ttlMs, result.
const COMPLETE = `${HELD}
if not held(KEYS[1], ARGV[3], tonumber(ARGV[4])) then return 0 end
redis.call('HDEL', KEYS[1], 'owner', 'leaseExpiresAt')
redis.call('HSET', KEYS[1], 'state', 'completed', 'completedAt', oncekit_text(now),
  'expiresAt', oncekit_text(now + tonumber(ARGV[5])), 'result', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

// ARGV[3..]: owner, retention. Compare-and-delete.
const RELEASE = `${HELD}
if not held(KEYS[1], ARGV[3], tonumber(ARGV[4])) then return 0 end
return redis.call('DEL', KEYS[1])
`;

// Replies {fields, now}: the caller decides whether the record is gone at the server's now.
const GET = `${LIVE_RECORD}${GUARD}
local r, flat = read(KEYS[1])
return {flat, oncekit_text(oncekit_now(ARGV[2]))}
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
const claimReply = z.union([
  z.tuple([z.literal('claimed'), z.string(), numberText]),
  z.tuple([z.literal('blocked'), z.array(z.string()), numberText]),
]);
const getReply = z.tuple([z.array(z.string()), numberText]);
const hashRecord = z.discriminatedUnion('state', [
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
    const parsed = claimReply.safeParse(reply);
    if (!parsed.success) throw storeFailure('redis', 'claimCompleted', new Error(`unexpected reply ${JSON.stringify(reply)}`));
    const [verdict, detail, now] = parsed.data;
    if (verdict === 'blocked') return blockedOutcome(parseHash(checkedRef, Object.fromEntries(pairs(detail))), now);
    const record: CompletedRecord = {
      state: 'completed',
      tenant: checkedRef.tenant,
      key: checkedRef.key,
      createdAt: now,
      completedAt: now,
      expiresAt: now + ttlMs,
      result,
    };
    return detail === '' ? { status: 'claimed', record } : { status: 'claimed', record, takenOverFrom: detail };
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
    const [flat, now] = parsed.data;
    const record = flat.length === 0 ? undefined : parseHash(checked, Object.fromEntries(pairs(flat)));
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
    const parsed = claimReply.safeParse(reply);
    if (!parsed.success) throw storeFailure('redis', 'claim', new Error(`unexpected reply ${JSON.stringify(reply)}`));
    const [verdict, detail, now] = parsed.data;
    if (verdict === 'blocked') return blockedOutcome(parseHash(checkedRef, Object.fromEntries(pairs(detail))), now);
    // The record as the script wrote it: the times come from the server's clock (or the test's).
    const record = newInProgressRecord(checkedRef, checkedLease, now);
    return detail === '' ? { status: 'claimed', record } : { status: 'claimed', record, takenOverFrom: detail };
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

function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as string]);
  return out;
}

function parseHash(ref: IdempotencyRef, hash: Record<string, string>): IdempotencyRecord {
  const parsed = hashRecord.safeParse(hash);
  if (!parsed.success) throw storeFailure('redis', 'reading a record', new Error(`malformed record for ${JSON.stringify(ref)}`));
  const { fingerprint, ...fields } = parsed.data;
  return { ...fields, tenant: ref.tenant, key: ref.key, ...(fingerprint === undefined ? {} : { fingerprint }) };
}
