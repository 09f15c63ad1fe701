import { describe, expect, it } from 'vitest';
import { FAULT_HEADER, parseFaultSpec, type QueuedFault, type Sandbox } from '../../../sandbox/target/index.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { basicAuth, call, firstApiError, graphql, purchase, sandboxFor, TENANT, track } from './helpers.js';

const LOG_ONE = 'mutation($i: UserEventInput!) { logUserEvent(userEventInput: $i) { events { id } } }';

/** The fault that stores the event and then loses the answer. */
const recordThenFail = (failWith: 'status' | 'drop'): QueuedFault => ({ kind: 'record-then-fail', failWith });

/** Status of one tracked request, or 'drop' when no response came. */
async function outcome(sandbox: Sandbox, key?: string): Promise<number | 'drop'> {
  try {
    return (await track(sandbox, purchase(key === undefined ? {} : { idempotencyKey: key }))).status;
  } catch {
    return 'drop';
  }
}

describe('queued faults', () => {
  it('answers a queued 500 without recording, then serves the next request normally', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'status', status: 500 });
    const faulted = await track(sandbox, purchase({ idempotencyKey: 'fault-key-500' }));
    expect(faulted.status).toBe(500);
    expect(faulted.json).toMatchObject({ statusCode: 500, apiErrorCode: 'INTERNAL_SERVER_ERROR' });
    expect(faulted.headers[FAULT_HEADER]).toBe('status-500');
    expect(sandbox.inspect(TENANT).events).toEqual([]);

    const retry = await track(sandbox, purchase({ idempotencyKey: 'fault-key-500' }));
    expect(retry.status).toBe(200);
    expect(sandbox.inspect(TENANT).keys).toEqual([
      expect.objectContaining({ key: 'fault-key-500', requests: 2, eventIds: [expect.any(String)] }),
    ]);
  });

  it('consumes the queue one entry per API request, in order', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 408 }, { kind: 'status', status: 504 });
    expect(sandbox.faults.state().queued).toHaveLength(3);
    const statuses = [await outcome(sandbox), await outcome(sandbox), await outcome(sandbox), await outcome(sandbox)];
    expect(statuses).toEqual([503, 408, 504, 200]);
    expect(sandbox.faults.state().queued).toEqual([]);
    expect(sandbox.faults.state().injected.status).toBe(3);
  });

  it('answers 502 and 504 with a gateway HTML page, not the API JSON', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'status', status: 502 });
    const response = await track(sandbox, purchase());
    expect(response.status).toBe(502);
    expect(response.headers['content-type']).toMatch(/^text\/html/);
    expect(response.json).toBeUndefined();
    expect(response.text).toContain('502 Bad Gateway');
  });

  it('does not let a 401 consume a queued fault', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'status', status: 500 });
    expect((await track(sandbox, purchase(), { apiKey: 'wrong-key' })).status).toBe(401);
    expect(await outcome(sandbox)).toBe(500);
  });

  it('throttles with 429 and a Retry-After header', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'throttle', retryAfterSeconds: 7 }, { kind: 'throttle' });
    const first = await track(sandbox, purchase());
    expect(first.status).toBe(429);
    expect(first.headers['retry-after']).toBe('7');
    expect(first.json).toMatchObject({ statusCode: 429, rsCode: 'RS033' });
    const second = await track(sandbox, purchase());
    expect(second.headers['retry-after']).toBe('1');
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });

  it('drops the connection before any response: the client sees a connection error and nothing is recorded', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'drop' });
    const error = await track(sandbox, purchase({ idempotencyKey: 'dropped-key-1' })).then(
      () => null,
      (reason: unknown) => reason as { code?: string },
    );
    expect(error).not.toBeNull();
    // A TCP reset, not a graceful close: what a crashed proxy or a cut connection looks like.
    expect(error?.code).toBe('ECONNRESET');
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toEqual([]);
    expect(snapshot.requests).toMatchObject({ total: 1, dropped: 1 });
    // The dropped request still counts towards its key.
    expect(snapshot.keys).toEqual([expect.objectContaining({ key: 'dropped-key-1', requests: 1, expiresAt: null })]);
    expect(await outcome(sandbox, 'dropped-key-1')).toBe(200);
  });

  it('record-then-fail (status): stores the event, answers 503, and a retry with the key gets 409', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue(recordThenFail('status'));
    const lost = await track(sandbox, purchase({ idempotencyKey: 'recorded-key-1' }));
    expect(lost.status).toBe(503);
    expect(lost.headers[FAULT_HEADER]).toBe('record-then-fail');
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);

    const retry = await track(sandbox, purchase({ idempotencyKey: 'recorded-key-1' }));
    expect(retry.status).toBe(409);
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toHaveLength(1);
    expect(snapshot.keys[0]).toMatchObject({ key: 'recorded-key-1', requests: 2 });
    expect(snapshot.requests.byStatus).toEqual({ '409': 1, '503': 1 });
  });

  it('record-then-fail (drop): stores the event, resets the connection, and a retry with the key gets 409', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue(recordThenFail('drop'));
    expect(await outcome(sandbox, 'recorded-key-2')).toBe('drop');
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
    expect(await outcome(sandbox, 'recorded-key-2')).toBe(409);
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
  });

  it('record-then-fail shows why keyless retries are dangerous: the retry records the event twice', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue(recordThenFail('status'));
    expect(await outcome(sandbox)).toBe(503);
    expect(await outcome(sandbox)).toBe(200);
    expect(sandbox.inspect(TENANT).events).toHaveLength(2);
  });

  it('record-then-fail applies to GraphQL too; the retry sees a 409 apiError', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue(recordThenFail('status'));
    const variables = { i: purchase({ idempotencyKey: 'gql-recorded-1' }) };
    expect((await graphql(sandbox, LOG_ONE, variables)).status).toBe(503);
    const retry = await graphql(sandbox, LOG_ONE, variables);
    expect(firstApiError(retry.json)).toMatchObject({ statusCode: 409 });
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
  });

  it('counts the keys of a GraphQL request answered by a fault', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'status', status: 503 });
    const many = 'mutation($i: [UserEventInput!]!) { logUserEvents(userEventInputs: $i) { __typename } }';
    const response = await graphql(sandbox, many, {
      i: [purchase({ idempotencyKey: 'gql-faulted-1' }), purchase({ idempotencyKey: 'gql-faulted-2' })],
    });
    expect(response.status).toBe(503);
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toEqual([]);
    expect(snapshot.keys.map((key) => [key.key, key.requests, key.expiresAt])).toEqual([
      ['gql-faulted-1', 1, null],
      ['gql-faulted-2', 1, null],
    ]);
  });

  it('delays a request by a queued latency and then answers it normally', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'latency', ms: 300 });
    const started = performance.now();
    expect(await outcome(sandbox)).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    // Only the one request waited: the next is answered at once (the margin absorbs a busy machine).
    const quick = performance.now();
    expect(await outcome(sandbox)).toBe(200);
    expect(performance.now() - quick).toBeLessThan(250);
  });

  it('closes promptly while a request waits out its latency', async () => {
    const sandbox = await sandboxFor();
    sandbox.faults.enqueue({ kind: 'latency', ms: 30_000 });
    const pending = outcome(sandbox);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const started = performance.now();
    await sandbox.close();
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await pending).toBe('drop');
  });

  it('refuses malformed queued faults', () => {
    return sandboxFor().then((sandbox) => {
      expect(() => sandbox.faults.enqueue({ kind: 'status', status: 418 } as unknown as QueuedFault)).toThrow(/\[0\]\.status/);
      expect(() => sandbox.faults.enqueue({ kind: 'explode' } as unknown as QueuedFault)).toThrow(InvalidInputError);
      expect(() => sandbox.faults.enqueue({ kind: 'latency', ms: -1 })).toThrow(/\[0\]\.ms/);
      expect(sandbox.faults.state().queued).toEqual([]);
    });
  });
});

