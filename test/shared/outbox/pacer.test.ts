import { describe, expect, it } from 'vitest';
import { eventPacer } from '../../../shared/outbox/pacer.js';

describe('event pacer', () => {
  it('spaces batches so the average stays at the cap, from the time of the first', () => {
    let now = 1000;
    const pacer = eventPacer(100, () => now);
    expect(pacer.reserve(50)).toBe(1000); // the first batch goes at once
    expect(pacer.reserve(50)).toBe(1500); // 50 events at 100/s take 500 ms
    expect(pacer.reserve(100)).toBe(2000);
    now = 5000; // idle for a while: no burst credit is saved up beyond the next batch
    expect(pacer.reserve(10)).toBe(5000);
    expect(pacer.reserve(10)).toBe(5100);
  });

  it('has no cap when none is set', () => {
    const pacer = eventPacer(null, () => 0);
    expect(pacer.reserve(1_000_000)).toBeLessThanOrEqual(0);
    expect(pacer.reserve(1_000_000)).toBeLessThanOrEqual(0);
  });
});
