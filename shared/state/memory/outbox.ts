import { type Clock, systemClock } from '../../clock.js';
import type { UserEventInput } from '../../events/user-event.js';
import type { KeyDecision } from '../../keys/decide.js';
import { settledAtOf, summarizeActivity } from '../../outbox/activity.js';
import { attemptMayHaveLanded, isPossibleDuplicate, mayHaveLanded } from '../../outbox/ledger.js';
import {
  abandonedAttempt,
  canRevive,
  checkOutboxArgs,
  emptyCounts,
  newOutboxId,
  type OutboxStoreOptions,
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
  type EnqueueResult,
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
  type RecordUnmappableResult,
  type RequeueRequest,
  type Settlement,
  type TenantTarget,
  type UnmappableEvent,
  type UnmappableRaw,
} from '../../outbox/types.js';

interface MemoryRecord {
  readonly seq: number;
  readonly id: string;
  readonly tenant: string;
  readonly target: string;
  readonly source: string;
  sourceId: string;
  readonly dedupKey: string;
  /** Null for an unmappable dead letter, which has `unmappable` instead. */
  input: UserEventInput | null;
  inputText: string;
  unmappable: UnmappableRaw | null;
  keyDecision: KeyDecision | null;
  state: OutboxState;
  readonly enqueuedAt: number;
  updatedAt: number;
  dueAt: number | null;
  owner: string | null;
  leasedAt: number | null;
  leaseExpiresAt: number | null;
  firstAttemptAt: number | null;
  /** When the earliest attempt that may have landed was leased (LeasedEvent.landedSince). */
  landedSince: number | null;
  lastOutcome: string | null;
  deadReason: string | null;
  deadAt: number | null;
  readonly attempts: AttemptRecord[];
}

interface TenantQueue {
  /** By target and dedup key: the dedup rule is per target. */
  readonly byDedupKey: Map<string, MemoryRecord>;
  /** Only the records that can become leasable, so a lease never scans delivered history. */
  readonly live: Set<MemoryRecord>;
}

/** One process, no durability: for tests and `--store memory`. Single-threaded JS makes each method atomic. */
export class MemoryOutboxStore implements OutboxStore {
  readonly kind = 'memory' as const;
  readonly #clock: Clock;
  readonly #byId = new Map<string, MemoryRecord>();
  readonly #tenants = new Map<string, TenantQueue>();
  #seq = 0;

  constructor(options: OutboxStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
  }

