import './helpers.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULT_PLATFORM_EVENT_CHANNEL } from '../../../connectors/salesforce/platform-event-mapping.js';
import type { FakeOrg, PublishedEvent } from '../../../sandbox/salesforce-org/index.js';
import { startSandbox } from '../../../sandbox/target/index.js';
import type { Sandbox } from '../../../sandbox/target/server.js';
import type { UnmappableEvent } from '../../../shared/outbox/types.js';
import { clientCredentialsEnv, startTestOrg } from '../salesforce/helpers.js';
import { metricValue, startTestRelay, type TestRelay, tempDir, waitFor, waitForSettled } from './helpers.js';

/** An Event_Key__c that makes the mapping throw an unexpected (not an input) error: a bug, as the relay sees it. */
const EXPLODING_KEY = 'explode-the-mapping';

// The real mapping, except that it throws a TypeError for EXPLODING_KEY: a mapping that throws something other than
// InvalidInputError, which no payload can make the real one do once every walk is bounded.
vi.mock('../../../connectors/salesforce/platform-event-mapping.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../connectors/salesforce/platform-event-mapping.js')>();
  return {
    ...original,
    platformEventToUserEventInput: (...args: Parameters<typeof original.platformEventToUserEventInput>) => {
      if (args[0].payload.Event_Key__c === EXPLODING_KEY) throw new TypeError('cannot read properties of undefined (reading "x")');
      return original.platformEventToUserEventInput(...args);
    },
  };
});

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

  it('a Platform Event that cannot be mapped (deeply nested Fields__c, or a mapping that throws) becomes a dead letter and never blocks the events behind it', async () => {
    const store = `sqlite:${dir.dir}/platform-events-poison.db`;
    const before = recorded().length;
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    const first = await startRelay(store);
    let last: PublishedEvent;
    const nested: PublishedEvent[] = [];
    try {
      await org.publish(CHANNEL, payload(101));
      nested.push(await org.publish(CHANNEL, { ...payload(102), Fields__c: deep }));
      nested.push(await org.publish(CHANNEL, { ...payload(103), Event_Key__c: EXPLODING_KEY }));
      await org.publish(CHANNEL, payload(104));
      last = await org.publish(CHANNEL, payload(105));
      await waitFor('the events around the poison ones recorded', () => recorded().length === before + 3);
      await waitForSettled(first.relay, 5);
      expect(
        recorded()
          .slice(before)
          .map((event) => event.userId),
      ).toEqual(['pe-user-101@example.com', 'pe-user-104@example.com', 'pe-user-105@example.com']);

      const dead = await first.relay.outbox.listDead(TENANT);
      expect(dead.map((entry) => entry.sourceId)).toEqual(nested.map((event) => event.eventUuid));
      const [tooDeep, exploded] = dead;
      expect(tooDeep).toMatchObject({ source: 'salesforce-event', state: 'dead', input: null, attempts: [] });
      expect(tooDeep?.deadReason).toMatch(/could not be mapped: .*Fields__c\.a\.a.*nested deeper than/);
      expect(tooDeep?.unmappable).toMatchObject({ truncated: true });
      expect(tooDeep?.unmappable?.text).toContain('"User_Id__c":"pe-user-102@example.com"');
      expect(Buffer.byteLength(tooDeep?.unmappable?.text ?? '')).toBeLessThanOrEqual(16 * 1024);
      expect(exploded?.deadReason).toBe('could not be mapped: TypeError: cannot read properties of undefined (reading "x")');
      expect(exploded?.unmappable).toMatchObject({ truncated: false });
      expect(JSON.parse(exploded?.unmappable?.text ?? '{}')).toMatchObject({
        replayId: nested[1]?.replayId,
        EventUuid: nested[1]?.eventUuid,
        payload: { Event_Key__c: EXPLODING_KEY },
      });
      expect(await metricValue(first.relay.url, 'oncekit_unmappable_events_total{source="salesforce-event"}')).toBe(2);
      expect(await first.relay.outbox.counts(TENANT, { source: 'salesforce-event' })).toMatchObject({ dead: 2 });
    } finally {
      await first.relay.stop();
    }

    // The checkpoint moved past them: a restart neither records them again nor resends anything.
    const second = await startRelay(store);
    try {
      const subscribes = org.bayeux.filter((message) => message.channel === '/meta/subscribe');
      expect(subscribes.at(-1)?.replay).toBe(last.replayId);
      await org.publish(CHANNEL, payload(106));
      await waitFor('the next event recorded', () => recorded().length === before + 4);
      // Recorded by the target a moment before the worker settles it.
      await waitForSettled(second.relay, 6);
      expect(await second.relay.outbox.counts(TENANT, { source: 'salesforce-event' })).toMatchObject({ dead: 2, delivered: 4 });
      expect(await metricValue(second.relay.url, 'oncekit_unmappable_events_total{source="salesforce-event"}')).toBe(0);
    } finally {
      await second.relay.stop();
    }
  });

  it('when the dead letter of an unmappable Platform Event cannot be recorded (store down), the event comes again, then the ones behind it', async () => {
    const store = `sqlite:${dir.dir}/platform-events-store-down.db`;
    const before = recorded().length;
    const running = await startRelay(store);
    const outbox = running.relay.outbox;
    const record = outbox.recordUnmappable.bind(outbox);
    const calls: UnmappableEvent[][] = [];
    outbox.recordUnmappable = async (events) => {
      calls.push([...events]);
      if (calls.length === 1) throw new Error('the store is down');
      return record(events);
    };
    try {
      const poison = await org.publish(CHANNEL, { ...payload(201), Fields__c: 'not json' });
      await org.publish(CHANNEL, payload(202));
      await waitFor('the event behind the poison one recorded', () => recorded().length === before + 1, 15_000);
      expect(calls.length).toBeGreaterThanOrEqual(2);
      expect(calls.map((call) => call[0]?.sourceId)).toEqual(calls.map(() => poison.eventUuid));
      const dead = await outbox.listDead(TENANT);
      expect(dead.map((entry) => entry.sourceId)).toEqual([poison.eventUuid]);
      expect(dead[0]?.deadReason).toContain('Fields__c: is not valid JSON');
    } finally {
      await running.relay.stop();
    }
  });
});
