import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { type ManualClock, manualClock } from '../../../shared/clock.js';
import type { UserEventInput } from '../../../shared/events/index.js';
import { silentLogger } from '../../../shared/log.js';
import type {
  LeasedEvent,
  LedgerEntry,
  NewOutboxEvent,
  OutboxCountFilter,
  OutboxCounts,
  OutboxState,
  OutboxStore,
  Settlement,
} from '../../../shared/outbox/index.js';
import type { StoreLocation } from '../../../shared/state/location.js';
import { type OpenStateOptions, openState, type State } from '../../../shared/state/open-state.js';
import type { DeliveryOutcome } from '../../../shared/target/outcome.js';
import { dropTestSchema, postgresEnv, skipPostgresTests, testPostgresLocation, uniqueTestSchema } from './postgres/test-env.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from './redis/test-env.js';
import { tempDir } from './temp-dir.js';

/*
 * A model-based test of the outbox: fast-check draws random sequences of enqueue (new and duplicate dedupKeys, batches,
 * enqueue-and-lease), lease by several workers, renew, settle (by the holder, by a stale holder, by anyone, twice in
 * one call), expire (the clock moves past leases), crash (a worker forgets what it holds), restart (the store is closed
 * and opened again on the same location), requeueDead and pruneSettled, plus a worker's round (lease a batch, settle it
 * all), and runs each against a real engine and a plain model side by side. On the durable engines two instances
 * (connections, pools) share the store and take turns call by call, as several relays would; memory has one instance
 * and no restart. After every command the engine must agree with the model on every event (state, due time,
 * lease expiry, attempts, …), on counts, on the next due time and on the dead letters: nothing lost, nothing settled
 * twice, no lease stolen early.
 *
 * Every engine takes the test's manual clock (PostgreSQL and Redis then read it instead of the server's time), so
 * "expire" is a clock step, not a wait. A failure prints fast-check's seed, path and the shrunk commands with their
 * replayPath; replay it with ONCEKIT_MODEL_SEED=<seed> ONCEKIT_MODEL_PATH=<path> ONCEKIT_MODEL_REPLAY_PATH=<replayPath>
 * and `-t <engine>`. ONCEKIT_MODEL_RUNS=<n> sets the number of runs per engine (a longer hunt).
 */

const TARGETS = ['https://a.target.test', 'https://b.target.test'] as const;
const SOURCES = ['import', 'segment'] as const;
const WORKERS = ['w0', 'w1', 'w2'] as const;
const DEDUP_KEYS = 4;
const DAY_MS = 86_400_000;
/** Above any count of settled events a run leaves behind. */
const PRUNE_ALL = 100_000;

const pick = <T>(items: readonly T[], index: number): T => {
  const item = items[index % items.length];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
};

/** The model's view of one event: what the ledger must show for it. */
interface ModelEvent {
  readonly id: string;
  readonly tenant: string;
  readonly target: string;
  readonly source: string;
  readonly dedupKey: string;
  readonly enqueuedAt: number;
  sourceId: string;
  input: UserEventInput;
  state: OutboxState;
  owner: string | null;
  leaseExpiresAt: number | null;
  dueAt: number | null;
  firstAttemptAt: number | null;
  /** The current lease's time (the store's); null when not leased. */
  leasedAt: number | null;
  /** The lease time of the earliest attempt that may have landed; a requeue keeps it unless forced. */
  landedSince: number | null;
  /** Outcomes of the ledger's attempts, oldest first ('abandoned' for a lease that ran out). */
  attempts: string[];
  lastOutcome: string | null;
  deadReason: string | null;
  deadAt: number | null;
  updatedAt: number;
}

class Model {
  /** Every event the store holds, in the order they were created (the store's tie-break on equal due times). */
  readonly events: ModelEvent[] = [];
  /** What each worker believes it holds; a crash empties it, and a stale entry is how a stale owner settles. */
  readonly held = new Map<string, string[]>(WORKERS.map((worker) => [worker, []]));

  constructor(
    readonly tenants: readonly [string, string],
    readonly durable: boolean,
  ) {}

  byId(id: string): ModelEvent | undefined {
    return this.events.find((event) => event.id === id);
  }

  heldBy(worker: string): string[] {
    return this.held.get(worker) ?? [];
  }

  hold(worker: string, ids: readonly string[]): void {
    const held = this.heldBy(worker);
    this.held.set(worker, [...held, ...ids.filter((id) => !held.includes(id))]);
  }

  release(worker: string, ids: readonly string[]): void {
    this.held.set(
      worker,
      this.heldBy(worker).filter((id) => !ids.includes(id)),
    );
  }
}

