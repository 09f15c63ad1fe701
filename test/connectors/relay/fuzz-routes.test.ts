import './helpers.js';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeOrg } from '../../../sandbox/salesforce-org/index.js';
import { clientCredentialsEnv, startTestOrg } from '../salesforce/helpers.js';
import {
  id18,
  keygenHeaders,
  keygenKeys,
  RELAY_SECRET,
  request,
  SEGMENT_SECRET,
  segmentSignature,
  startTestRelay,
  type TestRelay,
  tempDir,
} from './helpers.js';

// Thousands of generated bodies per inbound route: whatever arrives, the answer is never a 5xx and the relay stays up.
const PER_ROUTE = 2000;
const CONCURRENCY = 8;
const DEPTH = 100_000;
const keygen = keygenKeys();
const LEAD = id18('00Q5e00000AbCdE');
const CONTACT = id18('003G000001SUbc4');

let org: FakeOrg;
let harness: TestRelay;
let dir: { dir: string; remove: () => void };

beforeAll(async () => {
  org = await startTestOrg({
    records: { Lead: [{ Id: LEAD, Email: 'lead@example.com' }], Contact: [{ Id: CONTACT, Email: 'c@example.com' }] },
  });
  dir = tempDir();
  harness = await startTestRelay(
    { ...clientCredentialsEnv(org), ONCEKIT_KEYGEN_PUBLIC_KEY: keygen.publicKeyHex, ONCEKIT_SEGMENT_SHARED_SECRET: SEGMENT_SECRET },
    `sqlite:${dir.dir}/fuzz.db`,
  );
}, 30_000);
afterAll(async () => {
  await harness.relay.stop();
  await org.close();
  dir.remove();
});

/** What a body is sent as: JSON mostly, sometimes with a wrong or missing content type. */
interface Probe {
  readonly body: string;
  readonly contentType: string | null;
  readonly idempotencyKey: string | null;
}

const deepArrays = `${'['.repeat(DEPTH)}${']'.repeat(DEPTH)}`;
const deepObject = `${'{"a":'.repeat(DEPTH)}1${'}'.repeat(DEPTH)}`;
const nearLimit = (wrap: (text: string) => string) => wrap('x'.repeat(5 * 1024 * 1024 - 200));

/** Hand-picked nasties, each in the route's own shape and bare. */
function nasties(shape: (inner: string) => string): string[] {
  const texts = [
    deepArrays,
    deepObject,
    shape(deepArrays),
    shape(deepObject),
    shape('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}'),
    '{"__proto__":{"polluted":true}}',
    nearLimit((text) => `{"s":"${text}"}`),
    shape(nearLimit((text) => `"${text}"`)),
    'x'.repeat(5 * 1024 * 1024 + 10),
    '',
    'null',
    '[]',
    '{}',
    '"text"',
    '{"',
    '\u0000',
    '{"a":1}{"b":2}',
    shape('null'),
    shape('""'),
    shape('[]'),
    shape('{"toString":1,"valueOf":1}'),
    // Lone surrogates: valid JSON escapes, but not Unicode (RFC 8785 and I-JSON refuse them).
    shape('"x\\ud800y"'),
    shape('{"\\udc00":"\\ud83d"}'),
  ];
  return texts;
}

const anyJson = fc.jsonValue({ maxDepth: 6 }).map((value) => JSON.stringify(value));
const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    '',
    null,
    0,
    -1,
    1e308,
    true,
    [],
    {},
    '__proto__',
    'x'.repeat(2000),
    { __proto__: null },
    { toString: 1 },
    'lone \ud800 surrogate',
  ),
);
const idLike = fc.oneof(
  fc.constantFrom(LEAD, CONTACT, LEAD.slice(0, 15), '00Q000000000000AAA', ''),
  fc.string({ maxLength: 20 }),
  oddValue,
);

const salesforceItem = fc.record(
  {
    userId: oddValue,
    accountId: oddValue,
    recordId: idLike,
    leadId: idLike,
    contactId: idLike,
    key: fc.oneof(fc.constant('purchase'), oddValue),
    idempotencyKey: fc.oneof(fc.uuid(), oddValue),
    fields: oddValue,
    dateTriggered: fc.oneof(fc.constant('2026-01-02T03:04:05Z'), oddValue),
  },
  { requiredKeys: [] },
);
const salesforceBody = fc.oneof(
  fc
    .record({ usersEvents: fc.oneof(fc.array(salesforceItem, { maxLength: 5 }), oddValue) }, { requiredKeys: [] })
    .map((v) => JSON.stringify(v)),
  anyJson,
);
const segmentEvent = fc.record(
  {
    type: fc.oneof(fc.constantFrom('track', 'identify', 'page'), oddValue),
    event: oddValue,
    userId: oddValue,
    anonymousId: oddValue,
    messageId: fc.oneof(fc.uuid(), fc.constant(''), oddValue),
    properties: oddValue,
    context: oddValue,
    timestamp: oddValue,
  },
  { requiredKeys: [] },
);
const segmentBody = fc.oneof(
  segmentEvent.map((v) => JSON.stringify(v)),
  fc.array(segmentEvent, { maxLength: 8 }).map((v) => JSON.stringify(v)),
  anyJson,
);
const keygenBody = fc.oneof(
  fc
    .record({
      id: oddValue,
      token: fc.oneof(fc.stringMatching(/^[0-9a-f]{64}$/), oddValue),
      event: fc.oneof(fc.constantFrom('license.created', 'user.created'), oddValue),
      payload: oddValue,
    })
    .map(({ id, token, event, payload }) =>
      JSON.stringify({
        data: {
          id,
          type: 'webhook-events',
          meta: { idempotencyToken: token },
          attributes: {
            event,
            payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
            created: '2026-01-02T03:04:05.000Z',
          },
        },
      }),
    ),
  anyJson,
);

