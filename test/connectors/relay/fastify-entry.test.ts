import { createHmac } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  idempotencyPlugin,
  openState,
  parseStoreLocation,
  REPLAYED_HEADER,
  registerErrorHandler,
  registerRawJsonParser,
  type State,
  segmentWebhookPlugin,
} from '../../../connectors/relay/index.js';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { silentLogger } from '../../../shared/log.js';
import { createSender, type Sender } from '../../../shared/sender/sender.js';

// The `oncekit/fastify` entry as a user assembles it: a relay route and request idempotency on their own server,
// handing events to a durable sender.
const SECRET = 'segment-shared-secret';
const TENANT = `fastify_entry_${process.pid}`;
let sandbox: Sandbox;
let sender: Sender;
let state: State;
let app: FastifyInstance;
let url: string;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  sender = await createSender({
    target: { baseUrl: sandbox.url, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY },
    store: 'memory',
    delivery: { pollMs: 20 },
  });
  state = await openState(parseStoreLocation('memory'));
  app = Fastify();
  registerRawJsonParser(app);
  registerErrorHandler(app);
  await app.register(idempotencyPlugin, { store: state.idempotency });
  await app.register(segmentWebhookPlugin, {
    ingest: sender.ingest,
    logger: silentLogger,
    webhook: {
      sharedSecret: SECRET,
      target: { apiBaseUrl: sandbox.url, tenantAlias: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY },
      invalidKeyPolicy: 'drop',
    },
    sharedSecretSetting: 'SEGMENT_SECRET',
  });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await state?.close();
  await sender?.close({ timeoutMs: 0 });
  await sandbox?.close();
});

async function postSegment(event: object, idempotencyKey?: string): Promise<Response> {
  const body = JSON.stringify(event);
  return fetch(`${url}/segment`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-signature': createHmac('sha1', SECRET).update(body).digest('hex'),
      ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
    },
    body,
  });
}

describe('oncekit/fastify with a durable sender', () => {
  it("takes Segment's webhook into the sender's store, and a redelivery is one event at the target", async () => {
    const track = { type: 'track', event: 'Order Completed', messageId: 'segment-msg-0001', userId: 'ann', properties: { total: 5 } };
    const first = await postSegment(track);
    expect(first.status).toBe(200);
    const redelivered = await postSegment(track);
    expect(redelivered.status).toBe(200);
    expect(await sender.flush({ timeoutMs: 10_000 })).toMatchObject({ drained: true });
    expect(sandbox.inspect(TENANT).events.map((event) => event.idempotencyKey)).toEqual(['segment-msg-0001']);
  });

  it('replays the first answer for a retry with the same Idempotency-Key', async () => {
    const track = { type: 'track', event: 'Order Completed', messageId: 'segment-msg-0002', userId: 'bob' };
    const first = await postSegment(track, 'request-0002');
    const retry = await postSegment(track, 'request-0002');
    expect(retry.status).toBe(first.status);
    expect(retry.headers.get(REPLAYED_HEADER)).toBe('true');
    expect(await retry.json()).toEqual(await first.json());
  });

  it('refuses a bad signature before anything reaches the store', async () => {
    await sender.flush({ timeoutMs: 10_000 });
    const before = await sender.counts();
    const response = await fetch(`${url}/segment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signature': '0'.repeat(40) },
      body: JSON.stringify({ type: 'track', event: 'x', messageId: 'segment-msg-0003', userId: 'cy' }),
    });
    expect(response.status).toBe(401);
    expect(await sender.counts()).toEqual(before);
  });
});