describe('rate faults', () => {
  const rates = { status500: 0.2, status503: 0.1, status429: 0.1, drop: 0.1, recordThenFail: 0.1 };

  async function sequence(sandbox: Sandbox, count: number): Promise<(number | 'drop')[]> {
    const out: (number | 'drop')[] = [];
    for (let index = 0; index < count; index += 1) out.push(await outcome(sandbox));
    return out;
  }

  it('draws the same fault sequence from the same seed', async () => {
    const first = await sequence(await sandboxFor({ faults: { ...rates, seed: 42 } }), 60);
    const second = await sequence(await sandboxFor({ faults: `500=0.2,503=0.1,429=0.1,drop=0.1,record-then-fail=0.1,seed=42` }), 60);
    expect(second).toEqual(first);
    // The sequence really mixes faults and successes.
    for (const expected of [200, 500, 503, 429, 'drop'] as const) expect(first).toContain(expected);
    const other = await sequence(await sandboxFor({ faults: { ...rates, seed: 7 } }), 60);
    expect(other).not.toEqual(first);
  });

  it('restarts the sequence when set() is called with the same seed', async () => {
    const sandbox = await sandboxFor({ faults: { ...rates, seed: 99 } });
    const first = await sequence(sandbox, 30);
    sandbox.faults.set({ ...rates, seed: 99 });
    expect(await sequence(sandbox, 30)).toEqual(first);
    expect(sandbox.faults.state().seed).toBe(99);
  });

  it('stores the event of a rate-drawn record-then-fail', async () => {
    const sandbox = await sandboxFor({ faults: { recordThenFail: 1, seed: 1 } });
    expect(await outcome(sandbox)).toBe(503);
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
  });

  it('applies rates and latency to /api/ routes only, never to /__sandbox/', async () => {
    const sandbox = await sandboxFor({ faults: { status500: 1, latencyMs: 5000, seed: 1 } });
    const started = performance.now();
    for (let index = 0; index < 5; index += 1) expect((await call(`${sandbox.url}/__sandbox/tenants`)).status).toBe(200);
    expect(performance.now() - started).toBeLessThan(1000);
    sandbox.faults.set({ status500: 1 });
    expect(await outcome(sandbox)).toBe(500);
  });

  it('clear() removes rates and the queue', async () => {
    const sandbox = await sandboxFor({ faults: { status503: 1 } });
    sandbox.faults.enqueue({ kind: 'drop' });
    sandbox.faults.clear();
    expect(await outcome(sandbox)).toBe(200);
    expect(sandbox.faults.state()).toMatchObject({ config: {}, queued: [] });
  });

  it('takes queued faults before rates', async () => {
    const sandbox = await sandboxFor({ faults: { status503: 1 } });
    sandbox.faults.enqueue({ kind: 'throttle', retryAfterSeconds: 2 });
    expect(await outcome(sandbox)).toBe(429);
    expect(await outcome(sandbox)).toBe(503);
  });

  it('uses retry-after from the config for rate-drawn 429s', async () => {
    const sandbox = await sandboxFor({ faults: 'retry-after=3,429=1' });
    const response = await track(sandbox, purchase(), { headers: { authorization: basicAuth() } });
    expect(response.status).toBe(429);
    expect(response.headers['retry-after']).toBe('3');
  });
});