function probes(bodies: fc.Arbitrary<string>, shape: (inner: string) => string, count: number): Probe[] {
  const contentType = fc.oneof(
    { weight: 8, arbitrary: fc.constant('application/json') },
    { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', null) },
  );
  const idempotencyKey = fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) },
    fc.constantFrom('fuzz-key-1', 'fuzz-key-2'),
    fc.string({ maxLength: 300 }),
  );
  const generated = fc
    .sample(fc.tuple(fc.oneof(bodies, fc.string({ maxLength: 200 })), contentType, idempotencyKey), count)
    .map(([body, type, key]) => ({ body, contentType: type, idempotencyKey: key }));
  const picked = nasties(shape).map((body) => ({ body, contentType: 'application/json', idempotencyKey: 'fuzz-nasty' }));
  return [...picked, ...generated];
}

/** Sends every probe, a few at a time; returns the answers that were 5xx (or no answer at all). */
async function fire(probesToSend: readonly Probe[], send: (probe: Probe) => Promise<number>): Promise<string[]> {
  const failures: string[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < probesToSend.length) {
      const probe = probesToSend[next++] as Probe;
      let status: number;
      try {
        status = await send(probe);
      } catch (error) {
        failures.push(`no answer (${error instanceof Error ? error.message : String(error)}) for ${probe.body.slice(0, 80)}`);
        continue;
      }
      if (status >= 500) failures.push(`${status} for ${probe.contentType} ${probe.body.slice(0, 120)}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return failures;
}

function headersOf(probe: Probe, extra: Record<string, string>): Record<string, string> {
  return {
    ...(probe.contentType === null ? {} : { 'content-type': probe.contentType }),
    ...(probe.idempotencyKey === null ? {} : { 'idempotency-key': probe.idempotencyKey.replace(/[^\x20-\x7e]/g, '') }),
    ...extra,
  };
}

async function post(path: string, probe: Probe, extra: Record<string, string>): Promise<number> {
  return (await request(`${harness.relay.url}${path}`, { method: 'POST', headers: headersOf(probe, extra), body: probe.body })).status;
}

async function healthy(): Promise<void> {
  expect((await request(`${harness.relay.url}/healthz`)).status).toBe(200);
}

const bearer = { authorization: `Bearer ${RELAY_SECRET}` };
const salesforceShape = (inner: string) => `{"usersEvents":[{"userId":"u","accountId":"a","key":"k","fields":${inner}}]}`;

describe('fuzzing the relay’s inbound routes', () => {
  it('refuses fields nested 100,000 levels deep, naming the field (a per-item refusal, or a 400 once the body is fingerprinted)', async () => {
    const probe = { body: salesforceShape(deepObject), contentType: 'application/json', idempotencyKey: null };
    const answer = await request(`${harness.relay.url}/salesforce/track-event/by-id`, {
      method: 'POST',
      headers: headersOf(probe, bearer),
      body: probe.body,
    });
    // The route answers per item: the item is refused, naming its field.
    expect(answer.status).toBe(200);
    expect(answer.text).toContain(`fields${'.a'.repeat(33)}: nested deeper than 32 levels`);
    const keyed = { ...probe, idempotencyKey: 'deep-fields-1' };
    const viaKey = await request(`${harness.relay.url}/salesforce/track-event/by-id`, {
      method: 'POST',
      headers: headersOf(keyed, bearer),
      body: keyed.body,
    });
    expect(viaKey.status).toBe(400);
    expect(viaKey.text).toMatch(/body\.usersEvents\[0\]\.fields(\.a)+: nested deeper than 64 levels/);
  });

  it.each(['by-id', 'by-lead', 'by-contact'])(
    'POST /salesforce/track-event/%s never answers 5xx',
    async (route) => {
      const sent = probes(salesforceBody, salesforceShape, PER_ROUTE);
      const failures = await fire(sent, (probe) => post(`/salesforce/track-event/${route}`, probe, bearer));
      console.log(`fuzz /salesforce/track-event/${route}: ${sent.length} bodies, ${failures.length} 5xx`);
      expect(failures).toEqual([]);
      await healthy();
    },
    120_000,
  );

  it('POST /segment (signed) never answers 5xx', async () => {
    const sent = probes(
      segmentBody,
      (inner) => `{"type":"track","event":"e","userId":"u","messageId":"m","properties":${inner}}`,
      PER_ROUTE,
    );
    const failures = await fire(sent, (probe) => post('/segment', probe, { 'x-signature': segmentSignature(probe.body) }));
    console.log(`fuzz /segment: ${sent.length} bodies, ${failures.length} 5xx`);
    expect(failures).toEqual([]);
    await healthy();
  }, 120_000);

  it('POST /webhooks/keygen (signed) never answers 5xx', async () => {
    const host = new URL(harness.relay.url).host;
    const shape = (inner: string) =>
      `{"data":{"id":"e","type":"webhook-events","meta":{"idempotencyToken":"${'ab'.repeat(32)}"},"attributes":{"event":"license.created","payload":${JSON.stringify(inner)}}}}`;
    const sent = probes(keygenBody, shape, PER_ROUTE);
    const failures = await fire(sent, (probe) => {
      const signed = keygenHeaders(probe.body, host, keygen.privateKey);
      const { 'content-type': _type, ...rest } = signed;
      return post('/webhooks/keygen', probe, rest);
    });
    console.log(`fuzz /webhooks/keygen: ${sent.length} bodies, ${failures.length} 5xx`);
    expect(failures).toEqual([]);
    await healthy();
  }, 120_000);

  it('the status page API never answers 5xx, whatever the query or body', async () => {
    const queries = fc.sample(
      fc.oneof(
        fc.record({ key: fc.string({ maxLength: 300 }) }, { requiredKeys: [] }),
        fc.record({ sourceId: fc.string({ maxLength: 300 }), key: fc.string() }, { requiredKeys: [] }),
        fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 30 })),
      ),
      PER_ROUTE / 3,
    );
    // The query travels as the body field; every seventh is a POST of a deep body to a GET route.
    const sent: Probe[] = queries.map((query, n) => ({
      body: new URLSearchParams(query as Record<string, string>).toString(),
      contentType: n % 7 === 0 ? 'application/json' : null,
      idempotencyKey: null,
    }));
    let count = 0;
    const failures = await fire(sent, async (probe) => {
      const path = count++ % 2 === 0 ? '/status/api/ledger' : '/status/api/summary';
      const own = probe.contentType === null ? { method: 'GET' } : { method: 'POST', body: deepObject };
      return (await request(`${harness.relay.url}${path}?${probe.body}`, { ...own, headers: headersOf(probe, bearer) })).status;
    });
    console.log(`fuzz /status/api: ${sent.length} requests, ${failures.length} 5xx`);
    expect(failures).toEqual([]);
    await healthy();
  }, 120_000);

  it('the console API never answers 5xx, whatever the query or the retry body', async () => {
    const paramNames = ['state', 'source', 'target', 'key', 'sourceId', 'since', 'until', 'limit', 'offset', 'window', 'x'];
    const oddText = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('', '-1', '0', '1e308', 'NaN', '2026-13-45T99:99:99Z', 'dead', '__proto__', 'x'.repeat(5000), 'a\ud800'),
    );
    const queries = fc.sample(fc.dictionary(fc.constantFrom(...paramNames), oddText, { maxKeys: 5 }), PER_ROUTE / 2);
    const paths = ['/api/events', '/api/dead-letters', '/api/activity', '/api/overview', '/api/instances'];
    const ids = fc.sample(fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('ob_00000000001', '..%2f..', '%00')), 50);
    const gets: Probe[] = queries.map((query) => ({
      body: new URLSearchParams(query as Record<string, string>).toString(),
      contentType: null,
      idempotencyKey: null,
    }));
    let count = 0;
    const getFailures = await fire(gets, async (probe) => {
      const path = paths[count++ % paths.length] as string;
      return (await request(`${harness.relay.url}${path}?${probe.body}`, { method: 'GET', headers: headersOf(probe, bearer) })).status;
    });
    const idFailures = await fire(
      ids.map((id) => ({ body: encodeURIComponent(id), contentType: null, idempotencyKey: null })),
      async (probe) => (await request(`${harness.relay.url}/api/events/${probe.body}`, { method: 'GET', headers: bearer })).status,
    );
    const retryBodies = [
      ...fc
        .sample(
          fc.oneof(
            fc.record({ ids: fc.array(fc.oneof(fc.string({ maxLength: 30 }), fc.integer()), { maxLength: 300 }) }, { requiredKeys: [] }),
            fc.record({ matching: fc.dictionary(fc.constantFrom(...paramNames), fc.jsonValue({ maxDepth: 2 })) }, { requiredKeys: [] }),
            fc.jsonValue({ maxDepth: 4 }),
          ),
          PER_ROUTE / 4,
        )
        .map((body) => JSON.stringify(body)),
      deepObject,
      '{"ids":',
      '',
    ];
    const retryFailures = await fire(
      retryBodies.map((body) => ({ body, contentType: 'application/json', idempotencyKey: null })),
      (probe) => post('/api/dead-letters/retry', probe, bearer),
    );
    const total = gets.length + ids.length + retryBodies.length;
    const failures = [...getFailures, ...idFailures, ...retryFailures];
    console.log(`fuzz /api (console): ${total} requests, ${failures.length} 5xx`);
    expect(failures).toEqual([]);
    await healthy();
  }, 120_000);
});
