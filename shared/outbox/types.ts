import type { UserEventInput } from '../events/user-event.js';
import type { KeyDecision } from '../keys/decide.js';
import type { DeliveryOutcome } from '../target/outcome.js';

/**
 * Where an event is in its life:
 * - pending: persisted and waiting to be sent (first time, or after a failed attempt, at `dueAt`);
 * - leased: a worker holds it until `leaseExpiresAt`; if the worker dies, it becomes due again then;
 * - delivered: the target accepted it; duplicate: the target answered 409, so an earlier attempt had landed;
 * - dead: a dead letter, with its reason (rejected by the target, the retry horizon ran out, or the event could not be
 *   mapped at all: an unmappable dead letter, see UnmappableEvent).
 */
export type OutboxState = 'pending' | 'leased' | 'delivered' | 'duplicate' | 'dead';
export const outboxStates = ['pending', 'leased', 'delivered', 'duplicate', 'dead'] as const satisfies readonly OutboxState[];

/** An event handed to the outbox. It is durable once `enqueue` resolves, and only then may its sender be acknowledged. */
export interface NewOutboxEvent {
  readonly tenant: string;
  /**
   * Which target the event is for (see `targetId`): only a worker delivering to that target leases it, and the dedup
   * rule is per target and tenant, so two targets that share a store and a tenant name never take each other's events.
   */
  readonly target: string;
  /** Where the event came from (`import`, or the connector's source name); with `sourceId` it is how a user finds it. */
  readonly source: string;
  /** The source's own id for the event, e.g. `events.csv:17` (file and record number) or a webhook id. */
  readonly sourceId: string;
  /**
   * What makes two events the same for the outbox; unique per target and tenant. Enqueueing an event whose dedupKey
   * the target's tenant already has adds nothing and returns the existing record, so a re-run or a redelivered webhook is not sent twice.
   */
  readonly dedupKey: string;
  /** Exactly what is sent; its `idempotencyKey` (if any) is the key the target dedups on. */
  readonly input: UserEventInput;
  /** How the key was decided (kept, hashed, dropped and why), for the ledger. */
  readonly keyDecision: KeyDecision | null;
}

/** The raw payload of an event that could not be mapped, as the ledger keeps it (see capRawPayload). */
export interface UnmappableRaw {
  /** The payload as received (the event only: never request headers), cut to the size cap on a character boundary. */
  readonly text: string;
  /** The whole payload's size in UTF-8 bytes. */
  readonly bytes: number;
  /** Whether `text` is only the start of the payload. */
  readonly truncated: boolean;
}

/**
 * An event a connector received but could not map to a user event (any error, not only bad input). It is recorded as
 * a dead letter straight away, so its sender (or a subscription's checkpoint) can move past it; it is never sent.
 */
export interface UnmappableEvent {
  readonly tenant: string;
  readonly target: string;
  readonly source: string;
  readonly sourceId: string;
  /**
   * Its stable identity (see unmappableDedupKey): a redelivery records nothing new, and a mapped event with the same
   * dedupKey (the source resent it after the mapping was fixed) takes the record over (see EnqueueOutcome `revived`).
   */
  readonly dedupKey: string;
  /** Why it could not be mapped. */
  readonly reason: string;
  readonly raw: UnmappableRaw;
}

/** created: a new dead letter; existing: the target's tenant already had the dedupKey (any event), nothing changed. */
export interface RecordUnmappableResult {
  readonly id: string;
  readonly outcome: 'created' | 'existing';
  readonly state: OutboxState;
}

/**
 * - created: a new record;
 * - existing: the tenant already had the dedupKey; nothing changed;
 * - revived: the tenant had it as a dead letter the target had rejected, or as an unmappable dead letter (never sent
 *   either), and the payload now differs (a corrected row): the record takes the new payload and is pending again, with
 *   its earlier attempts kept in the ledger.
 */
export type EnqueueOutcome = 'created' | 'existing' | 'revived';

export interface EnqueueResult {
  readonly id: string;
  readonly outcome: EnqueueOutcome;
  /** The record's state after the call. */
  readonly state: OutboxState;
  /** When the record last changed: tells an outcome settled earlier from one settled while the caller was running. */
  readonly updatedAt: number;
  /** Whether an attempt of the record may have reached the target without an answer saying so (see LeasedEvent). */
  readonly mayHaveLanded: boolean;
  /** Set when the call asked for a lease and the event was created or revived: the caller's worker now holds it. */
  readonly leased?: LeasedEvent;
}

export interface EnqueueOptions {
  /**
   * Persist created (and revived) events already leased to this owner, so the producer's own worker can send them at
   * once without reading them back. If the producer dies, the lease runs out and any worker picks them up.
   */
  readonly lease?: { readonly owner: string; readonly leaseMs: number };
}

