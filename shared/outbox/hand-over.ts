import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import { coalesced, type Enqueue } from './group-commit.js';
import type { EnqueueResult, LeasedEvent, NewOutboxEvent, OutboxStore } from './types.js';
import type { OutboxWorker } from './worker.js';

export interface HandOverOptions {
  /** Coalesce concurrent callers into one store transaction (group commit); default true. */
  readonly groupCommit?: boolean;
  readonly logger: Logger;
}

/**
 * The enqueue of a process that also delivers: while fewer batches wait for a delivery loop than there are loops, the
 * events are enqueued already leased to the worker and handed to it, so they are sent without being read back from the
 * store and no other loop wakes up; otherwise they are enqueued plainly and one loop per batch is woken. Either way
 * each caller is answered once its events are committed, never later: delivery goes on in the background.
 */
export function handOverEnqueue(store: OutboxStore, worker: OutboxWorker, options: HandOverOptions): Enqueue {
  const lease = { owner: worker.owner, leaseMs: worker.config.leaseMs };
  const run = async (events: readonly NewOutboxEvent[]): Promise<EnqueueResult[]> => {
    // Only the worker's own tenant and target can be handed to it; and only while few batches wait for a loop, so a
    // handed event is sent soon (its lease renewed meanwhile), and the rest wait in the store for any worker.
    const handOver = worker.acceptsHandOver() && events.every((event) => event.tenant === worker.tenant && event.target === worker.target);
    const leaseRequestedAt = performance.now();
    const results = await store.enqueue(events, handOver ? { lease } : {});
    const leased: LeasedEvent[] = [];
    for (const result of results) if (result.leased) leased.push(result.leased);
    if (leased.length > 0) {
      worker
        .submit(leased, { leaseRequestedAt })
        .catch((error: unknown) =>
          options.logger.error(
            { event: 'outbox_hand_over_failed', error: messageOf(error) },
            'could not hand enqueued events to the worker; they are delivered once their lease runs out',
          ),
        );
    }
    const left = events.length - leased.length;
    if (left > 0) worker.notify(left);
    return results;
  };
  return (options.groupCommit ?? true) ? coalesced(run) : (events) => run(events);
}