const isLive = (event: ModelEvent): boolean => event.state === 'pending' || event.state === 'leased';
const dueTime = (event: ModelEvent): number => (event.state === 'pending' ? event.dueAt : event.leaseExpiresAt) ?? Number.POSITIVE_INFINITY;
const isDue = (event: ModelEvent, now: number): boolean => isLive(event) && dueTime(event) <= now;
const heldUnexpired = (event: ModelEvent, now: number): boolean => event.state === 'leased' && (event.leaseExpiresAt ?? 0) > now;

/** The store under test, opened by one or more instances, and how to restart one. */
interface Real {
  readonly clock: ManualClock;
  /** One instance's store; the instances take turns, call by call, so each sees what the others wrote. */
  readonly store: OutboxStore;
  /** Closes one instance (in turn) and opens it again on the same location. */
  restart(): Promise<void>;
}

type ModelCommand = fc.AsyncCommand<Model, Real>;

const inputOf = (dedupKey: string, variant: number): UserEventInput => ({
  userId: `user-${dedupKey}`,
  accountId: 'acct-1',
  idempotencyKey: `key-${dedupKey}-abcdef`,
  events: [{ key: 'purchase', fields: { variant }, dateTriggered: 1_700_000_000_000 }],
});

const countsOf = (events: readonly ModelEvent[]): OutboxCounts => {
  const counts = { pending: 0, leased: 0, delivered: 0, duplicate: 0, dead: 0 };
  for (const event of events) counts[event.state] += 1;
  return counts;
};

/** The ledger entry the model expects, in the projection compared. */
const expectedEntry = (event: ModelEvent) => ({
  id: event.id,
  tenant: event.tenant,
  target: event.target,
  source: event.source,
  sourceId: event.sourceId,
  dedupKey: event.dedupKey,
  input: event.input,
  state: event.state,
  enqueuedAt: event.enqueuedAt,
  updatedAt: event.updatedAt,
  dueAt: event.state === 'pending' ? event.dueAt : null,
  leaseExpiresAt: event.state === 'leased' ? event.leaseExpiresAt : null,
  firstAttemptAt: event.firstAttemptAt,
  landedSince: event.landedSince,
  deadReason: event.deadReason,
  deadAt: event.deadAt,
  attempts: event.attempts.map((outcome, index) => [index + 1, outcome]),
});

const entryProjection = (entry: LedgerEntry | undefined) =>
  entry === undefined
    ? undefined
    : {
        id: entry.id,
        tenant: entry.tenant,
        target: entry.target,
        source: entry.source,
        sourceId: entry.sourceId,
        dedupKey: entry.dedupKey,
        input: entry.input,
        state: entry.state,
        enqueuedAt: entry.enqueuedAt,
        updatedAt: entry.updatedAt,
        dueAt: entry.dueAt,
        leaseExpiresAt: entry.leaseExpiresAt,
        firstAttemptAt: entry.firstAttemptAt,
        landedSince: entry.landedSince,
        deadReason: entry.deadReason,
        deadAt: entry.deadAt,
        attempts: entry.attempts.map((attempt) => [attempt.number, attempt.outcome]),
      };

/** The whole store against the whole model: every event, every count, next due times and dead letters. */
async function checkAgainstModel(model: Model, real: Real, after: string): Promise<void> {
  const { store } = real;
  const filters: OutboxCountFilter[] = [
    {},
    ...TARGETS.map((target) => ({ target })),
    ...SOURCES.map((source) => ({ source })),
    { target: TARGETS[1], source: SOURCES[0] },
  ];
  const countChecks = model.tenants.flatMap((tenant) =>
    filters.map(async (filter) => {
      const expected = countsOf(
        model.events.filter(
          (event) =>
            event.tenant === tenant &&
            (filter.target === undefined || event.target === filter.target) &&
            (filter.source === undefined || event.source === filter.source),
        ),
      );
      expect(await store.counts(tenant, filter), `${after}: counts(${tenant}, ${JSON.stringify(filter)})`).toEqual(expected);
    }),
  );
  // Nothing lost: every event is where the model says, in exactly the state it says. Looked up by idempotency key (one
  // per dedupKey), which also shows that a tenant sees only its own events and nothing the model does not know.
  const entryChecks = model.tenants.flatMap((tenant) =>
    Array.from({ length: DEDUP_KEYS }, async (_, index) => {
      const dedupKey = `d${index}`;
      const expected = model.events.filter((event) => event.tenant === tenant && event.dedupKey === dedupKey).map(expectedEntry);
      const entries = await store.findByKey(tenant, inputOf(dedupKey, 0).idempotencyKey ?? '');
      expect(entries.map(entryProjection), `${after}: the ledger of ${tenant} for ${dedupKey}`).toEqual(expected);
    }),
  );
  const dueChecks = model.tenants.flatMap((tenant) =>
    TARGETS.map(async (target) => {
      const times = model.events.filter((event) => event.tenant === tenant && event.target === target && isLive(event)).map(dueTime);
      const expected = times.length === 0 ? null : Math.min(...times);
      expect(await store.nextDueAt(tenant, target), `${after}: nextDueAt(${tenant}, ${target})`).toBe(expected);
    }),
  );
  const deadChecks = model.tenants.map(async (tenant) => {
    const expected = model.events
      .filter((event) => event.tenant === tenant && event.state === 'dead')
      .sort((a, b) => (a.deadAt ?? 0) - (b.deadAt ?? 0) || model.events.indexOf(a) - model.events.indexOf(b))
      .map((event) => event.id);
    expect(
      (await store.listDead(tenant)).map((entry) => entry.id),
      `${after}: listDead(${tenant})`,
    ).toEqual(expected);
  });
  await Promise.all([...countChecks, ...entryChecks, ...dueChecks, ...deadChecks]);
}

