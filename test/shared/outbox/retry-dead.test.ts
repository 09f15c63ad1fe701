import { describe, expect, it } from 'vitest';
import { manualClock } from '../../../shared/clock.js';
import { landedPastKeyWindow, MemoryOutboxStore, retryDeadLetters } from '../../../shared/outbox/index.js';
import { failedAttempt, outboxEvent } from '../state/outbox-contract.js';

const HOUR = 3_600_000;
const KEY_WINDOW_MS = 24 * HOUR;
const TENANT = 'acme';
const TARGET = 'https://a.target.test';

describe('retryDeadLetters and the key window', () => {
  it('refuses again, once dead again, an event that was resent past the window with --force-past-window', async () => {
    const clock = manualClock();
    const store = new MemoryOutboxStore({ clock });
    const [created] = await store.enqueue([outboxEvent()]);
    const id = created?.id ?? '';
    const lease = (owner: string) => store.lease({ tenant: TENANT, target: TARGET, owner, limit: 1, leaseMs: 60_000 });
    const firstSent = clock.now();
    await lease('w1');
    await store.settle([{ id, owner: 'w1', attempt: failedAttempt(firstSent, 503, 1), to: 'dead', reason: 'horizon' }]);
    clock.advance(30 * HOUR);
    const retry = (forcePastWindow: boolean) =>
      retryDeadLetters(store, { tenant: TENANT, select: { ids: [id] }, keyWindowMs: KEY_WINDOW_MS, forcePastWindow, now: clock.now() });

    expect(await retry(false)).toMatchObject({ requeued: [], refused: [{ id, landedSince: firstSent }] });
    expect(await retry(true)).toMatchObject({ requeued: [id], forced: [{ id, landedSince: firstSent }] });
    // The forced resend is refused by the target (a 429 is certain: it did not land) and dies again.
    await lease('w2');
    await store.settle([{ id, owner: 'w2', attempt: failedAttempt(clock.now(), 429, 0), to: 'dead', reason: 'horizon' }]);
    expect((await store.get(TENANT, id))?.landedSince).toBeNull();
    // The 503 of 30 h ago may still have landed: a plain retry is refused again, as it was before the force.
    expect(await retry(false)).toMatchObject({ requeued: [], refused: [{ id, landedSince: firstSent }] });
  });

  it('judges an event marked by a version that kept no landing time by its attempts', () => {
    const entry = { landedSince: null, attempts: [failedAttempt(1_000, 429, 0), failedAttempt(5_000, 503, 1)] };
    expect(landedPastKeyWindow(entry, 5_000 + 23 * HOUR - 1, KEY_WINDOW_MS)).toBeNull();
    expect(landedPastKeyWindow(entry, 5_000 + 23 * HOUR, KEY_WINDOW_MS)).toEqual({ landedSince: 5_000 });
    expect(landedPastKeyWindow({ landedSince: null, attempts: [failedAttempt(1_000, 429, 0)] }, 100 * HOUR, KEY_WINDOW_MS)).toBeNull();
  });

  it('takes at most maxSelection of every matching dead letter, says more match, and takes the rest next time', async () => {
    const store = new MemoryOutboxStore({ clock: manualClock() });
    await store.enqueue(Array.from({ length: 5 }, () => outboxEvent()));
    const held = await store.lease({ tenant: TENANT, target: TARGET, owner: 'w', limit: 5, leaseMs: 60_000 });
    await store.settle(held.map((event) => ({ id: event.id, owner: 'w', attempt: null, to: 'dead', reason: 'rejected' }) as const));
    const retryAll = () =>
      retryDeadLetters(store, { tenant: TENANT, select: { matching: {} }, keyWindowMs: KEY_WINDOW_MS, maxSelection: 3 });
    const first = await retryAll();
    expect(first.requeued).toHaveLength(3);
    expect(first.moreMatching).toBe(true);
    const second = await retryAll();
    expect(second.requeued).toHaveLength(2);
    expect(second.moreMatching).toBe(false);
    expect(await store.counts(TENANT)).toMatchObject({ dead: 0, pending: 5 });
  });
});
