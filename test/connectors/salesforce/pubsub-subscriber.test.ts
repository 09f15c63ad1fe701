import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_PLATFORM_EVENT_CHANNEL, type PlatformEventMessage } from '../../../connectors/salesforce/platform-event-mapping.js';
import type { PlatformEventSubscriber } from '../../../connectors/salesforce/platform-event-subscriber.js';
import { parsePubSubEndpoint, pubSubSessionOf } from '../../../connectors/salesforce/pubsub-client.js';
import {
  createPubSubSubscriber,
  type PubSubActivity,
  type PubSubSubscriberOptions,
  pubSubCheckpointName,
} from '../../../connectors/salesforce/pubsub-subscriber.js';
import { memoryReplayCheckpointStore } from '../../../connectors/salesforce/replay-checkpoint-store.js';
import type { SalesforceSession } from '../../../connectors/salesforce/salesforce-auth.js';
import { type FakeOrg, type FakePubSub, USER_EVENT_AVRO_SCHEMA } from '../../../sandbox/salesforce-org/index.js';
import { connectTo, startTestOrg, waitFor } from './helpers.js';

const CHANNEL = DEFAULT_PLATFORM_EVENT_CHANNEL;
const CHECKPOINT = pubSubCheckpointName(CHANNEL);

let org: FakeOrg;
let pubsub: FakePubSub;
let session: SalesforceSession;
let running: PlatformEventSubscriber[] = [];

beforeEach(async () => {
  org = await startTestOrg({ pubsub: { keepaliveMs: 100 } });
  pubsub = org.pubsub as FakePubSub;
  session = await connectTo(org);
});
afterEach(async () => {
  await Promise.all(running.map((subscriber) => subscriber.stop()));
  running = [];
  await org.close();
});

function payload(n: number): Record<string, unknown> {
  return {
    User_Id__c: `ps-${n}@example.com`,
    Event_Key__c: 'purchase',
    Fields__c: JSON.stringify({ n }),
    Date_Triggered__c: 1_700_000_000_000 + n,
  };
}

function subscriber(overrides: Partial<PubSubSubscriberOptions> & Pick<PubSubSubscriberOptions, 'sink'>) {
  const activity: PubSubActivity[] = [];
  const created = createPubSubSubscriber({
    session: pubSubSessionOf(session),
    checkpoints: memoryReplayCheckpointStore(),
    endpoint: pubsub.url,
    retryDelay: { initialMs: 10, maxMs: 50 },
    subscribeGraceMs: 50,
    onActivity: (entry) => activity.push(entry),
    ...overrides,
  });
  running.push(created);
  return { subscriber: created, activity };
}

