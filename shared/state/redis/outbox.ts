import type { ChainableCommander, Redis } from 'ioredis';
import { type Clock, systemClock } from '../../clock.js';
import type { UserEventInput } from '../../events/user-event.js';
import type { KeyDecision } from '../../keys/decide.js';
import { settledAtOf, summarizeActivity } from '../../outbox/activity.js';
import { attemptMayHaveLanded, landingTimeOf } from '../../outbox/ledger.js';
import {
  abandonedAttempt,
  checkOutboxArgs,
  countsFrom,
  leasedOnEnqueue,
  newOutboxId,
  OutboxStoreError,
  type OutboxStoreOptions,
  outboxStoreFailure,
  storedInput,
  UNMAPPABLE_OUTCOME,
  UNMAPPABLE_STORED_INPUT,
} from '../../outbox/store-support.js';
import {
  type ActivityQuery,
  type ActivityRow,
  type ActivitySeries,
  type AttemptRecord,
  type EnqueueOptions,
  type EnqueueOutcome,
  type EnqueueResult,
  type EventFilter,
  type EventListQuery,
  type EventPage,
  type LeasedEvent,
  type LeaseRequest,
  type LedgerEntry,
  MAX_ACTIVITY_ROWS,
  type NewOutboxEvent,
  type OutboxCountFilter,
  type OutboxCounts,
  type OutboxState,
  type OutboxStore,
  outboxStates,
  type RecordUnmappableResult,
  type RequeueRequest,
  type SearchStopped,
  type Settlement,
  type TenantTarget,
  type UnmappableEvent,
  type UnmappableRaw,
} from '../../outbox/types.js';
import { uncertainFinalRequests } from '../../target/outcome.js';
import { DEFAULT_REDIS_PREFIX, keyPart, LuaScript, markerGuardLua, REDIS_NOW_LUA, RedisStateGuard } from './connection.js';

/** The prefix of every key: the outbox lives under `{prefix}outbox:`. */
export const DEFAULT_OUTBOX_REDIS_PREFIX = DEFAULT_REDIS_PREFIX;

export interface RedisOutboxStoreOptions extends OutboxStoreOptions {
  /** A connected ioredis client; it stays open on `close()` unless `ownsClient`. */
  readonly client: Redis;
  readonly ownsClient?: boolean;
  /** Prefix of every key the store writes (the outbox under `{prefix}outbox:`); default DEFAULT_OUTBOX_REDIS_PREFIX. */
  readonly keyPrefix?: string;
  /** How many events one listEvents call reads at most before it stops and says where; default DEFAULT_REDIS_LISTING_SCAN. */
  readonly listingScanLimit?: number;
}

/*
 * Layout, under P = `{prefix}outbox:`. Every part of a key name (tenant, target, key, source id) goes through keyPart
 * (URI-encoded), so ':' cannot collide; ids are generated, and an id is always the whole rest of its key name.
 * {t} is the tenant's part, {g} the target's:
 *   P e:{id}            hash: the event (t tenant, tE {t}, g target, gE {g}, src, sid, dk, key, dec, inp, st state, enq,
 *                       upd, due, own, lat, lex, fat first attempt, lo last outcome, dr dead reason, dat dead at, kix/six
 *                       its index keys, unm an unmappable dead letter's raw payload as JSON: absent or '' otherwise, and
 *                       its lo is 'unmappable'; mhl '1' once an attempt may have landed, lsn the lease time of the earliest such
 *                       attempt: LeasedEvent.landedSince, kept by requeues)
 *   P a:{id}            list: the ledger's attempts, JSON, oldest first (an attempt's number is its position)
 *   P due:{t}:{g}       zset of the target's pending ids by due time;  P lease:{t}:{g}  its leased ids by lease expiry
 *   P dead:{t}          zset of the tenant's dead letters (every target) by death;  P dead:{t}:{g}  the target's only
 *   P dedup:{t}:{g}     hash dedupKey → id: the dedup rule is per (tenant, target)
 *   P key:{t}:{key}, P src:{t}:{sourceId}   zsets (score 0, so ids sort by time) for the ledger's tenant-wide lookups
 *   P n:{t}             hash of the tenant's counts (every target): "{state}" and "{source}|{state}"
 *   P n:{t}:{g}         the same counts for one target, so a count by target (and source) is one HMGET too; both also
 *                       count possible duplicates ("pdup", "{source}|pdup": keyless events delivered with mhl set),
 *                       from the settle that delivers them to their pruning (events delivered before are not counted)
 *   P ev:{t}            zset of the tenant's ids by enqueue time (enq), for the ledger's listing and the activity charts;
 *                       P tg:{t} the set of the tenant's targets ({g}), so the charts find its due and leased zsets.
 *                       (Events enqueued before these existed are added once when a store opens; P ev-indexed marks it.)
 *   P settled           zset of every tenant's settled ids (delivered, duplicate, dead) by their last change (upd):
 *                       settle adds, requeue and revive remove, and pruneSettled takes the oldest from it, so pruning
 *                       never scans. (Events settled before it existed are not in it, so they are never pruned.)
 * A worker leases from its own target's zsets only. (Every event here has a target: there was no Redis outbox before
 * targets were recorded, so no legacy '' events exist to lease.)
 * Every transition is one Lua script, so it is atomic with respect to every other instance. The scripts compute key
 * names from their arguments, which standalone Redis and Sentinel allow; Redis Cluster would need hash tags.
 * Every script first checks the marker `{prefix}marker` and every read is a MULTI that reads it too (connection.ts),
 * so a wiped Redis fails with StateLostError instead of reporting an empty outbox. Times (enqueued, due, leases, deaths)
 * are the server's TIME, so a host whose clock runs ahead cannot lease events early; only a test's clock overrides it.
 */

// Every script: KEYS[1] the marker; ARGV[1] the marker id, ARGV[2] a test clock's now or '' (the server's TIME), ARGV[3]
// the prefix P. Each checks the marker first and takes its time from oncekit_now (connection.ts).
const COUNTS = `${REDIS_NOW_LUA}${markerGuardLua('KEYS[1]', 'ARGV[1]')}
local now = oncekit_now(ARGV[2])
local nowS = oncekit_text(now)
local P = ARGV[3]
-- The scope of a tenant's target in key names: '{t}:{g}'.
local function scope(tE, gE) return tE .. ':' .. gE end
-- Moves one event of source src between states in the tenant's counts and in its target's.
local function move(tE, gE, src, from, to)
  for _, nkey in ipairs({P .. 'n:' .. tE, P .. 'n:' .. scope(tE, gE)}) do
    if from then redis.call('HINCRBY', nkey, from, -1); redis.call('HINCRBY', nkey, src .. '|' .. from, -1) end
    if to then redis.call('HINCRBY', nkey, to, 1); redis.call('HINCRBY', nkey, src .. '|' .. to, 1) end
  end
end
`;

