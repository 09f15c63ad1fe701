import { describe, expect, it } from 'vitest';
import { startSandbox } from '../../../sandbox/target/index.js';
import { call, DAY_MS, eventsUrl, purchase, sandboxFor, TENANT, track } from './helpers.js';

describe('inspection endpoints', () => {
  it('lists tenants and returns the same snapshot as inspect(), without auth', async () => {
    const sandbox = await sandboxFor();
    await track(sandbox, purchase({ idempotencyKey: 'inspect-key-1' }), { tenant: 'one' });
    await track(sandbox, purchase({ idempotencyKey: 'inspect-key-1' }), { tenant: 'one' });
    await track(sandbox, purchase(), { tenant: 'two/with slash' });

    expect((await call(`${sandbox.url}/__sandbox/tenants`)).json).toEqual({ tenants: ['one', 'two/with slash'] });
    const one = await call(`${sandbox.url}/__sandbox/tenants/one`);
    expect(one.status).toBe(200);
    expect(one.json).toEqual(sandbox.inspect('one'));
    expect(one.json).toMatchObject({
      tenant: 'one',
      events: [{ key: 'purchase', idempotencyKey: 'inspect-key-1' }],
      keys: [{ key: 'inspect-key-1', requests: 2 }],
      users: [{ id: 'u1', accountId: 'a1', autoCreated: true }],
      requests: { total: 2, byStatus: { '200': 1, '409': 1 }, dropped: 0 },
    });
    expect((await call(`${sandbox.url}/__sandbox/tenants/${encodeURIComponent('two/with slash')}`)).json).toMatchObject({
      events: [{ key: 'purchase' }],
    });
  });

  it('gives an empty snapshot for a tenant never seen', async () => {
    const sandbox = await sandboxFor();
    const expected = { tenant: 'ghost', events: [], keys: [], users: [], requests: { total: 0, byStatus: {}, dropped: 0 } };
    expect(sandbox.inspect('ghost')).toEqual(expected);
    expect((await call(`${sandbox.url}/__sandbox/tenants/ghost`)).json).toEqual(expected);
    expect((await call(`${sandbox.url}/__sandbox/tenants`)).json).toEqual({ tenants: [] });
  });

  it('lists configured tenants from the start', async () => {
    const sandbox = await sandboxFor({ tenantApiKeys: { alpha: 'alpha-key' } });
    expect((await call(`${sandbox.url}/__sandbox/tenants`)).json).toEqual({ tenants: ['alpha'] });
  });

  it('hands out copies: changing a snapshot does not change the sandbox', async () => {
    const sandbox = await sandboxFor();
    await track(sandbox, purchase());
    const snapshot = sandbox.inspect(TENANT);
    (snapshot.events[0]?.fields as Record<string, unknown>).currency = 'EUR';
    expect(sandbox.inspect(TENANT).events[0]?.fields).toEqual({ currency: 'CAD', revenue: 10 });
  });

  it('answers 404 JSON to unknown control routes', async () => {
    const sandbox = await sandboxFor();
    const response = await call(`${sandbox.url}/__sandbox/nope`);
    expect(response.status).toBe(404);
    expect(response.json).toMatchObject({ statusCode: 404 });
  });
});

describe('fault control endpoints', () => {
  it('enqueues faults from JSON and the next API request gets them', async () => {
    const sandbox = await sandboxFor();
    const posted = await call(`${sandbox.url}/__sandbox/faults`, {
      body: {
        enqueue: [
          { kind: 'status', status: 503 },
          { kind: 'throttle', retryAfterSeconds: 4 },
        ],
      },
    });
    expect(posted.status).toBe(200);
    expect(posted.json).toMatchObject({
      queued: [
        { kind: 'status', status: 503 },
        { kind: 'throttle', retryAfterSeconds: 4 },
      ],
    });
    expect((await track(sandbox, purchase())).status).toBe(503);
    const throttled = await track(sandbox, purchase());
    expect(throttled.status).toBe(429);
    expect(throttled.headers['retry-after']).toBe('4');
  });

  it('sets rates from a spec or a FaultConfig, and DELETE clears them', async () => {
    const sandbox = await sandboxFor();
    expect((await call(`${sandbox.url}/__sandbox/faults`, { body: { spec: '500=1,seed=5' } })).json).toMatchObject({
      config: { status500: 1, seed: 5 },
      seed: 5,
    });
    expect((await track(sandbox, purchase())).status).toBe(500);
    expect((await call(`${sandbox.url}/__sandbox/faults`, { body: { status503: 1 } })).json).toMatchObject({ config: { status503: 1 } });
    expect((await track(sandbox, purchase())).status).toBe(503);
    expect((await call(`${sandbox.url}/__sandbox/faults`)).json).toMatchObject({ config: { status503: 1 }, injected: { status: 2 } });
    const cleared = await call(`${sandbox.url}/__sandbox/faults`, { method: 'DELETE' });
    expect(cleared.json).toMatchObject({ config: {}, queued: [] });
    expect((await track(sandbox, purchase())).status).toBe(200);
  });

  it('refuses bad fault input with 400 naming the part, and changes nothing', async () => {
    const sandbox = await sandboxFor();
    const badSpec = await call(`${sandbox.url}/__sandbox/faults`, { body: { spec: '500=0.1,bogus=1' } });
    expect(badSpec.status).toBe(400);
    expect(badSpec.json).toMatchObject({ statusCode: 400, message: expect.stringContaining('bogus=1') });
    const badRate = await call(`${sandbox.url}/__sandbox/faults`, { body: { status500: 3 } });
    expect(badRate.json).toMatchObject({ statusCode: 400, message: expect.stringContaining('status500') });
    const badQueue = await call(`${sandbox.url}/__sandbox/faults`, {
      body: { status500: 1, enqueue: [{ kind: 'drop' }, { kind: 'status', status: 200 }] },
    });
    expect(badQueue.json).toMatchObject({ statusCode: 400, message: expect.stringContaining('[1].status') });
    const both = await call(`${sandbox.url}/__sandbox/faults`, { body: { spec: '500=1', drop: 1 } });
    expect(both.status).toBe(400);
    expect((await call(`${sandbox.url}/__sandbox/faults`, { body: '{not json' })).status).toBe(400);
    expect(sandbox.faults.state()).toMatchObject({ config: {}, queued: [] });
    expect((await track(sandbox, purchase())).status).toBe(200);
  });
});

