import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { InvalidInputError } from '../../../shared/errors.js';
import type { UserEventInput } from '../../../shared/events/index.js';
import { memoryLogger } from '../../../shared/log.js';
import { createTargetClient, type TargetClientOptions } from '../../../shared/target/index.js';
import { type ClosableTransport, undiciTransport } from '../../../shared/target/transport-undici.js';

const TENANT = 'test_tenant';
let sandbox: Sandbox;
let transport: ClosableTransport;
let delays: number[];

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

function client(overrides: Partial<TargetClientOptions> = {}) {
  delays = [];
  return createTargetClient({
    baseUrl: sandbox.url,
    tenant: TENANT,
    apiKey: DEFAULT_SANDBOX_API_KEY,
    transport: transport.send,
    // Waits are recorded, not slept, so retry tests are quick and can check the delays.
    sleep: async (ms) => {
      delays.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
}

let counter = 0;
function purchase(key: string | null = `key-${Date.now()}-${++counter}`, userId = 'ann'): UserEventInput {
  return {
    userId,
    accountId: userId,
    ...(key === null ? {} : { idempotencyKey: key }),
    events: [{ key: 'purchase', fields: { revenue: 1000, currency: 'USD' }, dateTriggered: 1_700_000_000_000 }],
  };
}

const recorded = () => sandbox.inspect(TENANT).events;

describe('REST logUserEvent', () => {
  it('is accepted and recorded once with its key', async () => {
    const result = await client().logUserEvent(purchase('f650f058-192c-4e52-b72d-9634116f59eb'));
    expect(result).toEqual({
      outcome: 'accepted',
      status: 200,
      attempts: 1,
      key: 'f650f058-192c-4e52-b72d-9634116f59eb',
      message: null,
      apiErrorCode: null,
      rsCode: null,
      eventIds: [expect.stringMatching(/^[0-9a-f]{24}$/)],
      retryAfterMs: null,
      uncertainRequests: 0,
    });
    expect(recorded()).toEqual([
      expect.objectContaining({
        userId: 'ann',
        accountId: 'ann',
        key: 'purchase',
        fields: { revenue: 1000, currency: 'USD' },
        dateTriggered: 1_700_000_000_000,
        idempotencyKey: 'f650f058-192c-4e52-b72d-9634116f59eb',
      }),
    ]);
  });

  it('turns 409 into duplicate, and the target keeps one event', async () => {
    const input = purchase();
    await client().logUserEvent(input);
    const again = await client().logUserEvent(input);
    expect(again).toMatchObject({ outcome: 'duplicate', status: 409, attempts: 1, key: input.idempotencyKey });
    expect(recorded()).toHaveLength(1);
  });

  it('turns 400 into rejected with the API message, without retrying', async () => {
    const result = await client().logUserEvent(purchase('bad key'));
    expect(result).toMatchObject({ outcome: 'rejected', status: 400, attempts: 1, apiErrorCode: 'VALIDATION_FAILED' });
    expect(result.message).toContain('idempotencyKey');
    expect(recorded()).toHaveLength(0);
  });

  it('turns 401 into rejected and never shows the API key', async () => {
    const secret = 'sk_live_do_not_print_me_0123456789';
    const logger = memoryLogger();
    const result = await client({ apiKey: secret, logger }).logUserEvent(purchase());
    expect(result).toMatchObject({ outcome: 'rejected', status: 401, attempts: 1 });
    expect(JSON.stringify(result)).not.toContain(secret);
    expect(JSON.stringify(logger.lines)).not.toContain(secret);
  });

  it('URL-encodes the account and user ids in the path', async () => {
    const userId = 'ann/b c@example.com?x=1#y';
    const result = await client().logUserEvent(purchase(undefined, userId));
    expect(result.outcome).toBe('accepted');
    expect(recorded()[0]).toMatchObject({ userId, accountId: userId });
  });
});

describe('retries', () => {
  it('retries 500, 429 and a reset connection with the same key, and the target records one event', async () => {
    sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'throttle', retryAfterSeconds: 2 }, { kind: 'drop' });
    const input = purchase();
    const logger = memoryLogger();
    const result = await client({ logger }).logUserEvent(input);
    expect(result).toMatchObject({ outcome: 'accepted', status: 200, attempts: 4, key: input.idempotencyKey });
    // The 500 and the reset may have landed; the 429 was refused before the target took the event.
    expect(result.uncertainRequests).toBe(2);
    expect(recorded()).toHaveLength(1);
    const key = sandbox.inspect(TENANT).keys.find((entry) => entry.key === input.idempotencyKey);
    expect(key?.requests).toBe(4);
    // Full jitter at random()=0.5 of 200·2^(n-1) ms, with Retry-After (2 s) as a floor on the second wait.
    expect(delays).toEqual([100, 2000, 400]);
    expect(logger.lines.map((line) => line.fields.event)).toEqual(['target_retry', 'target_retry', 'target_retry']);
  });

  it('"record, then fail" retried gives duplicate and one record', async () => {
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'status' });
    const input = purchase();
    const result = await client().logUserEvent(input);
    expect(result).toMatchObject({ outcome: 'duplicate', status: 409, attempts: 2 });
    expect(recorded()).toHaveLength(1);
  });

  it('"record, then drop the connection" retried gives duplicate and one record', async () => {
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'drop' });
    const result = await client().logUserEvent(purchase());
    expect(result).toMatchObject({ outcome: 'duplicate', attempts: 2 });
    expect(recorded()).toHaveLength(1);
  });

  it('without a key, "record, then fail" doubles the event: the reason keys matter', async () => {
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'status' });
    const result = await client().logUserEvent(purchase(null));
    // Accepted, but the first request's answer was lost after it was recorded: the result says so.
    expect(result).toMatchObject({ outcome: 'accepted', attempts: 2, key: null, uncertainRequests: 1 });
    expect(recorded()).toHaveLength(2);
  });

  it('counts a timed-out request as one that may have landed, and a refused connection as one that did not', async () => {
    sandbox.faults.enqueue({ kind: 'latency', ms: 400 });
    const slow = await client({ timeoutMs: 100 }).logUserEvent(purchase(null));
    expect(slow).toMatchObject({ outcome: 'accepted', attempts: 2, uncertainRequests: 1 });
    const refused = await client({ baseUrl: 'http://127.0.0.1:9', retry: { maxAttempts: 2 } }).logUserEvent(purchase(null));
    expect(refused).toMatchObject({ outcome: 'failed', status: null, attempts: 2, uncertainRequests: 0 });
    expect(refused.message).toMatch(/ECONNREFUSED/);
    await new Promise((resolve) => setTimeout(resolve, 400));
  });

  it('retries a timed-out attempt and still records once', async () => {
    sandbox.faults.enqueue({ kind: 'latency', ms: 400 });
    const result = await client({ timeoutMs: 100 }).logUserEvent(purchase());
    expect(['accepted', 'duplicate']).toContain(result.outcome);
    expect(result.attempts).toBe(2);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(recorded()).toHaveLength(1);
  });

  it('gives up as failed after maxAttempts, with the last status and message', async () => {
    sandbox.faults.enqueue(...Array.from({ length: 3 }, () => ({ kind: 'status', status: 503 }) as const));
    const result = await client({ retry: { maxAttempts: 3 } }).logUserEvent(purchase());
    expect(result).toMatchObject({ outcome: 'failed', status: 503, attempts: 3 });
    expect(result.message).toBeTruthy();
    expect(recorded()).toHaveLength(0);
  });

  it('gives up when the next wait would pass the deadline, and reports the Retry-After it was given', async () => {
    sandbox.faults.enqueue({ kind: 'throttle', retryAfterSeconds: 60 });
    const result = await client({ retry: { deadlineMs: 5_000 } }).logUserEvent(purchase());
    expect(result).toMatchObject({ outcome: 'failed', status: 429, attempts: 1, retryAfterMs: 60_000, uncertainRequests: 0 });
    expect(delays).toEqual([]);
  });

  it('stops when the caller aborts', async () => {
    sandbox.faults.enqueue({ kind: 'status', status: 500 });
    const controller = new AbortController();
    const result = await client({
      sleep: async () => {
        controller.abort();
        throw new Error('aborted');
      },
    }).logUserEvent(purchase(), { signal: controller.signal });
    expect(result).toMatchObject({ outcome: 'failed', attempts: 1, message: 'aborted by the caller' });
  });
});