// ---------------------------------------------------------------------------------------------------------------------
// Commands. They name events by small indexes (tenant, target, dedupKey, worker) and find ids through the model when
// they run, so a shrunk sequence still makes sense.

interface EnqueueItem {
  readonly tenant: number;
  readonly target: number;
  readonly dedup: number;
  readonly variant: number;
  readonly source: number;
}

class EnqueueCommand implements ModelCommand {
  constructor(
    readonly items: readonly EnqueueItem[],
    readonly leaseTo: { readonly worker: number; readonly leaseMs: number } | null,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const now = real.clock.now();
    const events: NewOutboxEvent[] = this.items.map((item) => {
      const dedupKey = `d${item.dedup}`;
      return {
        tenant: pick(model.tenants, item.tenant),
        target: pick(TARGETS, item.target),
        source: pick(SOURCES, item.source),
        sourceId: `src-${dedupKey}-v${item.variant}`,
        dedupKey,
        input: inputOf(dedupKey, item.variant),
        keyDecision: null,
      };
    });
    const lease = this.leaseTo === null ? undefined : { owner: pick(WORKERS, this.leaseTo.worker), leaseMs: this.leaseTo.leaseMs };
    const results = await real.store.enqueue(events, lease === undefined ? undefined : { lease });
    expect(results, 'one result per event').toHaveLength(events.length);
    events.forEach((event, index) => {
      const result = results[index];
      if (result === undefined) throw new Error('missing result');
      const existing = model.events.find((e) => e.tenant === event.tenant && e.target === event.target && e.dedupKey === event.dedupKey);
      const start = (record: ModelEvent): void => {
        if (lease === undefined)
          Object.assign(record, { state: 'pending', dueAt: now, owner: null, leasedAt: null, leaseExpiresAt: null, firstAttemptAt: null });
        else
          Object.assign(record, {
            state: 'leased',
            dueAt: null,
            owner: lease.owner,
            leasedAt: now,
            leaseExpiresAt: now + lease.leaseMs,
            firstAttemptAt: now,
          });
        record.updatedAt = now;
      };
      const leasedView = (record: ModelEvent): LeasedEvent => ({
        id: record.id,
        tenant: record.tenant,
        target: record.target,
        source: record.source,
        sourceId: record.sourceId,
        input: record.input,
        firstAttemptAt: now,
        leasedAt: now,
        leaseExpiresAt: now + (lease?.leaseMs ?? 0),
        owner: lease?.owner ?? '',
        previousAttempts: record.attempts.length,
        mayHaveLanded: modelMayHaveLanded(record),
        landedSince: record.landedSince,
      });
      if (existing === undefined) {
        expect(result.outcome, `enqueue #${index}: a new dedupKey is created`).toBe('created');
        expect(model.byId(result.id), `enqueue #${index}: a created event has a fresh id`).toBeUndefined();
        const record: ModelEvent = {
          id: result.id,
          tenant: event.tenant,
          target: event.target,
          source: event.source,
          dedupKey: event.dedupKey,
          enqueuedAt: now,
          sourceId: event.sourceId,
          input: event.input,
          state: 'pending',
          owner: null,
          leasedAt: null,
          leaseExpiresAt: null,
          dueAt: now,
          firstAttemptAt: null,
          landedSince: null,
          attempts: [],
          lastOutcome: null,
          deadReason: null,
          deadAt: null,
          updatedAt: now,
        };
        start(record);
        model.events.push(record);
        expect(result).toEqual({
          id: record.id,
          outcome: 'created',
          state: record.state,
          updatedAt: now,
          mayHaveLanded: false,
          ...(lease ? { leased: leasedView(record) } : {}),
        });
        if (lease) model.hold(lease.owner, [record.id]);
        return;
      }
      // The revive rule: only a dead letter the target rejected takes a changed payload.
      const revives =
        existing.state === 'dead' && existing.lastOutcome === 'rejected' && JSON.stringify(existing.input) !== JSON.stringify(event.input);
      if (!revives) {
        expect(result, `enqueue #${index}: a known dedupKey adds nothing`).toEqual({
          id: existing.id,
          outcome: 'existing',
          state: existing.state,
          updatedAt: existing.updatedAt,
          mayHaveLanded: modelMayHaveLanded(existing),
        });
        return;
      }
      Object.assign(existing, { input: event.input, sourceId: event.sourceId, deadReason: null, deadAt: null });
      start(existing);
      expect(result, `enqueue #${index}: a rejected dead letter with a new payload is revived`).toEqual({
        id: existing.id,
        outcome: 'revived',
        state: existing.state,
        updatedAt: now,
        mayHaveLanded: modelMayHaveLanded(existing),
        ...(lease ? { leased: leasedView(existing) } : {}),
      });
      if (lease) model.hold(lease.owner, [existing.id]);
    });
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () =>
    `enqueue(${this.items.map((i) => `t${i.tenant}/g${i.target}/d${i.dedup}v${i.variant}s${i.source}`).join(', ')}${
      this.leaseTo ? `; leased to w${this.leaseTo.worker} for ${this.leaseTo.leaseMs}` : ''
    })`;
}

class LeaseCommand implements ModelCommand {
  constructor(
    readonly worker: number,
    readonly tenant: number,
    readonly target: number,
    readonly limit: number,
    readonly leaseMs: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    await this.leaseAndCheck(model, real);
    await checkAgainstModel(model, real, this.toString());
  }
  /** Leases, checks what came back against the model, and returns the ids the worker now holds. */
  async leaseAndCheck(model: Model, real: Real): Promise<string[]> {
    const now = real.clock.now();
    const owner = pick(WORKERS, this.worker);
    const tenant = pick(model.tenants, this.tenant);
    const target = pick(TARGETS, this.target);
    const expected = model.events
      .filter((event) => event.tenant === tenant && event.target === target && isDue(event, now))
      .sort((a, b) => dueTime(a) - dueTime(b) || model.events.indexOf(a) - model.events.indexOf(b))
      .slice(0, this.limit);
    const leased = await real.store.lease({ tenant, target, owner, limit: this.limit, leaseMs: this.leaseMs });
    for (const got of leased) {
      const event = model.byId(got.id);
      if (event === undefined) throw new Error(`lease returned an event never enqueued: ${got.id}`);
      expect([event.tenant, event.target], `lease returned ${got.id} of another tenant or target`).toEqual([tenant, target]);
      if (heldUnexpired(event, now)) {
        throw new Error(
          `lease stolen early: ${got.id} is held by ${event.owner} until ${event.leaseExpiresAt}, taken by ${owner} at ${now}`,
        );
      }
      if (!isDue(event, now))
        throw new Error(`lease returned ${got.id}, which is not due (${event.state}, due ${dueTime(event)}, now ${now})`);
    }
    expect(
      leased.map((event) => event.id),
      'lease takes the due events of its tenant and target, oldest due first, up to the limit',
    ).toEqual(expected.map((event) => event.id));
    const views = expected.map((event): LeasedEvent => {
      if (event.state === 'leased') {
        event.attempts.push('abandoned');
        event.lastOutcome = 'abandoned';
        event.landedSince ??= event.leasedAt;
      }
      event.firstAttemptAt ??= now;
      Object.assign(event, { state: 'leased', owner, leasedAt: now, leaseExpiresAt: now + this.leaseMs, dueAt: null, updatedAt: now });
      return {
        id: event.id,
        tenant,
        target,
        source: event.source,
        sourceId: event.sourceId,
        input: event.input,
        firstAttemptAt: event.firstAttemptAt,
        leasedAt: now,
        leaseExpiresAt: now + this.leaseMs,
        owner,
        previousAttempts: event.attempts.length,
        mayHaveLanded: modelMayHaveLanded(event),
        landedSince: event.landedSince,
      };
    });
    expect(leased).toEqual(views);
    const ids = leased.map((event) => event.id);
    model.hold(owner, ids);
    return ids;
  }
  toString = () => `lease(w${this.worker}, t${this.tenant}/g${this.target}, limit ${this.limit}, ${this.leaseMs} ms)`;
}

class RenewCommand implements ModelCommand {
  constructor(
    readonly worker: number,
    readonly fromHeld: boolean,
    readonly picks: readonly number[],
    readonly leaseMs: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const now = real.clock.now();
    const owner = pick(WORKERS, this.worker);
    const ids = this.fromHeld
      ? model.heldBy(owner)
      : [...new Set(model.events.length === 0 ? [] : this.picks.map((index) => pick(model.events, index).id))];
    const expected = ids.filter((id) => {
      const event = model.byId(id);
      return event?.state === 'leased' && event.owner === owner;
    });
    const renewed = await real.store.renewLeases(owner, ids, this.leaseMs);
    expect(renewed, "renewLeases extends the owner's own leases, and only those").toEqual(expected);
    for (const id of expected) {
      const event = model.byId(id);
      if (event) event.leaseExpiresAt = now + this.leaseMs;
    }
    // What was not renewed, the worker learns it no longer holds.
    model.release(
      owner,
      ids.filter((id) => !renewed.includes(id)),
    );
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () => `renew(w${this.worker}, ${this.fromHeld ? 'held' : `picks ${this.picks.join('/')}`}, ${this.leaseMs} ms)`;
}

interface SettlePlan {
  readonly to: Settlement['to'];
  readonly attempt: DeliveryOutcome | null;
}

const SETTLE_PLANS: readonly SettlePlan[] = [
  { to: 'delivered', attempt: 'accepted' },
  { to: 'delivered', attempt: null },
  { to: 'duplicate', attempt: 'duplicate' },
  { to: 'dead', attempt: 'rejected' },
  { to: 'dead', attempt: 'failed' },
  { to: 'dead', attempt: null },
  { to: 'pending', attempt: 'failed' },
  { to: 'pending', attempt: null },
];

interface SettleItem {
  readonly worker: number;
  /** From what the worker believes it holds (its own or a stale lease), else any event. */
  readonly fromHeld: boolean;
  readonly pick: number;
  readonly plan: number;
  readonly dueInMs: number;
}

class SettleCommand implements ModelCommand {
  constructor(
    readonly items: readonly SettleItem[],
    /** Also settle the first one again in the same call. */
    readonly twice: boolean,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const now = real.clock.now();
    const settlements: Settlement[] = [];
    for (const item of this.items) {
      const owner = pick(WORKERS, item.worker);
      const held = model.heldBy(owner);
      const id =
        item.fromHeld && held.length > 0 ? pick(held, item.pick) : model.events.length > 0 ? pick(model.events, item.pick).id : null;
      if (id === null) continue;
      settlements.push(settlementOf(id, owner, pick(SETTLE_PLANS, item.plan), now + item.dueInMs, now));
    }
    const [first] = settlements;
    if (this.twice && first) settlements.push(first);
    if (settlements.length === 0) return;
    await settleAndCheck(model, real, settlements);
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () =>
    `settle(${this.items
      .map((i) => `w${i.worker} ${i.fromHeld ? 'held' : 'any'}#${i.pick} → ${JSON.stringify(pick(SETTLE_PLANS, i.plan))}+${i.dueInMs}`)
      .join(', ')}${this.twice ? ', first again' : ''})`;
}

/** Whether an attempt of the event may have landed: a lease that ran out, or a 503 (the model's only failure). */
function modelMayHaveLanded(event: { readonly attempts: readonly string[] }): boolean {
  return event.attempts.some((outcome) => outcome === 'abandoned' || outcome === 'failed');
}

function settlementOf(id: string, owner: string, plan: SettlePlan, dueAt: number, now: number): Settlement {
  const attempt =
    plan.attempt === null
      ? null
      : {
          number: 1,
          startedAt: now,
          finishedAt: now,
          outcome: plan.attempt,
          status: plan.attempt === 'failed' ? 503 : plan.attempt === 'rejected' ? 400 : plan.attempt === 'duplicate' ? 409 : 200,
          message: null,
          apiErrorCode: null,
          rsCode: null,
          requests: 1,
          // A 503 may have landed; every other answer here is certain.
          uncertainRequests: plan.attempt === 'failed' ? 1 : 0,
          eventIds: [],
        };
  const base = { id, owner, attempt };
  if (plan.to === 'pending') return { ...base, to: 'pending', dueAt };
  if (plan.to === 'dead') return { ...base, to: 'dead', reason: `dead by ${owner}` };
  return { ...base, to: plan.to };
}

/** Settles, and checks that exactly the settlements whose owner holds the event were applied. */
async function settleAndCheck(model: Model, real: Real, settlements: readonly Settlement[]): Promise<void> {
  const now = real.clock.now();
  const before = new Map(model.events.map((event) => [event.id, event.attempts.length]));
  // Applied in order: a settlement counts only while its owner holds the event (expired or not, as long as no one
  // took it over); once settled, the event is no one's, so a second settle changes nothing.
  const expected = settlements.map((settlement) => {
    const event = model.byId(settlement.id);
    if (event === undefined || event.state !== 'leased' || event.owner !== settlement.owner) return false;
    if (settlement.attempt !== null) {
      event.attempts.push(settlement.attempt.outcome);
      event.lastOutcome = settlement.attempt.outcome;
      if (settlement.attempt.outcome === 'failed') event.landedSince ??= event.leasedAt;
    }
    Object.assign(event, {
      state: settlement.to,
      owner: null,
      leasedAt: null,
      leaseExpiresAt: null,
      updatedAt: now,
      dueAt: settlement.to === 'pending' ? settlement.dueAt : null,
    });
    if (settlement.to === 'dead') Object.assign(event, { deadReason: settlement.reason, deadAt: now });
    return true;
  });
  const applied = await real.store.settle(settlements);
  settlements.forEach((settlement, index) => {
    if (applied[index] === true && expected[index] !== true) {
      const count = before.get(settlement.id);
      throw new Error(
        `settled by a non-holder or twice: ${settlement.id} by ${settlement.owner} (#${index}; it had ${count ?? 'no'} attempts)`,
      );
    }
  });
  expect(applied, 'settle applies exactly the settlements whose owner holds the event').toEqual(expected);
  for (const settlement of settlements) model.release(settlement.owner, [settlement.id]);
}