// ARGV[4..]: JSON [{id, t, tE, g, gE, src, sid, dk, key, dec, inp, kix, six}], owner ('' = start pending), leaseMs.
// Returns {now, {{id, outcome, state, updatedAt, previousAttempts, mayHaveLanded 1|0, the record's source, lsn}, ...}}.
const ENQUEUE = `${COUNTS}
local owner = ARGV[5]
local lexp = oncekit_text(now + tonumber(ARGV[6]))
local events = cjson.decode(ARGV[4])
now = nowS
local state = 'pending'
if owner ~= '' then state = 'leased' end
-- A new or revived event starts pending and due now, or leased to the caller.
local function start(ek, id, sc)
  if state == 'pending' then
    redis.call('HSET', ek, 'st', 'pending', 'due', now, 'own', '', 'lat', '', 'lex', '', 'fat', '')
    redis.call('ZADD', P .. 'due:' .. sc, now, id)
  else
    redis.call('HSET', ek, 'st', 'leased', 'due', '', 'own', owner, 'lat', now, 'lex', lexp, 'fat', now)
    redis.call('ZADD', P .. 'lease:' .. sc, lexp, id)
  end
end
local out = {}
for i, ev in ipairs(events) do
  local sc = scope(ev.tE, ev.gE)
  local existing = redis.call('HGET', P .. 'dedup:' .. sc, ev.dk)
  if existing then
    local ek = P .. 'e:' .. existing
    local f = redis.call('HMGET', ek, 'st', 'lo', 'inp', 'kix', 'six', 'src', 'upd', 'mhl', 'lsn')
    local mhl = 0
    if f[8] == '1' then mhl = 1 end
    -- The revive rule of canRevive (store-support.ts): a dead letter the target rejected takes a changed payload.
    if f[1] == 'dead' and (f[2] == 'rejected' or f[2] == '${UNMAPPABLE_OUTCOME}') and f[3] ~= ev.inp then
      if f[4] ~= '' then redis.call('ZREM', f[4], existing) end
      if ev.kix ~= '' then redis.call('ZADD', ev.kix, 0, existing) end
      redis.call('ZREM', f[5], existing)
      redis.call('ZADD', ev.six, 0, existing)
      redis.call('HSET', ek, 'inp', ev.inp, 'key', ev.key, 'dec', ev.dec, 'sid', ev.sid, 'kix', ev.kix, 'six', ev.six,
        'dr', '', 'dat', '', 'unm', '', 'upd', now)
      redis.call('ZREM', P .. 'dead:' .. ev.tE, existing)
      redis.call('ZREM', P .. 'dead:' .. sc, existing)
      redis.call('ZREM', P .. 'settled', existing)
      start(ek, existing, sc)
      move(ev.tE, ev.gE, f[6], 'dead', state)
      out[i] = {existing, 'revived', state, now, redis.call('LLEN', P .. 'a:' .. existing), mhl, f[6], f[9] or ''}
    else
      out[i] = {existing, 'existing', f[1], f[7], 0, mhl, f[6], ''}
    end
  else
    local ek = P .. 'e:' .. ev.id
    redis.call('HSET', ek, 't', ev.t, 'tE', ev.tE, 'g', ev.g, 'gE', ev.gE, 'src', ev.src, 'sid', ev.sid, 'dk', ev.dk, 'key', ev.key, 'dec', ev.dec,
      'inp', ev.inp, 'enq', now, 'upd', now, 'lo', '', 'dr', '', 'dat', '', 'kix', ev.kix, 'six', ev.six)
    start(ek, ev.id, sc)
    redis.call('HSET', P .. 'dedup:' .. sc, ev.dk, ev.id)
    if ev.kix ~= '' then redis.call('ZADD', ev.kix, 0, ev.id) end
    redis.call('ZADD', ev.six, 0, ev.id)
    redis.call('ZADD', P .. 'ev:' .. ev.tE, now, ev.id)
    redis.call('SADD', P .. 'tg:' .. ev.tE, ev.gE)
    move(ev.tE, ev.gE, ev.src, nil, state)
    out[i] = {ev.id, 'created', state, now, 0, 0, ev.src, ''}
  end
end
return {nowS, out}
`;

// ARGV[4]: JSON [{id, t, tE, g, gE, src, sid, dk, dr, unm, six}]: unmappable events, recorded as dead letters unless
// their dedupKey is taken. Returns {{id, outcome, state}, ...}.
const RECORD_UNMAPPABLE = `${COUNTS}
local out = {}
for i, ev in ipairs(cjson.decode(ARGV[4])) do
  local sc = scope(ev.tE, ev.gE)
  local existing = redis.call('HGET', P .. 'dedup:' .. sc, ev.dk)
  if existing then
    out[i] = {existing, 'existing', redis.call('HGET', P .. 'e:' .. existing, 'st')}
  else
    local ek = P .. 'e:' .. ev.id
    redis.call('HSET', ek, 't', ev.t, 'tE', ev.tE, 'g', ev.g, 'gE', ev.gE, 'src', ev.src, 'sid', ev.sid, 'dk', ev.dk, 'key', '',
      'dec', '', 'inp', '${UNMAPPABLE_STORED_INPUT}', 'st', 'dead', 'enq', nowS, 'upd', nowS, 'due', '', 'own', '', 'lat', '',
      'lex', '', 'fat', '', 'lo', '${UNMAPPABLE_OUTCOME}', 'dr', ev.dr, 'dat', nowS, 'kix', '', 'six', ev.six, 'unm', ev.unm)
    redis.call('HSET', P .. 'dedup:' .. sc, ev.dk, ev.id)
    redis.call('ZADD', ev.six, 0, ev.id)
    redis.call('ZADD', P .. 'ev:' .. ev.tE, nowS, ev.id)
    redis.call('SADD', P .. 'tg:' .. ev.tE, ev.gE)
    redis.call('ZADD', P .. 'dead:' .. ev.tE, nowS, ev.id)
    redis.call('ZADD', P .. 'dead:' .. sc, nowS, ev.id)
    redis.call('ZADD', P .. 'settled', nowS, ev.id)
    move(ev.tE, ev.gE, ev.src, nil, 'dead')
    out[i] = {ev.id, 'created', 'dead'}
  end
end
return out
`;

