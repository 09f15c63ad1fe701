import { describe, expect, it } from 'vitest';
import { EtaEstimator, formatRemaining } from '../../cli/progress.js';

describe('EtaEstimator', () => {
  it('is unknown until a second of progress was seen, then gives the time left at the recent rate', () => {
    const eta = new EtaEstimator();
    eta.sample(0, 0);
    expect(eta.remainingMs(0, 100)).toBeNull();
    eta.sample(500, 10);
    expect(eta.remainingMs(10, 100)).toBeNull();
    eta.sample(1000, 20);
    // 20 rows per second, 80 rows left.
    expect(eta.remainingMs(20, 100)).toBe(4000);
    expect(eta.remainingMs(100, 100)).toBe(0);
  });

  it('follows a slowdown: the rate comes from the last seconds, not from the start', () => {
    const eta = new EtaEstimator();
    for (let second = 0; second <= 10; second += 1) eta.sample(second * 1000, second * 100);
    // Then 10 rows per second for 30 s.
    for (let second = 11; second <= 40; second += 1) eta.sample(second * 1000, 1000 + (second - 10) * 10);
    expect(eta.remainingMs(1300, 1400)).toBe(10_000);
  });

  it('is unknown while nothing moves, and never divides by nothing', () => {
    const eta = new EtaEstimator();
    for (let at = 0; at <= 5000; at += 250) eta.sample(at, 7);
    expect(eta.remainingMs(7, 10)).toBeNull();
  });
});

describe('formatRemaining', () => {
  it.each([
    [null, '--'],
    [Number.NaN, '--'],
    [Number.POSITIVE_INFINITY, '--'],
    [0, '0s'],
    [1, '1s'],
    [45_000, '45s'],
    [185_000, '3m05s'],
    [7_620_000, '2h07m'],
  ])('%s ms → %s', (ms, text) => {
    expect(formatRemaining(ms)).toBe(text);
  });
});
