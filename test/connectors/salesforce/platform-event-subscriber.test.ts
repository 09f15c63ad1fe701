import './helpers.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_PLATFORM_EVENT_CHANNEL, type PlatformEventMessage } from '../../../connectors/salesforce/platform-event-mapping.js';
import {
  CheckpointExpiredError,
  createPlatformEventSubscriber,
  type PlatformEventSink,
  type PlatformEventSubscriber,
  type PlatformEventSubscriberOptions,
  type SubscriberActivity,
} from '../../../connectors/salesforce/platform-event-subscriber.js';
import { type MemoryReplayCheckpointStore, memoryReplayCheckpointStore } from '../../../connectors/salesforce/replay-checkpoint-store.js';
import type { SalesforceSession } from '../../../connectors/salesforce/salesforce-auth.js';
import type { FakeOrg, PublishedEvent } from '../../../sandbox/salesforce-org/index.js';
import { memoryLogger } from '../../../shared/log.js';
import { connectTo, startTestOrg, waitFor } from './helpers.js';

const CHANNEL = DEFAULT_PLATFORM_EVENT_CHANNEL;

interface Harness {
  readonly subscriber: PlatformEventSubscriber;
  /** Every sink call, failed ones included, in order. */
  readonly calls: PlatformEventMessage[];
  readonly activities: SubscriberActivity[];
}

let org: FakeOrg;
let session: SalesforceSession;
const running: PlatformEventSubscriber[] = [];

beforeEach(async () => {
  org = await startTestOrg();
  session = await connectTo(org);
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((subscriber) => subscriber.stop()));
  await org.close();
});

function subscribe(
  store: MemoryReplayCheckpointStore,
  sink: PlatformEventSink = async () => {},
  options: Partial<PlatformEventSubscriberOptions> = {},
): Harness {
  const calls: PlatformEventMessage[] = [];
  const activities: SubscriberActivity[] = [];
  const subscriber = createPlatformEventSubscriber({
    session,
    checkpoints: store,
    sink: async (event) => {
      calls.push(event);
      await sink(event);
    },
    retryDelay: { initialMs: 10, maxMs: 40 },
    subscribeTimeoutMs: 5000,
    onActivity: (activity) => activities.push(activity),
    ...options,
  });
  running.push(subscriber);
  return { subscriber, calls, activities };
}

const payload = (n: number) => ({ User_Id__c: `user${n}@example.com`, Event_Key__c: 'purchase', Fields__c: JSON.stringify({ n }) });
const replayIds = (events: readonly { replayId: number }[]) => events.map((event) => event.replayId);
const subscribes = () => org.bayeux.filter((message) => message.channel === '/meta/subscribe' && message.authorized);
const saved = (store: MemoryReplayCheckpointStore) => store.saves.map((save) => save.replayId);

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

