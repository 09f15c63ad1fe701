import { constants, PerformanceObserver } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapSpaceStatistics } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { paceHeap } from '../../cli/heap-pacer.js';

const MB = 1024 * 1024;

/** Counts full (mark-compact) collections while `work` runs. */
async function majorCollectionsDuring(work: () => Promise<void>): Promise<number> {
  let majors = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry.detail as { kind?: number } | undefined)?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors += 1;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    await work();
    await sleep(50); // gc entries are reported asynchronously
  } finally {
    observer.disconnect();
  }
  return majors;
}

/** Objects that survive young collections, so they land in the old generation. */
function promoted(megabytes: number): unknown[][] {
  const kept: unknown[][] = [];
  for (let i = 0; i < megabytes * 64; i += 1) kept.push(Array.from({ length: 2048 }, (_, n) => ({ n })));
  return kept;
}

function oldSpaceUsed(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')?.space_used_size ?? 0;
}

describe('paceHeap', () => {
  it('collects once the old generation grows past the target, freeing what is no longer alive', async () => {
    let garbage: unknown[][] | null = promoted(40);
    await sleep(20);
    expect(oldSpaceUsed()).toBeGreaterThan(30 * MB);
    garbage = null;
    const stop = paceHeap(8, 10);
    try {
      const majors = await majorCollectionsDuring(() => sleep(200));
      expect(majors).toBeGreaterThan(0);
      expect(oldSpaceUsed()).toBeLessThan(30 * MB);
    } finally {
      stop();
    }
    expect(garbage).toBeNull();
  });

  it('follows what is alive instead of collecting in a loop when that outgrows the target', async () => {
    const alive = promoted(40);
    const stop = paceHeap(8, 5);
    try {
      // 400 ms of ticks every 5 ms: a pacer stuck under its target would collect about 80 times.
      const majors = await majorCollectionsDuring(() => sleep(400));
      expect(majors).toBeLessThanOrEqual(3);
    } finally {
      stop();
    }
    expect(alive.length).toBeGreaterThan(0);
  });
});
