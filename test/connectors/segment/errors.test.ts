import { createServer } from 'node:net';
import { describe, expect, test } from 'vitest';
import type { Invocation } from '../../fakes/segment-runtime.js';
import { builtFunction, identifyEvent, settingsFor, startTestSandbox, TENANT, trackEvent } from './helpers.js';

/** A loopback port with nothing listening, for connection failures. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('target failures become RetryError, so Segment retries the event', () => {
  test.each([
    ['500', { kind: 'status', status: 500 }, /\(500 INTERNAL_SERVER_ERROR: /],
    ['503', { kind: 'status', status: 503 }, /\(503 /],
    ['502 (an HTML page from a gateway)', { kind: 'status', status: 502 }, /\(502: HTTP 502: <html>/],
    ['a reset connection', { kind: 'drop' }, /\(no answer: /],
  ] as const)('%s on both in-function attempts → RetryError naming the status and the key', async (_name, fault, why) => {
    const sandbox = await startTestSandbox();
    sandbox.faults.enqueue(fault, fault);
    const event = trackEvent();
    const invocation = await builtFunction().invoke(event, settingsFor(sandbox));
    expect(invocation.treatment).toMatchObject({ result: 'retry', category: 'Retry' });
    expect(invocation.thrown?.name).toBe('RetryError');
    expect(invocation.thrown?.message).toMatch(/^SaaSquatch did not take the event after 2 attempt\(s\) /);
    expect(invocation.thrown?.message).toMatch(why);
    expect(invocation.thrown?.message).toContain(`Segment will retry it with the same idempotency key ${String(event.messageId)}`);
    // Both attempts carried the same key; nothing was stored.
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toEqual([]);
    expect(snapshot.keys.map(({ key, requests }) => ({ key, requests }))).toEqual([{ key: event.messageId, requests: 2 }]);
    // The in-function retry is logged, for Segment's view of the errored event.
    expect(invocation.logs.map((line) => JSON.parse(line.text).event)).toEqual(['target_retry']);
  });

  test('a single 503 is absorbed by the in-function retry: delivered, stored once', async () => {
    const sandbox = await startTestSandbox();
    sandbox.faults.enqueue({ kind: 'status', status: 503 });
    const invocation = await builtFunction().invoke(trackEvent(), settingsFor(sandbox));
    expect(invocation.treatment).toEqual({ result: 'delivered' });
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
    expect(sandbox.inspect(TENANT).requests.byStatus).toEqual({ '200': 1, '503': 1 });
  });

  test('the event stored but the answer lost: the retry with the same key gets 409, which is success', async () => {
    const sandbox = await startTestSandbox();
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'drop' });
    const event = trackEvent();
    const invocation = await builtFunction().invoke(event, settingsFor(sandbox));
    expect(invocation.treatment).toEqual({ result: 'delivered' });
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events.map((stored) => stored.idempotencyKey)).toEqual([event.messageId]);
    expect(snapshot.requests).toEqual({ total: 2, byStatus: { '409': 1 }, dropped: 1 });
  });

  test('429 asking for longer than the function may wait → RetryError at once, Segment waits instead', async () => {
    const sandbox = await startTestSandbox();
    sandbox.faults.enqueue({ kind: 'throttle', retryAfterSeconds: 30 });
    const invocation = await builtFunction().invoke(trackEvent(), settingsFor(sandbox));
    expect(invocation.treatment).toMatchObject({ result: 'retry', category: 'Retry' });
    expect(invocation.thrown?.message).toMatch(/^SaaSquatch did not take the event after 1 attempt\(s\) \(429 /);
    expect(sandbox.inspect(TENANT).requests.total).toBe(1);
  });

  test('a network failure (nothing listening) → RetryError', async () => {
    const port = await closedPort();
    const invocation = await builtFunction().invoke(trackEvent(), {
      apiKey: 'sandbox-key',
      tenantAlias: TENANT,
      apiBaseUrl: `http://127.0.0.1:${port}`,
    });
    expect(invocation.treatment).toMatchObject({ result: 'retry', category: 'Retry' });
    expect(invocation.thrown?.message).toMatch(/\(no answer: .*ECONNREFUSED/);
  });

  test('identify: a 500 twice → RetryError for the user upsert', async () => {
    const sandbox = await startTestSandbox();
    sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    const invocation = await builtFunction().invoke(identifyEvent(), settingsFor(sandbox));
    expect(invocation.treatment).toMatchObject({ result: 'retry', category: 'Retry' });
    expect(invocation.thrown?.message).toMatch(/^SaaSquatch did not take the user after 2 attempt\(s\) \(500 /);
    expect(sandbox.inspect(TENANT).users).toEqual([]);
  });
});

describe('permanent refusals are discarded with the API message', () => {
  test('a 404 (unknown user, strict tenant) → ValidationError carrying the API message', async () => {
    const sandbox = await startTestSandbox({ strictUsers: true });
    const invocation = await builtFunction().invoke(trackEvent({ userId: 'nobody' }), settingsFor(sandbox));
    expect(invocation.treatment).toEqual({
      result: 'discard',
      category: 'Message Rejected',
      errorName: 'ValidationError',
      message: 'SaaSquatch rejected the event (404 USER_NOT_FOUND RS042): No user found with id "nobody" in account "nobody"',
    });
  });

  test('a 400 from the API → ValidationError carrying its message', async () => {
    const sandbox = await startTestSandbox();
    const traits = Object.fromEntries(Array.from({ length: 101 }, (_, index) => [`trait${index}`, index]));
    const invocation = await builtFunction().invoke(identifyEvent({ traits }), settingsFor(sandbox));
    expect(invocation.treatment).toEqual({
      result: 'discard',
      category: 'Message Rejected',
      errorName: 'ValidationError',
      message: 'SaaSquatch rejected the user (400 VALIDATION_FAILED): customFields: has 101 fields; at most 100',
    });
  });

  test.each([
    ['a wrong API key', { apiKey: 'not-the-key-0123' }, TENANT],
    ['a tenant the key does not belong to', {}, 'other_tenant'],
  ])('%s → an error that says the apiKey or tenantAlias setting is wrong', async (_name, overrides, tenant) => {
    const sandbox = await startTestSandbox({ tenantApiKeys: { [TENANT]: 'sandbox-key' } });
    const invocation = await builtFunction().invoke(trackEvent(), settingsFor(sandbox, { tenantAlias: tenant, ...overrides }));
    expect(invocation.treatment).toEqual({
      result: 'discard',
      category: 'Bad Request',
      errorName: 'FunctionConfigurationError',
      message:
        'SaaSquatch refused the credentials (401 UNAUTHORIZED RS045): check the apiKey and tenantAlias settings; the API key must ' +
        `belong to tenant "${tenant}" at ${sandbox.url}. SaaSquatch said: Invalid credentials: the API key is not valid for this tenant`,
    });
  });
});

describe('the API key never appears in an error or a log line', () => {
  test('across failures, refusals, dropped keys, bad settings and batches', async () => {
    const apiKey = 'sk_live_SECRET-1234567890';
    const wrongKey = 'sk_live_WRONG-0987654321';
    const sandbox = await startTestSandbox({ tenantApiKeys: { [TENANT]: apiKey } });
    const port = await closedPort();
    const fn = builtFunction();
    const good = settingsFor(sandbox, { apiKey });
    const invocations: Invocation[] = [];
    const run = async (event: Record<string, unknown>, settings: Record<string, unknown>) => {
      invocations.push(await fn.invoke(event, settings));
    };

    await run(trackEvent({ messageId: 'not valid!' }), good);
    sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    await run(trackEvent(), good);
    sandbox.faults.enqueue({ kind: 'drop' }, { kind: 'drop' });
    await run(identifyEvent(), good);
    await run(trackEvent(), settingsFor(sandbox, { apiKey: wrongKey }));
    await run(trackEvent(), { ...good, apiBaseUrl: `http://127.0.0.1:${port}` });
    await run(trackEvent(), { ...good, tenantAlias: 'bad alias' });
    await run(trackEvent({ properties: 'x' }), good);
    sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    const batch = await fn.invokeBatch([trackEvent(), trackEvent({ messageId: 'x' }), identifyEvent({ userId: null })], good);
    const wrongKeyBatch = await fn.invokeBatch([trackEvent()], settingsFor(sandbox, { apiKey: wrongKey }));

    // Every scenario failed in its own way, so the scan below covers real error paths.
    expect(invocations.map((invocation) => invocation.treatment.result)).toEqual([
      'delivered',
      'retry',
      'retry',
      'discard',
      'retry',
      'discard',
      'discard',
    ]);
    const everything = JSON.stringify({ invocations, batch, wrongKeyBatch, logs: fn.logs });
    expect(everything).toContain('SaaSquatch refused the credentials');
    expect(fn.logs.length).toBeGreaterThan(0);
    for (const secret of [apiKey, wrongKey]) {
      expect(everything).not.toContain(secret);
      expect(everything).not.toContain(Buffer.from(`:${secret}`).toString('base64'));
    }
  });
});
