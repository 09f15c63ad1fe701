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
 * The enqueue of a process that also delivers: when a delivery loop is idle, the events are enqueued already leased to
 * the worker and handed to it, so they are sent without being read back from the store and no other loop wakes up;
 * otherwise they are enqueued plainly and one loop per batch is woken. Either way each caller is answered once its
 * events are committed, never later: delivery goes on in the background.
 */
export function handOverEnqueue(store: OutboxStore, worker: OutboxWorker, options: HandOverOptions): Enqueue {
  const lease = { owner: worker.owner, leaseMs: worker.config.leaseMs };
  const run = async (events: readonly NewOutboxEvent[]): Promise<EnqueueResult[]> => {
    // Only the worker's own tenant and target can be handed to it; and only when a loop is free to send at once, so a
    // handed event never waits in memory while its lease runs out.
    const handOver = worker.hasIdleLoop() && events.every((event) => event.tenant === worker.tenant && event.target === worker.target);
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
