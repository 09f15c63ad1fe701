import { messageOf } from '../errors.js';
import type { IdempotencyRef, IdempotencyStore } from './idempotency.js';

export interface LeaseKeeper {
  /** Stops renewing; call it once the work is completed or released. */
  stop(): void;
}

/**
 * Renews a held lease every third of its length while slow work runs, so a live holder is never taken over; a holder
 * that crashes stops renewing and its lease runs out. `onLost` hears about a renewal that failed or was refused.
 */
export function keepLeaseAlive(
  store: IdempotencyStore,
  ref: IdempotencyRef,
  owner: string,
  leaseMs: number,
  onLost: (reason: string) => void = () => {},
): LeaseKeeper {
  let stopped = false;
  const timer = setInterval(
    () => {
      store.renewLease(ref, owner, leaseMs).then(
        (renewed) => {
          if (!renewed && !stopped) {
            stop();
            onLost('the lease is no longer ours');
          }
        },
        (error: unknown) => {
          if (!stopped) onLost(messageOf(error));
        },
      );
    },
    Math.max(1, Math.floor(leaseMs / 3)),
  );
  timer.unref();
  const stop = (): void => {
    stopped = true;
    clearInterval(timer);
  };
  return { stop };
}
