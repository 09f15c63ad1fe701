import './helpers.js';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox } from '../../../sandbox/target/index.js';
import type { Sandbox } from '../../../sandbox/target/server.js';
import { TargetCheckError } from '../../../shared/target/client.js';
import {
  hmacSignature,
  keygenHeaders,
  keygenKeys,
  keygenWebhookBody,
  postJson,
  RELAY_SECRET,
  request,
  SEGMENT_SECRET,
  segmentSignature,
  startTestRelay,
  type TestRelay,
  tempDir,
  waitFor,
  waitForSettled,
} from './helpers.js';

const API_KEY = 'target-api-key-Vx8Pq3Zm6Jt1';
const keygen = keygenKeys();

let target: Sandbox;
const started: TestRelay[] = [];

beforeAll(async () => {
  target = await startSandbox({ port: 0, apiKey: API_KEY });
});
afterAll(async () => {
  await target.close();
});
afterEach(async () => {
  await Promise.all(started.splice(0).map((harness) => harness.relay.stop()));
});

async function relayTo(apiKey: string, extra: Record<string, string> = {}): Promise<TestRelay> {
  const harness = await startTestRelay(
    {
      ONCEKIT_TARGET_URL: target.url,
      ONCEKIT_TENANT: 'ops',
      ONCEKIT_API_KEY: apiKey,
      ONCEKIT_KEYGEN_PUBLIC_KEY: keygen.publicKeyHex,
      ONCEKIT_SEGMENT_SHARED_SECRET: SEGMENT_SECRET,
      ...extra,
    },
    'memory',
  );
  started.push(harness);
  return harness;
}

