import { describe, expect, it } from 'vitest';
import { basicAuth, call, DAY_MS, eventsUrl, purchase, sandboxFor, TENANT, track, userUrl } from './helpers.js';

interface TrackResponse {
  userId: string;
  accountId: string;
  events: { id: string; key: string; fields: unknown; dateTriggered: number; dateReceived: number; dateProcessed: number }[];
}

describe('trackEvent: accepted events', () => {
  it('answers 200 with the recorded events and stores them with their key', async () => {
    const sandbox = await sandboxFor();
    const now = sandbox.clock.now();
    const response = await track(
      sandbox,
      purchase({
        idempotencyKey: 'order-1001',
        events: [
          { key: 'purchase', fields: { currency: 'CAD' } },
          { key: 'signup', dateTriggered: 1_600_000_000_000 },
        ],
      }),
    );

    expect(response.status).toBe(200);
    const body = response.json as TrackResponse;
    expect(body).toEqual({
      userId: 'u1',
      accountId: 'a1',
      events: [
        {
          id: expect.stringMatching(/^[0-9a-f]{24}$/),
          key: 'purchase',
          fields: { currency: 'CAD' },
          dateTriggered: now,
          dateReceived: now,
          dateProcessed: now,
        },
        {
          id: expect.stringMatching(/^[0-9a-f]{24}$/),
          key: 'signup',
          fields: {},
          dateTriggered: 1_600_000_000_000,
          dateReceived: now,
          dateProcessed: now,
        },
      ],
    });
    const ids = body.events.map((event) => event.id);
    expect(new Set(ids).size).toBe(2);

    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toEqual([
      {
        id: ids[0],
        userId: 'u1',
        accountId: 'a1',
        key: 'purchase',
        fields: { currency: 'CAD' },
        dateTriggered: now,
        dateReceived: now,
        idempotencyKey: 'order-1001',
        via: 'rest',
      },
      {
        id: ids[1],
        userId: 'u1',
        accountId: 'a1',
        key: 'signup',
        fields: {},
        dateTriggered: 1_600_000_000_000,
        dateReceived: now,
        idempotencyKey: 'order-1001',
        via: 'rest',
      },
    ]);
    expect(snapshot.keys).toEqual([{ key: 'order-1001', requests: 1, firstSeenAt: now, expiresAt: now + DAY_MS, eventIds: ids }]);
    expect(snapshot.requests).toEqual({ total: 1, byStatus: { '200': 1 }, dropped: 0 });
  });

  it('records every keyless request, even identical ones', async () => {
    const sandbox = await sandboxFor();
    expect((await track(sandbox, purchase())).status).toBe(200);
    expect((await track(sandbox, purchase())).status).toBe(200);
    expect(sandbox.inspect(TENANT).events).toHaveLength(2);
    expect(sandbox.inspect(TENANT).keys).toEqual([]);
  });

  it('reads explicit nulls in optional members as absent, as the Java SDK sends them', async () => {
    const sandbox = await sandboxFor();
    const response = await track(sandbox, {
      userId: 'u1',
      accountId: 'a1',
      idempotencyKey: null,
      events: [{ key: 'purchase', fields: null, dateTriggered: null }],
    });
    expect(response.status).toBe(200);
    expect(sandbox.inspect(TENANT).events[0]).toMatchObject({ key: 'purchase', fields: {}, idempotencyKey: null });
  });

  it('URL-decodes path segments, so ids with reserved characters round-trip', async () => {
    const sandbox = await sandboxFor();
    const input = purchase({ userId: 'user/1 ü', accountId: 'acc?#1' });
    const response = await track(sandbox, input, { tenant: 'tenant with space' });
    expect(response.status).toBe(200);
    expect(sandbox.inspect('tenant with space').events[0]).toMatchObject({ userId: 'user/1 ü', accountId: 'acc?#1' });
  });
});

