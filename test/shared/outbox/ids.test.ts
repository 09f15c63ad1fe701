import { describe, expect, it } from 'vitest';
import { outboxIdSource } from '../../../shared/outbox/store-support.js';

const inOrder = (ids: readonly string[]): boolean => ids.every((id, i) => i === 0 || id > (ids[i - 1] as string));

describe('outbox ids', () => {
  it('never go backwards and never repeat when the clock steps back', () => {
    const nextId = outboxIdSource();
    const base = 1_700_000_000_000;
    const ids = [base, base, base - 5_000, base - 5_000, base - 1, base + 1, base + 1].map((time) => nextId(time));
    expect(new Set(ids).size).toBe(ids.length);
    expect(inOrder(ids)).toBe(true);
  });

  it('stay the same width and in order when a stuck clock fills the sequence', () => {
    const nextId = outboxIdSource(4);
    const stuck = 1_700_000_000_000;
    const ids = Array.from({ length: 10 }, () => nextId(stuck));
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(ids.map((id) => id.length)).size).toBe(1);
    expect(inOrder(ids)).toBe(true);
    // The borrowed milliseconds are given back as the clock catches up: still in order, still unique.
    const later = nextId(stuck + 1);
    expect(later > (ids.at(-1) as string)).toBe(true);
  });
});