export interface LeaseRequest {
  readonly tenant: string;
  /** Only events for this target are leased (and legacy events stored before targets were recorded, target ''). */
  readonly target: string;
  /** The worker's token; only its holder may settle a leased event. */
  readonly owner: string;
  /** Most events to lease. */
  readonly limit: number;
  /** How long the worker may hold them; past it they are due again (the worker is presumed dead). */
  readonly leaseMs: number;
}

/** An event a worker now holds: everything needed to send it and to decide what happens next. */
export interface LeasedEvent {
  readonly id: string;
  readonly tenant: string;
  readonly target: string;
  readonly source: string;
  readonly sourceId: string;
  readonly input: UserEventInput;
  /** When the first attempt started (this lease, for a first attempt); the retry horizon counts from here. */
  readonly firstAttemptAt: number;
  readonly leasedAt: number;
  readonly leaseExpiresAt: number;
  readonly owner: string;
  /** Attempts already recorded (a lease that expired without a result counts as an abandoned attempt). */
  readonly previousAttempts: number;
  /**
   * Whether one of those attempts may have reached the target without an answer saying so (`attemptMayHaveLanded`):
   * sent again without a key, the event may then be recorded twice.
   */
  readonly mayHaveLanded: boolean;
  /**
   * When the earliest attempt that may have reached the target was leased, on the store's clock; null when none may
   * have. The target's key window for the event opened no earlier: once it has closed, a resend could record the event
   * twice (see keyWindowClosed). Unlike firstAttemptAt, a requeue keeps it.
   */
  readonly landedSince: number | null;
}

/** One delivery attempt, as the ledger keeps it. */
export interface AttemptRecord {
  /** 1, 2, … in the order the attempts started. */
  readonly number: number;
  readonly startedAt: number;
  readonly finishedAt: number;
  /** `abandoned`: the worker's lease expired before it recorded a result (it crashed or stalled). */
  readonly outcome: DeliveryOutcome | 'abandoned';
  /** The target's HTTP status (or GraphQL ApiError statusCode); null when no answer arrived. */
  readonly status: number | null;
  /** The target's message, or a transport reason; never the request, so never the API key. */
  readonly message: string | null;
  readonly apiErrorCode: string | null;
  readonly rsCode: string | null;
  /** HTTP requests the target client made in this attempt, its own quick retries included. */
  readonly requests: number;
  /**
   * Of those, how many ended without knowing whether the target recorded the event (no answer, a 5xx, a 2xx that
   * cannot be read): each may have landed, even when a later request of the attempt succeeded.
   */
  readonly uncertainRequests: number;
  /** Ids of the events the target recorded, when it said. */
  readonly eventIds: readonly string[];
  /**
   * The worker (its owner token, e.g. `relay-…`) that made the attempt, as the store recorded it from the settlement;
   * absent for attempts recorded before the ledger kept it. Callers settling an attempt need not set it.
   */
  readonly handledBy?: string;
}

interface SettlementBase {
  readonly id: string;
  readonly owner: string;
  /** The attempt to add to the ledger; null when the event was settled without being sent (horizon already passed). */
  readonly attempt: AttemptRecord | null;
}

/** What a worker decided for an event it holds. */
export type Settlement = SettlementBase &
  (
    | { readonly to: 'delivered' }
    | { readonly to: 'duplicate' }
    | { readonly to: 'dead'; readonly reason: string }
    /**
     * Back to pending, to be tried again at `dueAt` (backoff), on the caller's clock: a store whose clock is another
     * machine's carries the delay from now over to its own clock.
     */
    | { readonly to: 'pending'; readonly dueAt: number }
  );

/** The ledger's view of one event: the client-side table of every request and its key (Salesbricks' advice). */
export type LedgerEntry = LedgerEntryBase & (MappedLedgerEntry | UnmappableLedgerEntry);

/** An event that was mapped: what is (or was) sent. */
export interface MappedLedgerEntry {
  readonly input: UserEventInput;
  readonly unmappable: null;
}

/** An unmappable dead letter: nothing to send, only what was received (see UnmappableEvent). */
export interface UnmappableLedgerEntry {
  readonly input: null;
  readonly unmappable: UnmappableRaw;
}

export interface LedgerEntryBase {
  readonly id: string;
  readonly tenant: string;
  /** The target the event is for; '' for an event stored before targets were recorded. */
  readonly target: string;
  readonly source: string;
  readonly sourceId: string;
  readonly dedupKey: string;
  /** The idempotency key sent, or null when the event goes without one (see keyDecision for why). */
  readonly key: string | null;
  readonly keyDecision: KeyDecision | null;
  readonly state: OutboxState;
  readonly enqueuedAt: number;
  readonly updatedAt: number;
  /** Pending: when it is due. Null otherwise. */
  readonly dueAt: number | null;
  /** Leased: when the lease runs out. Null otherwise. */
  readonly leaseExpiresAt: number | null;
  readonly firstAttemptAt: number | null;
  /** As LeasedEvent.landedSince: when an attempt that may have landed was leased, on the store's clock; null if none. */
  readonly landedSince: number | null;
  readonly deadReason: string | null;
  readonly deadAt: number | null;
  readonly attempts: readonly AttemptRecord[];
}