describe('trackEvent: idempotency keys', () => {
  it('answers 409 to a repeated key and records the event only once', async () => {
    const sandbox = await sandboxFor();
    const input = purchase({ idempotencyKey: 'evt_0001-a.b' });
    const first = await track(sandbox, input);
    const second = await track(sandbox, input);

    expect(first.status).toBe(200);
    expect(second.status).toBe(409);
    expect(second.json).toMatchObject({
      statusCode: 409,
      apiErrorCode: 'IDEMPOTENCY_KEY_CONFLICT',
      message: expect.stringContaining('evt_0001-a.b'),
    });
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toHaveLength(1);
    expect(snapshot.keys).toEqual([expect.objectContaining({ key: 'evt_0001-a.b', requests: 2, eventIds: [snapshot.events[0]?.id] })]);
    expect(snapshot.requests.byStatus).toEqual({ '200': 1, '409': 1 });
  });

  it('answers 409 even when the repeat carries different events: the key alone decides', async () => {
    const sandbox = await sandboxFor();
    await track(sandbox, purchase({ idempotencyKey: 'same-key-1' }));
    const other = await track(sandbox, purchase({ idempotencyKey: 'same-key-1', events: [{ key: 'refund' }] }));
    expect(other.status).toBe(409);
    expect(sandbox.inspect(TENANT).events.map((event) => event.key)).toEqual(['purchase']);
  });

  it('keeps keys per tenant: the same key is accepted once in each tenant', async () => {
    const sandbox = await sandboxFor();
    const input = purchase({ idempotencyKey: 'shared-key-42' });
    expect((await track(sandbox, input, { tenant: 'tenant_a' })).status).toBe(200);
    expect((await track(sandbox, input, { tenant: 'tenant_b' })).status).toBe(200);
    expect((await track(sandbox, input, { tenant: 'tenant_b' })).status).toBe(409);
    expect(sandbox.inspect('tenant_a').events).toHaveLength(1);
    expect(sandbox.inspect('tenant_b').events).toHaveLength(1);
  });

  it('forgets a key once its 24 h window has passed on the clock', async () => {
    const sandbox = await sandboxFor();
    const input = purchase({ idempotencyKey: 'window-key-1' });
    const start = sandbox.clock.now();
    expect((await track(sandbox, input)).status).toBe(200);

    sandbox.clock.advance(DAY_MS - 1);
    expect((await track(sandbox, input)).status).toBe(409);

    sandbox.clock.advance(1);
    expect((await track(sandbox, input)).status).toBe(200);
    expect((await track(sandbox, input)).status).toBe(409);

    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toHaveLength(2);
    // The key's record describes its current window.
    expect(snapshot.keys).toEqual([
      expect.objectContaining({ key: 'window-key-1', requests: 2, firstSeenAt: start + DAY_MS, expiresAt: start + 2 * DAY_MS }),
    ]);
  });

  it('runs the window for keyRetentionMs when given', async () => {
    const sandbox = await sandboxFor({ keyRetentionMs: 1000 });
    const input = purchase({ idempotencyKey: 'short-window' });
    expect((await track(sandbox, input)).status).toBe(200);
    sandbox.clock.advance(999);
    expect((await track(sandbox, input)).status).toBe(409);
    sandbox.clock.advance(1);
    expect((await track(sandbox, input)).status).toBe(200);
  });

  it('answers one 200 and the rest 409 to concurrent requests with one key', async () => {
    const sandbox = await sandboxFor();
    const input = purchase({ idempotencyKey: 'concurrent-key' });
    const statuses = (await Promise.all(Array.from({ length: 20 }, () => track(sandbox, input)))).map((response) => response.status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(19);
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
    expect(sandbox.inspect(TENANT).keys[0]?.requests).toBe(20);
  });
});

describe('trackEvent: authentication', () => {
  it('answers 401 RS045 without credentials', async () => {
    const sandbox = await sandboxFor();
    const response = await call(eventsUrl(sandbox, 'a1', 'u1'), { body: purchase() });
    expect(response.status).toBe(401);
    expect(response.json).toEqual({
      statusCode: 401,
      message: expect.stringMatching(/missing/i),
      apiErrorCode: 'UNAUTHORIZED',
      rsCode: 'RS045',
    });
    expect(response.headers['www-authenticate']).toMatch(/^Basic/);
  });

  it('answers 401 to a wrong key, without echoing any key', async () => {
    const sandbox = await sandboxFor({ apiKey: 'the-right-key' });
    const wrong = await track(sandbox, purchase(), { apiKey: 'a-wrong-key-123' });
    expect(wrong.status).toBe(401);
    expect(wrong.json).toEqual({
      statusCode: 401,
      message: expect.stringMatching(/not valid/),
      apiErrorCode: 'UNAUTHORIZED',
      rsCode: 'RS045',
    });
    expect(wrong.text).not.toContain('a-wrong-key-123');
    expect(wrong.text).not.toContain('the-right-key');
    expect((await track(sandbox, purchase(), { apiKey: 'the-right-key' })).status).toBe(200);
  });

  it('refuses the key sent as the user name, and other schemes', async () => {
    const sandbox = await sandboxFor();
    const asUser = await track(sandbox, purchase(), {
      headers: { authorization: `Basic ${Buffer.from('sandbox-key:').toString('base64')}` },
    });
    expect(asUser.status).toBe(401);
    expect(asUser.json).toMatchObject({ message: expect.stringContaining('user name must be empty') });
    expect(asUser.text).not.toContain('sandbox-key');
    const bearer = await track(sandbox, purchase(), { headers: { authorization: 'Bearer sandbox-key' } });
    expect(bearer.status).toBe(401);
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });

  it('with tenantApiKeys, knows only those tenants, each with its own key', async () => {
    const sandbox = await sandboxFor({ tenantApiKeys: { alpha: 'alpha-key', beta: 'beta-key' } });
    expect((await track(sandbox, purchase(), { tenant: 'alpha', apiKey: 'alpha-key' })).status).toBe(200);
    expect((await track(sandbox, purchase(), { tenant: 'beta', apiKey: 'alpha-key' })).status).toBe(401);
    const unknown = await track(sandbox, purchase(), { tenant: 'gamma', apiKey: 'alpha-key' });
    expect(unknown.status).toBe(401);
    expect(unknown.json).toMatchObject({ statusCode: 401, apiErrorCode: 'UNAUTHORIZED' });
    expect((await track(sandbox, purchase(), { tenant: 'alpha' })).status).toBe(401); // the default key is not valid here
    expect(sandbox.inspect('beta').events).toEqual([]);
  });
});

describe('trackEvent: bad input', () => {
  const cases: {
    name: string;
    body: unknown;
    path?: { accountId: string; userId: string };
    field: string;
    reason: RegExp;
    rsCode?: string;
  }[] = [
    { name: 'missing userId', body: { accountId: 'a1', events: [{ key: 'k' }] }, field: 'userId', reason: /required/, rsCode: 'RS043' },
    {
      name: 'empty accountId',
      body: { userId: 'u1', accountId: '', events: [{ key: 'k' }] },
      field: 'accountId',
      reason: /must not be empty/,
      rsCode: 'RS044',
    },
    { name: 'empty events', body: purchase({ events: [] }), field: 'events', reason: /at least one event/ },
    { name: 'missing events', body: { userId: 'u1', accountId: 'a1' }, field: 'events', reason: /required/ },
    { name: 'empty event key', body: purchase({ events: [{ key: '' }] }), field: 'events[0].key', reason: /must not be empty/ },
    {
      name: 'key too short',
      body: purchase({ idempotencyKey: 'short' }),
      field: 'idempotencyKey',
      reason: /too_short.*8 to 64 characters/,
    },
    { name: 'key too long', body: purchase({ idempotencyKey: 'k'.repeat(65) }), field: 'idempotencyKey', reason: /too_long/ },
    {
      name: 'key with bad characters',
      body: purchase({ idempotencyKey: 'order#1001' }),
      field: 'idempotencyKey',
      reason: /bad_characters.*A-Z a-z 0-9 - _ \./,
    },
    { name: 'key not a string', body: purchase({ idempotencyKey: 12345678 }), field: 'idempotencyKey', reason: /not_a_string/ },
    {
      name: 'path userId differs from body',
      body: purchase(),
      path: { accountId: 'a1', userId: 'someone-else' },
      field: 'userId',
      reason: /must equal the userId in the URL path/,
    },
    {
      name: 'path accountId differs from body',
      body: purchase(),
      path: { accountId: 'other', userId: 'u1' },
      field: 'accountId',
      reason: /must equal the accountId in the URL path/,
    },
    {
      name: '1501-byte field string',
      body: purchase({ events: [{ key: 'k', fields: { note: 'x'.repeat(1501) } }] }),
      field: 'events[0].fields.note',
      reason: /1501 UTF-8 bytes/,
    },
    {
      name: 'multi-byte string over 1500 bytes',
      body: purchase({ events: [{ key: 'k', fields: { note: 'é'.repeat(751) } }] }),
      field: 'events[0].fields.note',
      reason: /1502 UTF-8 bytes/,
    },
    {
      name: 'arrays of arrays',
      body: purchase({ events: [{ key: 'k', fields: { grid: [[1, 2]] } }] }),
      field: 'events[0].fields.grid[0]',
      reason: /arrays of arrays/,
    },
    {
      name: 'dateTriggered as an ISO string',
      body: purchase({ events: [{ key: 'k', dateTriggered: '2025-01-01T00:00:00Z' }] }),
      field: 'events[0].dateTriggered',
      reason: /epoch milliseconds/,
    },
    { name: 'body is an array', body: [purchase()], field: '(root)', reason: /JSON object/ },
  ];

  for (const testCase of cases) {
    it(`answers 400 naming ${testCase.field} for ${testCase.name}, and records nothing`, async () => {
      const sandbox = await sandboxFor();
      const path = testCase.path ?? { accountId: 'a1', userId: 'u1' };
      const response = await call(eventsUrl(sandbox, path.accountId, path.userId), {
        body: testCase.body,
        headers: { authorization: basicAuth() },
      });
      expect(response.status).toBe(400);
      const body = response.json as { message: string; validationErrors: string[] };
      expect(body).toMatchObject({ statusCode: 400, apiErrorCode: 'VALIDATION_FAILED', rsCode: testCase.rsCode ?? null });
      expect(body.message.startsWith(`${testCase.field}: `)).toBe(true);
      expect(body.message).toMatch(testCase.reason);
      expect(body.validationErrors[0]).toMatch(new RegExp(`^${testCase.field.replace(/[[\].()]/g, '\\$&')}: `));
      expect(sandbox.inspect(TENANT).events).toEqual([]);
    });
  }

  it('accepts a field string of exactly 1500 bytes', async () => {
    const sandbox = await sandboxFor();
    expect((await track(sandbox, purchase({ events: [{ key: 'k', fields: { note: 'x'.repeat(1500) } }] }))).status).toBe(200);
  });

  it('lists every bad field, not just the first', async () => {
    const sandbox = await sandboxFor();
    const response = await track(sandbox, { accountId: 'a1', idempotencyKey: 'bad key!', events: [{ key: '' }] }, { userId: 'u1' });
    expect(response.status).toBe(400);
    const fields = (response.json as { validationErrors: string[] }).validationErrors.map((line) => line.split(':')[0]);
    expect(fields).toEqual(expect.arrayContaining(['userId', 'events[0].key', 'idempotencyKey']));
  });

  it('does not use up the key of a request it refused', async () => {
    const sandbox = await sandboxFor();
    const bad = await track(sandbox, purchase({ idempotencyKey: 'kept-for-later', events: [] }));
    expect(bad.status).toBe(400);
    expect(sandbox.inspect(TENANT).keys).toEqual([
      expect.objectContaining({ key: 'kept-for-later', requests: 1, expiresAt: null, eventIds: [] }),
    ]);
    const good = await track(sandbox, purchase({ idempotencyKey: 'kept-for-later' }));
    expect(good.status).toBe(200);
    expect(sandbox.inspect(TENANT).keys[0]).toMatchObject({ requests: 2, expiresAt: expect.any(Number) });
  });

  it('answers 400 RS046 to a body that is not JSON', async () => {
    const sandbox = await sandboxFor();
    const response = await track(sandbox, '{"userId": "u1", "accountId": ');
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ statusCode: 400, rsCode: 'RS046', message: expect.stringMatching(/invalid JSON/i) });
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });

  it('answers 400 RS046 to an empty body and to a wrong content type', async () => {
    const sandbox = await sandboxFor();
    expect((await track(sandbox, '')).json).toMatchObject({ statusCode: 400, rsCode: 'RS046' });
    const form = await track(sandbox, JSON.stringify(purchase()), { headers: { 'content-type': 'text/plain' } });
    expect(form.status).toBe(400);
    expect(form.json).toMatchObject({ rsCode: 'RS046', message: expect.stringContaining('text/plain') });
    const withCharset = await track(sandbox, JSON.stringify(purchase()), {
      headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    expect(withCharset.status).toBe(200);
  });

  it('answers 404 JSON to unknown routes and 405 to a wrong method', async () => {
    const sandbox = await sandboxFor();
    const unknown = await call(`${sandbox.url}/api/v1/${TENANT}/open/account/a1/user/u1/evnts`, {
      body: purchase(),
      headers: { authorization: basicAuth() },
    });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ statusCode: 404, apiErrorCode: 'NOT_FOUND' });
    expect((await call(`${sandbox.url}/nothing-here`)).json).toMatchObject({ statusCode: 404 });
    const wrongMethod = await call(eventsUrl(sandbox, 'a1', 'u1'), { method: 'GET', headers: { authorization: basicAuth() } });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
  });

  it('answers 400 to malformed percent-encoding in the path, not 500', async () => {
    const sandbox = await sandboxFor();
    const response = await call(`${sandbox.url}/api/v1/${TENANT}/open/account/%E0%A4%A/user/u1/events`, {
      body: purchase(),
      headers: { authorization: basicAuth() },
    });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ statusCode: 400, message: expect.stringContaining('percent-encoding') });
  });

  it('answers 413 to a body over the limit and keeps serving', async () => {
    const sandbox = await sandboxFor();
    const huge = await track(sandbox, JSON.stringify(purchase({ padding: 'x'.repeat(6 * 1024 * 1024) })));
    expect(huge.status).toBe(413);
    expect((await track(sandbox, purchase())).status).toBe(200);
  });
});

