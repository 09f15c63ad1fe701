import './helpers.js';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  keygenHeaders,
  keygenKeys,
  keygenWebhookBody,
  metricValue,
  request,
  SEGMENT_SECRET,
  segmentSignature,
  startTestRelay,
  type TestRelay,
  tempDir,
  waitFor,
  waitForSettled,
} from './helpers.js';

/** A Segment event name and a Keygen event type that make the mapping throw an unexpected (not an input) error. */
const EXPLODING_EVENT = 'Explode The Mapping';
const EXPLODING_KEYGEN_EVENT = 'license.explode';

// The real mappings, except that they throw a TypeError for the markers above: a mapping bug, as the routes see it.
vi.mock('../../../connectors/segment/mapping.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../connectors/segment/mapping.js')>();
  return {
    ...original,
    mapTrackEvent: (...args: Parameters<typeof original.mapTrackEvent>) => {
      const event = args[0] as { event?: unknown };
      if (event.event === EXPLODING_EVENT) throw new TypeError('mapping bug');
      return original.mapTrackEvent(...args);
    },
  };
});
vi.mock('../../../connectors/keygen/keygen-event.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../connectors/keygen/keygen-event.js')>();
  return {
    ...original,
    keygenWebhookToUserEvent: (...args: Parameters<typeof original.keygenWebhookToUserEvent>) => {
      if (args[0].event === EXPLODING_KEYGEN_EVENT) throw new TypeError('mapping bug');
      return original.keygenWebhookToUserEvent(...args);
    },
  };
});

const keygen = keygenKeys();
const TOKEN = 'a1b2c3d4'.repeat(8); // 64 characters, as Keygen sends

let harness: TestRelay;

beforeEach(async () => {
  harness = await startTestRelay(
    { ONCEKIT_KEYGEN_PUBLIC_KEY: keygen.publicKeyHex, ONCEKIT_SEGMENT_SHARED_SECRET: SEGMENT_SECRET },
    'memory',
  );
});
afterEach(async () => {
  await harness.relay.stop();
});

function events() {
  const sandbox = harness.relay.sandbox;
  if (!sandbox) throw new Error('expected the embedded sandbox');
  return sandbox.inspect(harness.relay.target.tenant).events;
}

const deadLetters = () => harness.relay.outbox.listDead(harness.relay.target.tenant);
const unmappableCount = (source: string) => metricValue(harness.relay.url, `oncekit_unmappable_events_total{source="${source}"}`);

async function totalInOutbox(): Promise<number> {
  const counts = await harness.relay.outbox.counts(harness.relay.target.tenant);
  return Object.values(counts).reduce((sum, count) => sum + count, 0);
}

function sendKeygen(body: string, headers = keygenHeaders(body, new URL(harness.relay.url).host, keygen.privateKey)) {
  return request(`${harness.relay.url}/webhooks/keygen`, { method: 'POST', headers, body });
}

