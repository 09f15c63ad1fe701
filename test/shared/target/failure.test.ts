import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import type { UserEventInput } from '../../../shared/events/index.js';
import {
  type CredentialCheck,
  classifyFailure,
  createTargetClient,
  type DeliveryFailure,
  deliveryFailureOf,
  requireTargetAnswers,
  TargetCheckError,
  type TargetClientOptions,
} from '../../../shared/target/index.js';
import { type ClosableTransport, undiciTransport } from '../../../shared/target/transport-undici.js';

const TENANT = 'test_failure';
let sandbox: Sandbox;
let transport: ClosableTransport;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  transport = undiciTransport();
});
afterAll(async () => {
  await transport.close();
  await sandbox.close();
});
afterEach(() => {
  sandbox.reset();
});

const client = (overrides: Partial<TargetClientOptions> = {}) =>
  createTargetClient({
    baseUrl: sandbox.url,
    tenant: TENANT,
    apiKey: DEFAULT_SANDBOX_API_KEY,
    transport: transport.send,
    retry: { maxAttempts: 1 },
    sleep: async () => {},
    ...overrides,
  });

let counter = 0;
const purchase = (): UserEventInput => ({
  userId: 'ann',
  accountId: 'ann',
  idempotencyKey: `failure-${Date.now()}-${++counter}`,
  events: [{ key: 'purchase' }],
});

/** The failure of a check that did not pass; fails the test when it passed. */
function failureOfCheck(check: CredentialCheck): DeliveryFailure {
  if (check.ok) throw new Error('expected the credential check to fail');
  return check.failure;
}

describe('checkCredentials', () => {
  it('passes with the right key, in one request that records nothing', async () => {
    expect(await client().checkCredentials()).toEqual({ ok: true });
    expect(sandbox.inspect(TENANT).requests).toMatchObject({ total: 1, byStatus: { '200': 1 } });
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });

  it('classifies a wrong key as auth, with the API message and never the key', async () => {
    const secret = 'sk_live_wrong_key_Tq8Wm3Lp0Zx5';
    const check = await client({ apiKey: secret }).checkCredentials();

    expect(failureOfCheck(check)).toMatchObject({ kind: 'auth', reason: 'invalid-key', status: 401 });
    expect(failureOfCheck(check).message).not.toBe('');
    expect(JSON.stringify(check)).not.toContain(secret);
  });

  it('never retries: a 503 is one request, classified unavailable', async () => {
    sandbox.faults.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const check = await client({ retry: { maxAttempts: 5 } }).checkCredentials();

    expect(failureOfCheck(check)).toMatchObject({ kind: 'unavailable', status: 503 });
    expect(sandbox.inspect(TENANT).requests.total).toBe(1);
  });

  it('classifies a 429 as throttled with the Retry-After delay, and a 408 as a timeout with its status', async () => {
    sandbox.faults.enqueue({ kind: 'throttle', retryAfterSeconds: 3 }, { kind: 'status', status: 408 });

    expect(failureOfCheck(await client().checkCredentials())).toMatchObject({ kind: 'throttled', status: 429, retryAfterMs: 3000 });
    expect(failureOfCheck(await client().checkCredentials())).toMatchObject({ kind: 'timeout', status: 408 });
  });

  it('classifies no answer: a refused connection as network, a slow target as timeout', async () => {
    const refused = await client({ baseUrl: 'http://127.0.0.1:9' }).checkCredentials();
    expect(failureOfCheck(refused)).toMatchObject({ kind: 'network', status: null, message: expect.stringMatching(/ECONNREFUSED/) });

    sandbox.faults.enqueue({ kind: 'latency', ms: 300 });
    const slow = await client().checkCredentials({ timeoutMs: 50 });
    expect(failureOfCheck(slow)).toMatchObject({ kind: 'timeout', status: null });
  });
});

describe('requireTargetAnswers', () => {
  const refusal = async (check: Promise<CredentialCheck>): Promise<TargetCheckError> => {
    try {
      requireTargetAnswers(await check);
    } catch (error) {
      if (error instanceof TargetCheckError) return error;
      throw error;
    }
    throw new Error('expected a TargetCheckError');
  };

  it('passes when the target takes the key, or answers at all (a 429 included)', async () => {
    expect(requireTargetAnswers(await client().checkCredentials())).toBeUndefined();
    sandbox.faults.enqueue({ kind: 'throttle' });
    expect(requireTargetAnswers(await client().checkCredentials())).toBeUndefined();
  });

  it('throws for a refused key, a 5xx and no answer, with the reason', async () => {
    const wrongKey = await refusal(client({ apiKey: 'not-the-key-Rb4Nq7' }).checkCredentials());
    expect(wrongKey.message).toBe('the target refused the API key (HTTP 401)');
    expect(wrongKey.failure.kind).toBe('auth');

    sandbox.faults.enqueue({ kind: 'status', status: 502 });
    expect((await refusal(client().checkCredentials())).message).toBe('the target answered HTTP 502');

    const unreachable = await refusal(client({ baseUrl: 'http://127.0.0.1:9' }).checkCredentials());
    expect(unreachable.message).toMatch(/ECONNREFUSED/);
  });
});