describe('user upsert and strictUsers', () => {
  it('upserts a user and returns it; a later upsert merges', async () => {
    const sandbox = await sandboxFor();
    const now = sandbox.clock.now();
    const created = await call(userUrl(sandbox, 'a1', 'u1'), {
      method: 'PUT',
      body: { id: 'u1', accountId: 'a1', email: 'bob@example.com', firstName: 'Bob', customFields: { plan: 'pro' }, referable: true },
      headers: { authorization: basicAuth() },
    });
    expect(created.status).toBe(200);
    expect(created.json).toEqual({
      id: 'u1',
      accountId: 'a1',
      email: 'bob@example.com',
      firstName: 'Bob',
      customFields: { plan: 'pro' },
      referable: true,
      dateCreated: now,
      dateModified: now,
    });

    sandbox.clock.advance(5000);
    const updated = await call(userUrl(sandbox, 'a1', 'u1'), {
      method: 'PUT',
      body: { id: 'u1', accountId: 'a1', lastName: 'Testerson', customFields: { seats: 3 } },
      headers: { authorization: basicAuth() },
    });
    expect(updated.json).toMatchObject({
      firstName: 'Bob',
      lastName: 'Testerson',
      customFields: { plan: 'pro', seats: 3 },
      dateCreated: now,
      dateModified: now + 5000,
    });

    const fetched = await call(userUrl(sandbox, 'a1', 'u1'), { headers: { authorization: basicAuth() } });
    expect(fetched.json).toEqual(updated.json);
    expect(sandbox.inspect(TENANT).users).toEqual([{ ...(updated.json as object), autoCreated: false }]);
  });

  it('answers 400 to an upsert whose ids differ from the path or whose custom fields break the rules', async () => {
    const sandbox = await sandboxFor();
    const put = (body: unknown) => call(userUrl(sandbox, 'a1', 'u1'), { method: 'PUT', body, headers: { authorization: basicAuth() } });
    expect((await put({ id: 'u2', accountId: 'a1' })).json).toMatchObject({
      statusCode: 400,
      message: expect.stringMatching(/^id: must equal the userId/),
    });
    expect((await put({ accountId: 'a1' })).json).toMatchObject({ statusCode: 400, message: expect.stringMatching(/^id: required/) });
    expect((await put({ id: 'u1', accountId: 'a1', customFields: { 'first-name': 'x' } })).json).toMatchObject({
      statusCode: 400,
      message: expect.stringContaining('customFields.first-name'),
    });
    expect((await put({ id: 'u1', accountId: 'a1', locale: 'en-US' })).json).toMatchObject({
      statusCode: 400,
      message: expect.stringContaining('locale'),
    });
    expect(sandbox.inspect(TENANT).users).toEqual([]);
  });

  it('auto-creates the user of an event by default', async () => {
    const sandbox = await sandboxFor();
    await track(sandbox, purchase());
    expect(sandbox.inspect(TENANT).users).toEqual([expect.objectContaining({ id: 'u1', accountId: 'a1', autoCreated: true })]);
  });

  it('with strictUsers, answers 404 RS042 for a user never upserted, and 200 once upserted', async () => {
    const sandbox = await sandboxFor({ strictUsers: true });
    const input = purchase({ idempotencyKey: 'strict-key-1' });
    const missing = await track(sandbox, input);
    expect(missing.status).toBe(404);
    expect(missing.json).toMatchObject({ statusCode: 404, rsCode: 'RS042', apiErrorCode: 'USER_NOT_FOUND' });
    expect(sandbox.inspect(TENANT).events).toEqual([]);

    const upsert = await call(userUrl(sandbox, 'a1', 'u1'), {
      method: 'PUT',
      body: { id: 'u1', accountId: 'a1' },
      headers: { authorization: basicAuth() },
    });
    expect(upsert.status).toBe(200);
    // The 404 did not use the key up.
    expect((await track(sandbox, input)).status).toBe(200);
    expect((await call(userUrl(sandbox, 'a1', 'nobody'), { headers: { authorization: basicAuth() } })).status).toBe(404);
  });
});