describe('health, readiness and metrics', () => {
  it('/healthz is ok; /readyz is ready when the store and the target answer', async () => {
    const { relay } = await relayTo(API_KEY);
    const health = await request(`${relay.url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok' });
    const ready = await request(`${relay.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready', checks: { store: 'ok', target: 'ok', backlog: 'ok' } });
    expect(relay.sandbox).toBeNull();
  });

  it('/readyz is 503 when the target stops taking the API key after start, and the answer does not carry the key', async () => {
    // A key revoked while the relay runs: accepted by the start check, refused from then on.
    let accept = true;
    const gate = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        if (accept) {
          res.end(JSON.stringify({ data: { __typename: 'Query' } }));
          return;
        }
        res.statusCode = 401;
        res.end(JSON.stringify({ message: 'Invalid API key', statusCode: 401, apiErrorCode: 'UNAUTHORIZED' }));
      });
    });
    gate.listen(0, '127.0.0.1');
    await once(gate, 'listening');
    const { port } = gate.address() as AddressInfo;
    try {
      const revokedKey = 'revoked-api-key-Hd5Rn2Bq8Ys4';
      const { relay, logs } = await relayTo(revokedKey, { ONCEKIT_TARGET_URL: `http://127.0.0.1:${port}` });
      accept = false;
      const ready = await request(`${relay.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(ready.json).toMatchObject({
        status: 'not_ready',
        checks: { store: 'ok', target: expect.stringMatching(/refused the API key/) },
      });
      expect(ready.text).not.toContain(revokedKey);
      expect(logs.text).not.toContain(revokedKey);
    } finally {
      gate.close();
    }
  });

  it('a relay whose API key the target refuses does not start: the error names ONCEKIT_API_KEY, never the key', async () => {
    const wrongKey = 'wrong-api-key-Hd5Rn2Bq8Ys4';
    const failure = await relayTo(wrongKey).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(TargetCheckError);
    const message = (failure as TargetCheckError).message;
    expect(message).toContain('ONCEKIT_API_KEY');
    expect(message).toContain('HTTP 401');
    expect(message).not.toContain(wrongKey);
  });

  it('a target that does not answer at start: the relay starts, warns, is not ready, and still accepts events', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const { port } = closed.address() as AddressInfo;
    closed.close();
    await once(closed, 'close');
    const { relay, logs } = await relayTo(API_KEY, { ONCEKIT_TARGET_URL: `http://127.0.0.1:${port}` });
    expect(logs.text).toContain('target_unavailable_at_start');
    const ready = await request(`${relay.url}/readyz`);
    expect(ready.status).toBe(503);
    const sent = await postJson(`${relay.url}/salesforce/track-event/by-id`, {
      usersEvents: [{ userId: 'u1', accountId: 'a1', key: 'purchase', idempotencyKey: 'unreachable-at-start-1' }],
    });
    expect(sent.status).toBe(200);
    expect((await relay.outbox.counts('ops')).pending + (await relay.outbox.counts('ops')).leased).toBe(1);
  });

  it('/metrics needs the relay secret, and counts received and settled events per source', async () => {
    const { relay } = await relayTo(API_KEY);
    const without = await request(`${relay.url}/metrics`);
    expect(without.status).toBe(401);
    expect(without.text).not.toContain('oncekit_');
    const wrong = await request(`${relay.url}/metrics`, { headers: { authorization: 'Bearer not-the-secret-xxxxxxxx' } });
    expect(wrong.status).toBe(401);

    const sent = await postJson(`${relay.url}/salesforce/track-event/by-id`, {
      usersEvents: [
        { userId: 'm@example.com', accountId: 'm@example.com', key: 'purchase', idempotencyKey: 'metrics-0001' },
        { userId: 'm@example.com', accountId: 'm@example.com', key: 'purchase', idempotencyKey: 'bad key' },
      ],
    });
    expect(sent.status).toBe(200);
    await waitForSettled(relay, 2);

    const metrics = await request(`${relay.url}/metrics`, { headers: { authorization: `Bearer ${RELAY_SECRET}` } });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    for (const name of [
      'oncekit_events_received_total',
      'oncekit_events_settled_total',
      'oncekit_key_decisions_total',
      'oncekit_delivery_retries_total',
      'oncekit_dead_letters_total',
      'oncekit_outbox_events',
      'oncekit_http_request_duration_seconds',
      'oncekit_delivery_latency_seconds',
    ]) {
      expect(metrics.text).toContain(`# TYPE ${name}`);
    }
    expect(metrics.text).toMatch(/^oncekit_events_received_total\{source="salesforce"\} 2$/m);
    expect(metrics.text).toMatch(/^oncekit_events_settled_total\{source="salesforce",outcome="forwarded"\} 2$/m);
    expect(metrics.text).toMatch(/^oncekit_key_decisions_total\{source="salesforce",decision="dropped",reason="bad_characters"\} 1$/m);
    expect(metrics.text).toMatch(/^oncekit_outbox_events\{state="delivered"\} 2$/m);
  });

  it('the status API needs the secret; with it, it shows counters and looks events up by key and source id', async () => {
    const { relay } = await relayTo(API_KEY);
    expect((await request(`${relay.url}/`)).status).toBe(401);
    expect((await request(`${relay.url}/status/api/summary`)).status).toBe(401);
    expect((await request(`${relay.url}/status/api/ledger?key=x`)).status).toBe(401);

    await postJson(`${relay.url}/salesforce/track-event/by-id`, {
      usersEvents: [{ userId: 's@example.com', accountId: 's@example.com', key: 'purchase', idempotencyKey: 'status-0001' }],
    });
    await waitForSettled(relay, 1);
    const auth = { authorization: `Bearer ${RELAY_SECRET}` };
    const summary = await request(`${relay.url}/status/api/summary`, { headers: auth });
    expect(summary.status).toBe(200);
    expect(summary.json).toMatchObject({
      tenant: 'ops',
      target: { url: target.url, sandbox: false },
      counters: { salesforce: { received: 1, forwarded: 1 } },
      outbox: { delivered: 1, pending: 0 },
    });
    const ledger = await request(`${relay.url}/status/api/ledger?key=status-0001`, { headers: auth });
    expect(ledger.status).toBe(200);
    const entries = (ledger.json as { entries: { sourceId: string; state: string }[] }).entries;
    expect(entries).toHaveLength(1);
    expect(entries[0]?.state).toBe('delivered');
    const bySource = await request(`${relay.url}/status/api/ledger?sourceId=${encodeURIComponent(entries[0]?.sourceId ?? '')}`, {
      headers: auth,
    });
    expect((bySource.json as { entries: unknown[] }).entries).toHaveLength(1);
    expect((await request(`${relay.url}/status/api/ledger`, { headers: auth })).status).toBe(400);

    // The page link trades the token for a cookie that is not the secret.
    const link = await fetch(`${relay.url}/?token=${RELAY_SECRET}`, { redirect: 'manual' });
    expect(link.status).toBe(303);
    const cookie = (link.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    expect(cookie).toMatch(/^oncekit_session[\w]*=/);
    expect(cookie).not.toContain(RELAY_SECRET);
    const page = await request(`${relay.url}/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
  });
});

describe('possible duplicates', () => {
  it('are counted from the store in /metrics and the status API, the same on every instance on the store', async () => {
    const dir = tempDir('oncekit-possible-duplicates-');
    try {
      const env = { ONCEKIT_TARGET_URL: target.url, ONCEKIT_TENANT: 'dupes', ONCEKIT_API_KEY: API_KEY };
      const store = `sqlite:${dir.dir}/state.db`;
      const first = await startTestRelay(env, store);
      started.push(first);
      const second = await startTestRelay(env, store);
      started.push(second);
      const auth = { authorization: `Bearer ${RELAY_SECRET}` };
      const gauge = async (relay: TestRelay): Promise<string> =>
        ((await request(`${relay.relay.url}/metrics`, { headers: auth })).text.match(/^oncekit_possible_duplicate_events (\d+)$/m) ??
          [])[1] ?? 'absent';
      expect(await gauge(first)).toBe('0');

      // The target records the batch, then the answer is lost: the keyed event's resend is deduplicated (409), the
      // keyless one (its invalid key was dropped) is recorded again.
      target.faults.enqueue({ kind: 'record-then-fail', failWith: 'status' });
      const sent = await postJson(`${first.relay.url}/salesforce/track-event/by-id`, {
        usersEvents: [
          { userId: 'd@example.com', accountId: 'd@example.com', key: 'purchase', idempotencyKey: 'dupes-0001' },
          { userId: 'd@example.com', accountId: 'd@example.com', key: 'refund', idempotencyKey: 'bad key' },
        ],
      });
      expect(sent.status).toBe(200);
      await waitForSettled(first.relay, 2);
      const refunds = target.inspect('dupes').events.filter((event) => event.key === 'refund');
      expect(refunds).toHaveLength(2);

      for (const relay of [first, second]) {
        await waitFor('the gauge', async () => (await gauge(relay)) === '1');
        const summary = await request(`${relay.relay.url}/status/api/summary`, { headers: auth });
        expect(summary.json).toMatchObject({ possibleDuplicates: 1, outbox: { delivered: 1, duplicate: 1 } });
      }
      const outboxId = (sent.json as { results: { outboxId: string }[] }).results[1]?.outboxId ?? '';
      const entry = await first.relay.outbox.get('dupes', outboxId);
      const ledger = await request(`${first.relay.url}/status/api/ledger?sourceId=${encodeURIComponent(entry?.sourceId ?? '')}`, {
        headers: auth,
      });
      expect(ledger.json).toMatchObject({
        entries: [{ key: null, state: 'delivered', possibleDuplicate: true, attempts: [{ uncertainRequests: 1 }] }],
      });
    } finally {
      await Promise.all(started.splice(0).map((harness) => harness.relay.stop()));
      dir.remove();
    }
  });
});

describe('secrets', () => {
  it('never appear in logs or responses: API key, relay secret, HMAC, Keygen and Segment signatures', async () => {
    const { relay, logs } = await relayTo(API_KEY, { ONCEKIT_LOG_LEVEL: 'debug' });
    const host = new URL(relay.url).host;
    const answers: string[] = [];
    const keep = async (answer: Promise<{ text: string; headers: Headers }>) => {
      const { text, headers } = await answer;
      answers.push(text, JSON.stringify([...headers.entries()]));
    };

    const body = JSON.stringify({
      usersEvents: [{ userId: 'x@example.com', accountId: 'x@example.com', key: 'purchase', idempotencyKey: 'secret-0001' }],
    });
    const hmac = hmacSignature(body);
    await keep(postJson(`${relay.url}/salesforce/track-event/by-id`, body));
    await keep(postJson(`${relay.url}/salesforce/track-event/by-id`, body, { 'x-oncekit-signature': hmac }));
    await keep(postJson(`${relay.url}/salesforce/track-event/by-id`, body, { authorization: 'Bearer wrong-secret-Qw3Er5Ty7Ui9' }));
    await keep(postJson(`${relay.url}/salesforce/track-event/by-id`, '{"broken', { authorization: `Bearer ${RELAY_SECRET}` }));

    const keygenBody = keygenWebhookBody({ id: 'evt-s', token: 's'.repeat(64), email: 'k@example.com' });
    const keygenSigned = keygenHeaders(keygenBody, host, keygen.privateKey);
    const keygenSignature = /signature="([^"]+)"/.exec(keygenSigned['keygen-signature'] ?? '')?.[1] ?? '';
    expect(keygenSignature.length).toBeGreaterThan(40);
    await keep(request(`${relay.url}/webhooks/keygen`, { method: 'POST', headers: keygenSigned, body: keygenBody }));
    await keep(request(`${relay.url}/webhooks/keygen`, { method: 'POST', headers: keygenSigned, body: `${keygenBody} ` }));

    const segmentBody = JSON.stringify({ type: 'track', event: 'Signed Up', userId: 'seg-1', messageId: 'msg-secret-0001' });
    const segmentSigned = segmentSignature(segmentBody);
    await keep(
      request(`${relay.url}/segment`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-signature': segmentSigned },
        body: segmentBody,
      }),
    );
    await keep(
      request(`${relay.url}/segment`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-signature': segmentSigned },
        body: `${segmentBody} `,
      }),
    );

    await keep(request(`${relay.url}/readyz`));
    await keep(request(`${relay.url}/metrics`, { headers: { authorization: `Bearer ${RELAY_SECRET}` } }));
    await keep(request(`${relay.url}/status/api/summary`, { headers: { authorization: `Bearer ${RELAY_SECRET}` } }));
    await keep(request(`${relay.url}/?token=${RELAY_SECRET}`));
    await waitForSettled(relay, 3);

    expect(logs.lines().length).toBeGreaterThan(5);
    const everything = [logs.text, ...answers].join('\n');
    for (const secret of [API_KEY, RELAY_SECRET, SEGMENT_SECRET, hmac.slice('sha256='.length), keygenSignature, segmentSigned]) {
      expect(everything).not.toContain(secret);
    }
    // The basic-auth header the worker sends carries the API key in base64.
    expect(everything).not.toContain(Buffer.from(`:${API_KEY}`).toString('base64'));
  });
});