describe('GraphQL', () => {
  it('logUserEvent is accepted, then a repeat is a duplicate read from errors[].extensions.apiError', async () => {
    const input = purchase();
    const first = await client({ api: 'graphql' }).logUserEvent(input);
    expect(first).toMatchObject({ outcome: 'accepted', status: 200, attempts: 1, eventIds: [expect.any(String)] });
    const again = await client({ api: 'graphql' }).logUserEvent(input);
    expect(again).toMatchObject({ outcome: 'duplicate', status: 409, attempts: 1 });
    expect(recorded()).toHaveLength(1);
  });

  it('logUserEvent with an invalid key is rejected with the API message', async () => {
    const result = await client({ api: 'graphql' }).logUserEvent(purchase('short'));
    expect(result).toMatchObject({ outcome: 'rejected', status: 400 });
    expect(result.message).toContain('idempotencyKey');
  });

  it('a logUserEvents batch gives per-item results in input order: accepted, duplicate, rejected, unkeyed', async () => {
    const seen = purchase();
    await client().logUserEvent(seen);
    const fresh = purchase();
    const result = await client().logUserEvents([fresh, seen, purchase('bad key'), purchase(null)]);
    expect(result.requests).toBe(1);
    expect(result.results.map((item) => [item.outcome, item.status, item.key])).toEqual([
      ['accepted', 200, fresh.idempotencyKey],
      ['duplicate', 409, seen.idempotencyKey],
      ['rejected', 400, 'bad key'],
      ['accepted', 200, null],
    ]);
    expect(recorded()).toHaveLength(3);
  });

  it('retries a failed batch request with the same keys; items already recorded come back as duplicates', async () => {
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'status' });
    const inputs = [purchase(), purchase(), purchase()];
    const result = await client().logUserEvents(inputs);
    expect(result.requests).toBe(2);
    expect(result.results.map((item) => [item.outcome, item.attempts, item.uncertainRequests])).toEqual([
      ['duplicate', 2, 1],
      ['duplicate', 2, 1],
      ['duplicate', 2, 1],
    ]);
    expect(recorded()).toHaveLength(3);
  });

  it('splits batches larger than maxBatchSize', async () => {
    const inputs = Array.from({ length: 5 }, () => purchase());
    const result = await client({ maxBatchSize: 2 }).logUserEvents(inputs);
    expect(result.requests).toBe(3);
    expect(result.results.every((item) => item.outcome === 'accepted')).toBe(true);
    expect(recorded()).toHaveLength(5);
  });

  it('a batch with a wrong API key is rejected item by item', async () => {
    const result = await client({ apiKey: 'wrong' }).logUserEvents([purchase(), purchase()]);
    expect(result.results.map((item) => [item.outcome, item.status])).toEqual([
      ['rejected', 401],
      ['rejected', 401],
    ]);
  });
});

describe('upsertUser', () => {
  it('stores the user', async () => {
    const result = await client().upsertUser({ id: 'ann', accountId: 'ann', email: 'ann@example.com', firstName: 'Ann' });
    expect(result).toMatchObject({ outcome: 'accepted', status: 200 });
    expect(sandbox.inspect(TENANT).users).toEqual([expect.objectContaining({ id: 'ann', accountId: 'ann', email: 'ann@example.com' })]);
  });
});

describe('options', () => {
  it('are validated, naming each field and never echoing the key', () => {
    const secret = 'sk_secret_value_123456';
    try {
      createTargetClient({ baseUrl: 'ftp://x', tenant: '', apiKey: secret, transport: transport.send, retry: { maxAttempts: 0 } });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidInputError);
      const issues = (error as InvalidInputError).issues.map((issue) => issue.field);
      expect(issues).toEqual(['baseUrl', 'tenant', 'retry.maxAttempts']);
      expect((error as Error).message).not.toContain(secret);
    }
  });
});