describe('POST /webhooks/keygen', () => {
  it('accepts a signed webhook; a redelivery and a retried event (new id, same token) make one user event', async () => {
    const body = keygenWebhookBody({ id: 'evt-1', token: TOKEN, email: 'buyer@example.com' });
    const first = await sendKeygen(body);
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ status: 'accepted', idempotencyKey: TOKEN, keyDecision: 'kept' });

    const redelivery = await sendKeygen(body);
    expect(redelivery.status).toBe(200);
    expect(redelivery.json).toEqual({ status: 'duplicate', idempotencyToken: TOKEN });

    const retried = await sendKeygen(keygenWebhookBody({ id: 'evt-2-retry', token: TOKEN, email: 'buyer@example.com' }));
    expect(retried.status).toBe(200);
    expect(retried.json).toEqual({ status: 'duplicate', idempotencyToken: TOKEN });

    await waitForSettled(harness.relay, 1);
    expect(events().map((event) => ({ ...event, id: undefined, dateReceived: undefined, dateTriggered: undefined }))).toEqual([
      expect.objectContaining({
        userId: 'buyer@example.com',
        accountId: 'buyer@example.com',
        key: 'license_created',
        fields: { keygenResourceType: 'licenses', keygenResourceId: 'lic-1', keygenName: 'Pro license' },
        idempotencyKey: TOKEN,
      }),
    ]);
    expect(events()[0]?.dateTriggered).toBe(Date.parse('2026-01-02T03:04:05.000Z'));
    expect(await totalInOutbox()).toBe(1);
  });

  type Tamper = (headers: Record<string, string>, body: string, host: string) => void;
  it.each<[string, Tamper]>([
    ['no signature', (headers) => delete headers['keygen-signature']],
    [
      'a signature over another host',
      (headers, body) => Object.assign(headers, keygenHeaders(body, 'evil.example.com', keygen.privateKey)),
    ],
    ['a signature from another key', (headers, body, host) => Object.assign(headers, keygenHeaders(body, host, keygenKeys().privateKey))],
    ['a digest of another body', (headers) => (headers.digest = 'sha-256=AAAA')],
  ])('refuses %s with 401 and processes nothing', async (_name, tamper) => {
    const body = keygenWebhookBody({ id: 'evt-bad', token: 'f'.repeat(64), email: 'mallory@example.com' });
    const host = new URL(harness.relay.url).host;
    const headers = keygenHeaders(body, host, keygen.privateKey);
    tamper(headers, body, host);
    const answer = await sendKeygen(body, headers);
    expect(answer.status).toBe(401);
    expect(answer.json).toMatchObject({ error: 'bad_signature' });
    expect(await totalInOutbox()).toBe(0);
    // Not processed means not remembered either: the genuine delivery is accepted afterwards.
    const genuine = await sendKeygen(body);
    expect(genuine.json).toMatchObject({ status: 'accepted' });
  });

  it('answers a payload without a user with 400 naming the field', async () => {
    const body = JSON.stringify({
      data: {
        id: 'evt-3',
        type: 'webhook-events',
        meta: { idempotencyToken: 'e'.repeat(64) },
        attributes: { event: 'license.created', payload: JSON.stringify({ data: { type: 'licenses', id: 'x', attributes: {} } }) },
      },
    });
    const answer = await sendKeygen(body);
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({
      error: 'invalid_input',
      issues: expect.arrayContaining([expect.objectContaining({ field: 'payload' })]),
    });
    // Nothing to send, but the event is kept as a dead letter, once however often Keygen delivers it.
    expect((await sendKeygen(body)).status).toBe(400);
    const dead = await deadLetters();
    expect(dead).toEqual([
      expect.objectContaining({ source: 'keygen', sourceId: 'e'.repeat(64), state: 'dead', input: null, attempts: [] }),
    ]);
    expect(dead[0]?.deadReason).toMatch(/^could not be mapped: .*payload: no user id at/);
    expect(dead[0]?.unmappable).toEqual({ text: body, bytes: Buffer.byteLength(body), truncated: false });
    expect(await totalInOutbox()).toBe(1);
    expect(await unmappableCount('keygen')).toBe(1);
  });

  it('acknowledges an event whose mapping fails unexpectedly as dead-lettered once its dead letter is durable, never a 500', async () => {
    const body = keygenWebhookBody({ id: 'evt-x', token: 'd'.repeat(64), email: 'x@example.com', event: EXPLODING_KEYGEN_EVENT });
    const answer = await sendKeygen(body);
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ status: 'dead-lettered', reason: 'could not be mapped: TypeError: mapping bug' });
    const [dead] = await deadLetters();
    expect(dead).toMatchObject({ id: (answer.json as { outboxId: string }).outboxId, sourceId: 'd'.repeat(64), input: null });
    expect(dead?.unmappable?.text).toBe(body);
    // Keygen's retry (a new resource, the same token) records nothing new.
    const retry = keygenWebhookBody({ id: 'evt-x-retry', token: 'd'.repeat(64), email: 'x@example.com', event: EXPLODING_KEYGEN_EVENT });
    expect((await sendKeygen(retry)).json).toMatchObject({ status: 'dead-lettered', outboxId: dead?.id });
    expect(await totalInOutbox()).toBe(1);
    // A body that is no webhook event at all (no token) is only a 400.
    const notAnEvent = await sendKeygen(JSON.stringify({ data: { type: 'webhook-events' } }));
    expect(notAnEvent.status).toBe(400);
    expect(await totalInOutbox()).toBe(1);
  });
});

