import './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OutboxStoreError } from '../../../shared/outbox/store-support.js';
import type { OutboxStore } from '../../../shared/outbox/types.js';
import {
  type HttpAnswer,
  keygenHeaders,
  keygenKeys,
  RELAY_SECRET,
  request,
  SEGMENT_SECRET,
  segmentSignature,
  startTestRelay,
  type TestRelay,
} from './helpers.js';

/**
 * Malformed bodies on every POST route: each is a 4xx that names what is wrong, never a 500, and nothing is enqueued.
 * The signed webhooks get correctly signed malformed bodies, so the parsing behind the signature check is reached.
 */

const keygen = keygenKeys();
let harness: TestRelay;

beforeAll(async () => {
  harness = await startTestRelay(
    { ONCEKIT_KEYGEN_PUBLIC_KEY: keygen.publicKeyHex, ONCEKIT_SEGMENT_SHARED_SECRET: SEGMENT_SECRET },
    'memory',
  );
});
afterAll(async () => {
  await harness?.relay.stop();
});

type Route = 'by-id' | 'by-lead' | 'by-contact' | 'keygen' | 'segment';
const ROUTES: readonly Route[] = ['by-id', 'by-lead', 'by-contact', 'keygen', 'segment'];

function send(route: Route, body: string | Buffer, contentType = 'application/json'): Promise<HttpAnswer> {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  if (route === 'keygen') {
    const headers = { ...keygenHeaders(text, new URL(harness.relay.url).host, keygen.privateKey), 'content-type': contentType };
    return request(`${harness.relay.url}/webhooks/keygen`, { method: 'POST', headers, body });
  }
  if (route === 'segment') {
    return request(`${harness.relay.url}/segment`, {
      method: 'POST',
      headers: { 'content-type': contentType, 'x-signature': segmentSignature(text) },
      body,
    });
  }
  return request(`${harness.relay.url}/salesforce/track-event/${route}`, {
    method: 'POST',
    headers: { 'content-type': contentType, authorization: `Bearer ${RELAY_SECRET}` },
    body,
  });
}

/** Every field an answer names, from `issues[].field` and the message. */
function named(answer: HttpAnswer): string {
  const json = answer.json as { message?: string; issues?: { field: string }[] } | null;
  return [json?.message ?? '', ...(json?.issues ?? []).map((issue) => issue.field)].join(' | ');
}

/** Nothing to send came of it: an event that could not be mapped is only kept as an unmappable dead letter. */
async function nothingEnqueued(): Promise<void> {
  const tenant = harness.relay.target.tenant;
  const counts = await harness.relay.outbox.counts(tenant);
  expect({ ...counts, dead: 0 }).toEqual({ pending: 0, leased: 0, delivered: 0, duplicate: 0, dead: 0 });
  const dead = await harness.relay.outbox.listDead(tenant, { limit: 10_000 });
  expect(dead.filter((entry) => entry.input !== null)).toEqual([]);
}

