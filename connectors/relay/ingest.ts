import type { Logger } from '../../shared/log.js';
import type { Enqueue } from '../../shared/outbox/group-commit.js';
import { type Ingest, outboxEventOf, unmappableEventOf } from '../../shared/outbox/ingest.js';
import type { RecordUnmappableResult, UnmappableEvent } from '../../shared/outbox/types.js';
import type { RelayMetrics } from './metrics.js';
import type { RecentEvents } from './recent-events.js';

/** The relay's ingest: the outbox enqueue (which hands the events to the worker), then metrics and the recent-events list. */
export function createIngest(options: {
  readonly tenant: string;
  /** The target the relay delivers to: every event it accepts is bound to it. */
  readonly target: string;
  /** The outbox's enqueue (group commit, hand-over to the worker): resolves once the events are committed. */
  readonly enqueue: Enqueue;
  /** The outbox's recordUnmappable: resolves once the dead letters are committed. */
  readonly recordUnmappable: (events: readonly UnmappableEvent[]) => Promise<RecordUnmappableResult[]>;
  readonly metrics: RelayMetrics;
  readonly recent: RecentEvents;
  readonly logger: Logger;
}): Ingest {
  return {
    async accept(events) {
      if (events.length === 0) return [];
      const results = await options.enqueue(events.map((event) => outboxEventOf(event, options.tenant, options.target)));
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
      return results;
    },
    async deadLetter(events) {
      if (events.length === 0) return [];
      const results = await options.recordUnmappable(events.map((event) => unmappableEventOf(event, options.tenant, options.target)));
      results.forEach((result, index) => {
        const event = events[index];
        if (!event) return;
        // Logged without the payload (it may hold personal data); `oncekit ledger show` has it.
        options.logger.error(
          {
            event: 'event_unmappable',
            source: event.source,
            sourceId: event.sourceId,
            id: result.id,
            outcome: result.outcome,
            reason: event.reason,
          },
          result.outcome === 'created'
            ? 'an event could not be mapped; it is a dead letter'
            : 'an unmappable event came again; already recorded',
        );
        if (result.outcome !== 'created') return;
        options.metrics.unmappable.inc({ source: event.source });
        options.metrics.deadLetters.inc({ source: event.source, reason: 'unmappable' });
      });
      return results;
    },
  };
}