  #queue(tenant: string): TenantQueue {
    let queue = this.#tenants.get(tenant);
    if (queue === undefined) {
      queue = { byDedupKey: new Map(), live: new Set() };
      this.#tenants.set(tenant, queue);
    }
    return queue;
  }

  async enqueue(events: readonly NewOutboxEvent[], options?: EnqueueOptions): Promise<EnqueueResult[]> {
    checkOutboxArgs.events(events);
    const lease = checkOutboxArgs.enqueueLease(options);
    const now = this.#clock.now();
    // A new or revived event starts pending, or leased to the caller when it asked.
    const start = (record: MemoryRecord, outcome: 'created' | 'revived'): EnqueueResult => {
      if (lease === undefined) return { id: record.id, outcome, state: 'pending', updatedAt: now, mayHaveLanded: mayHaveLanded(record) };
      Object.assign(record, {
        state: 'leased',
        owner: lease.owner,
        leasedAt: now,
        leaseExpiresAt: now + lease.leaseMs,
        dueAt: null,
        firstAttemptAt: now,
      });
      return { id: record.id, outcome, state: 'leased', updatedAt: now, mayHaveLanded: mayHaveLanded(record), leased: leasedView(record) };
    };
    return events.map((event) => {
      const queue = this.#queue(event.tenant);
      const inputText = storedInput(event.input);
      const existing = queue.byDedupKey.get(dedupName(event.target, event.dedupKey));
      if (existing !== undefined) {
        if (!canRevive(existing.state, existing.lastOutcome, existing.inputText, inputText)) {
          return {
            id: existing.id,
            outcome: 'existing',
            state: existing.state,
            updatedAt: existing.updatedAt,
            mayHaveLanded: mayHaveLanded(existing),
          };
        }
        Object.assign(existing, {
          input: JSON.parse(inputText) as UserEventInput,
          inputText,
          unmappable: null,
          keyDecision: event.keyDecision,
          sourceId: event.sourceId,
          state: 'pending',
          updatedAt: now,
          dueAt: now,
          firstAttemptAt: null,
          deadReason: null,
          deadAt: null,
        });
        queue.live.add(existing);
        return start(existing, 'revived');
      }
      const record: MemoryRecord = {
        seq: ++this.#seq,
        id: newOutboxId(now),
        tenant: event.tenant,
        target: event.target,
        source: event.source,
        sourceId: event.sourceId,
        dedupKey: event.dedupKey,
        // A copy: the caller may go on changing its object.
        input: JSON.parse(inputText) as UserEventInput,
        inputText,
        unmappable: null,
        keyDecision: event.keyDecision,
        state: 'pending',
        enqueuedAt: now,
        updatedAt: now,
        dueAt: now,
        owner: null,
        leasedAt: null,
        leaseExpiresAt: null,
        firstAttemptAt: null,
        landedSince: null,
        lastOutcome: null,
        deadReason: null,
        deadAt: null,
        attempts: [],
      };
      this.#byId.set(record.id, record);
      queue.byDedupKey.set(dedupName(record.target, record.dedupKey), record);
      queue.live.add(record);
      return start(record, 'created');
    });
  }

  async recordUnmappable(events: readonly UnmappableEvent[]): Promise<RecordUnmappableResult[]> {
    checkOutboxArgs.unmappable(events);
    const now = this.#clock.now();
    return events.map((event) => {
      const queue = this.#queue(event.tenant);
      const existing = queue.byDedupKey.get(dedupName(event.target, event.dedupKey));
      if (existing !== undefined) return { id: existing.id, outcome: 'existing', state: existing.state };
      const record: MemoryRecord = {
        seq: ++this.#seq,
        id: newOutboxId(now),
        tenant: event.tenant,
        target: event.target,
        source: event.source,
        sourceId: event.sourceId,
        dedupKey: event.dedupKey,
        input: null,
        inputText: UNMAPPABLE_STORED_INPUT,
        unmappable: { ...event.raw },
        keyDecision: null,
        state: 'dead',
        enqueuedAt: now,
        updatedAt: now,
        dueAt: null,
        owner: null,
        leasedAt: null,
        leaseExpiresAt: null,
        firstAttemptAt: null,
        landedSince: null,
        lastOutcome: UNMAPPABLE_OUTCOME,
        deadReason: event.reason,
        deadAt: now,
        attempts: [],
      };
      this.#byId.set(record.id, record);
      queue.byDedupKey.set(dedupName(record.target, record.dedupKey), record);
      return { id: record.id, outcome: 'created', state: 'dead' };
    });
  }

  async lease(request: LeaseRequest): Promise<LeasedEvent[]> {
    const { tenant, target, owner, limit, leaseMs } = checkOutboxArgs.lease(request);
    const now = this.#clock.now();
    const queue = this.#tenants.get(tenant);
    if (queue === undefined) return [];
    const due: MemoryRecord[] = [];
    for (const record of queue.live) {
      if (record.target !== target) continue;
      const at = record.state === 'pending' ? record.dueAt : record.leaseExpiresAt;
      if (at !== null && at <= now) due.push(record);
    }
    due.sort((a, b) => dueTime(a) - dueTime(b) || a.seq - b.seq);
    return due.slice(0, limit).map((record) => {
      if (record.state === 'leased') {
        record.attempts.push(abandonedAttempt(record.attempts.length + 1, record.leasedAt ?? now, now, record.owner ?? 'unknown'));
        record.lastOutcome = 'abandoned';
        record.landedSince ??= record.leasedAt;
      }
      record.state = 'leased';
      record.owner = owner;
      record.leasedAt = now;
      record.leaseExpiresAt = now + leaseMs;
      record.dueAt = null;
      record.firstAttemptAt ??= now;
      record.updatedAt = now;
      return leasedView(record);
    });
  }

  async renewLeases(owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    const now = this.#clock.now();
    return ids.filter((id) => {
      const record = this.#byId.get(id);
      if (record === undefined || record.state !== 'leased' || record.owner !== owner) return false;
      record.leaseExpiresAt = now + leaseMs;
      return true;
    });
  }

  async pruneSettled(olderThanMs: number, limit = 1000): Promise<number> {
    const cutoff = this.#clock.now() - olderThanMs;
    let pruned = 0;
    for (const record of this.#byId.values()) {
      if (pruned >= limit) break;
      if (record.state === 'pending' || record.state === 'leased' || record.updatedAt >= cutoff) continue;
      this.#byId.delete(record.id);
      this.#tenants.get(record.tenant)?.byDedupKey.delete(dedupName(record.target, record.dedupKey));
      pruned += 1;
    }
    return pruned;
  }

  async settle(settlements: readonly Settlement[]): Promise<boolean[]> {
    const now = this.#clock.now();
    return settlements.map((settlement) => {
      const record = this.#byId.get(settlement.id);
      if (record === undefined || record.state !== 'leased' || record.owner !== settlement.owner) return false;
      if (settlement.attempt !== null) {
        record.attempts.push({ ...settlement.attempt, number: record.attempts.length + 1, handledBy: settlement.owner });
        record.lastOutcome = settlement.attempt.outcome;
        if (attemptMayHaveLanded(settlement.attempt)) record.landedSince ??= record.leasedAt;
      }
      record.state = settlement.to;
      record.owner = null;
      record.leasedAt = null;
      record.leaseExpiresAt = null;
      record.updatedAt = now;
      record.dueAt = settlement.to === 'pending' ? settlement.dueAt : null;
      if (settlement.to === 'dead') {
        record.deadReason = settlement.reason;
        record.deadAt = now;
      }
      if (settlement.to !== 'pending') this.#queue(record.tenant).live.delete(record);
      return true;
    });
  }

  async requeueDead(request: RequeueRequest): Promise<string[]> {
    const { tenant, target, ids, forcePastWindow = false } = checkOutboxArgs.requeue(request);
    const now = this.#clock.now();
    const queue = this.#tenants.get(tenant);
    if (queue === undefined) return [];
    const candidates = ids === undefined ? [...queue.byDedupKey.values()] : ids.map((id) => this.#byId.get(id));
    const requeued: string[] = [];
    for (const record of candidates) {
      if (record === undefined || record.tenant !== tenant || record.state !== 'dead') continue;
      if (target !== undefined && record.target !== target) continue;
      if (record.unmappable !== null) continue; // an unmappable dead letter: nothing to send
      Object.assign(record, { state: 'pending', dueAt: now, firstAttemptAt: null, deadReason: null, deadAt: null, updatedAt: now });
      if (forcePastWindow) record.landedSince = null;
      queue.live.add(record);
      requeued.push(record.id);
    }
    return requeued;
  }

  async get(tenant: string, id: string): Promise<LedgerEntry | undefined> {
    const record = this.#byId.get(id);
    return record !== undefined && record.tenant === tenant ? ledgerView(record) : undefined;
  }

  async findByKey(tenant: string, key: string): Promise<LedgerEntry[]> {
    return this.#select(tenant, (record) => record.input?.idempotencyKey === key);
  }

  async findBySourceId(tenant: string, sourceId: string): Promise<LedgerEntry[]> {
    return this.#select(tenant, (record) => record.sourceId === sourceId);
  }

  async listDead(tenant: string, page?: { readonly limit?: number; readonly offset?: number }): Promise<LedgerEntry[]> {
    const { limit, offset } = checkOutboxArgs.page(page);
    const dead = [...(this.#tenants.get(tenant)?.byDedupKey.values() ?? [])].filter((record) => record.state === 'dead');
    dead.sort((a, b) => (a.deadAt ?? 0) - (b.deadAt ?? 0) || a.seq - b.seq);
    return dead.slice(offset, offset + limit).map(ledgerView);
  }

  async listTenantTargets(options: { readonly limit?: number } = {}): Promise<TenantTarget[]> {
    const { limit } = checkOutboxArgs.page(options);
    const pairs = new Map<string, TenantTarget>();
    for (const record of this.#byId.values())
      pairs.set(dedupName(record.tenant, record.target), { tenant: record.tenant, target: record.target });
    return [...pairs.values()].sort((a, b) => compareText(a.tenant, b.tenant) || compareText(a.target, b.target)).slice(0, limit);
  }

  async listEvents(tenant: string, query?: EventListQuery): Promise<EventPage> {
    const { limit, offset, ...filter } = checkOutboxArgs.listEvents(query);
    const found = [...(this.#tenants.get(tenant)?.byDedupKey.values() ?? [])].filter(
      (record) =>
        (filter.source === undefined || record.source === filter.source) &&
        (filter.state === undefined || record.state === filter.state) &&
        (filter.target === undefined || record.target === filter.target) &&
        (filter.key === undefined || record.input?.idempotencyKey === filter.key) &&
        (filter.sourceId === undefined || record.sourceId === filter.sourceId) &&
        (filter.since === undefined || record.enqueuedAt >= filter.since) &&
        (filter.until === undefined || record.enqueuedAt < filter.until),
    );
    found.sort((a, b) => b.enqueuedAt - a.enqueuedAt || b.seq - a.seq);
    return { entries: found.slice(offset, offset + limit).map(ledgerView), hasMore: found.length > offset + limit };
  }

  async activity(tenant: string, query: ActivityQuery): Promise<ActivitySeries> {
    const checked = checkOutboxArgs.activity(query);
    const rows: ActivityRow[] = [];
    let truncated = false;
    for (const record of this.#tenants.get(tenant)?.byDedupKey.values() ?? []) {
      if (checked.source !== undefined && record.source !== checked.source) continue;
      if (checked.target !== undefined && record.target !== checked.target) continue;
      const settledAt = settledAtOf(record.state, record.updatedAt, record.deadAt);
      if (record.enqueuedAt >= checked.until || (settledAt !== null && settledAt < checked.since)) continue;
      if (rows.length >= MAX_ACTIVITY_ROWS) {
        truncated = true;
        break;
      }
      rows.push({ state: record.state, enqueuedAt: record.enqueuedAt, settledAt });
    }
    return summarizeActivity(rows, checked, truncated);
  }

  async counts(tenant: string, filter: OutboxCountFilter = {}): Promise<OutboxCounts> {
    const counts = emptyCounts();
    for (const record of this.#tenants.get(tenant)?.byDedupKey.values() ?? []) {
      if (filter.source !== undefined && record.source !== filter.source) continue;
      if (filter.target !== undefined && record.target !== filter.target) continue;
      counts[record.state] += 1;
    }
    return counts;
  }

  async countPossibleDuplicates(tenant: string, filter: OutboxCountFilter = {}): Promise<number> {
    let count = 0;
    for (const record of this.#tenants.get(tenant)?.byDedupKey.values() ?? []) {
      if (filter.source !== undefined && record.source !== filter.source) continue;
      if (filter.target !== undefined && record.target !== filter.target) continue;
      if (isPossibleDuplicate({ key: record.input?.idempotencyKey ?? null, state: record.state, attempts: record.attempts })) count += 1;
    }
    return count;
  }

  async nextDueAt(tenant: string, target: string): Promise<number | null> {
    let next: number | null = null;
    for (const record of this.#tenants.get(tenant)?.live ?? []) {
      if (record.target !== target) continue;
      const at = dueTime(record);
      if (next === null || at < next) next = at;
    }
    return next;
  }

  async close(): Promise<void> {}

  #select(tenant: string, match: (record: MemoryRecord) => boolean): LedgerEntry[] {
    const found = [...(this.#tenants.get(tenant)?.byDedupKey.values() ?? [])].filter(match);
    return found.sort((a, b) => a.seq - b.seq).map(ledgerView);
  }
}

const dedupName = (target: string, dedupKey: string): string => `${target}\u0000${dedupKey}`;

/** By UTF-16 code units, as the other engines' byte order sorts ASCII names. */
const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const dueTime = (record: MemoryRecord): number =>
  (record.state === 'pending' ? record.dueAt : record.leaseExpiresAt) ?? Number.POSITIVE_INFINITY;

function leasedView(record: MemoryRecord): LeasedEvent {
  // Only mapped events are ever pending or leased.
  if (record.input === null) throw new Error(`outbox event ${record.id} has no payload to send`);
  return {
    id: record.id,
    tenant: record.tenant,
    target: record.target,
    source: record.source,
    sourceId: record.sourceId,
    input: structuredClone(record.input),
    firstAttemptAt: record.firstAttemptAt ?? record.leasedAt ?? 0,
    leasedAt: record.leasedAt ?? 0,
    leaseExpiresAt: record.leaseExpiresAt ?? 0,
    owner: record.owner ?? '',
    previousAttempts: record.attempts.length,
    mayHaveLanded: mayHaveLanded(record),
    landedSince: record.landedSince,
  };
}

function ledgerView(record: MemoryRecord): LedgerEntry {
  // Copies: a caller must not be able to change the store through what it was given.
  const payload =
    record.input === null || record.unmappable !== null
      ? { input: null, unmappable: record.unmappable ?? { text: '', bytes: 0, truncated: false } }
      : { input: record.input, unmappable: null };
  return structuredClone({
    ...payload,
    id: record.id,
    tenant: record.tenant,
    target: record.target,
    source: record.source,
    sourceId: record.sourceId,
    dedupKey: record.dedupKey,
    key: record.input?.idempotencyKey ?? null,
    keyDecision: record.keyDecision,
    state: record.state,
    enqueuedAt: record.enqueuedAt,
    updatedAt: record.updatedAt,
    dueAt: record.state === 'pending' ? record.dueAt : null,
    leaseExpiresAt: record.state === 'leased' ? record.leaseExpiresAt : null,
    firstAttemptAt: record.firstAttemptAt,
    landedSince: record.landedSince,
    deadReason: record.deadReason,
    deadAt: record.deadAt,
    attempts: record.attempts,
  });
}