// ARGV[4..]: tE, gE, limit, owner, leaseMs. Returns {now, {{id, src, sid, inp, fat, previousAttempts, mhl, lsn}, ...}}.
const LEASE = `${COUNTS}
local tE, gE, limit, owner = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
local lexp = oncekit_text(now + tonumber(ARGV[8]))
local dueK, leaseK = P .. 'due:' .. scope(tE, gE), P .. 'lease:' .. scope(tE, gE)
local expired = redis.call('ZRANGEBYSCORE', leaseK, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local due = redis.call('ZRANGEBYSCORE', dueK, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local picks = {}
for i = 1, #expired, 2 do picks[#picks + 1] = {expired[i], tonumber(expired[i + 1]), true} end
for i = 1, #due, 2 do picks[#picks + 1] = {due[i], tonumber(due[i + 1]), false} end
table.sort(picks, function(a, b) if a[2] ~= b[2] then return a[2] < b[2] end return a[1] < b[1] end)
local out = {}
for i = 1, math.min(limit, #picks) do
  local id, wasLeased = picks[i][1], picks[i][3]
  local ek, ak = P .. 'e:' .. id, P .. 'a:' .. id
  local f = redis.call('HMGET', ek, 'own', 'lat', 'fat', 'src', 'sid', 'inp', 'mhl', 'lsn')
  local mhl, lsn = f[7] or '', f[8] or ''
  if wasLeased then
    -- The holder's lease ran out: note an abandoned attempt (expanded by abandonedAttempt() when read); it may have landed.
    redis.call('RPUSH', ak, cjson.encode({abandoned = true, startedAt = tonumber(f[2]), finishedAt = now, owner = f[1]}))
    redis.call('HSET', ek, 'lo', 'abandoned', 'mhl', '1')
    mhl = '1'
    if lsn == '' then
      lsn = f[2]
      redis.call('HSET', ek, 'lsn', lsn)
    end
    redis.call('ZREM', leaseK, id)
  else
    redis.call('ZREM', dueK, id)
    move(tE, gE, f[4], 'pending', 'leased')
  end
  local fat = f[3]
  if fat == '' then fat = nowS end
  redis.call('HSET', ek, 'st', 'leased', 'own', owner, 'lat', nowS, 'lex', lexp, 'due', '', 'fat', fat, 'upd', nowS)
  redis.call('ZADD', leaseK, lexp, id)
  out[#out + 1] = {id, f[4], f[5], f[6], fat, tostring(redis.call('LLEN', ak)), mhl, lsn}
end
return {nowS, out}
`;

// ARGV[4]: JSON [{id, owner, to, dueIn, reason, attempt (JSON text or ''), outcome, landed (the attempt may have
// landed)}]; a retry is due dueIn ms from
// the script's now, so the worker's clock only decides the backoff, never the absolute time. Returns {1|0, ...}.
const SETTLE = `${COUNTS}
local out = {}
for i, s in ipairs(cjson.decode(ARGV[4])) do
  local ek = P .. 'e:' .. s.id
  local f = redis.call('HMGET', ek, 'st', 'own', 'tE', 'gE', 'src', 'mhl', 'key', 'lsn', 'lat')
  if f[1] ~= 'leased' or f[2] ~= s.owner then
    out[i] = 0
  else
    local tE, gE = f[3], f[4]
    local sc = scope(tE, gE)
    redis.call('ZREM', P .. 'lease:' .. sc, s.id)
    if s.attempt ~= '' then
      redis.call('RPUSH', P .. 'a:' .. s.id, s.attempt)
      redis.call('HSET', ek, 'lo', s.outcome)
    end
    local landed = f[6] == '1'
    if s.landed then
      redis.call('HSET', ek, 'mhl', '1')
      landed = true
      if (f[8] or '') == '' then redis.call('HSET', ek, 'lsn', f[9]) end
    end
    -- A possible duplicate: delivered without a key after an attempt that may have landed.
    if s.to == 'delivered' and (f[7] or '') == '' and landed then
      for _, nkey in ipairs({P .. 'n:' .. tE, P .. 'n:' .. sc}) do
        redis.call('HINCRBY', nkey, 'pdup', 1)
        redis.call('HINCRBY', nkey, f[5] .. '|pdup', 1)
      end
    end
    if s.to == 'pending' then
      local due = oncekit_text(now + s.dueIn)
      redis.call('ZADD', P .. 'due:' .. sc, due, s.id)
      redis.call('HSET', ek, 'due', due)
    elseif s.to == 'dead' then
      redis.call('ZADD', P .. 'dead:' .. tE, nowS, s.id)
      redis.call('ZADD', P .. 'dead:' .. sc, nowS, s.id)
      redis.call('HSET', ek, 'dr', s.reason, 'dat', nowS)
    end
    -- Settled for good (delivered, duplicate, dead): pruneSettled finds it here by its last change.
    if s.to ~= 'pending' then redis.call('ZADD', P .. 'settled', nowS, s.id) end
    redis.call('HSET', ek, 'st', s.to, 'own', '', 'lat', '', 'lex', '', 'upd', nowS)
    move(tE, gE, f[5], 'leased', s.to)
    out[i] = 1
  end
end
return out
`;

// ARGV[4..]: tE, gE or '' for every target, JSON list of ids or '' for every dead letter (of the target, if given),
// '1' to clear lsn (forcePastWindow) or ''. Returns the ids requeued.
const REQUEUE = `${COUNTS}
local tE, only, forget = ARGV[4], ARGV[5], ARGV[7] == '1'
now = nowS
local ids
if ARGV[6] ~= '' then
  ids = cjson.decode(ARGV[6])
elseif only ~= '' then
  ids = redis.call('ZRANGE', P .. 'dead:' .. scope(tE, only), 0, -1)
else
  ids = redis.call('ZRANGE', P .. 'dead:' .. tE, 0, -1)
end
local out = {}
for _, id in ipairs(ids) do
  local ek = P .. 'e:' .. id
  local f = redis.call('HMGET', ek, 'st', 'tE', 'gE', 'src', 'unm')
  -- An unmappable dead letter (it has a raw payload, 'unm') stays dead: there is nothing to send.
  if f[1] == 'dead' and f[2] == tE and (only == '' or f[3] == only) and (not f[5] or f[5] == '') then
    local gE = f[3]
    redis.call('ZREM', P .. 'dead:' .. tE, id)
    redis.call('ZREM', P .. 'dead:' .. scope(tE, gE), id)
    redis.call('ZREM', P .. 'settled', id)
    redis.call('ZADD', P .. 'due:' .. scope(tE, gE), now, id)
    redis.call('HSET', ek, 'st', 'pending', 'due', now, 'fat', '', 'dr', '', 'dat', '', 'upd', now)
    if forget then redis.call('HSET', ek, 'lsn', '') end
    move(tE, gE, f[4], 'dead', 'pending')
    out[#out + 1] = id
  end
end
return out
`;