describe('POST /segment', () => {
  const track = {
    type: 'track',
    event: 'Order Completed',
    userId: 'segment-user-1',
    messageId: 'ajs-next-1700000000000-abcdef',
    properties: { revenue: 42 },
    timestamp: '2026-01-02T03:04:05.000Z',
  };

  function sendSegment(body: string, signature = segmentSignature(body)) {
    return request(`${harness.relay.url}/segment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signature': signature },
      body,
    });
  }

  it('turns a signed track call into a user event keyed by its messageId', async () => {
    const answer = await sendSegment(JSON.stringify(track));
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ results: [{ index: 0, status: 'accepted', idempotencyKey: track.messageId }] });
    await waitForSettled(harness.relay, 1);
    expect(events()).toEqual([
      expect.objectContaining({ userId: 'segment-user-1', accountId: 'segment-user-1', idempotencyKey: track.messageId }),
    ]);
    // A redelivery by Segment is one event.
    expect((await sendSegment(JSON.stringify(track))).status).toBe(200);
    await waitForSettled(harness.relay, 1);
    expect(events()).toHaveLength(1);
  });

  it.each([
    ['no signature', undefined],
    ['a signature with another secret', 'other-secret'],
    ['a malformed signature', 'not-hex'],
  ])('refuses %s with 401 and processes nothing', async (name, secret) => {
    const body = JSON.stringify(track);
    const signature = secret === undefined ? '' : secret === 'not-hex' ? 'zz' : segmentSignature(body, secret);
    const answer = await request(`${harness.relay.url}/segment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(name === 'no signature' ? {} : { 'x-signature': signature }) },
      body,
    });
    expect(answer.status).toBe(401);
    expect(answer.json).toMatchObject({ error: 'bad_signature' });
    expect(await totalInOutbox()).toBe(0);
  });

  it('gives each event without a messageId a fresh source id, so a batch with an empty messageId is accepted', async () => {
    const keyless = { ...track, messageId: undefined };
    const batch = [keyless, { ...track, messageId: '' }, keyless];
    const answer = await sendSegment(JSON.stringify(batch));
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({
      results: [0, 1, 2].map((index) => ({ index, status: 'accepted', idempotencyKey: null })),
    });
    await waitForSettled(harness.relay, 3);
    expect(events()).toHaveLength(3);
  });

  it('refuses an event whose type is not a string per event, naming type, never with a 500', async () => {
    const types: unknown[] = [{ toString: 1 }, { toString: 1, valueOf: 1 }, ['track'], 7, null, true];
    const batch = types.map((type, n) => ({ ...track, type, messageId: `m-type-${n}` }));
    const answer = await sendSegment(JSON.stringify([...batch, track]));
    expect(answer.status).toBe(200);
    const results = (answer.json as { results: { index: number; status: string; message?: string }[] }).results;
    expect(results.slice(0, types.length).map((result) => result.status)).toEqual(types.map(() => 'rejected'));
    for (const result of results.slice(0, types.length)) expect(result.message).toMatch(/\]\.type: expected a string/);
    expect(results.at(-1)).toMatchObject({ status: 'accepted' });
    const single = await sendSegment(JSON.stringify({ ...track, type: { toString: 1 } }));
    expect(single.status).toBe(400);
    expect(single.json).toMatchObject({ error: 'invalid_event', message: expect.stringMatching(/type/) });
  });

  it('skips calls other than track, and refuses an anonymous track with 400', async () => {
    const identify = await sendSegment(JSON.stringify({ type: 'identify', userId: 'u', messageId: 'm-identify-1' }));
    expect(identify.status).toBe(200);
    expect(identify.json).toMatchObject({ results: [{ status: 'skipped' }] });
    const anonymous = await sendSegment(JSON.stringify({ ...track, userId: undefined, anonymousId: 'anon-1' }));
    expect(anonymous.status).toBe(400);
    expect(String((anonymous.json as { message: string }).message)).toMatch(/userId/);
    // Nothing to send: the anonymous track is only a dead letter.
    await waitFor('nothing to send', async () => (await harness.relay.outbox.counts(harness.relay.target.tenant)).pending === 0);
    expect(await harness.relay.outbox.counts(harness.relay.target.tenant)).toMatchObject({ dead: 1, delivered: 0 });
  });

  it('records every event it cannot map as a dead letter (reason, raw event, once per event); an unexpected mapping error is acknowledged as dead-lettered and the rest of the batch proceeds', async () => {
    const exploding = { ...track, event: EXPLODING_EVENT, messageId: 'm-explode-1' };
    const anonymous = { ...track, userId: undefined, anonymousId: 'anon-2', messageId: 'm-anon-1' };
    const keylessBroken = { ...track, event: EXPLODING_EVENT, messageId: undefined };
    const good = { ...track, messageId: 'm-good-1' };
    const body = JSON.stringify([exploding, anonymous, keylessBroken, good]);
    const answer = await sendSegment(body);
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({
      results: [
        { index: 0, status: 'dead-lettered', message: 'could not be mapped: TypeError: mapping bug' },
        { index: 1, status: 'rejected', message: expect.stringMatching(/userId/) },
        { index: 2, status: 'dead-lettered', message: 'could not be mapped: TypeError: mapping bug' },
        { index: 3, status: 'accepted', idempotencyKey: 'm-good-1' },
      ],
    });
    await waitForSettled(harness.relay, 4);
    expect(events().map((event) => event.idempotencyKey)).toEqual(['m-good-1']);
    const dead = await deadLetters();
    expect(dead.map((entry) => entry.sourceId).slice(0, 2)).toEqual(['m-explode-1', 'm-anon-1']);
    expect(dead[2]?.sourceId).toMatch(/^raw-sha256:[0-9a-f]{64}$/);
    expect(dead.map((entry) => JSON.parse(entry.unmappable?.text ?? 'null'))).toEqual(
      [exploding, anonymous, keylessBroken].map((event) => JSON.parse(JSON.stringify(event))),
    );
    expect(dead[1]?.deadReason).toMatch(/^could not be mapped: .*userId/);
    expect(await unmappableCount('segment')).toBe(3);

    // Segment redelivers the batch: nothing new, the keyless broken event included (its identity is its content).
    expect((await sendSegment(body)).status).toBe(200);
    expect(await harness.relay.outbox.counts(harness.relay.target.tenant)).toMatchObject({ dead: 3, delivered: 1 });
    expect(await unmappableCount('segment')).toBe(3);

    // One event alone: dead-lettered is a 200 too (Segment must not retry it for hours).
    const single = await sendSegment(JSON.stringify({ ...exploding, messageId: 'm-explode-2' }));
    expect(single.status).toBe(200);
    expect(single.json).toEqual({
      results: [{ index: 0, status: 'dead-lettered', message: 'could not be mapped: TypeError: mapping bug' }],
    });
    // No event at all: a 400, nothing recorded.
    const invalidJson = '{"type": "track",';
    expect((await sendSegment(invalidJson)).status).toBe(400);
    expect((await deadLetters()).length).toBe(4);
  });
});

describe('POST /segment across a restart', () => {
  it('does not take a new event without a messageId for an older one after a restart', async () => {
    const dir = tempDir();
    const store = `sqlite:${join(dir.dir, 'state.db')}`;
    const body = JSON.stringify({ type: 'track', event: 'Signup', userId: 'restart-user' });
    try {
      for (const round of [1, 2]) {
        const restarted = await startTestRelay({ ONCEKIT_SEGMENT_SHARED_SECRET: SEGMENT_SECRET }, store);
        try {
          const answer = await request(`${restarted.relay.url}/segment`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-signature': segmentSignature(body) },
            body,
          });
          expect(answer.status).toBe(200);
          // Each process's first request has the same Fastify request id: the second event must still be sent.
          await waitForSettled(restarted.relay, round);
        } finally {
          await restarted.relay.stop();
        }
      }
    } finally {
      dir.remove();
    }
  });
});
