import type { UserEventInput } from '../../shared/events/user-event.js';
import type { KeyDecision } from '../../shared/keys/decide.js';
import type { Logger } from '../../shared/log.js';
import type { EnqueueResult, OutboxStore } from '../../shared/outbox/types.js';
import type { RelayMetrics } from './metrics.js';
import type { RecentEvents } from './recent-events.js';

/** An event a route has checked, mapped and keyed: ready to be made durable. */
export interface ReadyEvent {
  /** `salesforce`, `salesforce-event`, `keygen`, `segment`. */
  readonly source: string;
  /** The source's own id, how a user finds the event in the ledger (a Salesforce record, a webhook event id, …). */
  readonly sourceId: string;
  readonly input: UserEventInput;
  readonly decision: KeyDecision | null;
}

export interface Ingest {
  /**
   * Persists the events in the outbox (one atomic enqueue) and only then resolves: a route answers its sender after
   * this, so an acknowledged event is never lost. Wakes the delivery worker.
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

export function createIngest(options: {
  readonly tenant: string;
  readonly outbox: OutboxStore;
  readonly metrics: RelayMetrics;
  readonly recent: RecentEvents;
  readonly logger: Logger;
  readonly wake: () => void;
}): Ingest {
  return {
    async accept(events) {
      if (events.length === 0) return [];
      const results = await options.outbox.enqueue(
        events.map((event) => ({
          tenant: options.tenant,
          source: event.source,
          sourceId: event.sourceId,
          dedupKey: dedupKeyOf(event),
          input: event.input,
          keyDecision: event.decision,
        })),
      );
      results.forEach((result, index) => {
        const event = events[index];
        if (!event) return;
        if (result.outcome !== 'existing') {
          options.metrics.received.inc({ source: event.source });
          options.metrics.countKeyDecision(event.source, event.decision);
        }
        options.recent.accepted(result.id, event, result.outcome);
      });
      options.logger.info(
        { event: 'events_accepted', count: events.length, created: results.filter((result) => result.outcome === 'created').length },
        'events persisted in the outbox',
      );
      options.wake();
      return results;
    },
  };
}