// ARGV[4..]: owner, leaseMs, JSON list of ids. Extends to now + leaseMs each lease the owner still holds (the event is
// leased to it, even if the lease ran out and nobody took it over yet, as settle accepts). Returns the ids extended.
const RENEW = `${COUNTS}
local owner = ARGV[4]
local lexp = oncekit_text(now + tonumber(ARGV[5]))
local out = {}
for _, id in ipairs(cjson.decode(ARGV[6])) do
  local ek = P .. 'e:' .. id
  local f = redis.call('HMGET', ek, 'st', 'own', 'tE', 'gE')
  if f[1] == 'leased' and f[2] == owner then
    redis.call('HSET', ek, 'lex', lexp)
    redis.call('ZADD', P .. 'lease:' .. scope(f[3], f[4]), lexp, id)
    out[#out + 1] = id
  end
end
return out
`;

// ARGV[4..]: olderThanMs, limit. Deletes the oldest settled events (at most limit) whose last change is before
// now - olderThanMs: the hash, the attempts, the dedup entry (so the dedupKey is free again), the key, source and dead
// indexes and the counts. Returns how many.
const PRUNE = `${COUNTS}
local cutoff = now - tonumber(ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', P .. 'settled', '-inf', '(' .. oncekit_text(cutoff), 'LIMIT', 0, ARGV[5])
local settled = {delivered = true, duplicate = true, dead = true}
local pruned = 0
for _, id in ipairs(ids) do
  local ek = P .. 'e:' .. id
  local f = redis.call('HMGET', ek, 'st', 'tE', 'gE', 'src', 'dk', 'kix', 'six', 'key', 'mhl')
  redis.call('ZREM', P .. 'settled', id)
  -- Only a settled event goes (a stale member, if any, is just dropped from the set).
  if settled[f[1]] then
    local tE, gE, st, src = f[2], f[3], f[1], f[4]
    local sc = scope(tE, gE)
    if redis.call('HGET', P .. 'dedup:' .. sc, f[5]) == id then redis.call('HDEL', P .. 'dedup:' .. sc, f[5]) end
    if f[6] ~= '' then redis.call('ZREM', f[6], id) end
    redis.call('ZREM', f[7], id)
    redis.call('ZREM', P .. 'dead:' .. tE, id)
    redis.call('ZREM', P .. 'dead:' .. sc, id)
    redis.call('ZREM', P .. 'ev:' .. tE, id)
    move(tE, gE, src, st, nil)
    local fields = {st, src .. '|' .. st}
    if st == 'delivered' and (f[8] or '') == '' and f[9] == '1' then
      for _, nkey in ipairs({P .. 'n:' .. tE, P .. 'n:' .. sc}) do
        redis.call('HINCRBY', nkey, 'pdup', -1)
        redis.call('HINCRBY', nkey, src .. '|pdup', -1)
      end
      fields = {st, src .. '|' .. st, 'pdup', src .. '|pdup'}
    end
    -- A settled count back to 0 is dropped (an absent field reads as 0).
    for _, nkey in ipairs({P .. 'n:' .. tE, P .. 'n:' .. sc}) do
      for _, field in ipairs(fields) do
        if tonumber(redis.call('HGET', nkey, field)) == 0 then redis.call('HDEL', nkey, field) end
      end
    end
    redis.call('DEL', ek, P .. 'a:' .. id)
    pruned = pruned + 1
  end
end
return pruned
`;

// ARGV[4..]: tE, gE. Returns {earliest due score or '', earliest lease expiry or '', now} of the target's events: the
// caller translates to its clock.
const NEXT_DUE = `${COUNTS}
local sc = scope(ARGV[4], ARGV[5])
local due = redis.call('ZRANGE', P .. 'due:' .. sc, 0, 0, 'WITHSCORES')
local lease = redis.call('ZRANGE', P .. 'lease:' .. sc, 0, 0, 'WITHSCORES')
return {due[2] or '', lease[2] or '', nowS}
`;

const SCRIPTS = {
  enqueue: new LuaScript(ENQUEUE),
  recordUnmappable: new LuaScript(RECORD_UNMAPPABLE),
  lease: new LuaScript(LEASE),
  settle: new LuaScript(SETTLE),
  requeue: new LuaScript(REQUEUE),
  nextDue: new LuaScript(NEXT_DUE),
  renew: new LuaScript(RENEW),
  prune: new LuaScript(PRUNE),
};

/**
 * How many events one listEvents call reads at most by default (its filters are applied here, not in Redis), and per
 * round trip. A listing that stops at it says so (EventPage.searchStopped).
 */
export const DEFAULT_REDIS_LISTING_SCAN = 20_000;
const REDIS_LISTING_CHUNK = 500;

/** How many settled events one pruneSettled call deletes by default (one script, so other operations wait for it). */
export const DEFAULT_REDIS_PRUNE_LIMIT = 1000;

const orNull = (value: string | undefined): string | null => (value === undefined || value === '' ? null : value);
const numberOrNull = (value: string | undefined): number | null => (value === undefined || value === '' ? null : Number(value));

/** The shared store for many relay instances: every transition is one Lua script, so instances never race. */
export class RedisOutboxStore implements OutboxStore {
  readonly kind = 'redis' as const;
  readonly #client: Redis;
  readonly #ownsClient: boolean;
  readonly #prefix: string;
  readonly #guard: RedisStateGuard;
  /** Only tests set it; without it the scripts read the server's TIME. */
  readonly #clock: Clock | undefined;
  readonly #listingScanLimit: number;

  constructor(options: RedisOutboxStoreOptions) {
    const base = options.keyPrefix ?? DEFAULT_OUTBOX_REDIS_PREFIX;
    this.#client = options.client;
    this.#ownsClient = options.ownsClient ?? false;
    this.#prefix = `${base}outbox:`;
    this.#guard = new RedisStateGuard(options.client, base);
    this.#clock = options.clock;
    this.#listingScanLimit = options.listingScanLimit ?? DEFAULT_REDIS_LISTING_SCAN;
  }

  /** Writes (or reads) the marker now rather than at the first operation, and indexes older events; the openers call it. */
  async ready(): Promise<void> {
    await this.#call('open', () => this.#guard.markerId());
    await this.#call('open', () => this.#indexOlderEvents());
    await this.#call('open', () => this.#markLandedSince());
  }