describe('the Pub/Sub subscriber against the fake org’s Pub/Sub API (real gRPC client)', () => {
  it('delivers events in order, decoded from Avro with one GetSchema, keyed by their EventUuid, and checkpoints their replay id', async () => {
    const received: PlatformEventMessage[] = [];
    const checkpoints = memoryReplayCheckpointStore();
    const { subscriber: sub } = subscriber({ checkpoints, sink: async (event) => void received.push(event) });
    await sub.start();
    expect(sub.state).toBe('subscribed');
    const published = [1, 2, 3].map((n) => pubsub.publish(CHANNEL, payload(n)));
    await waitFor('three events', () => received.length === 3);
    expect(received.map((event) => event.eventUuid)).toEqual(published.map((event) => event.eventUuid));
    expect(received[0]?.payload).toMatchObject({
      User_Id__c: 'ps-1@example.com',
      Event_Key__c: 'purchase',
      Fields__c: '{"n":1}',
      Account_Id__c: null,
      Date_Triggered__c: new Date(1_700_000_000_001).toISOString(),
    });
    expect(received.every((event) => event.undecodable === undefined)).toBe(true);
    expect(pubsub.schemaRequests).toHaveLength(1);
    await waitFor('the checkpoint', () => checkpoints.current(CHECKPOINT) === published[2]?.replayId.toString('base64'));
    expect(pubsub.fetchRequests[0]).toMatchObject({ topic: CHANNEL, replayPreset: 'LATEST', numRequested: 100 });
  });

  it('asks for one batch at a time, and for the next only after the sink took the previous one', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const received: string[] = [];
    const { subscriber: sub } = subscriber({
      batchSize: 5,
      replayWithoutCheckpoint: 'EARLIEST',
      sink: async (event) => {
        await gate;
        received.push(event.eventUuid ?? '');
      },
    });
    for (let n = 0; n < 40; n++) pubsub.publish(CHANNEL, payload(n));
    await sub.start();
    await waitFor('the first batch sent', () => pubsub.subscriptions()[0]?.sent === 5);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Nothing more was asked for while the sink holds the batch: 35 events wait at the server.
    expect(pubsub.subscriptions()[0]).toMatchObject({ sent: 5, pendingRequested: 0, waiting: 35 });
    expect(pubsub.fetchRequests.map((request) => request.numRequested)).toEqual([5]);
    release();
    await waitFor('all 40 events', () => received.length === 40);
    expect(pubsub.fetchRequests.every((request) => request.numRequested === 5)).toBe(true);
  });

  it('turns a poison event into an undecodable message for the sink and delivers the events after it', async () => {
    const received: PlatformEventMessage[] = [];
    const { subscriber: sub, activity } = subscriber({ sink: async (event) => void received.push(event) });
    await sub.start();
    pubsub.publish(CHANNEL, payload(1));
    const poison = pubsub.publishPoison(CHANNEL);
    pubsub.publish(CHANNEL, payload(3));
    await waitFor('three messages', () => received.length === 3);
    expect(received[1]).toMatchObject({ eventUuid: poison.eventUuid, payload: {} });
    expect(received[1]?.undecodable).toMatch(/Avro payload does not decode/);
    expect(received[2]?.payload.User_Id__c).toBe('ps-3@example.com');
    expect(activity.some((entry) => entry.type === 'undecodable')).toBe(true);
    expect(sub.state).toBe('subscribed');
  });

  it('recovers from a stream error and from an expired token, resuming after the last event the sink took', async () => {
    const received: string[] = [];
    const { subscriber: sub, activity } = subscriber({ sink: async (event) => void received.push(event.eventUuid ?? '') });
    await sub.start();
    const first = pubsub.publish(CHANNEL, payload(1));
    await waitFor('the first event', () => received.length === 1);
    await waitFor('its checkpoint', () => activity.some((entry) => entry.type === 'checkpointed'));

    pubsub.failStreams(grpc.status.UNAVAILABLE, 'node restarting');
    const second = pubsub.publish(CHANNEL, payload(2));
    await waitFor('the second event after the stream error', () => received.length === 2);
    expect(activity.some((entry) => entry.type === 'stream-failed')).toBe(true);

    const grantsBefore = org.tokenGrants.length;
    org.invalidateTokens();
    const third = pubsub.publish(CHANNEL, payload(3));
    await waitFor('the third event after the token expired', () => received.length === 3, 8000);
    expect(activity.some((entry) => entry.type === 'auth-failed')).toBe(true);
    expect(activity.some((entry) => entry.type === 'token-refreshed')).toBe(true);
    expect(org.tokenGrants.length).toBeGreaterThan(grantsBefore);
    expect(received).toEqual([first.eventUuid, second.eventUuid, third.eventUuid]);
    // Each reconnect resumed after the checkpoint (CUSTOM), never from LATEST.
    const firsts = pubsub.fetchRequests.filter((request) => request.replayPreset !== null);
    expect(firsts.slice(1).every((request) => request.replayPreset === 'CUSTOM')).toBe(true);
  });

  it('resumes from EARLIEST when the server no longer has the checkpoint’s replay id, and logs it', async () => {
    const old = pubsub.publish(CHANNEL, payload(1));
    const kept = pubsub.publish(CHANNEL, payload(2));
    pubsub.expireEventsThrough(CHANNEL, old.position);
    const received: string[] = [];
    const checkpoints = memoryReplayCheckpointStore({ [CHECKPOINT]: Buffer.from([0, 0, 0, 0, 0, 0, 0, 7]).toString('base64') });
    const { subscriber: sub, activity } = subscriber({ checkpoints, sink: async (event) => void received.push(event.eventUuid ?? '') });
    await sub.start();
    await waitFor('the retained event', () => received.length === 1);
    expect(received).toEqual([kept.eventUuid]);
    expect(activity.some((entry) => entry.type === 'checkpoint-expired')).toBe(true);
    expect(pubsub.fetchRequests.filter((request) => request.replayPreset !== null).map((request) => request.replayPreset)).toEqual([
      'CUSTOM',
      'EARLIEST',
    ]);
  });

  it('moves the checkpoint to the latest replay id on an idle keepalive, so a quiet channel does not fall out of retention', async () => {
    const checkpoints = memoryReplayCheckpointStore();
    const before = pubsub.publish(CHANNEL, payload(1));
    const { subscriber: sub } = subscriber({ checkpoints, sink: async () => {} });
    await sub.start();
    expect(session.orgId).toBe(org.orgId);
    await waitFor('a checkpoint from the keepalive', () => checkpoints.current(CHECKPOINT) !== null);
    expect(checkpoints.current(CHECKPOINT)).toBe(before.replayId.toString('base64'));
  });

  it('never checkpoints an empty response that predates its last request: the events it was not sent yet are not skipped', async () => {
    const checkpoints = memoryReplayCheckpointStore();
    const { subscriber: sub, activity } = subscriber({ checkpoints, sink: async () => {} });
    await sub.start();
    const first = pubsub.publish(CHANNEL, payload(1));
    await waitFor('the first checkpoint', () => checkpoints.current(CHECKPOINT) === first.replayId.toString('base64'));
    // Written before the server saw the stream's request (it owed none then), naming a position far ahead: taking it
    // would skip every event up to there.
    pubsub.sendEmptyResponse(CHANNEL, { latestPosition: first.position + 1000, pendingNumRequested: 0 });
    const second = pubsub.publish(CHANNEL, payload(2));
    await waitFor('the second checkpoint', () => checkpoints.current(CHECKPOINT) === second.replayId.toString('base64'));
    const checkpointed = activity.flatMap((entry) => (entry.type === 'checkpointed' ? [entry.replayId] : []));
    const positions = checkpointed.map((replayId) => Buffer.from(replayId, 'base64').readBigUInt64BE());
    expect(positions.every((position) => position <= BigInt(second.position))).toBe(true);
  });

  it('does not reopen a stream while the outbox is full: a reconnect asks for nothing until it drains', async () => {
    let outboxFull = false;
    const taken: string[] = [];
    const { subscriber: sub, activity } = subscriber({
      sink: async (event) => void taken.push(event.eventUuid ?? ''),
      backlog: { size: async () => (outboxFull ? 1000 : 0), max: 1000, pollMs: 20 },
    });
    await sub.start();
    const first = pubsub.publish(CHANNEL, payload(1));
    await waitFor('the first event', () => taken.length === 1);
    outboxFull = true;
    pubsub.failStreams();
    await waitFor('the reconnect', () => activity.some((entry) => entry.type === 'reconnecting'));
    const opened = pubsub.fetchRequests.length;
    pubsub.publish(CHANNEL, payload(2));
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(pubsub.fetchRequests.length).toBe(opened);
    expect(taken).toEqual([first.eventUuid]);
    outboxFull = false;
    await waitFor('the second event once the outbox drained', () => taken.length === 2);
    expect(pubsub.fetchRequests.slice(opened)[0]).toMatchObject({ replayPreset: 'CUSTOM', replayFrom: first.position });
  });

  it('started on a full outbox: start resolves, nothing is asked for until the outbox drains', async () => {
    let outboxFull = true;
    const taken: string[] = [];
    const { subscriber: sub, activity } = subscriber({
      sink: async (event) => void taken.push(event.eventUuid ?? ''),
      backlog: { size: async () => (outboxFull ? 1000 : 0), max: 1000, pollMs: 20 },
      replayWithoutCheckpoint: 'EARLIEST',
    });
    const published = pubsub.publish(CHANNEL, payload(1));
    await sub.start();
    expect(activity.some((entry) => entry.type === 'waiting-for-outbox')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(pubsub.fetchRequests).toHaveLength(0);
    outboxFull = false;
    await waitFor('the event once the outbox drained', () => taken.length === 1);
    expect(taken).toEqual([published.eventUuid]);
  });

  it('a sink failure before the first checkpoint gets the event again, and never events from before the subscriber started', async () => {
    const old = [pubsub.publish(CHANNEL, payload(1)), pubsub.publish(CHANNEL, payload(2))];
    const taken: string[] = [];
    let failures = 1;
    const { subscriber: sub, activity } = subscriber({
      sink: async (event) => {
        if (failures > 0) {
          failures--;
          throw new Error('the outbox is down');
        }
        taken.push(event.eventUuid ?? '');
      },
    });
    await sub.start();
    const fresh = [pubsub.publish(CHANNEL, payload(3)), pubsub.publish(CHANNEL, payload(4))];
    await waitFor('both new events taken', () => taken.length === 2);
    expect(taken).toEqual(fresh.map((event) => event.eventUuid));
    expect(taken).not.toContain(old[0]?.eventUuid);
    expect(activity.some((entry) => entry.type === 'sink-failed')).toBe(true);
    // The retry had no checkpoint: it replayed from EARLIEST and skipped what came before the first event received.
    expect(pubsub.fetchRequests.filter((request) => request.replayPreset !== null).map((request) => request.replayPreset)).toEqual([
      'LATEST',
      'EARLIEST',
    ]);
  });

  it('a managed subscription: replay ids are committed to the server after the sink took the events, and a new stream resumes there', async () => {
    await org.close();
    org = await startTestOrg({ pubsub: { keepaliveMs: 60_000, managedSubscriptions: { Oncekit_Events: { topic: CHANNEL } } } });
    pubsub = org.pubsub as FakePubSub;
    session = await connectTo(org);
    const received: string[] = [];
    const checkpoints = memoryReplayCheckpointStore();
    const sink = async (event: PlatformEventMessage) => void received.push(event.eventUuid ?? '');
    const first = subscriber({ checkpoints, managedSubscription: 'Oncekit_Events', sink });
    await first.subscriber.start();
    const before = [1, 2, 3].map((n) => pubsub.publish(CHANNEL, payload(n)));
    await waitFor('three events', () => received.length === 3);
    await waitFor('the commit', () => pubsub.committed('Oncekit_Events') === before[2]?.position);
    expect(first.activity.some((entry) => entry.type === 'committed')).toBe(true);
    await first.subscriber.stop();

    const whileDown = [4, 5].map((n) => pubsub.publish(CHANNEL, payload(n)));
    const second = subscriber({ checkpoints, managedSubscription: 'Oncekit_Events', sink });
    await second.subscriber.start();
    await waitFor('the events published while down', () => received.length === 5);
    expect(received).toEqual([...before, ...whileDown].map((event) => event.eventUuid));
    // Salesforce kept the position: nothing went to the checkpoint store.
    expect(checkpoints.saves).toEqual([]);
  });

  it('an endpoint that does not answer is never reported as subscribed: it keeps reconnecting with backoff', async () => {
    const { subscriber: sub, activity } = subscriber({ endpoint: 'http://127.0.0.1:1', sink: async () => {} });
    void sub.start();
    await waitFor('two failed attempts', () => activity.filter((entry) => entry.type === 'stream-failed').length >= 2);
    expect(sub.state).toBe('recovering');
    expect(activity.some((entry) => entry.type === 'subscribed')).toBe(false);
    const delays = activity.flatMap((entry) => (entry.type === 'reconnecting' ? [entry.delayMs] : []));
    expect(delays[1]).toBeGreaterThan(delays[0] ?? Number.POSITIVE_INFINITY);
  });

  it('reopens a stream on which the server sent nothing, not even a keepalive, for the idle timeout', async () => {
    await org.close();
    org = await startTestOrg({ pubsub: { keepaliveMs: 60_000 } });
    pubsub = org.pubsub as FakePubSub;
    session = await connectTo(org);
    const received: string[] = [];
    const { subscriber: sub, activity } = subscriber({
      idleTimeoutMs: 150,
      sink: async (event) => void received.push(event.eventUuid ?? ''),
    });
    await sub.start();
    await waitFor('a reconnect for silence', () =>
      activity.some((entry) => entry.type === 'reconnecting' && /no response or keepalive/.test(entry.reason)),
    );
    await waitFor('subscribed again', () => sub.state === 'subscribed');
    const event = pubsub.publish(CHANNEL, payload(1));
    await waitFor('the event on the new stream', () => received.length === 1);
    expect(received).toEqual([event.eventUuid]);
  });

  it('refuses plaintext to any host but loopback', () => {
    expect(parsePubSubEndpoint('http://127.0.0.1:7000')).toEqual({ address: '127.0.0.1:7000', plaintext: true });
    expect(parsePubSubEndpoint('api.pubsub.salesforce.com:7443')).toEqual({ address: 'api.pubsub.salesforce.com:7443', plaintext: false });
    expect(() => parsePubSubEndpoint('http://api.pubsub.salesforce.com:7443')).toThrow(/ONCEKIT_SF_PUBSUB_ENDPOINT: plaintext/);
    expect(() => parsePubSubEndpoint('http://10.0.0.5:7443')).toThrow(/only for a loopback/);
  });

  it('the fake’s event schema has exactly the fields of the channel mapping', async () => {
    const { DEFAULT_PLATFORM_EVENT_FIELDS } = await import('../../../connectors/salesforce/platform-event-mapping.js');
    const custom = USER_EVENT_AVRO_SCHEMA.fields.map((field) => field.name).filter((name) => name.endsWith('__c'));
    expect(custom.sort()).toEqual(Object.values(DEFAULT_PLATFORM_EVENT_FIELDS).sort());
  });
});
