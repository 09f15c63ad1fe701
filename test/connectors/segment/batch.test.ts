import { describe, expect, test } from 'vitest';
import { builtFunction, identifyEvent, messageId, settingsFor, startTestSandbox, TENANT, trackEvent } from './helpers.js';

describe('onBatch', () => {
  test('mixed outcomes: one status per event, only the retryable one is retried, nothing is stored twice', async () => {
    const sandbox = await startTestSandbox({ strictUsers: true });
    const fn = builtFunction();
    const settings = settingsFor(sandbox);
    // Before the batch: ann exists, and one of her events (key `seen`) was already taken.
    const seen = messageId();
    expect((await fn.invoke(identifyEvent(), settings)).treatment).toEqual({ result: 'delivered' });
    expect((await fn.invoke(trackEvent({ messageId: seen }), settings)).treatment).toEqual({ result: 'delivered' });
    const before = sandbox.inspect(TENANT).requests.total;

    // The user upsert is the batch's first request: both its attempts meet a 500.
    sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    const fresh = messageId();
    const anonymous = trackEvent();
    delete anonymous.userId;
    const bob = identifyEvent({ userId: 'bob', traits: { name: 'Bob' } });
    const events = [
      trackEvent({ messageId: fresh }), // accepted
      trackEvent({ messageId: seen }), // duplicate: 409, success
      trackEvent({ userId: 'ghost' }), // rejected by the target: unknown user
      bob, // retryable: 500 twice
      trackEvent({ properties: 'x' }), // malformed
      { type: 'page', userId: 'ann', messageId: messageId() }, // unsupported
      trackEvent({ messageId: 'bad id!' }), // key dropped, sent without one
      anonymous, // anonymous only
    ];
    const batch = await fn.invokeBatch(events, settings);

    expect(batch.call.treatment).toEqual({ result: 'delivered' });
    expect(batch.call.returned).toEqual([
      { status: 200 },
      { status: 200 },
      { status: 404, errormessage: 'SaaSquatch rejected the event (404 RS042): No user found with id "ghost" in account "ghost"' },
      {
        status: 500,
        errormessage:
          'SaaSquatch did not take the user after 2 attempt(s) (500 INTERNAL_SERVER_ERROR: Internal Server Error); Segment will retry it',
      },
      { status: 400, errormessage: 'invalid track event: properties: expected an object of event properties' },
      { status: 400, errormessage: 'page events are not supported: this function forwards only track and identify calls to SaaSquatch' },
      { status: 200 },
      {
        status: 400,
        errormessage:
          'userId: missing. This track event is anonymous (it has no userId), and SaaSquatch only takes events and users with a userId; send it after identify, with the userId set',
      },
    ]);
    expect(batch.events.map((treatment) => treatment.result)).toEqual([
      'delivered',
      'delivered',
      'discard',
      'retry',
      'discard',
      'discard',
      'delivered',
      'discard',
    ]);
    // Two attempts of the upsert, then one logUserEvents call for all four sendable tracks.
    const after = sandbox.inspect(TENANT);
    expect(after.requests.total - before).toBe(3);
    expect(after.events.map(({ userId, idempotencyKey, via }) => ({ userId, idempotencyKey, via }))).toEqual([
      { userId: 'ann', idempotencyKey: seen, via: 'rest' },
      { userId: 'ann', idempotencyKey: fresh, via: 'graphql' },
      { userId: 'ann', idempotencyKey: null, via: 'graphql' },
    ]);
    expect(after.keys.find((key) => key.key === seen)?.requests).toBe(2);

    // Segment sends only the failed event again; now it goes through.
    const retried = await fn.invokeBatch([bob], settings);
    expect(retried.call.returned).toEqual([{ status: 200 }]);
    expect(
      sandbox
        .inspect(TENANT)
        .users.map((user) => user.id)
        .sort(),
    ).toEqual(['ann', 'bob']);
  });

  test('400 track events cost one target request, one keyed event each', async () => {
    const sandbox = await startTestSandbox();
    const events = Array.from({ length: 400 }, (_, index) => trackEvent({ userId: `user-${index}`, properties: { index } }));
    const batch = await builtFunction().invokeBatch(events, settingsFor(sandbox));
    expect(batch.call.returned).toEqual(events.map(() => ({ status: 200 })));
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.requests).toEqual({ total: 1, byStatus: { '200': 1 }, dropped: 0 });
    expect(snapshot.events.map(({ userId, idempotencyKey, fields }) => ({ userId, idempotencyKey, fields }))).toEqual(
      events.map((event, index) => ({ userId: `user-${index}`, idempotencyKey: event.messageId, fields: { index } })),
    );
  });

  test('the whole logUserEvents call failing: every track is retryable, and the retried batch stores each once', async () => {
    const sandbox = await startTestSandbox();
    const fn = builtFunction();
    const events = [trackEvent(), trackEvent({ userId: 'bob' }), trackEvent({ messageId: 'bad id!' })];
    sandbox.faults.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const failed = await fn.invokeBatch(events, settingsFor(sandbox));
    expect(failed.events.map((treatment) => treatment.result)).toEqual(['retry', 'retry', 'retry']);
    expect(failed.call.returned).toEqual(
      events.map((event) => ({
        status: 503,
        errormessage: expect.stringMatching(
          event.messageId === 'bad id!'
            ? /^SaaSquatch did not take the event after 2 attempt\(s\) \(503 .*\); Segment will retry it$/
            : new RegExp(`; Segment will retry it with the same idempotency key ${String(event.messageId)}$`),
        ),
      })),
    );
    expect(sandbox.inspect(TENANT).events).toEqual([]);

    const retried = await fn.invokeBatch(events, settingsFor(sandbox));
    expect(retried.call.returned).toEqual([{ status: 200 }, { status: 200 }, { status: 200 }]);
    expect(sandbox.inspect(TENANT).events.map((event) => event.idempotencyKey)).toEqual([events[0]?.messageId, events[1]?.messageId, null]);
  });

  test('stored but the answer lost: the in-function retry meets 409s, all success, each event stored once', async () => {
    const sandbox = await startTestSandbox();
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'status' });
    const events = [trackEvent(), trackEvent({ userId: 'bob' })];
    const batch = await builtFunction().invokeBatch(events, settingsFor(sandbox));
    expect(batch.call.returned).toEqual([{ status: 200 }, { status: 200 }]);
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events.map((event) => event.idempotencyKey)).toEqual(events.map((event) => event.messageId));
    expect(snapshot.requests.total).toBe(2);
  });

  test('a batch that runs out of time answers "retry" for what it could not finish, before Segment cuts it off', async () => {
    const sandbox = await startTestSandbox();
    // Every answer takes 3 s: the identify upserts (8 at a time) use up the function's budget before the tracks go.
    sandbox.faults.set({ latencyMs: 3_000 });
    const identifies = Array.from({ length: 9 }, (_, index) => identifyEvent({ userId: `user-${index}` }));
    const batch = await builtFunction().invokeBatch([...identifies, trackEvent(), trackEvent()], settingsFor(sandbox));
    // The function answered itself (not Segment's Timeout), and Segment will retry every event.
    expect(batch.call.treatment).toEqual({ result: 'delivered' });
    expect(batch.events.map((treatment) => treatment.result)).toEqual(Array(11).fill('retry'));
    expect((batch.call.returned as { errormessage: string }[]).slice(-2)).toEqual([
      { status: 503, errormessage: "not sent: the function's 4000 ms were used up; Segment will retry it" },
      { status: 503, errormessage: "not sent: the function's 4000 ms were used up; Segment will retry it" },
    ]);
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });

  test('settings that cannot work discard the whole batch with one error naming the setting', async () => {
    const sandbox = await startTestSandbox();
    const batch = await builtFunction().invokeBatch([trackEvent(), trackEvent()], settingsFor(sandbox, { tenantAlias: '' }));
    expect(batch.call.treatment).toMatchObject({ result: 'discard', category: 'Bad Request', errorName: 'FunctionConfigurationError' });
    expect(batch.call.thrown?.message).toMatch(/^invalid function settings: tenantAlias: required/);
    expect(batch.events.map((treatment) => treatment.result)).toEqual(['discard', 'discard']);
    expect(sandbox.inspect(TENANT).requests.total).toBe(0);
  });
});
