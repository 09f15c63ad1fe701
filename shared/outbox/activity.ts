import type { ActivityQuery, ActivityRow, ActivitySeries } from './types.js';

/**
 * Turns the window's events into per-bucket series: received by enqueue time; delivered, duplicate and dead by settle
 * time; latency (enqueue to delivery) of the events settled in each bucket; backlog (enqueued, not yet settled) at each
 * bucket's end. Every engine reads the rows its own way and calls this, so the charts mean the same on all of them.
 */
export function summarizeActivity(rows: readonly ActivityRow[], query: ActivityQuery, truncated: boolean): ActivitySeries {
  const { since, until, bucketMs } = query;
  const count = Math.ceil((until - since) / bucketMs);
  const starts = Array.from({ length: count }, (_, index) => since + index * bucketMs);
  const zeros = (): number[] => new Array<number>(count).fill(0);
  const received = zeros();
  const delivered = zeros();
  const duplicate = zeros();
  const dead = zeros();
  // Backlog as a difference array: +1 at the bucket an event enters, -1 at the bucket it leaves.
  const backlogDelta = new Array<number>(count + 1).fill(0);
  let backlogBefore = 0;
  const latencies: number[][] = Array.from({ length: count }, () => []);
  const bucketOf = (time: number): number => Math.floor((time - since) / bucketMs);
  for (const row of rows) {
    const enteredBucket = row.enqueuedAt < since ? -1 : bucketOf(row.enqueuedAt);
    if (enteredBucket >= count) continue;
    if (enteredBucket >= 0) received[enteredBucket] = (received[enteredBucket] ?? 0) + 1;
    const settled = row.settledAt;
    const leftBucket = settled === null || settled >= until ? count : settled < since ? -1 : bucketOf(settled);
    if (leftBucket < 0) continue; // settled before the window: never in its backlog
    // Counted in the backlog from the end of the bucket it entered, up to the end of the bucket before it left.
    if (enteredBucket < 0) backlogBefore += 1;
    else backlogDelta[enteredBucket] = (backlogDelta[enteredBucket] ?? 0) + 1;
    backlogDelta[leftBucket] = (backlogDelta[leftBucket] ?? 0) - 1;
    if (settled === null || leftBucket >= count) continue;
    const series = row.state === 'delivered' ? delivered : row.state === 'duplicate' ? duplicate : row.state === 'dead' ? dead : null;
    if (series === null) continue;
    series[leftBucket] = (series[leftBucket] ?? 0) + 1;
    if (row.state !== 'dead') latencies[leftBucket]?.push(Math.max(0, settled - row.enqueuedAt));
  }
  const backlog = zeros();
  let running = backlogBefore;
  for (let index = 0; index < count; index += 1) {
    running += backlogDelta[index] ?? 0;
    backlog[index] = running;
  }
  const sorted = latencies.map((values) => values.sort((a, b) => a - b));
  return {
    bucketMs,
    starts,
    received,
    delivered,
    duplicate,
    dead,
    latencyP50: sorted.map((values) => percentile(values, 0.5)),
    latencyP99: sorted.map((values) => percentile(values, 0.99)),
    backlog,
    truncated,
  };
}

/** Nearest-rank percentile of sorted values; null for none. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? null;
}

/** The time an event left the backlog, from the fields every engine keeps. */
export function settledAtOf(state: string, updatedAt: number, deadAt: number | null): number | null {
  if (state === 'delivered' || state === 'duplicate') return updatedAt;
  if (state === 'dead') return deadAt ?? updatedAt;
  return null;
}