  /** Runs `visit` over every event's key, SCAN by SCAN, once per store: `P flag` says it is done. */
  async #onceOverEvents(flag: string, visit: (keys: string[]) => Promise<void>): Promise<void> {
    const P = this.#prefix;
    if ((await this.#client.exists(`${P}${flag}`)) === 1) return;
    let cursor = '0';
    do {
      const [next, keys] = await this.#client.scan(cursor, 'MATCH', `${P}e:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await visit(keys);
    } while (cursor !== '0');
    await this.#client.set(`${P}${flag}`, '1');
  }

  /**
   * Events enqueued before P ev:{t} and P tg:{t} existed are added to them once (P ev-indexed), so the listing and the
   * charts include them. Idempotent: two instances doing it at once add the same members.
   */
  #indexOlderEvents(): Promise<void> {
    const P = this.#prefix;
    return this.#onceOverEvents('ev-indexed', async (keys) => {
      const pipeline = this.#client.pipeline();
      for (const key of keys) pipeline.hmget(key, 'tE', 'gE', 'enq');
      const replies = (await pipeline.exec()) ?? [];
      const writes = this.#client.pipeline();
      keys.forEach((key, at) => {
        const [tE, gE, enq] = (replies[at]?.[1] ?? []) as (string | null)[];
        if (!tE || !gE || !enq) return;
        writes.zadd(`${P}ev:${tE}`, enq, key.slice(`${P}e:`.length));
        writes.sadd(`${P}tg:${tE}`, gE);
      });
      await writes.exec();
    });
  }

  /**
   * Events marked as "may have landed" before lsn was kept get it once (P lsn-set): the earliest start among their
   * attempts that may have landed, as the SQL engines' upgrade does. HSETNX, so a time a script set meanwhile stays.
   */
  #markLandedSince(): Promise<void> {
    const P = this.#prefix;
    return this.#onceOverEvents('lsn-set', async (keys) => {
      const read = this.#client.pipeline();
      for (const key of keys) read.hmget(key, 'mhl', 'lsn');
      const marks = (await read.exec()) ?? [];
      const marked = keys.filter((_, at) => {
        const [mhl, lsn] = (marks[at]?.[1] ?? []) as (string | null)[];
        return mhl === '1' && !lsn;
      });
      if (marked.length === 0) return;
      const lists = this.#client.pipeline();
      for (const key of marked) lists.lrange(`${P}a:${key.slice(`${P}e:`.length)}`, 0, -1);
      const replies = (await lists.exec()) ?? [];
      const writes = this.#client.pipeline();
      marked.forEach((key, at) => {
        const landedSince = landingTimeOf({ landedSince: null, attempts: attemptsOfStored((replies[at]?.[1] ?? []) as string[]) });
        if (landedSince !== null) writes.hsetnx(key, 'lsn', String(landedSince));
      });
      await writes.exec();
    });
  }

  /** The caller's time: a test's clock, else this host's (used only for ids and to turn absolute times into delays). */
  #localNow(): number {
    return (this.#clock ?? systemClock).now();
  }

  async #eval(operation: string, which: LuaScript, args: readonly (string | number)[]): Promise<unknown> {
    const now = this.#clock === undefined ? '' : this.#clock.now();
    return this.#call(operation, () => this.#guard.run(which, [this.#guard.markerKey], [now, this.#prefix, ...args]));
  }

  async #call<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw outboxStoreFailure('redis', operation, error);
    }
  }

  /** Plain reads, in one MULTI with the marker check. */
  #read(build: (multi: ChainableCommander) => void): Promise<unknown[]> {
    return this.#guard.read(build);
  }

  async enqueue(events: readonly NewOutboxEvent[], options?: EnqueueOptions): Promise<EnqueueResult[]> {
    checkOutboxArgs.events(events);
    const lease = checkOutboxArgs.enqueueLease(options);
    if (events.length === 0) return [];
    const idTime = this.#localNow();
    const P = this.#prefix;
    const payload = events.map((event) => {
      const tE = keyPart(event.tenant);
      const key = event.input.idempotencyKey ?? '';
      return {
        id: newOutboxId(idTime),
        t: event.tenant,
        tE,
        g: event.target,
        gE: keyPart(event.target),
        src: event.source,
        sid: event.sourceId,
        dk: event.dedupKey,
        key,
        dec: event.keyDecision === null ? '' : JSON.stringify(event.keyDecision),
        inp: storedInput(event.input),
        kix: key === '' ? '' : `${P}key:${tE}:${keyPart(key)}`,
        six: `${P}src:${tE}:${keyPart(event.sourceId)}`,
      };
    });
    const args = [JSON.stringify(payload), lease?.owner ?? '', lease === undefined ? 0 : lease.leaseMs];
    const [nowText, rows] = (await this.#eval('enqueue', SCRIPTS.enqueue, args)) as [
      string,
      [string, EnqueueOutcome, OutboxState, string, number, number, string, string][],
    ];
    const now = Number(nowText);
    return rows.map(([id, outcome, state, updatedAt, previousAttempts, landed, source, landedSince], index): EnqueueResult => {
      const event = events[index];
      const mayHaveLanded = landed === 1;
      const result = { id, outcome, state, updatedAt: Number(updatedAt), mayHaveLanded };
      if (lease === undefined || outcome === 'existing' || event === undefined) return result;
      // A revived record keeps its source (the ledger's), whichever source sent the corrected payload.
      const leased = leasedOnEnqueue(id, { ...event, source }, lease, now, previousAttempts, mayHaveLanded, numberOrNull(landedSince));
      return { ...result, leased };
    });
  }

  async recordUnmappable(events: readonly UnmappableEvent[]): Promise<RecordUnmappableResult[]> {
    checkOutboxArgs.unmappable(events);
    if (events.length === 0) return [];
    const idTime = this.#localNow();
    const P = this.#prefix;
    const payload = events.map((event) => {
      const tE = keyPart(event.tenant);
      return {
        id: newOutboxId(idTime),
        t: event.tenant,
        tE,
        g: event.target,
        gE: keyPart(event.target),
        src: event.source,
        sid: event.sourceId,
        dk: event.dedupKey,
        dr: event.reason,
        unm: JSON.stringify({ text: event.raw.text, bytes: event.raw.bytes, truncated: event.raw.truncated }),
        six: `${P}src:${tE}:${keyPart(event.sourceId)}`,
      };
    });
    const rows = (await this.#eval('recordUnmappable', SCRIPTS.recordUnmappable, [JSON.stringify(payload)])) as [
      string,
      'created' | 'existing',
      OutboxState,
    ][];
    return rows.map(([id, outcome, state]) => ({ id, outcome, state }));
  }

  async lease(request: LeaseRequest): Promise<LeasedEvent[]> {
    const { tenant, target, owner, limit, leaseMs } = checkOutboxArgs.lease(request);
    const args = [keyPart(tenant), keyPart(target), limit, owner, leaseMs];
    const [nowText, rows] = (await this.#eval('lease', SCRIPTS.lease, args)) as [
      string,
      [string, string, string, string, string, string, string, string][],
    ];
    const now = Number(nowText);
    return rows.map(([id, source, sourceId, input, firstAttemptAt, attempts, landed, landedSince]) => ({
      id,
      tenant,
      target,
      source,
      sourceId,
      input: JSON.parse(input) as UserEventInput,
      firstAttemptAt: Number(firstAttemptAt),
      leasedAt: now,
      leaseExpiresAt: now + leaseMs,
      owner,
      previousAttempts: Number(attempts),
      mayHaveLanded: landed === '1',
      landedSince: numberOrNull(landedSince),
    }));
  }

  async settle(settlements: readonly Settlement[]): Promise<boolean[]> {
    if (settlements.length === 0) return [];
    const localNow = this.#localNow();
    const payload = settlements.map((settlement) => ({
      id: settlement.id,
      owner: settlement.owner,
      to: settlement.to,
      // A delay, not a time: the script adds it to its own now (the worker decided dueAt on this host's clock).
      dueIn: settlement.to === 'pending' ? settlement.dueAt - localNow : 0,
      reason: settlement.to === 'dead' ? settlement.reason : '',
      // The number is left out: an attempt's number is its position in the list.
      attempt: settlement.attempt === null ? '' : JSON.stringify({ ...settlement.attempt, number: undefined, handledBy: settlement.owner }),
      outcome: settlement.attempt?.outcome ?? '',
      landed: settlement.attempt !== null && attemptMayHaveLanded(settlement.attempt),
    }));
    const reply = (await this.#eval('settle', SCRIPTS.settle, [JSON.stringify(payload)])) as number[];
    return reply.map((applied) => applied === 1);
  }

  async renewLeases(owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    if (typeof owner !== 'string' || owner === '') throw new OutboxStoreError('invalid lease renewal: owner must not be empty');
    if (!Number.isInteger(leaseMs) || leaseMs < 1) throw new OutboxStoreError('invalid lease renewal: leaseMs must be at least 1 ms');
    if (ids.length === 0) return [];
    return (await this.#eval('renewLeases', SCRIPTS.renew, [owner, leaseMs, JSON.stringify(ids)])) as string[];
  }

  async pruneSettled(olderThanMs: number, limit: number = DEFAULT_REDIS_PRUNE_LIMIT): Promise<number> {
    if (!Number.isInteger(olderThanMs) || olderThanMs < 0) throw new OutboxStoreError('olderThanMs must be a whole number ≥ 0');
    if (!Number.isInteger(limit) || limit < 1) throw new OutboxStoreError('limit must be a whole number ≥ 1');
    return Number(await this.#eval('pruneSettled', SCRIPTS.prune, [olderThanMs, limit]));
  }

  async requeueDead(request: RequeueRequest): Promise<string[]> {
    const { tenant, target, ids, forcePastWindow } = checkOutboxArgs.requeue(request);
    if (ids !== undefined && ids.length === 0) return [];
    const args = [
      keyPart(tenant),
      target === undefined ? '' : keyPart(target),
      ids === undefined ? '' : JSON.stringify(ids),
      forcePastWindow === true ? '1' : '',
    ];
    return (await this.#eval('requeueDead', SCRIPTS.requeue, args)) as string[];
  }

  async get(tenant: string, id: string): Promise<LedgerEntry | undefined> {
    return this.#call('get', async () => (await this.#entries(tenant, [id]))[0]);
  }

  async findByKey(tenant: string, key: string): Promise<LedgerEntry[]> {
    return this.#call('findByKey', async () => {
      const [ids] = await this.#read((multi) => multi.zrange(`${this.#prefix}key:${keyPart(tenant)}:${keyPart(key)}`, 0, '-1'));
      return this.#entries(tenant, ids as string[]);
    });
  }

  async findBySourceId(tenant: string, sourceId: string): Promise<LedgerEntry[]> {
    return this.#call('findBySourceId', async () => {
      const [ids] = await this.#read((multi) => multi.zrange(`${this.#prefix}src:${keyPart(tenant)}:${keyPart(sourceId)}`, 0, '-1'));
      return this.#entries(tenant, ids as string[]);
    });
  }

  async listDead(tenant: string, page?: { readonly limit?: number; readonly offset?: number }): Promise<LedgerEntry[]> {
    const { limit, offset } = checkOutboxArgs.page(page);
    return this.#call('listDead', async () => {
      const [ids] = await this.#read((multi) => multi.zrange(`${this.#prefix}dead:${keyPart(tenant)}`, offset, String(offset + limit - 1)));
      return this.#entries(tenant, ids as string[]);
    });
  }

  /**
   * The targets' counts hashes (`P n:{t}:{g}`) name every pair; those whose counts are all zero (pruned) are left out.
   * Found with SCAN, which walks the keyspace in steps: fine for a command line's one call, not for a hot path.
   */
  async listTenantTargets(options: { readonly limit?: number } = {}): Promise<TenantTarget[]> {
    const { limit } = checkOutboxArgs.page(options);
    return this.#call('listTenantTargets', async () => {
      const head = `${this.#prefix}n:`;
      const pattern = `${head.replace(/[*?[\]\\^]/g, '\\$&')}*:*`;
      const keys = new Set<string>();
      let cursor = '0';
      do {
        const [next, found] = await this.#client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        cursor = next;
        for (const key of found) if (key.slice(head.length).split(':').length === 2) keys.add(key);
      } while (cursor !== '0');
      const names = [...keys];
      // With the marker check, so a wiped Redis fails rather than showing no tenant.
      const replies = await this.#read((multi) => {
        for (const key of names) multi.hmget(key, ...outboxStates);
      });
      const pairs: TenantTarget[] = [];
      names.forEach((key, index) => {
        const counts = replies[index] as (string | null)[];
        if (!counts.some((count) => Number(count ?? 0) > 0)) return;
        const [tenant = '', target = ''] = key
          .slice(head.length)
          .split(':')
          .map((part) => decodeURIComponent(part));
        pairs.push({ tenant, target });
      });
      pairs.sort((a, b) => compareText(a.tenant, b.tenant) || compareText(a.target, b.target));
      return pairs.slice(0, limit);
    });
  }

  /**
   * Reads candidates, then each one's filter fields, then the page's entries. The candidates: the few with the key or
   * source id asked for; else the state's own sets (dead, due, leased) when they hold at most the scan limit; else the
   * tenant's events newest first, at most the scan limit of them per call, saying where it stopped (searchStopped).
   */
  async listEvents(tenant: string, query?: EventListQuery): Promise<EventPage> {
    const { limit, offset, ...filter } = checkOutboxArgs.listEvents(query);
    return this.#call('listEvents', async () => {
      const tE = keyPart(tenant);
      const wanted = offset + limit + 1;
      const matches = ([t, st, g, src, sid, key, enq]: (string | null)[]): boolean => {
        const enqueuedAt = Number(enq);
        return (
          t === tenant &&
          (filter.state === undefined || st === filter.state) &&
          (filter.target === undefined || g === filter.target) &&
          (filter.source === undefined || src === filter.source) &&
          (filter.sourceId === undefined || sid === filter.sourceId) &&
          (filter.key === undefined || key === filter.key) &&
          (filter.since === undefined || enqueuedAt >= filter.since) &&
          (filter.until === undefined || enqueuedAt < filter.until)
        );
      };
      const fieldsOf = async (ids: readonly string[]): Promise<(string | null)[][]> => {
        const fields: (string | null)[][] = [];
        for (let at = 0; at < ids.length; at += REDIS_LISTING_CHUNK) {
          const chunk = ids.slice(at, at + REDIS_LISTING_CHUNK);
          fields.push(
            ...((await this.#read((multi) => {
              for (const id of chunk) multi.hmget(`${this.#prefix}e:${id}`, 't', 'st', 'g', 'src', 'sid', 'key', 'enq');
            })) as (string | null)[][]),
          );
        }
        return fields;
      };
      const page = async (matched: readonly string[], searchStopped?: SearchStopped): Promise<EventPage> => ({
        entries: await this.#entries(tenant, matched.slice(offset, offset + limit)),
        hasMore: matched.length > offset + limit,
        ...(searchStopped === undefined ? {} : { searchStopped }),
      });
      const candidates = await this.#listingCandidates(tE, filter);
      if (candidates !== null) {
        const fields = await fieldsOf(candidates);
        const found = candidates
          .map((id, at) => ({ id, f: fields[at] ?? [] }))
          .filter(({ f }) => matches(f))
          .sort((a, b) => Number(b.f[6]) - Number(a.f[6]) || (a.id < b.id ? 1 : -1));
        return page(found.map(({ id }) => id));
      }
      const matched: string[] = [];
      const max = filter.until === undefined ? '+inf' : `(${filter.until}`;
      const min = filter.since === undefined ? '-inf' : String(filter.since);
      let scanned = 0;
      let oldestScanned: number | null = null;
      while (matched.length < wanted) {
        // Full chunks up to here and the page still short: older events may match. Those of the oldest scanned
        // millisecond are searched again on resume (until is exclusive), so none is skipped; and a call goes on past
        // the limit until it is beyond the millisecond it resumed at, so resuming always moves.
        const resumeUntil = (oldestScanned ?? 0) + 1;
        const movesOn = filter.until === undefined || resumeUntil < filter.until;
        if (scanned >= this.#listingScanLimit && movesOn) return page(matched, { searched: scanned, resumeUntil });
        const left = this.#listingScanLimit - scanned;
        const asked = left > 0 ? Math.min(REDIS_LISTING_CHUNK, left) : REDIS_LISTING_CHUNK;
        // With their scores (the enqueue times), so where the walk stands never depends on an event still being there.
        const [scored] = (await this.#read((multi) =>
          multi.zrevrangebyscore(`${this.#prefix}ev:${tE}`, max, min, 'WITHSCORES', 'LIMIT', scanned, asked),
        )) as [string[]];
        const ids = scored.filter((_, at) => at % 2 === 0);
        if (ids.length === 0) break;
        scanned += ids.length;
        oldestScanned = Number(scored.at(-1));
        const fields = await fieldsOf(ids);
        ids.forEach((id, at) => {
          if (matches(fields[at] ?? [])) matched.push(id);
        });
        if (ids.length < asked) break;
      }
      return page(matched);
    });
  }

  /**
   * The ids a listing can be decided from without walking the tenant's events: the key's or the source id's (few), or
   * the state's own sets when together they hold at most the scan limit; null when the walk is needed.
   */
  async #listingCandidates(tE: string, filter: EventFilter): Promise<string[] | null> {
    const state = filter.state;
    let sets: string[];
    if (filter.key !== undefined) sets = [`${this.#prefix}key:${tE}:${keyPart(filter.key)}`];
    else if (filter.sourceId !== undefined) sets = [`${this.#prefix}src:${tE}:${keyPart(filter.sourceId)}`];
    else if (state === 'dead') sets = [`${this.#prefix}dead:${filter.target === undefined ? tE : `${tE}:${keyPart(filter.target)}`}`];
    else if (state === 'pending' || state === 'leased') {
      const [targets] = (
        filter.target === undefined ? await this.#read((multi) => multi.smembers(`${this.#prefix}tg:${tE}`)) : [[keyPart(filter.target)]]
      ) as [string[]];
      sets = targets.map((gE) => `${this.#prefix}${state === 'pending' ? 'due' : 'lease'}:${tE}:${gE}`);
    } else return null;
    // One past the limit from each set tells whether they hold more than it together, in the same read.
    const members = (await this.#read((multi) => {
      for (const set of sets) multi.zrange(set, 0, String(this.#listingScanLimit));
    })) as string[][];
    const ids = members.flat();
    return ids.length > this.#listingScanLimit ? null : [...new Set(ids)];
  }

  /**
   * The window's events: enqueued in it (P ev:{t}), settled in it (P settled, every tenant's), or still due or leased
   * (each target's zsets); at most MAX_ACTIVITY_ROWS of them.
   */
  async activity(tenant: string, query: ActivityQuery): Promise<ActivitySeries> {
    const checked = checkOutboxArgs.activity(query);
    return this.#call('activity', async () => {
      const tE = keyPart(tenant);
      const cap = MAX_ACTIVITY_ROWS + 1;
      const [targets] = (await this.#read((multi) => multi.smembers(`${this.#prefix}tg:${tE}`))) as [string[]];
      const replies = (await this.#read((multi) => {
        multi.zrangebyscore(`${this.#prefix}ev:${tE}`, checked.since, `(${checked.until}`, 'LIMIT', 0, cap);
        multi.zrangebyscore(`${this.#prefix}settled`, checked.since, '+inf', 'LIMIT', 0, cap);
        for (const gE of targets) {
          multi.zrange(`${this.#prefix}due:${tE}:${gE}`, 0, String(cap - 1));
          multi.zrange(`${this.#prefix}lease:${tE}:${gE}`, 0, String(cap - 1));
        }
      })) as string[][];
      const ids = [...new Set(replies.flat())];
      const rows: ActivityRow[] = [];
      let truncated = false;
      for (let at = 0; at < ids.length; at += REDIS_LISTING_CHUNK) {
        const chunk = ids.slice(at, at + REDIS_LISTING_CHUNK);
        const fields = (await this.#read((multi) => {
          for (const id of chunk) multi.hmget(`${this.#prefix}e:${id}`, 't', 'st', 'g', 'src', 'enq', 'upd', 'dat');
        })) as (string | null)[][];
        for (const [t, st, g, src, enq, upd, dat] of fields) {
          if (t !== tenant || st === null || enq === null) continue;
          if (checked.source !== undefined && src !== checked.source) continue;
          if (checked.target !== undefined && g !== checked.target) continue;
          if (Number(enq) >= checked.until) continue;
          const state = st as OutboxState;
          const settledAt = settledAtOf(state, Number(upd), dat ? Number(dat) : null);
          if (settledAt !== null && settledAt < checked.since) continue;
          if (rows.length >= MAX_ACTIVITY_ROWS) {
            truncated = true;
            break;
          }
          rows.push({ state, enqueuedAt: Number(enq), settledAt });
        }
        if (truncated) break;
      }
      return summarizeActivity(rows, checked, truncated);
    });
  }

  /** One HMGET: the tenant's counts hash, or its target's when the filter names a target. */
  async counts(tenant: string, filter?: OutboxCountFilter): Promise<OutboxCounts> {
    return this.#call('counts', async () => {
      const source = filter?.source;
      const target = filter?.target;
      const key = `${this.#prefix}n:${keyPart(tenant)}${target === undefined ? '' : `:${keyPart(target)}`}`;
      const fields = outboxStates.map((state) => (source === undefined ? state : `${source}|${state}`));
      const [values] = (await this.#read((multi) => multi.hmget(key, ...fields))) as [(string | null)[]];
      return countsFrom(outboxStates.map((state, index) => ({ state, count: Number(values[index] ?? 0) })));
    });
  }

  /** One HMGET, like counts: the counter settle and pruneSettled keep. */
  async countPossibleDuplicates(tenant: string, filter?: OutboxCountFilter): Promise<number> {
    return this.#call('countPossibleDuplicates', async () => {
      const target = filter?.target;
      const key = `${this.#prefix}n:${keyPart(tenant)}${target === undefined ? '' : `:${keyPart(target)}`}`;
      const field = filter?.source === undefined ? 'pdup' : `${filter.source}|pdup`;
      const [values] = (await this.#read((multi) => multi.hmget(key, field))) as [(string | null)[]];
      return Number(values[0] ?? 0);
    });
  }

  /** On the caller's clock: the server's time of the target's next due event, shifted by how far the two clocks differ. */
  async nextDueAt(tenant: string, target: string): Promise<number | null> {
    checkOutboxArgs.target(target);
    const localNow = this.#localNow();
    const args = [keyPart(tenant), keyPart(target)];
    const [due, lease, serverNow] = (await this.#eval('nextDueAt', SCRIPTS.nextDue, args)) as [string, string, string];
    const times = [due, lease].filter((score) => score !== '').map(Number);
    return times.length === 0 ? null : Math.min(...times) - Number(serverNow) + localNow;
  }

  async close(): Promise<void> {
    if (this.#ownsClient && this.#client.status !== 'end') await this.#client.quit();
  }

  async #entries(tenant: string, ids: readonly string[]): Promise<LedgerEntry[]> {
    if (ids.length === 0) return [];
    const replies = await this.#read((multi) => {
      for (const id of ids) {
        multi.hgetall(`${this.#prefix}e:${id}`);
        multi.lrange(`${this.#prefix}a:${id}`, 0, '-1');
      }
    });
    const entries: LedgerEntry[] = [];
    ids.forEach((id, index) => {
      const fields = replies[index * 2] as Record<string, string>;
      const list = replies[index * 2 + 1] as string[];
      if (fields.t !== tenant) return;
      entries.push(ledgerEntry(id, fields, list));
    });
    return entries;
  }
}

