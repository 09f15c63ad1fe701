/**
 * Paces deliveries to at most `perSecond` events per second on average (virtual scheduling: each batch reserves the
 * time its events take at that rate). Real time: it only spaces out sends, it decides nothing durable.
 */
export interface Pacer {
  /** Reserves `events` and returns when (on `now()`'s scale) they may be sent; now or earlier means at once. */
  reserve(events: number): number;
}

export function eventPacer(perSecond: number | null, now: () => number = () => performance.now()): Pacer {
  if (perSecond === null) return { reserve: () => Number.NEGATIVE_INFINITY };
  let nextFree = Number.NEGATIVE_INFINITY;
  return {
    reserve(events) {
      const sendAt = Math.max(now(), nextFree);
      nextFree = sendAt + (events / perSecond) * 1000;
      return sendAt;
    },
  };
}