export type OutboxCounts = Readonly<Record<OutboxState, number>>;

/** A tenant and a target the store holds events for (see OutboxStore.listTenantTargets). */
export interface TenantTarget {
  readonly tenant: string;
  /** '' for events stored before targets were recorded. */
  readonly target: string;
}

export interface OutboxCountFilter {
  readonly source?: string;
  readonly target?: string;
}

export interface RequeueRequest {
  readonly tenant: string;
  /** Only dead letters for this target; every target's when absent. */
  readonly target?: string;
  /** These dead letters; all of the tenant's when absent. Ids that are not dead letters are left alone. */
  readonly ids?: readonly string[];
  /**
   * The operator resends these although an attempt may have landed longer ago than the target's key window (the
   * target may record them twice): their landedSince is cleared, so workers send them. Default false: it is kept, and a
   * worker dead-letters an event whose window closes before it is sent.
   */
  readonly forcePastWindow?: boolean;
}

/**
 * The durable queue of events on their way to the target, and the ledger of what happened to each.
 * Every transition is atomic (one SQLite or PostgreSQL transaction, one Redis Lua script): two workers never hold one event,
 * and a settle by a worker that lost its lease changes nothing.
 */
export interface OutboxStore {
  readonly kind: 'memory' | 'sqlite' | 'redis' | 'postgres';
  /** Persists the events (all of them, atomically, before resolving); one result per event, in order. */
  enqueue(events: readonly NewOutboxEvent[], options?: EnqueueOptions): Promise<EnqueueResult[]>;
  /**
   * Leases up to `limit` due events of the tenant, oldest due first: pending ones whose `dueAt` has come, and leased
   * ones whose lease expired (their holder is presumed dead; an `abandoned` attempt is recorded for them).
   */
  lease(request: LeaseRequest): Promise<LeasedEvent[]>;
  /**
   * Extends, to `leaseMs` from now on the store's clock, the leases `owner` still holds on these events; returns the ids
   * it extended (an event another worker took over, or that was settled, is left alone). A worker renews while a batch
   * is in flight, so a short lease is enough and a dead worker's events come back soon.
   */
  renewLeases(owner: string, ids: readonly string[], leaseMs: number): Promise<string[]>;
  /** Applies each settlement if its owner still holds the event; one boolean per settlement (false: nothing changed). */
  settle(settlements: readonly Settlement[]): Promise<boolean[]>;
  /**
   * Records unmappable events as dead letters (all of them, atomically, before resolving); one result per event, in
   * order. A dedupKey the target's tenant already has (a redelivery, or an event that was mapped) adds nothing.
   */
  recordUnmappable(events: readonly UnmappableEvent[]): Promise<RecordUnmappableResult[]>;
  /**
   * Makes dead letters pending again, due now, with a fresh retry horizon; returns the ids requeued. Their landedSince
   * stays (unless forcePastWindow): the key window is the target's, and a requeue does not reopen it. Unmappable dead
   * letters are never requeued: there is nothing to send.
   */
  requeueDead(request: RequeueRequest): Promise<string[]>;
  get(tenant: string, id: string): Promise<LedgerEntry | undefined>;
  /** Every event of the tenant sent (or to be sent) with this idempotency key, oldest first. */
  findByKey(tenant: string, key: string): Promise<LedgerEntry[]>;
  /** Every event of the tenant with this source id, oldest first. */
  findBySourceId(tenant: string, sourceId: string): Promise<LedgerEntry[]>;
  /** Dead letters of the tenant, oldest death first. */
  listDead(tenant: string, page?: { readonly limit?: number; readonly offset?: number }): Promise<LedgerEntry[]>;
  /**
   * The tenants and targets the store holds events for, sorted by tenant then target, at most `limit` (default 100) of
   * them: how a command finds its tenant and target when none is given. A pair whose events were all pruned is gone.
   */
  listTenantTargets(options?: { readonly limit?: number }): Promise<TenantTarget[]>;
  /** A filtered page of the tenant's events, newest first (see EventListQuery); bad filters throw OutboxStoreError. */
  listEvents(tenant: string, query?: EventListQuery): Promise<EventPage>;
  /** Received, delivered, duplicate and dead per bucket, latency and backlog, over a window (see summarizeActivity). */
  activity(tenant: string, query: ActivityQuery): Promise<ActivitySeries>;
  /** Events per state, for metrics and for knowing when a run is drained; narrowed to one source and/or target. */
  counts(tenant: string, filter?: OutboxCountFilter): Promise<OutboxCounts>;
  /**
   * Possible duplicates of the tenant (narrowed like `counts`): delivered events sent without an idempotency key after
   * an attempt or request that may have landed, so the target may have recorded them twice. Read from the store, so
   * every instance reports the same number across restarts; pruned events leave it.
   */
  countPossibleDuplicates(tenant: string, filter?: OutboxCountFilter): Promise<number>;
  /**
   * The earliest time something the target's worker may lease becomes due (a due time or a lease expiry), on the
   * caller's clock (shifted by how far the store's clock differs); null: never.
   */
  nextDueAt(tenant: string, target: string): Promise<number | null>;
  /**
   * Optional: calls `listener` with the tenant when any instance enqueues (or requeues) events that are due now, so an
   * idle worker wakes without waiting for its next poll; returns the unsubscribe. PostgreSQL offers it (LISTEN/NOTIFY);
   * stores without it leave it undefined and workers just poll.
   */
  onEnqueued?(listener: (tenant: string) => void): () => void;
  /**
   * Deletes, with their ledger attempts, up to `limit` settled events (delivered, duplicate, dead) of every tenant whose
   * last change is more than `olderThanMs` ago on the store's clock; returns how many. Pending and leased events stay.
   */
  pruneSettled(olderThanMs: number, limit?: number): Promise<number>;
  /** Closes what the store opened (a database or a client it was given stays open). */
  close(): Promise<void>;
}