/** A worker's round: lease a batch, then settle all of it one way (reaches settled, dead and retried events sooner). */
class WorkCommand implements ModelCommand {
  constructor(
    readonly lease: LeaseCommand,
    readonly plan: number,
    readonly dueInMs: number,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const ids = await this.lease.leaseAndCheck(model, real);
    const now = real.clock.now();
    const owner = pick(WORKERS, this.lease.worker);
    if (ids.length > 0)
      await settleAndCheck(
        model,
        real,
        ids.map((id) => settlementOf(id, owner, pick(SETTLE_PLANS, this.plan), now + this.dueInMs, now)),
      );
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () => `work(${this.lease.toString()} → ${JSON.stringify(pick(SETTLE_PLANS, this.plan))}+${this.dueInMs})`;
}

class AdvanceCommand implements ModelCommand {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    real.clock.advance(this.ms);
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () => `advance(${this.ms} ms)`;
}

class CrashCommand implements ModelCommand {
  constructor(readonly worker: number) {}
  check = () => true;
  async run(model: Model): Promise<void> {
    model.held.set(pick(WORKERS, this.worker), []);
  }
  toString = () => `crash(w${this.worker})`;
}

class RestartCommand implements ModelCommand {
  check = (model: Readonly<Model>) => model.durable;
  async run(model: Model, real: Real): Promise<void> {
    await real.restart();
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () => 'restart';
}

class RequeueCommand implements ModelCommand {
  constructor(
    readonly tenant: number,
    readonly target: number | null,
    readonly picks: readonly number[] | null,
    readonly forcePastWindow: boolean,
  ) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const now = real.clock.now();
    const tenant = pick(model.tenants, this.tenant);
    const target = this.target === null ? undefined : pick(TARGETS, this.target);
    // Any event's id, of either tenant: only the tenant's dead letters (of the target, if named) are requeued.
    const ids =
      this.picks === null
        ? undefined
        : [...new Set(model.events.length === 0 ? [] : this.picks.map((index) => pick(model.events, index).id))];
    const expected = model.events.filter(
      (event) =>
        event.tenant === tenant &&
        event.state === 'dead' &&
        (target === undefined || event.target === target) &&
        (ids === undefined || ids.includes(event.id)),
    );
    const forced = this.forcePastWindow ? { forcePastWindow: true } : {};
    const requeued = await real.store.requeueDead({ tenant, ...(target ? { target } : {}), ...(ids ? { ids } : {}), ...forced });
    expect([...requeued].sort(), 'requeueDead requeues exactly the dead letters asked for').toEqual(
      expected.map((event) => event.id).sort(),
    );
    for (const event of expected) {
      Object.assign(event, { state: 'pending', dueAt: now, firstAttemptAt: null, deadReason: null, deadAt: null, updatedAt: now });
      if (this.forcePastWindow) event.landedSince = null;
    }
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () =>
    `requeueDead(t${this.tenant}${this.target === null ? '' : `/g${this.target}`}${this.picks ? ` ids ${this.picks.join('/')}` : ''}${this.forcePastWindow ? ', forced' : ''})`;
}

class PruneCommand implements ModelCommand {
  constructor(readonly olderThanMs: number) {}
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    const cutoff = real.clock.now() - this.olderThanMs;
    const gone = model.events.filter((event) => !isLive(event) && event.updatedAt < cutoff);
    const pruned = await real.store.pruneSettled(this.olderThanMs, PRUNE_ALL);
    expect(pruned, 'pruneSettled deletes exactly the settled events older than the retention').toBe(gone.length);
    for (const event of gone) model.events.splice(model.events.indexOf(event), 1);
    for (const worker of WORKERS)
      model.release(
        worker,
        gone.map((event) => event.id),
      );
    await checkAgainstModel(model, real, this.toString());
  }
  toString = () => `pruneSettled(${this.olderThanMs} ms)`;
}

const worker = fc.nat(WORKERS.length - 1);
const side = fc.nat(1);
/** Most events in the first tenant, so one tenant's targets and states meet often; the second keeps tenants apart. */
const tenantIndex = fc.constantFrom(0, 0, 0, 1);
const leaseMs = fc.constantFrom(1000, 2000);
const picks = fc.uniqueArray(fc.nat(31), { maxLength: 3 });

const enqueueItem = fc.record({ tenant: tenantIndex, target: side, dedup: fc.nat(DEDUP_KEYS - 1), variant: fc.nat(1), source: side });
const settleItem = fc.record({
  worker,
  fromHeld: fc.constantFrom(true, true, true, false),
  pick: fc.nat(31),
  plan: fc.nat(SETTLE_PLANS.length - 1),
  dueInMs: fc.constantFrom(0, 1, 1000, 2000),
});

const leaseCommand = fc
  .tuple(worker, tenantIndex, side, fc.integer({ min: 1, max: 4 }), leaseMs)
  .map(([w, tenant, target, limit, ms]) => new LeaseCommand(w, tenant, target, limit, ms));

/** The command mix: the busy ones twice, so sequences reach settled, dead and requeued events often. */
const commandArbitraries: fc.Arbitrary<ModelCommand>[] = [
  fc
    .tuple(fc.array(enqueueItem, { minLength: 1, maxLength: 4 }), fc.option(fc.record({ worker, leaseMs }), { freq: 3 }))
    .map(([items, leaseTo]) => new EnqueueCommand(items, leaseTo)),
  fc
    .tuple(fc.array(enqueueItem, { minLength: 1, maxLength: 2 }), fc.constant(null))
    .map(([items, leaseTo]) => new EnqueueCommand(items, leaseTo)),
  leaseCommand,
  leaseCommand,
  fc
    .tuple(leaseCommand, fc.nat(SETTLE_PLANS.length - 1), fc.constantFrom(0, 1, 1000, 2000))
    .map(([lease, plan, dueInMs]) => new WorkCommand(lease, plan, dueInMs)),
  fc.tuple(worker, fc.boolean(), picks, leaseMs).map(([w, fromHeld, p, ms]) => new RenewCommand(w, fromHeld, p, ms)),
  fc.tuple(fc.array(settleItem, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([items, twice]) => new SettleCommand(items, twice)),
  fc.tuple(fc.array(settleItem, { minLength: 1, maxLength: 3 }), fc.boolean()).map(([items, twice]) => new SettleCommand(items, twice)),
  fc.constantFrom(1, 999, 1000, 1999, 2000, 10_000).map((ms) => new AdvanceCommand(ms)),
  worker.map((w) => new CrashCommand(w)),
  fc.constant(new RestartCommand()),
  fc
    .tuple(tenantIndex, fc.option(side, { freq: 2 }), fc.option(picks, { freq: 2 }), fc.boolean())
    .map(([tenant, target, p, force]) => new RequeueCommand(tenant, target, p, force)),
  fc.constantFrom(0, 1000, 5000).map((ms) => new PruneCommand(ms)),
];

// ---------------------------------------------------------------------------------------------------------------------
// Engines.

interface Engine {
  readonly location: StoreLocation;
  readonly options?: OpenStateOptions;
  readonly durable: boolean;
  /** How many instances (connections, pools) share the store: 1 for memory, whose every open is a new store. */
  readonly instances: number;
  readonly numRuns: number;
}

const envNumber = (name: string): number | undefined => {
  const text = process.env[name];
  return text === undefined || text === '' ? undefined : Number(text);
};

let runs = 0;
/** Generous: a run takes seconds per engine, but the machine may be busy; a longer hunt (ONCEKIT_MODEL_RUNS) gets an hour. */
const TIMEOUT_MS = envNumber('ONCEKIT_MODEL_RUNS') === undefined ? 120_000 : 3_600_000;
/** Runs the model against one engine; each run gets tenants of its own on the engine's one location, opened by each instance. */
async function runModel(engine: Engine): Promise<void> {
  // One clock for the engine's whole property: each run starts a day after the last ended, and first prunes what
  // earlier runs settled, so pruneSettled's count is the run's own.
  const clock = manualClock();
  const seed = envNumber('ONCEKIT_MODEL_SEED');
  const path = process.env.ONCEKIT_MODEL_PATH;
  const replayPath = process.env.ONCEKIT_MODEL_REPLAY_PATH;
  await fc.assert(
    fc.asyncProperty(
      fc.commands(commandArbitraries, { maxCommands: 40, size: 'max', ...(replayPath ? { replayPath } : {}) }),
      async (commands) => {
        runs += 1;
        const model = new Model([`m${runs}-acme`, `m${runs}-globex`], engine.durable);
        const open = () => openState(engine.location, { ...engine.options, clock });
        const instances: State[] = [];
        let turn = 0;
        let restarts = 0;
        const instance = (index: number): State => {
          const state = instances[index % instances.length];
          if (state === undefined) throw new Error('no instance open');
          return state;
        };
        const real: Real = {
          clock,
          get store() {
            turn += 1;
            return instance(turn).outbox;
          },
          restart: async () => {
            restarts += 1;
            const index = restarts % instances.length;
            await instance(index).close();
            instances[index] = await open();
          },
        };
        try {
          for (let index = 0; index < engine.instances; index += 1) instances.push(await open());
          clock.advance(DAY_MS);
          await real.store.pruneSettled(0, PRUNE_ALL);
          await fc.asyncModelRun(() => ({ model, real }), commands);
        } finally {
          await Promise.all(instances.map((state) => state.close()));
        }
      },
    ),
    {
      numRuns: envNumber('ONCEKIT_MODEL_RUNS') ?? engine.numRuns,
      ...(seed === undefined ? {} : { seed }),
      ...(path === undefined ? {} : { path }),
    },
  );
}

describe('outbox model: memory', () => {
  it('agrees with the model on every random sequence', { timeout: TIMEOUT_MS }, async () => {
    await runModel({ location: { kind: 'memory' }, durable: false, instances: 1, numRuns: 200 });
  });
});

describe('outbox model: SQLite', () => {
  const dir = tempDir('oncekit-outbox-model-');
  afterAll(() => dir.remove());
  it('agrees with the model on every random sequence, across restarts', { timeout: TIMEOUT_MS }, async () => {
    await runModel({ location: { kind: 'sqlite', path: join(dir.path, 'oncekit.db') }, durable: true, instances: 2, numRuns: 60 });
  });
});

describe.skipIf(skipRedisTests)(`outbox model: Redis at ${redisEnv.url}`, () => {
  const redisKeyPrefix = uniqueRedisPrefix('outbox-model');
  afterAll(async () => {
    const client = await connectTestRedis();
    await deleteRedisKeys(client, redisKeyPrefix);
    await client.quit();
  });
  it('agrees with the model on every random sequence, across reconnects', { timeout: TIMEOUT_MS }, async () => {
    // The test Redis keeps nothing on disk; a restart here is the store's (a new connection), not the server's.
    await runModel({
      location: { kind: 'redis', url: redisEnv.url },
      options: { redisKeyPrefix, allowVolatile: true, logger: silentLogger },
      durable: true,
      instances: 2,
      numRuns: 40,
    });
  });
});

describe.skipIf(skipPostgresTests)(`outbox model: PostgreSQL at ${postgresEnv.url}`, () => {
  const schema = uniqueTestSchema('model');
  afterAll(() => dropTestSchema(schema));
  it('agrees with the model on every random sequence, across reopened pools', { timeout: TIMEOUT_MS }, async () => {
    await runModel({ location: testPostgresLocation({ schema }), durable: true, instances: 2, numRuns: 15 });
  });
});
