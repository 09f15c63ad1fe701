import { messageOf } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { State } from '../../shared/state/open-state.js';

export interface HousekeepingOptions {
  readonly state: State;
  /** Settled events (delivered, duplicate, dead) older than this leave the ledger. */
  readonly retentionMs: number;
  /** How often to look; default 5 minutes. */
  readonly intervalMs?: number;
  readonly logger: Logger;
}

// Bounded work per round: a large backlog is pruned over several rounds instead of in one long transaction.
const PRUNE_BATCH = 1000;
const PRUNE_BATCHES_PER_ROUND = 20;

/**
 * Keeps the state from growing without limit: expired idempotency records are purged and old ledger rows pruned, now
 * and then on a timer. Every instance may run it; the stores make each deletion atomic.
 */
export function startHousekeeping(options: HousekeepingOptions): { stop(): Promise<void> } {
  const { state, retentionMs, logger } = options;
  let running: Promise<void> | null = null;
  const round = async (): Promise<void> => {
    try {
      const purged = await state.idempotency.purgeExpired();
      let pruned = 0;
      for (let batch = 0; batch < PRUNE_BATCHES_PER_ROUND; batch++) {
        const count = await state.outbox.pruneSettled(retentionMs, PRUNE_BATCH);
        pruned += count;
        if (count < PRUNE_BATCH) break;
      }
      if (purged > 0 || pruned > 0) {
        logger.info({ event: 'housekeeping', purgedIdempotencyRecords: purged, prunedLedgerEvents: pruned }, 'old state removed');
      }
    } catch (error) {
      logger.warn({ event: 'housekeeping_failed', error: messageOf(error) }, 'housekeeping failed');
    }
  };
  const tick = (): void => {
    running ??= round().finally(() => {
      running = null;
    });
  };
  // A first round soon after start, not at once: start-up has enough to do.
  const first = setTimeout(tick, 10_000);
  const timer = setInterval(tick, options.intervalMs ?? 5 * 60_000);
  first.unref();
  timer.unref();
  return {
    async stop() {
      clearTimeout(first);
      clearInterval(timer);
      await running;
    },
  };
}