/** uncertainRequests is absent from attempts recorded before requests were counted: their final answer's is taken. */
interface StoredAttempt extends Omit<AttemptRecord, 'number' | 'uncertainRequests'> {
  readonly uncertainRequests?: number;
}
interface AbandonedMark {
  readonly abandoned: true;
  readonly startedAt: number;
  readonly finishedAt: number;
  readonly owner: string;
}

function ledgerEntry(id: string, f: Record<string, string>, attempts: readonly string[]): LedgerEntry {
  const state = f.st as OutboxState;
  const payload = f.unm
    ? { input: null, unmappable: JSON.parse(f.unm) as UnmappableRaw }
    : { input: JSON.parse(f.inp ?? '{}') as UserEventInput, unmappable: null };
  return {
    ...payload,
    id,
    tenant: f.t ?? '',
    target: f.g ?? '',
    source: f.src ?? '',
    sourceId: f.sid ?? '',
    dedupKey: f.dk ?? '',
    key: orNull(f.key),
    keyDecision: f.dec ? (JSON.parse(f.dec) as KeyDecision) : null,
    state,
    enqueuedAt: Number(f.enq),
    updatedAt: Number(f.upd),
    dueAt: state === 'pending' ? numberOrNull(f.due) : null,
    leaseExpiresAt: state === 'leased' ? numberOrNull(f.lex) : null,
    firstAttemptAt: numberOrNull(f.fat),
    landedSince: numberOrNull(f.lsn),
    deadReason: orNull(f.dr),
    deadAt: numberOrNull(f.dat),
    attempts: attemptsOfStored(attempts),
  };
}

/** An event's attempts as its list P a:{id} keeps them, numbered by position. */
function attemptsOfStored(attempts: readonly string[]): AttemptRecord[] {
  return attempts.map((text, index): AttemptRecord => {
    const stored = JSON.parse(text) as StoredAttempt | AbandonedMark;
    if ('abandoned' in stored) return abandonedAttempt(index + 1, stored.startedAt, stored.finishedAt, stored.owner);
    const uncertainRequests = stored.uncertainRequests ?? uncertainFinalRequests(stored.outcome, stored.status);
    return { ...stored, uncertainRequests, number: index + 1 };
  });
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