describe('reset and clock endpoints', () => {
  it('reset forgets events, keys and users, and restores the startup faults', async () => {
    const sandbox = await sandboxFor({ faults: { latencyMs: 1 } });
    await track(sandbox, purchase({ idempotencyKey: 'reset-key-01' }));
    sandbox.faults.enqueue({ kind: 'status', status: 500 });
    sandbox.faults.set({ status503: 1 });

    expect((await call(`${sandbox.url}/__sandbox/reset`, { method: 'POST' })).json).toEqual({ reset: true });
    expect(sandbox.inspect(TENANT)).toMatchObject({ events: [], keys: [], users: [], requests: { total: 0 } });
    expect(sandbox.faults.state()).toMatchObject({ config: { latencyMs: 1 }, queued: [] });
    expect((await track(sandbox, purchase({ idempotencyKey: 'reset-key-01' }))).status).toBe(200);
  });

  it('reset() in process does the same', async () => {
    const sandbox = await sandboxFor();
    await track(sandbox, purchase({ idempotencyKey: 'reset-key-02' }));
    sandbox.reset();
    expect(sandbox.inspect(TENANT).events).toEqual([]);
    expect((await track(sandbox, purchase({ idempotencyKey: 'reset-key-02' }))).status).toBe(200);
  });

  it('moves a manual clock, so a key window can pass over HTTP', async () => {
    const sandbox = await sandboxFor();
    const start = sandbox.clock.now();
    await track(sandbox, purchase({ idempotencyKey: 'clock-key-01' }));
    const moved = await call(`${sandbox.url}/__sandbox/clock`, { body: { advanceMs: DAY_MS } });
    expect(moved.json).toEqual({ now: start + DAY_MS, manual: true });
    expect(sandbox.clock.now()).toBe(start + DAY_MS);
    expect((await track(sandbox, purchase({ idempotencyKey: 'clock-key-01' }))).status).toBe(200);
    expect((await call(`${sandbox.url}/__sandbox/clock`, { body: { advanceMs: -5 } })).status).toBe(400);
    expect((await call(`${sandbox.url}/__sandbox/clock`, { body: {} })).status).toBe(400);
  });

  it('answers 409 to moving the system clock', async () => {
    const sandbox = await startSandbox({ port: 0 });
    try {
      const response = await call(`${sandbox.url}/__sandbox/clock`, { body: { advanceMs: 1000 } });
      expect(response.status).toBe(409);
      expect(response.json).toMatchObject({ statusCode: 409, message: expect.stringContaining('manualClock') });
      expect((await call(`${sandbox.url}/__sandbox/clock`)).json).toMatchObject({ manual: false });
      // The system clock really dates events.
      const before = Date.now();
      await call(eventsUrl(sandbox, 'a1', 'u1'), {
        body: purchase(),
        headers: { authorization: `Basic ${Buffer.from(':sandbox-key').toString('base64')}` },
      });
      expect(sandbox.inspect(TENANT).events[0]?.dateReceived).toBeGreaterThanOrEqual(before);
    } finally {
      await sandbox.close();
    }
  });
});

describe('startSandbox options', () => {
  it('listens on 127.0.0.1 on a free port and closes', async () => {
    const sandbox = await startSandbox();
    expect(sandbox.url).toBe(`http://127.0.0.1:${sandbox.port}`);
    expect(sandbox.port).toBeGreaterThan(0);
    await sandbox.close();
    await sandbox.close(); // idempotent
    await expect(call(`${sandbox.url}/__sandbox/health`)).rejects.toThrow();
  });

  it('refuses bad options', async () => {
    await expect(startSandbox({ keyRetentionMs: 0 })).rejects.toThrow(/keyRetentionMs/);
    await expect(startSandbox({ apiKey: '' })).rejects.toThrow(/apiKey/);
    await expect(startSandbox({ tenantApiKeys: { alpha: '' } })).rejects.toThrow(/alpha/);
  });

  it('logs start and close through the given logger, never the key', async () => {
    const lines: string[] = [];
    const logger = {
      info: (fields: Record<string, unknown>, message: string) => lines.push(JSON.stringify({ fields, message })),
      warn: (fields: Record<string, unknown>, message: string) => lines.push(JSON.stringify({ fields, message })),
      error: (fields: Record<string, unknown>, message: string) => lines.push(JSON.stringify({ fields, message })),
    };
    const sandbox = await startSandbox({ apiKey: 'very-secret-key', logger });
    await track(sandbox, purchase(), { apiKey: 'very-secret-key' });
    await sandbox.close();
    expect(lines.some((line) => line.includes('sandbox listening'))).toBe(true);
    expect(lines.some((line) => line.includes('sandbox closed'))).toBe(true);
    expect(lines.join('\n')).not.toContain('very-secret-key');
  });
});
