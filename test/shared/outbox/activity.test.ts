import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { percentile, summarizeActivity } from '../../../shared/outbox/activity.js';
import type { ActivityRow, OutboxState } from '../../../shared/outbox/types.js';

const SINCE = 1_000_000;
const BUCKET = 1000;
const BUCKETS = 6;
const UNTIL = SINCE + BUCKET * BUCKETS;

/** Events around the window: enqueued before, in or after it, settled (or not) later. */
const rowArbitrary = fc
  .record({
    state: fc.constantFrom<OutboxState>('pending', 'leased', 'delivered', 'duplicate', 'dead'),
    enqueuedAt: fc.integer({ min: SINCE - 3 * BUCKET, max: UNTIL + BUCKET }),
    wait: fc.integer({ min: 0, max: 4 * BUCKET }),
  })
  .map(
    ({ state, enqueuedAt, wait }): ActivityRow => ({
      state,
      enqueuedAt,
      settledAt: state === 'pending' || state === 'leased' ? null : enqueuedAt + wait,
    }),
  );

describe('summarizeActivity', () => {
  it('counts each series per bucket as a direct count over the events would', () => {
    fc.assert(
      fc.property(fc.array(rowArbitrary, { maxLength: 60 }), (rows) => {
        const series = summarizeActivity(rows, { since: SINCE, until: UNTIL, bucketMs: BUCKET }, false);
        expect(series.starts).toHaveLength(BUCKETS);
        series.starts.forEach((start, index) => {
          const end = start + BUCKET;
          const inBucket = (time: number | null): boolean => time !== null && time >= start && time < end;
          expect(series.received[index]).toBe(rows.filter((row) => inBucket(row.enqueuedAt)).length);
          for (const state of ['delivered', 'duplicate', 'dead'] as const) {
            expect(series[state][index]).toBe(rows.filter((row) => row.state === state && inBucket(row.settledAt)).length);
          }
          // Backlog at the bucket's end: enqueued by then and not settled by then.
          const backlog = rows.filter((row) => row.enqueuedAt < end && (row.settledAt === null || row.settledAt >= end)).length;
          expect(series.backlog[index]).toBe(backlog);
          const latencies = rows
            .filter((row) => (row.state === 'delivered' || row.state === 'duplicate') && inBucket(row.settledAt))
            .map((row) => (row.settledAt ?? 0) - row.enqueuedAt)
            .sort((a, b) => a - b);
          expect(series.latencyP50[index]).toBe(percentile(latencies, 0.5));
          expect(series.latencyP99[index]).toBe(percentile(latencies, 0.99));
        });
      }),
    );
  });

  it('takes nearest-rank percentiles', () => {
    expect(percentile([], 0.5)).toBeNull();
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(
      percentile(
        Array.from({ length: 100 }, (_, i) => i + 1),
        0.99,
      ),
    ).toBe(99);
  });
});