describe('DeliveryResult.failure', () => {
  it('is absent on success and set on every rejected or failed result', async () => {
    const accepted = await client().logUserEvent(purchase());
    expect(accepted.outcome).toBe('accepted');
    expect(accepted).not.toHaveProperty('failure');

    const rejected = await client().logUserEvent({ userId: 'u', accountId: 'a', events: [{ key: '' }] });
    expect(rejected.failure).toMatchObject({ kind: 'rejected', status: 400, message: rejected.message });

    sandbox.faults.enqueue({ kind: 'throttle', retryAfterSeconds: 7 });
    const throttled = await client().logUserEvent(purchase());
    expect(throttled.failure).toEqual({ kind: 'throttled', status: 429, message: throttled.message, retryAfterMs: 7000 });

    sandbox.faults.enqueue({ kind: 'drop' });
    expect((await client().logUserEvent(purchase())).failure).toMatchObject({ kind: 'network', status: null });
  });

  it('is classified per item in a batch', async () => {
    const { results } = await client({ apiKey: 'not-the-key-Rb4Nq7' }).logUserEvents([purchase(), purchase()]);
    expect(results.map((result) => result.failure?.kind)).toEqual(['auth', 'auth']);
  });

  it('says aborted when the caller gave up on an attempt that had no answer', async () => {
    sandbox.faults.enqueue({ kind: 'latency', ms: 300 });
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 30);
    const result = await client().logUserEvent(purchase(), { signal: controller.signal });
    expect(result.failure).toEqual({ kind: 'aborted', status: null, message: 'aborted by the caller' });
  });
});

describe('a 2xx whose body cannot be read', () => {
  let server: Server;
  let url = '';
  let answer = '';
  let requests = 0;
  beforeAll(async () => {
    server = createServer((request, response) => {
      requests += 1;
      request.resume();
      request.on('end', () => response.writeHead(200, { 'content-type': 'text/html' }).end(answer));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it.each([
    ['empty', ''],
    ['HTML', '<html>proxy says hi</html>'],
    ['JSON without data', '{}'],
  ])('(%s) is an unknown outcome: failed as unreadable after retrying with the same key, never rejected', async (_name, body) => {
    answer = body;
    const target = client({ baseUrl: url, retry: { maxAttempts: 3 } });
    const input = purchase();
    for (const api of ['rest', 'graphql'] as const) {
      if (api === 'rest' && body === '{}') continue; // a REST 2xx with any JSON is an answer
      requests = 0;
      const result = await target.logUserEvent(input, { api });
      expect(result).toMatchObject({ outcome: 'failed', status: 200, attempts: 3, key: input.idempotencyKey });
      expect(result.failure).toMatchObject({ kind: 'unreadable', status: 200 });
      expect(requests).toBe(3);
    }
    const batch = await target.logUserEvents([input, purchase()]);
    expect(batch.results.map((result) => [result.outcome, result.failure?.kind])).toEqual([
      ['failed', 'unreadable'],
      ['failed', 'unreadable'],
    ]);
    expect(
      classifyFailure({ outcome: 'failed', status: 204, message: null, apiErrorCode: null, rsCode: null, retryAfterMs: null })?.kind,
    ).toBe('unreadable');
  });
});

describe('classifyFailure', () => {
  const fields = { message: null, apiErrorCode: null, rsCode: null, retryAfterMs: null };

  it.each([
    ['accepted', 200, null],
    ['duplicate', 409, null],
    ['rejected', 401, 'auth'],
    ['rejected', 403, 'auth'],
    ['rejected', 404, 'rejected'],
    ['failed', 429, 'throttled'],
    ['failed', 408, 'timeout'],
    ['failed', 500, 'unavailable'],
    ['failed', 503, 'unavailable'],
    ['failed', null, 'network'],
  ] as const)('%s %s is %s', (outcome, status, kind) => {
    expect(classifyFailure({ ...fields, outcome, status })?.kind ?? null).toBe(kind);
  });

  it('tells a wrong key (401) from a forbidden call (403)', () => {
    expect(classifyFailure({ ...fields, outcome: 'rejected', status: 401 })).toMatchObject({ reason: 'invalid-key' });
    expect(classifyFailure({ ...fields, outcome: 'rejected', status: 403 })).toMatchObject({ reason: 'forbidden' });
  });

  it('deliveryFailureOf prefers the failure the client set', () => {
    const base = { ...fields, outcome: 'failed', status: null, attempts: 1, key: null, eventIds: [] } as const;
    expect(deliveryFailureOf({ ...base, failure: { kind: 'timeout', status: null, message: 'request timed out' } })?.kind).toBe('timeout');
    expect(deliveryFailureOf(base)?.kind).toBe('network');
  });
});
