import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { systemClock } from '../../../sandbox/target/index.js';
import { createRateCap } from '../../../sandbox/target/rate-cap.js';
import { graphql, purchase, sandboxFor, TENANT, track } from './helpers.js';

const LOG_MANY = `mutation logMany($userEventInputs: [UserEventInput!]!) {
  logUserEvents(userEventInputs: $userEventInputs) { __typename }
}`;

let sequence = 0;
const batch = (size: number) =>
  Array.from({ length: size }, () => {
    sequence += 1;
    return purchase({ userId: `u${sequence % 7}`, accountId: 'a1', idempotencyKey: `cap-key-${sequence}` });
  });

describe('the capacity cap (maxEventsPerSecond)', () => {
  it('takes one second’s worth of events at once, then answers 429 with Retry-After, counting each event of a batch', async () => {
    const sandbox = await sandboxFor({ maxEventsPerSecond: 100 });
    const answers = [];
    for (let i = 0; i < 15; i += 1) answers.push(await graphql(sandbox, LOG_MANY, { userEventInputs: batch(10) }));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(10);
    const refused = answers.filter((a) => a.status === 429);
    expect(refused).toHaveLength(5);
    expect(refused[0]?.headers['retry-after']).toBe('1');
    expect(refused[0]?.headers['x-sandbox-fault']).toBe('rate-cap');
    // A single REST event counts one.
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-1' }))).status).toBe(429);
    sandbox.clock.advance(250);
    expect((await graphql(sandbox, LOG_MANY, { userEventInputs: batch(20) })).status).toBe(200);
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-2' }))).status).toBe(200);
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-3' }))).status).toBe(200);
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-4' }))).status).toBe(200);
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-5' }))).status).toBe(200);
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-6' }))).status).toBe(200);
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-7' }))).status).toBe(429);
    // A REST request with three events counts three.
    sandbox.clock.advance(30);
    const three = purchase({ idempotencyKey: 'rest-key-8', events: [{ key: 'a' }, { key: 'b' }, { key: 'c' }] });
    expect((await track(sandbox, three)).status).toBe(200);
    expect((await track(sandbox, purchase({ idempotencyKey: 'rest-key-9' }))).status).toBe(429);
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toHaveLength(100 + 25 + 3);
    expect(snapshot.requests.byStatus['429']).toBe(8);
  });

  it('without a cap nothing is refused', async () => {
    const sandbox = await sandboxFor();
    for (let i = 0; i < 15; i += 1) expect((await graphql(sandbox, LOG_MANY, { userEventInputs: batch(10) })).status).toBe(200);
  });

  it('reset() refills the bucket', async () => {
    const sandbox = await sandboxFor({ maxEventsPerSecond: 10 });
    expect((await graphql(sandbox, LOG_MANY, { userEventInputs: batch(10) })).status).toBe(200);
    expect((await graphql(sandbox, LOG_MANY, { userEventInputs: batch(1) })).status).toBe(429);
    sandbox.reset();
    expect((await graphql(sandbox, LOG_MANY, { userEventInputs: batch(10) })).status).toBe(200);
  });

  it('on the system clock, no one-second window of the recorded events holds more than the cap plus its burst', async () => {
    const cap = 200;
    const sandbox = await sandboxFor({ maxEventsPerSecond: cap, clock: systemClock });
    let refused = 0;
    const started = systemClock.now();
    // Four senders, batches of 25, for 1.2 s of sandbox time (well over the cap on loopback; the 429s below show it).
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (systemClock.now() - started < 1200) {
          const answer = await graphql(sandbox, LOG_MANY, { userEventInputs: batch(25) });
          if (answer.status === 429) refused += 1;
          else expect(answer.status).toBe(200);
        }
      }),
    );
    const received = sandbox
      .inspect(TENANT)
      .events.map((event) => event.dateReceived)
      .sort((a, b) => a - b);
    expect(refused).toBeGreaterThan(0);
    // Sliding window over the sandbox's own timestamps: [t, t + 1000 ms) for each recorded event's t.
    let end = 0;
    let most = 0;
    for (let start = 0; start < received.length; start += 1) {
      while (end < received.length && (received[end] as number) < (received[start] as number) + 1000) end += 1;
      most = Math.max(most, end - start);
    }
    // A full bucket (cap) plus one second's refill (cap); 1 % for millisecond rounding of the timestamps.
    expect(most).toBeLessThanOrEqual(Math.ceil(2 * cap * 1.01));
    expect(received.length).toBeGreaterThanOrEqual(cap);
  });

  it('property: events taken from start to t never exceed the bucket plus the refill, and a full bucket takes any batch', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.record({ advanceMs: fc.integer({ min: 0, max: 700 }), events: fc.integer({ min: 1, max: 300 }) }), { maxLength: 200 }),
        (rate, steps) => {
          const cap = createRateCap(rate, 0);
          let now = 0;
          let taken = 0;
          for (const step of steps) {
            now += step.advanceMs;
            const wait = cap.take(step.events, now);
            if (wait === 0) taken += Math.min(step.events, rate);
            else expect(wait).toBeGreaterThanOrEqual(1);
            expect(taken).toBeLessThanOrEqual(rate + (now / 1000) * rate + 1e-6);
          }
          // After a full second of quiet the bucket is full again.
          expect(cap.take(rate, now + 1000)).toBe(0);
        },
      ),
    );
  });

  it('refuses a cap that is not a positive number', () => {
    expect(() => createRateCap(0, 0)).toThrow(/maxEventsPerSecond/);
    expect(() => createRateCap(Number.NaN, 0)).toThrow(/maxEventsPerSecond/);
  });
});
