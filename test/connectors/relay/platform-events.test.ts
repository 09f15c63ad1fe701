import './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PLATFORM_EVENT_CHANNEL } from '../../../connectors/salesforce/platform-event-mapping.js';
import type { FakeOrg, PublishedEvent } from '../../../sandbox/salesforce-org/index.js';
import { startSandbox } from '../../../sandbox/target/index.js';
import type { Sandbox } from '../../../sandbox/target/server.js';
import { clientCredentialsEnv, startTestOrg } from '../salesforce/helpers.js';
import { startTestRelay, type TestRelay, tempDir, waitFor } from './helpers.js';

const CHANNEL = DEFAULT_PLATFORM_EVENT_CHANNEL;
const TENANT = 'platform_events';
const API_KEY = 'pe-target-key-Rw7Ty2Ui9Op4';

let org: FakeOrg;
let target: Sandbox;
let dir: ReturnType<typeof tempDir>;

beforeAll(async () => {
  org = await startTestOrg();
  // The target lives outside the relay, so what it recorded survives the relay's restart.
  target = await startSandbox({ port: 0, apiKey: API_KEY });
  dir = tempDir();
});
afterAll(async () => {
  await org.close();
  await target.close();
  dir.remove();
});

function payload(n: number): Record<string, unknown> {
  return {
    User_Id__c: `pe-user-${n}@example.com`,
    Account_Id__c: '',
    Event_Key__c: 'purchase',
    Fields__c: JSON.stringify({ n }),
    Date_Triggered__c: null,
    Idempotency_Key__c: null,
  };
}

function startRelay(store: string): Promise<TestRelay> {
  return startTestRelay(
    // This file covers the CometD transport; pubsub-events.test.ts the Pub/Sub API.
    {
      ...clientCredentialsEnv(org),
      ONCEKIT_SF_EVENT_TRANSPORT: 'cometd',
      ONCEKIT_TARGET_URL: target.url,
      ONCEKIT_TENANT: TENANT,
      ONCEKIT_API_KEY: API_KEY,
    },
    store,
  );
}

const recorded = () => target.inspect(TENANT).events;

describe('Platform Events through the relay', () => {
  it('across a relay restart on the same SQLite store, every event is recorded exactly once', async () => {
    const store = `sqlite:${dir.dir}/platform-events.db`;
    const published: PublishedEvent[] = [];

    const first = await startRelay(store);
    expect(first.relay.subscriber?.state).toBe('subscribed');
    for (let n = 1; n <= 3; n++) published.push(await org.publish(CHANNEL, payload(n)));
    await waitFor('the first three events recorded', () => recorded().length === 3);

    // Mid-stream: events arrive while the relay is stopping, and more while it is down.
    const publishing = (async () => {
      for (let n = 4; n <= 6; n++) published.push(await org.publish(CHANNEL, payload(n)));
    })();
    await first.relay.stop();
    await publishing;
    for (let n = 7; n <= 9; n++) published.push(await org.publish(CHANNEL, payload(n)));
    expect(first.relay.subscriber?.state).toBe('stopped');

    const second = await startRelay(store);
    try {
      await waitFor('all nine events recorded', () => recorded().length >= 9, 15_000);
      // Give a double every chance to show: the outbox settles everything it holds.
      await waitFor('the outbox settled', async () => {
        const counts = await second.relay.outbox.counts(TENANT);
        return counts.pending === 0 && counts.leased === 0;
      });
      const events = recorded();
      expect(events).toHaveLength(9);
      expect(events.map((event) => event.idempotencyKey).sort()).toEqual(published.map((event) => event.eventUuid).sort());
      expect(events.map((event) => event.userId).sort()).toEqual(
        Array.from({ length: 9 }, (_, index) => `pe-user-${index + 1}@example.com`).sort(),
      );
      for (const event of events) {
        expect(event).toMatchObject({ key: 'purchase', accountId: event.userId });
        expect(event.fields).toEqual({ n: Number(/pe-user-(\d+)@/.exec(event.userId)?.[1]) });
      }
      // The second relay resumed from a checkpoint (a replayId), not from "new events only" (-1).
      const subscribes = org.bayeux.filter((message) => message.channel === '/meta/subscribe');
      expect(subscribes.length).toBeGreaterThanOrEqual(2);
      const resumedFrom = subscribes.at(-1)?.replay;
      expect(typeof resumedFrom).toBe('number');
      expect(resumedFrom as number).toBeGreaterThanOrEqual((published[0] as PublishedEvent).replayId);
      const counts = await second.relay.outbox.counts(TENANT);
      expect(counts.delivered + counts.duplicate).toBe(9);
      expect(counts.dead).toBe(0);
    } finally {
      await second.relay.stop();
    }
  });
});
