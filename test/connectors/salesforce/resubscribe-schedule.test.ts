import { describe, expect, it } from 'vitest';
import { ResubscribeSchedule } from '../../../connectors/salesforce/resubscribe-schedule.js';

describe('ResubscribeSchedule', () => {
  it('doubles the wait with each failure up to the cap, and starts over after a success', () => {
    const schedule = new ResubscribeSchedule({ initialMs: 100, maxMs: 700 });
    expect([1, 2, 3, 4, 5].map(() => schedule.nextDelay())).toEqual([100, 200, 400, 700, 700]);
    schedule.succeeded();
    expect(schedule.nextDelay()).toBe(100);
  });

  it('retries the first auth refusal at once, backs off on repeats, and starts over once a subscription is accepted', () => {
    const schedule = new ResubscribeSchedule({ initialMs: 100, maxMs: 1000 });
    expect([1, 2, 3].map(() => schedule.authDelay())).toEqual([0, 100, 200]);
    schedule.authenticated();
    expect(schedule.authDelay()).toBe(0);
  });

  it('ends a wait at once when woken (a stop), and a wake with no wait does nothing', async () => {
    const schedule = new ResubscribeSchedule();
    schedule.wake();
    const waiting = schedule.sleep(60_000);
    schedule.wake();
    await expect(waiting).resolves.toBeUndefined();
  });
});