describe('platform event subscriber', () => {
  it('subscribes at API 59.0 and hands over each event with its EventUuid and replayId', async () => {
    const store = memoryReplayCheckpointStore();
    const { subscriber, calls } = subscribe(store);
    await subscriber.start();
    expect(subscriber.state).toBe('subscribed');
    expect(org.requests.some((request) => request.path === '/cometd/59.0')).toBe(true);
    expect(subscribes().map((message) => message.replay)).toEqual([-1]);

    const first = await org.publish(CHANNEL, payload(1));
    const second = await org.publish(CHANNEL, payload(2));
    await waitFor('two checkpoints', () => store.saves.length === 2);

    expect(calls).toEqual([
      { channel: CHANNEL, eventUuid: first.eventUuid, replayId: first.replayId, payload: expect.objectContaining(payload(1)) },
      { channel: CHANNEL, eventUuid: second.eventUuid, replayId: second.replayId, payload: expect.objectContaining(payload(2)) },
    ]);
    expect(first.eventUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(saved(store)).toEqual([first.replayId, second.replayId]);
  });

  it('bounds its queue: at the bound it disconnects, drains, resubscribes from the checkpoint; every event once, in order', async () => {
    const store = memoryReplayCheckpointStore();
    const gate = deferred();
    const bound = 5;
    let outstanding = 0;
    let most = 0;
    const seen: SubscriberActivity['type'][] = [];
    const { subscriber, calls } = subscribe(
      store,
      async () => {
        await gate.promise;
        await new Promise((resolve) => setTimeout(resolve, 2));
      },
      {
        maxQueuedEvents: bound,
        onActivity: (activity) => {
          seen.push(activity.type);
          if (activity.type === 'received') outstanding += 1;
          if (activity.type === 'checkpointed') outstanding -= 1;
          most = Math.max(most, outstanding);
        },
      },
    );
    await subscriber.start();
    const published: PublishedEvent[] = [];
    for (let n = 1; n <= 6 * bound; n += 1) published.push(await org.publish(CHANNEL, payload(n)));
    gate.resolve();
    await waitFor('every event checkpointed', () => store.saves.length === published.length, 20_000);

    expect(replayIds(calls)).toEqual(replayIds(published));
    // The queue holds at most `bound` events; one more may be in the sink.
    expect(most).toBeLessThanOrEqual(bound + 1);
    expect(seen.filter((type) => type === 'paused').length).toBeGreaterThanOrEqual(1);
    expect(subscribes().length).toBeGreaterThanOrEqual(2);
  });

  it('checkpoints an event only after the sink resolved, one event at a time', async () => {
    const store = memoryReplayCheckpointStore();
    const gate = deferred();
    const { subscriber, calls, activities } = subscribe(store, (event) =>
      event.payload.User_Id__c === 'user1@example.com' ? gate.promise : Promise.resolve(),
    );
    await subscriber.start();

    const first = await org.publish(CHANNEL, payload(1));
    const second = await org.publish(CHANNEL, payload(2));
    await waitFor('both events received', () => activities.filter((activity) => activity.type === 'received').length === 2);
    expect(replayIds(calls)).toEqual([first.replayId]);
    expect(store.saves).toEqual([]);

    gate.resolve();
    await waitFor('both checkpointed', () => store.saves.length === 2);
    expect(saved(store)).toEqual([first.replayId, second.replayId]);
    expect(replayIds(calls)).toEqual([first.replayId, second.replayId]);
  });

  it('does not advance the checkpoint past a failed sink, and gets the event again from the last checkpoint', async () => {
    const store = memoryReplayCheckpointStore();
    let failures = 0;
    const { subscriber, calls, activities } = subscribe(store, async (event) => {
      if (event.payload.User_Id__c === 'user2@example.com' && failures === 0) {
        failures++;
        throw new Error('outbox unavailable');
      }
    });
    await subscriber.start();

    const [first, second, third] = [
      await org.publish(CHANNEL, payload(1)),
      await org.publish(CHANNEL, payload(2)),
      await org.publish(CHANNEL, payload(3)),
    ] as [PublishedEvent, PublishedEvent, PublishedEvent];
    await waitFor('the third event checkpointed', () => store.current(CHANNEL) === third.replayId);

    expect(replayIds(calls)).toEqual([first.replayId, second.replayId, second.replayId, third.replayId]);
    expect(saved(store)).toEqual([first.replayId, second.replayId, third.replayId]);
    expect(activities).toContainEqual({ type: 'sink-failed', replayId: second.replayId, error: expect.any(Error) });
    // The new client resumed right after the last checkpoint.
    expect(subscribes().map((message) => message.replay)).toEqual([-1, first.replayId]);
  });

  it('gets a failed first event again even before anything was checkpointed, and still not older ones', async () => {
    const older = await org.publish(CHANNEL, payload(0));
    const store = memoryReplayCheckpointStore();
    let failed = false;
    const { subscriber, calls } = subscribe(store, async () => {
      if (!failed) {
        failed = true;
        throw new Error('outbox unavailable');
      }
    });
    await subscriber.start();
    const first = await org.publish(CHANNEL, payload(1));
    await waitFor('the first event checkpointed', () => store.current(CHANNEL) === first.replayId);
    expect(replayIds(calls)).toEqual([first.replayId, first.replayId]);
    expect(replayIds(calls)).not.toContain(older.replayId);
    expect(subscribes().map((message) => message.replay)).toEqual([-1, -2]);
  });

  it('resumes after a restart where it stopped: no loss, and nothing the sink took comes again', async () => {
    const store = memoryReplayCheckpointStore();
    const before = subscribe(store);
    await before.subscriber.start();
    const first = await org.publish(CHANNEL, payload(1));
    const second = await org.publish(CHANNEL, payload(2));
    await waitFor('two checkpoints', () => store.saves.length === 2);
    await before.subscriber.stop();

    const third = await org.publish(CHANNEL, payload(3));
    const fourth = await org.publish(CHANNEL, payload(4));

    const after = subscribe(store);
    await after.subscriber.start();
    expect(subscribes().at(-1)?.replay).toBe(second.replayId);
    const fifth = await org.publish(CHANNEL, payload(5));
    await waitFor('the fifth event checkpointed', () => store.current(CHANNEL) === fifth.replayId);

    expect(replayIds(before.calls)).toEqual([first.replayId, second.replayId]);
    expect(replayIds(after.calls)).toEqual([third.replayId, fourth.replayId, fifth.replayId]);
  });

  it('starts from new events without a checkpoint, or from every retained event when configured', async () => {
    const old = await org.publish(CHANNEL, payload(0));
    const fresh = subscribe(memoryReplayCheckpointStore());
    const all = subscribe(memoryReplayCheckpointStore(), async () => {}, { replayWithoutCheckpoint: -2 });
    await Promise.all([fresh.subscriber.start(), all.subscriber.start()]);
    const next = await org.publish(CHANNEL, payload(1));
    await waitFor('both subscribers got the new event', () => fresh.calls.length === 1 && all.calls.length === 2);
    expect(replayIds(fresh.calls)).toEqual([next.replayId]);
    expect(replayIds(all.calls)).toEqual([old.replayId, next.replayId]);
  });

  it('on token invalidation mid-stream refreshes the token, creates a new client and keeps delivering', async () => {
    const store = memoryReplayCheckpointStore();
    const logger = memoryLogger();
    const { subscriber, calls, activities } = subscribe(store, async () => {}, { logger });
    await subscriber.start();
    const first = await org.publish(CHANNEL, payload(1));
    await waitFor('the first event checkpointed', () => store.current(CHANNEL) === first.replayId);
    const grantsBefore = org.tokenGrants.length;
    const tokenBefore = session.connection.accessToken;

    org.invalidateTokens();
    // Published while the old client is being refused: the new one replays it from the checkpoint.
    const second = await org.publish(CHANNEL, payload(2));
    await waitFor('the second event checkpointed', () => store.current(CHANNEL) === second.replayId);
    const third = await org.publish(CHANNEL, payload(3));
    await waitFor('the third event checkpointed', () => store.current(CHANNEL) === third.replayId);

    expect(replayIds(calls)).toEqual([first.replayId, second.replayId, third.replayId]);
    expect(activities.map((activity) => activity.type)).toEqual(expect.arrayContaining(['auth-failed', 'token-refreshed']));
    expect(activities.filter((activity) => activity.type === 'subscribed')).toEqual([
      { type: 'subscribed', client: 1, replayFrom: -1 },
      { type: 'subscribed', client: 2, replayFrom: first.replayId },
    ]);
    expect(org.tokenGrants.length).toBe(grantsBefore + 1);
    expect(session.connection.accessToken).not.toBe(tokenBefore);
    expect(org.bayeux.some((message) => message.channel === '/meta/connect' && !message.authorized)).toBe(true);
    const logged = JSON.stringify(logger.lines);
    expect(logged).toContain('platform_events_auth_failed');
    for (const token of [tokenBefore, session.connection.accessToken]) expect(logged).not.toContain(String(token));
    expect(logged).not.toContain('user2@example.com');
  });

  it('replays every retained event when the checkpoint has expired, and says so', async () => {
    const gone = await org.publish(CHANNEL, payload(0));
    const kept = await org.publish(CHANNEL, payload(1));
    org.expireEventsThrough(CHANNEL, gone.replayId);
    const store = memoryReplayCheckpointStore({ [CHANNEL]: gone.replayId });
    const { subscriber, calls, activities } = subscribe(store);
    await subscriber.start();
    await waitFor('the retained event delivered', () => calls.length === 1);
    expect(replayIds(calls)).toEqual([kept.replayId]);
    expect(activities).toContainEqual({ type: 'checkpoint-expired', replayFrom: gone.replayId });
    expect(subscribes().map((message) => message.replay)).toEqual([gone.replayId, -2]);
  });

  it('stops instead when told to, rejecting start()', async () => {
    const store = memoryReplayCheckpointStore({ [CHANNEL]: '999' });
    const { subscriber, activities } = subscribe(store, async () => {}, { onExpiredCheckpoint: 'fail' });
    await expect(subscriber.start()).rejects.toThrow(CheckpointExpiredError);
    expect(subscriber.state).toBe('failed');
    expect(activities.at(-1)).toEqual({ type: 'failed', error: expect.any(CheckpointExpiredError) });
  });

  it('stop() waits for the event in the sink, checkpoints it, unsubscribes, disconnects and ends the long-poll', async () => {
    const store = memoryReplayCheckpointStore();
    const gate = deferred();
    const { subscriber, calls } = subscribe(store, () => gate.promise);
    await subscriber.start();
    const first = await org.publish(CHANNEL, payload(1));
    await waitFor('the sink called', () => calls.length === 1);
    await waitFor('a long-poll held', () => org.openCometdRequests() > 0);

    const stopping = subscriber.stop();
    gate.resolve();
    await stopping;

    expect(saved(store)).toEqual([first.replayId]);
    expect(subscriber.state).toBe('stopped');
    const meta = org.bayeux.map((message) => message.channel);
    expect(meta).toContain('/meta/unsubscribe');
    expect(meta).toContain('/meta/disconnect');
    await waitFor('no CometD request left open', () => org.openCometdRequests() === 0);
    await org.publish(CHANNEL, payload(2));
    expect(calls).toHaveLength(1);
  });

  it('treats a checkpoint that cannot be saved like a sink failure', async () => {
    const store = memoryReplayCheckpointStore();
    let refused = false;
    const flaky = {
      ...store,
      load: store.load,
      save: async (channel: string, replayId: string | number) => {
        if (!refused) {
          refused = true;
          throw new Error('store down');
        }
        await store.save(channel, replayId);
      },
    };
    const { subscriber, calls, activities } = subscribe(store, async () => {}, { checkpoints: flaky });
    await subscriber.start();
    const first = await org.publish(CHANNEL, payload(1));
    await waitFor('the event checkpointed', () => store.current(CHANNEL) === first.replayId);
    expect(replayIds(calls)).toEqual([first.replayId, first.replayId]);
    expect(activities).toContainEqual({ type: 'checkpoint-failed', replayId: first.replayId, error: expect.any(Error) });
  });
});
