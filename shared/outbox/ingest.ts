import type { UserEventInput } from '../events/user-event.js';
import type { KeyDecision } from '../keys/decide.js';
import type { EnqueueResult, NewOutboxEvent, RecordUnmappableResult, UnmappableEvent } from './types.js';
import { capRawPayload, unmappableDedupKey } from './unmappable.js';

/** An event a route has checked, mapped and keyed: ready to be made durable. */
export interface ReadyEvent {
  /** The connector's source name, e.g. the platform it adapts. */
  readonly source: string;
  /** The source's own id, how a user finds the event in the ledger (a record, a webhook event id, …). */
  readonly sourceId: string;
  readonly input: UserEventInput;
  readonly decision: KeyDecision | null;
}

/** An event a route received but could not map (any error): it becomes a dead letter, never a retry loop. */
export interface UnmappableIntake {
  /** The connector's source name. */
  readonly source: string;
  /** How a user finds it in the ledger: the source's own id when it has one, else what identifies it (a position). */
  readonly sourceId: string;
  /**
   * The dedupKey the event would have had, when the source gives the event an id of its own (`${source}:${id}`, see
   * dedupKeyOf); null: a digest of `raw` (see unmappableDedupKey). Either way a redelivery records nothing new.
   */
  readonly dedupKey: string | null;
  /** Why it could not be mapped (see unmappableReason). */
  readonly reason: string;
  /** The event as received (never request headers): a string is kept as it is, anything else as JSON; size-capped. */
  readonly raw: unknown;
}

/** What a connector's inbound routes hand their events to. */
export interface Ingest {
  /**
   * Persists the events in the outbox (one atomic enqueue) and only then resolves: a route answers its sender after
   * this, so an acknowledged event is never lost.
   */
  accept(events: readonly ReadyEvent[]): Promise<EnqueueResult[]>;
  /**
   * Records events that could not be mapped as dead letters, durably, and only then resolves: a route may then
   * acknowledge them (or a subscription move its checkpoint past them). Rejects when the store fails: that is transient.
   */
  deadLetter(events: readonly UnmappableIntake[]): Promise<RecordUnmappableResult[]>;
}

/**
 * What makes two events one for the outbox: the idempotency key when there is one (the target would answer 409
 * anyway), else the source and its id. Events of one tenant with the same dedup key are enqueued once.
 */
export function dedupKeyOf(event: ReadyEvent): string {
  return event.input.idempotencyKey ? `key:${event.input.idempotencyKey}` : `${event.source}:${event.sourceId}`;
}

/** The outbox record of a ready event, bound to the tenant and target it is delivered to. */
export function outboxEventOf(event: ReadyEvent, tenant: string, target: string): NewOutboxEvent {
  return {
    tenant,
    target,
    source: event.source,
    sourceId: event.sourceId,
    dedupKey: dedupKeyOf(event),
    input: event.input,
    keyDecision: event.decision,
  };
}

/** The dead letter of an event that could not be mapped: its identity settled, its raw payload capped. */
export function unmappableEventOf(event: UnmappableIntake, tenant: string, target: string): UnmappableEvent {
  return {
    tenant,
    target,
    source: event.source,
    sourceId: event.sourceId,
    dedupKey: unmappableDedupKey(event.dedupKey, event.raw),
    reason: event.reason,
    raw: capRawPayload(event.raw),
  };
}
