import type { UserEventInput } from '../events/user-event.js';
import type { KeyDecision } from '../keys/decide.js';
import type { EnqueueResult } from './types.js';

/** An event a route has checked, mapped and keyed: ready to be made durable. */
export interface ReadyEvent {
  /** The connector's source name, e.g. the platform it adapts. */
  readonly source: string;
  /** The source's own id, how a user finds the event in the ledger (a record, a webhook event id, …). */
  readonly sourceId: string;
  readonly input: UserEventInput;
  readonly decision: KeyDecision | null;
}

/** What a connector's inbound routes hand their events to. */
export interface Ingest {
  /**
   * Persists the events in the outbox (one atomic enqueue) and only then resolves: a route answers its sender after
   * this, so an acknowledged event is never lost.
   */
  accept(events: readonly ReadyEvent[]): Promise<EnqueueResult[]>;
}

/**
 * What makes two events one for the outbox: the idempotency key when there is one (the target would answer 409
 * anyway), else the source and its id. Events of one tenant with the same dedup key are enqueued once.
 */
export function dedupKeyOf(event: ReadyEvent): string {
  return event.input.idempotencyKey ? `key:${event.input.idempotencyKey}` : `${event.source}:${event.sourceId}`;
}
