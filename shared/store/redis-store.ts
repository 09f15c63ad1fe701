import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { systemClock } from '../clock.js';
import {
  ABANDONED_LEASE_RETENTION_MS,
  blockedOutcome,
  type ClaimOutcome,
  type Clock,
  type Completion,
  checkArgs,
  type IdempotencyRecord,
  type IdempotencyRef,
  type IdempotencyStore,
  isRecordGone,
  type LeaseRequest,
  leaseGoneAt,
  newInProgressRecord,
  type StoreClockOption,
  storeFailure,
} from './idempotency-store.js';

export const DEFAULT_REDIS_KEY_PREFIX = 'oncekit:idem:';

export interface RedisStoreOptions extends StoreClockOption {
  /** A connected ioredis client; shared clients stay open on `close()` unless `ownsClient`. */
  readonly client: Redis;
  readonly ownsClient?: boolean;
  /** Prefix of every Redis key the store writes; default DEFAULT_REDIS_KEY_PREFIX. */
  readonly keyPrefix?: string;
}

/*
 * Each record is one Redis hash. Every write is a Lua script, so the check and the write are one atomic step on the
 * server: there is never a check-then-set across round trips. Expiry decisions compare the stored timestamps with the
 * `now` the caller's clock passes in; PEXPIRE (relative, so it works whatever that clock says) only makes Redis evict
 * a record once it is gone anyway.
 */

// Decides, in Lua, whether the record in `r` still exists at `now` (the same rule as isRecordGone).
const LIVE_RECORD = `
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

// KEYS[1]; ARGV: now, retention, takeOver (0/1), owner, leaseExpiresAt, px, fingerprint (absent = none).
const CLAIM = `${LIVE_RECORD}
local now, retention = tonumber(ARGV[1]), tonumber(ARGV[2])
local r, flat = read(KEYS[1])
local previous = ''
if is_live(r, now, retention) then
  if ARGV[3] == '1' and r.state == 'in_progress' and tonumber(r.leaseExpiresAt) <= now then
    previous = r.owner
  else
    return {'blocked', flat}
  end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'in_progress', 'owner', ARGV[4], 'createdAt', ARGV[1], 'leaseExpiresAt', ARGV[5])
if ARGV[7] then redis.call('HSET', KEYS[1], 'fingerprint', ARGV[7]) end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {'claimed', previous}
`;

// The guard of renew, complete and release: the caller holds a live in_progress record.
const HELD = `${LIVE_RECORD}
local function held(key, owner, now, retention)
  local r = read(key)
  return is_live(r, now, retention) and r.state == 'in_progress' and r.owner == owner
end
`;

// KEYS[1]; ARGV: owner, now, retention, leaseExpiresAt, px.
const RENEW = `${HELD}
if not held(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])) then return 0 end
redis.call('HSET', KEYS[1], 'leaseExpiresAt', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

// KEYS[1]; ARGV: owner, now, retention, expiresAt, px, result.
const COMPLETE = `${HELD}
if not held(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])) then return 0 end
redis.call('HDEL', KEYS[1], 'owner', 'leaseExpiresAt')
redis.call('HSET', KEYS[1], 'state', 'completed', 'completedAt', ARGV[2], 'expiresAt', ARGV[4], 'result', ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`;

// KEYS[1]; ARGV: owner, now, retention. Compare-and-delete.
const RELEASE = `${HELD}
if not held(KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])) then return 0 end
return redis.call('DEL', KEYS[1])
`;

/** A Lua script sent once per connection (EVALSHA, falling back to EVAL when the server does not know it yet). */
class LuaScript {
  readonly #body: string;
  readonly #sha: string;
  constructor(body: string) {
    this.#body = body;
    this.#sha = createHash('sha1').update(body).digest('hex');
  }
  async run(client: Redis, key: string, args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, 1, key, ...args);
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      return client.eval(this.#body, 1, key, ...args);
    }
  }
}

