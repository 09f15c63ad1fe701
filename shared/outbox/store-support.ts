import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../canonical-json.js';
import type { Clock } from '../clock.js';
import { OncekitError } from '../errors.js';
import type { UserEventInput } from '../events/user-event.js';
import { parseInput } from '../validation.js';
import {
  type ActivityQuery,
  type AttemptRecord,
  type EnqueueOptions,
  type EventListQuery,
  type LeasedEvent,
  type LeaseRequest,
  MAX_ACTIVITY_BUCKETS,
  MAX_EVENT_PAGE,
  type NewOutboxEvent,
  type OutboxCounts,
  type OutboxState,
  outboxStates,
  type RequeueRequest,
  type UnmappableEvent,
} from './types.js';

export type { Clock } from '../clock.js';

export interface OutboxStoreOptions {
  /** Default: the system clock. Due times, leases and ledger times read it. */
  readonly clock?: Clock;
}

/** The outbox store failed (database error, Redis unreachable); the event's fate is unknown to the caller. */
export class OutboxStoreError extends OncekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('outbox_store_failed', message, options);
  }
}

/** Wraps a backend failure; typed oncekit errors pass through unchanged. */
export function outboxStoreFailure(kind: string, operation: string, cause: unknown): OncekitError {
  if (cause instanceof OncekitError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new OutboxStoreError(`${kind} outbox store: ${operation} failed: ${reason}`, { cause });
}

// Random once per process: ids from two processes in the same millisecond still differ, without a random draw per id.
const processTag = randomBytes(4).toString('hex');
const ID_SEQUENCE_DIGITS = 4;

/**
 * A source of ids that sort by creation time (then by a per-process sequence), so listings and FIFO order read
 * naturally. They never go backwards: when the clock steps back, the last time is kept and the sequence goes on, so no
 * id repeats; when the sequence is full, the next millisecond is borrowed rather than the id widened.
 */
export function outboxIdSource(sequenceLimit: number = 36 ** ID_SEQUENCE_DIGITS): (now?: number) => string {
  let lastTime = 0;
  let sequence = 0;
  return (now = Date.now()) => {
    if (now > lastTime) {
      lastTime = now;
      sequence = 0;
    } else if (++sequence >= sequenceLimit) {
      lastTime += 1;
      sequence = 0;
    }
    return `ob_${lastTime.toString(36).padStart(9, '0')}${sequence.toString(36).padStart(ID_SEQUENCE_DIGITS, '0')}${processTag}`;
  };
}

/** The process's id source. */
export const newOutboxId = outboxIdSource();

/** A fresh worker token: unique per worker instance, readable in the ledger's logs. */
export function newWorkerToken(label = 'worker'): string {
  return `${label}-${process.pid}-${randomBytes(6).toString('hex')}`;
}

export const emptyCounts = (): Record<OutboxState, number> => ({ pending: 0, leased: 0, delivered: 0, duplicate: 0, dead: 0 });

export function countsFrom(rows: Iterable<{ readonly state: string; readonly count: number }>): OutboxCounts {
  const counts = emptyCounts();
  for (const row of rows) if (row.state in counts) counts[row.state as OutboxState] += row.count;
  return counts;
}

/** The stored form of a payload; also what "the payload changed" compares. */
export const storedInput = (input: UserEventInput): string => canonicalJson(input);

/** The last outcome stored for an unmappable dead letter (it has no attempts): how every engine tells one apart. */
export const UNMAPPABLE_OUTCOME = 'unmappable';

/** The stored input of an unmappable dead letter (the column is never null): JSON null. */
export const UNMAPPABLE_STORED_INPUT = 'null';

/**
 * The revive rule (see EnqueueOutcome): only a dead letter the target REJECTED, or one that could not be mapped, may
 * take a new payload, because neither was recorded by the target. A dead letter from the horizon may have landed, so it
 * is left alone. The Redis store's Lua script mirrors this; the contract suite holds all stores to it.
 */
export function canRevive(state: OutboxState, lastOutcome: string | null, stored: string, incoming: string): boolean {
  return state === 'dead' && (lastOutcome === 'rejected' || lastOutcome === UNMAPPABLE_OUTCOME) && stored !== incoming;
}

const nonEmpty = (what: string) => z.string({ error: `${what} must be a string` }).min(1, `${what} must not be empty`);

const leaseRequestSchema = z.object({
  tenant: nonEmpty('tenant'),
  target: nonEmpty('target'),
  owner: nonEmpty('owner'),
  limit: z.number().int().min(1, 'limit must be at least 1').max(10_000, 'limit must be at most 10000'),
  leaseMs: z.number().int().min(1, 'leaseMs must be at least 1 ms'),
});

const enqueueLeaseSchema = z.object({ owner: nonEmpty('owner'), leaseMs: z.number().int().min(1, 'leaseMs must be at least 1 ms') });

const requeueSchema = z.object({
  tenant: nonEmpty('tenant'),
  target: nonEmpty('target').optional(),
  ids: z.array(nonEmpty('id')).optional(),
  forcePastWindow: z.boolean({ error: 'forcePastWindow must be true or false' }).optional(),
});

const optionalText = (field: string) => nonEmpty(field).optional();
const time = (field: string) => z.number().int(`${field} must be a whole number of ms`).min(0, `${field} must be ≥ 0`);

const eventListSchema = z.object({
  source: optionalText('source'),
  state: z.enum(outboxStates).optional(),
  target: optionalText('target'),
  key: optionalText('key'),
  sourceId: optionalText('sourceId'),
  since: time('since').optional(),
  until: time('until').optional(),
  limit: z.number().int().min(1, 'limit must be at least 1').max(MAX_EVENT_PAGE, `limit must be at most ${MAX_EVENT_PAGE}`).default(50),
  offset: z.number().int().min(0, 'offset must be ≥ 0').max(1_000_000, 'offset must be at most 1000000').default(0),
});

const activitySchema = z
  .object({
    since: time('since'),
    until: time('until'),
    bucketMs: z.number().int().min(1000, 'bucketMs must be at least 1000'),
    source: optionalText('source'),
    target: optionalText('target'),
  })
  .refine((query) => query.until > query.since, { message: 'until must be after since', path: ['until'] })
  .refine((query) => (query.until - query.since) / query.bucketMs <= MAX_ACTIVITY_BUCKETS, {
    message: `the window holds at most ${MAX_ACTIVITY_BUCKETS} buckets`,
    path: ['bucketMs'],
  });

/** A checked EventListQuery, with its page filled in. */
export type CheckedEventListQuery = z.output<typeof eventListSchema>;

/** Argument checks every store applies, so a bad call fails the same way everywhere. */
export const checkOutboxArgs = {
  lease: (request: LeaseRequest): LeaseRequest => parseInput(leaseRequestSchema, request, 'invalid lease request'),
  requeue: (request: RequeueRequest): RequeueRequest => {
    const parsed = parseInput(requeueSchema, request, 'invalid requeue request');
    return {
      tenant: parsed.tenant,
      ...(parsed.target === undefined ? {} : { target: parsed.target }),
      ...(parsed.ids === undefined ? {} : { ids: parsed.ids }),
      ...(parsed.forcePastWindow === undefined ? {} : { forcePastWindow: parsed.forcePastWindow }),
    };
  },
  tenant: (tenant: string): string => parseInput(nonEmpty('tenant'), tenant, 'invalid tenant'),
  target: (target: string): string => parseInput(nonEmpty('target'), target, 'invalid target'),
  enqueueLease: (options: EnqueueOptions | undefined): EnqueueOptions['lease'] =>
    options?.lease === undefined ? undefined : parseInput(enqueueLeaseSchema, options.lease, 'invalid enqueue lease'),
  /** Plain checks, not zod: this runs once per event on the import's hot path, and the payload was validated upstream. */
  events(events: readonly NewOutboxEvent[]): void {
    for (const [index, event] of events.entries()) {
      for (const field of ['tenant', 'target', 'source', 'sourceId', 'dedupKey'] as const) {
        const value = event[field];
        if (typeof value !== 'string' || value.length === 0) {
          throw new OutboxStoreError(`invalid outbox event at position ${index}: ${field} must be a non-empty string`);
        }
      }
      if (event.input === null || typeof event.input !== 'object') {
        throw new OutboxStoreError(`invalid outbox event at position ${index}: input must be a UserEventInput`);
      }
    }
  },
  unmappable(events: readonly UnmappableEvent[]): void {
    for (const [index, event] of events.entries()) {
      for (const field of ['tenant', 'target', 'source', 'sourceId', 'dedupKey', 'reason'] as const) {
        const value = event[field];
        if (typeof value !== 'string' || value.length === 0) {
          throw new OutboxStoreError(`invalid unmappable event at position ${index}: ${field} must be a non-empty string`);
        }
      }
      const raw = event.raw as UnmappableEvent['raw'] | null;
      if (raw === null || typeof raw !== 'object' || typeof raw.text !== 'string' || !Number.isInteger(raw.bytes)) {
        throw new OutboxStoreError(`invalid unmappable event at position ${index}: raw must be a capped payload (capRawPayload)`);
      }
    }
  },
  listEvents: (query: EventListQuery = {}): CheckedEventListQuery => parseInput(eventListSchema, query, 'invalid event list query'),
  activity: (query: ActivityQuery): ActivityQuery => {
    const { source, target, ...window } = parseInput(activitySchema, query, 'invalid activity query');
    return { ...window, ...(source === undefined ? {} : { source }), ...(target === undefined ? {} : { target }) };
  },
  page(page: { readonly limit?: number; readonly offset?: number } = {}): { limit: number; offset: number } {
    const limit = page.limit ?? 100;
    const offset = page.offset ?? 0;
    if (!Number.isInteger(limit) || limit < 1) throw new OutboxStoreError('limit must be a whole number ≥ 1');
    if (!Number.isInteger(offset) || offset < 0) throw new OutboxStoreError('offset must be a whole number ≥ 0');
    return { limit, offset };
  },
};

/** The attempt recorded for a lease that ran out before its holder settled the event. */
export function abandonedAttempt(number: number, startedAt: number, now: number, owner: string): AttemptRecord {
  return {
    number,
    startedAt,
    finishedAt: now,
    outcome: 'abandoned',
    status: null,
    message: `no result was recorded: the lease of ${owner} ran out (the worker stopped or stalled); the event may or may not have reached the target`,
    apiErrorCode: null,
    rsCode: null,
    requests: 0,
    uncertainRequests: 0,
    eventIds: [],
    handledBy: owner,
  };
}

/** The worker's view of an event enqueued already leased to it (its first attempt starts now). */
export function leasedOnEnqueue(
  id: string,
  event: NewOutboxEvent,
  lease: { readonly owner: string; readonly leaseMs: number },
  now: number,
  previousAttempts: number,
  mayHaveLanded: boolean,
  landedSince: number | null,
): LeasedEvent {
  return {
    id,
    tenant: event.tenant,
    target: event.target,
    source: event.source,
    sourceId: event.sourceId,
    input: event.input,
    firstAttemptAt: now,
    leasedAt: now,
    leaseExpiresAt: now + lease.leaseMs,
    owner: lease.owner,
    previousAttempts,
    mayHaveLanded,
    landedSince,
  };
}