/** The most events one page of `listEvents` holds. */
export const MAX_EVENT_PAGE = 200;

/** A filtered page of the ledger, newest first (by when the event was enqueued). Every filter is an exact match. */
export interface EventListQuery {
  readonly source?: string;
  readonly state?: OutboxState;
  readonly target?: string;
  /** The idempotency key sent. */
  readonly key?: string;
  readonly sourceId?: string;
  /** Enqueued at or after this time (ms since the epoch). */
  readonly since?: number;
  /** Enqueued before this time. */
  readonly until?: number;
  /** 1 to MAX_EVENT_PAGE; default 50. */
  readonly limit?: number;
  readonly offset?: number;
}

/** A listing's filters as checked, each absent or given (EventListQuery without its paging). */
export type EventFilter = {
  readonly [K in Exclude<keyof EventListQuery, 'limit' | 'offset'>]?: EventListQuery[K] | undefined;
};

export interface EventPage {
  readonly entries: readonly LedgerEntry[];
  /** Whether a next page (offset + limit) has events. */
  readonly hasMore: boolean;
  /**
   * Set when the store stopped searching before the page was full: it reads at most a fixed number of events per call
   * (Redis applies the filters after reading; the SQL stores never set this). Events enqueued before `resumeUntil` were
   * not searched; list again with `until: resumeUntil` and offset 0 to go on (events of that one millisecond may repeat).
   */
  readonly searchStopped?: SearchStopped;
}

export interface SearchStopped {
  /** How many events this call read. */
  readonly searched: number;
  /** Enqueued at or after this time: searched. List with `until` set to it for the rest. */
  readonly resumeUntil: number;
}

/** What the activity charts need of one event: read from what the ledger keeps anyway. */
export interface ActivityRow {
  readonly state: OutboxState;
  readonly enqueuedAt: number;
  /** When it was delivered, found a duplicate or died; null while pending or leased. */
  readonly settledAt: number | null;
}

/** The window of `activity`: events enqueued, settled, or still unsettled within [since, until). */
export interface ActivityQuery {
  readonly since: number;
  readonly until: number;
  /** Bucket width in ms, ≥ 1000; (until - since) / bucketMs buckets at most MAX_ACTIVITY_BUCKETS. */
  readonly bucketMs: number;
  readonly source?: string;
  readonly target?: string;
}

export const MAX_ACTIVITY_BUCKETS = 1440;
/** The most events one `activity` call reads; past it, the series say `truncated`. */
export const MAX_ACTIVITY_ROWS = 200_000;

/** Per-bucket series, each as long as `starts`. */
export interface ActivitySeries {
  readonly bucketMs: number;
  /** Each bucket's start (ms). */
  readonly starts: readonly number[];
  readonly received: readonly number[];
  readonly delivered: readonly number[];
  readonly duplicate: readonly number[];
  readonly dead: readonly number[];
  /** Time from enqueue to delivery (or duplicate) of the events settled in the bucket; null when none were. */
  readonly latencyP50: readonly (number | null)[];
  readonly latencyP99: readonly (number | null)[];
  /** Events enqueued and not yet settled at the bucket's end. */
  readonly backlog: readonly number[];
  /** Whether more than MAX_ACTIVITY_ROWS events fell in the window, so the series count only some. */
  readonly truncated: boolean;
}