describe('malformed bodies', () => {
  it.each(ROUTES)('%s: a body that is not JSON is a 400 naming the body', async (route) => {
    const answer = await send(route, '{"usersEvents": [');
    expect(answer.status).toBe(400);
    expect(answer.json).toMatchObject({ error: 'invalid_input', issues: [{ field: 'body' }] });
    await nothingEnqueued();
  });

  it.each(ROUTES)('%s: a body too large is a 413, not a 500', async (route) => {
    const huge = `{"usersEvents": [${'"x",'.repeat(1_500_000)}"x"]}`;
    const answer = await send(route, huge);
    expect(answer.status).toBe(413);
    expect(named(answer)).toMatch(/body/i);
    await nothingEnqueued();
  });

  it.each(ROUTES)('%s: a body that is not JSON by content type is a 4xx', async (route) => {
    const answer = await send(route, 'usersEvents=1', 'text/plain');
    expect(answer.status).toBeGreaterThanOrEqual(400);
    expect(answer.status).toBeLessThan(500);
    await nothingEnqueued();
  });

  const envelopes: [string, string, string][] = [
    ['an empty body', '', 'usersEvents'],
    ['null', 'null', 'usersEvents'],
    ['a string', '"usersEvents"', 'usersEvents'],
    ['a number', '42', 'usersEvents'],
    ['an array', '[{"key": "purchase"}]', 'usersEvents'],
    ['no usersEvents', '{"events": []}', 'usersEvents'],
    ['usersEvents not a list', '{"usersEvents": {"key": "purchase"}}', 'usersEvents'],
    ['an empty usersEvents', '{"usersEvents": []}', 'usersEvents'],
    ['too many usersEvents', JSON.stringify({ usersEvents: Array.from({ length: 201 }, () => ({ key: 'k' })) }), 'usersEvents'],
  ];
  describe.each(['by-id', 'by-lead', 'by-contact'] as const)('%s', (route) => {
    it.each(envelopes)('%s is a 400 naming %#', async (_name, body, field) => {
      const answer = await send(route, body);
      expect(answer.status).toBe(400);
      expect(named(answer)).toContain(field);
      await nothingEnqueued();
    });

    it('items of the wrong shape fail one by one, each naming its field', async () => {
      const idField = route === 'by-id' ? 'recordId' : route === 'by-lead' ? 'leadId' : 'contactId';
      const answer = await send(
        route,
        JSON.stringify({
          usersEvents: [
            'not an object',
            null,
            { userId: 'u', accountId: 'a', [idField]: 12345, key: 'purchase' },
            { userId: 'u', accountId: 'a', [idField]: '003', key: 'purchase' },
            { userId: 7, accountId: 'a', key: 'purchase' },
            { userId: 'u', accountId: 'a', key: '' },
            { userId: 'u', accountId: 'a', key: 'purchase', fields: 'not an object' },
            { userId: 'u', accountId: 'a', key: 'purchase', fields: [1, 2] },
            { userId: 'u', accountId: 'a', key: 'purchase', dateTriggered: { when: 'now' } },
            { userId: 'u', accountId: 'a', key: 'purchase', dateTriggered: 'not a date' },
          ],
        }),
      );
      expect(answer.status).toBe(200);
      const results = (answer.json as { results: { ok: boolean; field?: string }[] }).results;
      expect(results).toHaveLength(10);
      for (const [index, result] of results.entries()) {
        expect(result.ok, `item ${index}`).toBe(false);
        expect(result.field, `item ${index}`).toMatch(new RegExp(`^usersEvents\\[${index}\\]`));
      }
      expect(results[2]?.field).toBe(`usersEvents[2].${idField}`);
      expect(results[3]?.field).toBe(`usersEvents[3].${idField}`);
      await nothingEnqueued();
      // by-lead and by-contact need their record first; by-id takes explicit ids alone, so the other fields show.
      if (route !== 'by-id') return;
      expect(results[4]?.field).toBe('usersEvents[4].userId');
      expect(results[5]?.field).toBe('usersEvents[5].key');
      expect(results[6]?.field).toBe('usersEvents[6].fields');
      expect(results[8]?.field).toBe('usersEvents[8].dateTriggered');
      expect(results[9]?.field).toBe('usersEvents[9].dateTriggered');
    });
  });

  it.each([
    ['an empty body', '', 'data'],
    ['null', 'null', 'data'],
    ['an array', '[]', 'data'],
    ['a number', '7', 'data'],
    ['no data', '{"meta": {}}', 'data'],
    [
      'another resource type',
      JSON.stringify({ data: { id: 'e', type: 'licenses', meta: { idempotencyToken: 't' }, attributes: {} } }),
      'data.type',
    ],
    [
      'no idempotency token',
      JSON.stringify({ data: { id: 'e', type: 'webhook-events', meta: {}, attributes: { event: 'license.created', payload: '{}' } } }),
      'data.meta.idempotencyToken',
    ],
    [
      'a payload that is not JSON text',
      JSON.stringify({
        data: { id: 'e', type: 'webhook-events', meta: { idempotencyToken: 't'.repeat(64) }, attributes: { event: 'x', payload: '{' } },
      }),
      'data.attributes.payload',
    ],
    [
      'a payload that is an object',
      JSON.stringify({
        data: { id: 'e', type: 'webhook-events', meta: { idempotencyToken: 't'.repeat(64) }, attributes: { event: 'x', payload: {} } },
      }),
      'data.attributes.payload',
    ],
  ])('keygen: %s is a 400 naming %s', async (_name, body, field) => {
    const answer = await send('keygen', body);
    expect(answer.status).toBe(400);
    expect(named(answer)).toContain(field);
    await nothingEnqueued();
  });

  it.each([
    ['an empty body', ''],
    ['null', 'null'],
    ['a string', '"track"'],
    ['a number', '42'],
  ])('segment: %s is a 400 naming the body', async (_name, body) => {
    const answer = await send('segment', body);
    expect(answer.status).toBe(400);
    expect(named(answer)).toMatch(/body/);
    await nothingEnqueued();
  });

  it.each([
    ['no event name', { type: 'track', userId: 'u', messageId: 'msg-000001' }, 'event'],
    ['properties not an object', { type: 'track', event: 'E', userId: 'u', messageId: 'msg-000002', properties: 'x' }, 'properties'],
    ['a userId that is an object', { type: 'track', event: 'E', userId: { id: 1 }, messageId: 'msg-000003' }, 'userId'],
  ])('segment: a track with %s is a 400 naming %s', async (_name, event, field) => {
    const answer = await send('segment', JSON.stringify(event));
    expect(answer.status).toBe(400);
    expect(named(answer)).toContain(field);
    await nothingEnqueued();
  });

  it('segment: a batch answers per event, each naming its problem', async () => {
    const answer = await send('segment', JSON.stringify([null, 7, { type: 'track', userId: 'u', messageId: 'msg-000004' }]));
    expect(answer.status).toBeLessThan(500);
    const results = (answer.json as { results: { index: number; status: string }[] }).results;
    expect(results.map((result) => result.status)).toEqual(['rejected', 'rejected', 'rejected']);
    await nothingEnqueued();
  });

  it('no route answers a 500 to any of these bodies', async () => {
    const bodies = [
      '',
      'null',
      'true',
      '[]',
      '{}',
      '[null]',
      '{"usersEvents": [[]]}',
      '{"data": null}',
      '{"__proto__": {"x": 1}}',
      '"\\u0000"',
    ];
    const statuses: number[] = [];
    for (const route of ROUTES) for (const body of bodies) statuses.push((await send(route, body)).status);
    expect(statuses.filter((status) => status >= 500)).toEqual([]);
    await nothingEnqueued();
  });
});