describe('parseFaultSpec', () => {
  it('parses every part of the CLI form', () => {
    expect(parseFaultSpec('500=0.1,503=0.05,429=0.05,retry-after=2,drop=0.02,record-then-fail=0.05,latency=20,seed=42')).toEqual({
      status500: 0.1,
      status503: 0.05,
      status429: 0.05,
      retryAfterSeconds: 2,
      drop: 0.02,
      recordThenFail: 0.05,
      latencyMs: 20,
      seed: 42,
    });
  });

  it('takes any subset, blanks and spaces', () => {
    expect(parseFaultSpec('')).toEqual({});
    expect(parseFaultSpec(' drop = 0.5 , ')).toEqual({ drop: 0.5 });
    expect(parseFaultSpec('latency=0')).toEqual({ latencyMs: 0 });
  });

  const bad: [string, string, RegExp][] = [
    ['500=0.1,teapot=1', 'teapot=1', /unknown fault "teapot"/],
    ['drop', 'drop', /expected name=value/],
    ['503=lots', '503=lots', /not a number/],
    ['500=1.5', '500=1.5', /between 0 and 1/],
    ['429=-0.1', '429=-0.1', /between 0 and 1/],
    ['latency=2.5', 'latency=2.5', /whole milliseconds/],
    ['retry-after=-1', 'retry-after=-1', /negative/],
    ['seed=1.5', 'seed=1.5', /integer/],
    ['drop=0.1,drop=0.2', 'drop=0.2', /more than once/],
    ['500=0.6,503=0.6', '500=0.6,503=0.6', /add up to/],
  ];
  for (const [spec, part, reason] of bad) {
    it(`names the bad part of "${spec}"`, () => {
      let caught: unknown;
      try {
        parseFaultSpec(spec);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(InvalidInputError);
      const issues = (caught as InvalidInputError).issues;
      expect(issues).toEqual(expect.arrayContaining([{ field: part, reason: expect.stringMatching(reason) }]));
      expect((caught as Error).message).toContain(part);
    });
  }

  it('is what set() and the faults option accept as a string', async () => {
    await expect(sandboxFor({ faults: '500=2' })).rejects.toThrow(InvalidInputError);
    const sandbox = await sandboxFor({ faults: '503=1' });
    expect(await outcome(sandbox)).toBe(503);
    expect(() => sandbox.faults.set('nonsense')).toThrow(/nonsense/);
    expect(sandbox.faults.state().config).toEqual({ status503: 1 });
  });
});