const scripts = {
  claim: new LuaScript(CLAIM),
  renew: new LuaScript(RENEW),
  complete: new LuaScript(COMPLETE),
  release: new LuaScript(RELEASE),
};

const claimReply = z.union([z.tuple([z.literal('claimed'), z.string()]), z.tuple([z.literal('blocked'), z.array(z.string())])]);
const numberText = z.coerce.number().int();
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

/** Many relay instances share one Redis; see the comment above for how atomicity and expiry work. */
export class RedisIdempotencyStore implements IdempotencyStore {
  readonly kind = 'redis';
  readonly #client: Redis;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #clock: Clock;

  constructor(options: RedisStoreOptions) {
    this.#client = options.client;
    this.#ownsClient = options.ownsClient ?? false;
    this.#prefix = options.keyPrefix ?? DEFAULT_REDIS_KEY_PREFIX;
    this.#clock = options.clock ?? systemClock;
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
    const now = this.#clock.now();
    const leaseExpiresAt = now + leaseMs;
    const px = leaseGoneAt(leaseExpiresAt) - now;
    return (
      (await this.#run('renewLease', () =>
        scripts.renew.run(this.#client, key, [owner, now, ABANDONED_LEASE_RETENTION_MS, leaseExpiresAt, px]),
      )) === 1
    );
  }

  async complete(ref: IdempotencyRef, owner: string, completion: Completion): Promise<boolean> {
    const key = this.#redisKey(checkArgs.ref(ref));
    checkArgs.owner(owner);
    const { result, ttlMs } = checkArgs.completion(completion);
    const now = this.#clock.now();
    const args = [owner, now, ABANDONED_LEASE_RETENTION_MS, now + ttlMs, ttlMs, result];
    return (await this.#run('complete', () => scripts.complete.run(this.#client, key, args))) === 1;
  }

  async release(ref: IdempotencyRef, owner: string): Promise<boolean> {
    const key = this.#redisKey(checkArgs.ref(ref));
    checkArgs.owner(owner);
    const args = [owner, this.#clock.now(), ABANDONED_LEASE_RETENTION_MS];
    return (await this.#run('release', () => scripts.release.run(this.#client, key, args))) === 1;
  }

  async get(ref: IdempotencyRef): Promise<IdempotencyRecord | undefined> {
    const checked = checkArgs.ref(ref);
    const hash = await this.#run('get', () => this.#client.hgetall(this.#redisKey(checked)));
    const record = Object.keys(hash).length === 0 ? undefined : parseHash(checked, hash);
    return record && !isRecordGone(record, this.#clock.now()) ? record : undefined;
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
    const now = this.#clock.now();
    const record = newInProgressRecord(checkedRef, checkedLease, now);
    const args: (string | number)[] = [
      now,
      ABANDONED_LEASE_RETENTION_MS,
      takeOverExpired ? 1 : 0,
      record.owner,
      record.leaseExpiresAt,
      leaseGoneAt(record.leaseExpiresAt) - now,
    ];
    if (record.fingerprint !== undefined) args.push(record.fingerprint);
    const reply = await this.#run('claim', () => scripts.claim.run(this.#client, this.#redisKey(checkedRef), args));
    const parsed = claimReply.safeParse(reply);
    if (!parsed.success) throw storeFailure('redis', 'claim', new Error(`unexpected reply ${JSON.stringify(reply)}`));
    const [verdict, detail] = parsed.data;
    if (verdict === 'blocked') return blockedOutcome(parseHash(checkedRef, Object.fromEntries(pairs(detail))), now);
    return detail === '' ? { status: 'claimed', record } : { status: 'claimed', record, takenOverFrom: detail };
  }

  /** Tenants are URI-encoded, so no tenant can contain the ':' that ends it and two (tenant, key) pairs never collide. */
  #redisKey(ref: IdempotencyRef): string {
    return `${this.#prefix}${encodeURIComponent(ref.tenant)}:${ref.key}`;
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