describe('a transient store fault', () => {
  it('answers 503 with Retry-After, is never stored for replay, and the retry with the same Idempotency-Key runs', async () => {
    const store = harness.relay.outbox as { enqueue: OutboxStore['enqueue'] };
    const original = store.enqueue;
    let faults = 1;
    // One injected store failure, as a busy database or a dropped Redis connection would give.
    store.enqueue = async function (this: unknown, ...args) {
      if (faults-- > 0) throw new OutboxStoreError('memory outbox store: enqueue failed: injected');
      return original.apply(harness.relay.outbox, args);
    };
    try {
      const body = JSON.stringify({ usersEvents: [{ userId: 'fault@example.com', accountId: 'fault@example.com', key: 'purchase' }] });
      const headers = { authorization: `Bearer ${RELAY_SECRET}`, 'content-type': 'application/json', 'idempotency-key': 'store-fault-1' };
      const url = `${harness.relay.url}/salesforce/track-event/by-id`;
      const first = await request(url, { method: 'POST', headers, body });
      expect(first.status).toBe(503);
      expect(first.headers.get('retry-after')).toMatch(/^\d+$/);
      const retry = await request(url, { method: 'POST', headers, body });
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBeNull();
      expect(retry.json).toMatchObject({ results: [{ queued: true }] });
    } finally {
      store.enqueue = original;
    }
  });
});
