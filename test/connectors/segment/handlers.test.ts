import { describe, expect, test } from 'vitest';
import type { TenantSnapshot } from '../../../sandbox/target/index.js';
import { builtFunction, identifyEvent, messageId, settingsFor, startTestSandbox, TENANT, trackEvent, warnLines } from './helpers.js';

/** The events the sandbox stored, without the fields it makes up itself (ids and receive times). */
function recordedEvents(snapshot: TenantSnapshot) {
  return snapshot.events.map(({ userId, accountId, key, fields, dateTriggered, idempotencyKey, via }) => ({
    userId,
    accountId,
    key,
    fields,
    dateTriggered,
    idempotencyKey,
    via,
  }));
}

describe('onTrack', () => {
  test('logs one user event: properties as fields, timestamp as epoch ms, messageId as the key', async () => {
    const sandbox = await startTestSandbox();
    const id = messageId();
    const invocation = await builtFunction().invoke(
      trackEvent({ messageId: id, properties: { order_id: 'o-1', revenue: 42.5, items: [{ sku: 'a' }], gift: false } }),
      settingsFor(sandbox),
    );
    expect(invocation.treatment).toEqual({ result: 'delivered' });
    expect(invocation.logs).toEqual([]);
    const snapshot = sandbox.inspect(TENANT);
    expect(recordedEvents(snapshot)).toEqual([
      {
        userId: 'ann',
        accountId: 'ann',
        key: 'purchase',
        fields: { order_id: 'o-1', revenue: 42.5, items: [{ sku: 'a' }], gift: false },
        dateTriggered: Date.parse('2025-11-07T10:20:30.456Z'),
        idempotencyKey: id,
        via: 'rest',
      },
    ]);
    expect(snapshot.requests).toEqual({ total: 1, byStatus: { '200': 1 }, dropped: 0 });
  });

  test('renames through eventKeyMap: Order Refunded → refund by default, other names unchanged', async () => {
    const sandbox = await startTestSandbox();
    const fn = builtFunction();
    await fn.invoke(trackEvent({ event: 'Order Refunded' }), settingsFor(sandbox));
    await fn.invoke(trackEvent({ event: 'Signed Up' }), settingsFor(sandbox));
    // A map of the user's own replaces the defaults.
    await fn.invoke(trackEvent({ event: 'Order Completed' }), settingsFor(sandbox, { eventKeyMap: { 'Plan Upgraded': 'upgrade' } }));
    await fn.invoke(trackEvent({ event: 'Plan Upgraded' }), settingsFor(sandbox, { eventKeyMap: { 'Plan Upgraded': 'upgrade' } }));
    expect(sandbox.inspect(TENANT).events.map((event) => event.key)).toEqual(['refund', 'Signed Up', 'Order Completed', 'upgrade']);
  });

  test('reads the accountId from the path accountIdFrom names, the first that has one', async () => {
    const sandbox = await startTestSandbox();
    const settings = settingsFor(sandbox, { accountIdFrom: 'properties.accountId, context.traits.company_id' });
    const fn = builtFunction();
    await fn.invoke(trackEvent({ properties: { accountId: 'acme' } }), settings);
    await fn.invoke(trackEvent({ properties: {}, context: { traits: { company_id: 42 } } }), settings);
    const missing = await fn.invoke(trackEvent({ properties: {} }), settings);
    expect(sandbox.inspect(TENANT).events.map(({ userId, accountId }) => ({ userId, accountId }))).toEqual([
      { userId: 'ann', accountId: 'acme' },
      { userId: 'ann', accountId: '42' },
    ]);
    expect(missing.treatment).toMatchObject({ result: 'discard', category: 'Message Rejected', errorName: 'ValidationError' });
    expect(missing.thrown?.message).toBe(
      'properties.accountId, context.traits.company_id: no accountId. The accountIdFrom setting reads the SaaSquatch accountId from ' +
        'properties.accountId, context.traits.company_id, and this track event has no non-empty string or number there',
    );
  });

  test('an anonymous-only event is refused with a ValidationError that says why, and nothing is sent', async () => {
    const sandbox = await startTestSandbox();
    const event = trackEvent();
    delete event.userId;
    const invocation = await builtFunction().invoke(event, settingsFor(sandbox));
    expect(invocation.treatment).toEqual({
      result: 'discard',
      category: 'Message Rejected',
      errorName: 'ValidationError',
      message:
        'userId: missing. This track event is anonymous (it has no userId), and SaaSquatch only takes events and users with a ' +
        'userId; send it after identify, with the userId set',
    });
    expect(sandbox.inspect(TENANT).requests.total).toBe(0);
  });

  test.each([
    [{ event: undefined }, 'invalid track event: event: required: the name of the track event'],
    [{ event: '' }, 'invalid track event: event: must not be empty'],
    [{ properties: 'free text' }, 'invalid track event: properties: expected an object of event properties'],
    [{ timestamp: 'last tuesday' }, 'invalid track event: timestamp: expected an ISO-8601 date or epoch milliseconds, got "last tuesday"'],
    [
      { properties: { note: 'x'.repeat(1501) } },
      'invalid track event: properties.note: string is 1501 UTF-8 bytes; the target accepts at most 1500',
    ],
    [{ properties: { grid: [[1, 2]] } }, 'invalid track event: properties.grid[0]: arrays of arrays are not supported by the target'],
  ])('a malformed event (%j) is an InvalidEventPayload naming the field, and nothing is sent', async (overrides, message) => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(trackEvent(overrides), settingsFor(sandbox));
    expect(invocation.treatment).toEqual({ result: 'discard', category: 'Message Rejected', errorName: 'InvalidEventPayload', message });
    expect(sandbox.inspect(TENANT).requests.total).toBe(0);
  });
});

describe('invalid messageIds, per invalidKeyPolicy', () => {
  test('drop (default): the event is sent without a key, and one structured console.warn line says why', async () => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(trackEvent({ messageId: 'order:1234' }), settingsFor(sandbox));
    expect(invocation.treatment).toEqual({ result: 'delivered' });
    expect(invocation.logs).toHaveLength(1);
    const [line] = warnLines(invocation.logs);
    expect(line).toEqual({
      level: 'warn',
      time: expect.any(Number),
      event: 'idempotency_key_dropped',
      source: 'segment',
      reason: 'bad_characters',
      candidateLength: 10,
      rule: '8 to 64 characters of A-Z a-z 0-9 - _ .',
      msg: 'idempotency key from segment dropped (bad_characters); the event is sent without one',
    });
    // The candidate itself can carry personal data and is never logged.
    expect(invocation.logs[0]?.text).not.toContain('order:1234');
    expect(sandbox.inspect(TENANT).events.map((event) => event.idempotencyKey)).toEqual([null]);
  });

  test('hash: the event carries a key derived from the messageId, the same on every retry', async () => {
    const sandbox = await startTestSandbox();
    const fn = builtFunction();
    const event = trackEvent({ messageId: 'order:1234' });
    const first = await fn.invoke(event, settingsFor(sandbox, { invalidKeyPolicy: 'hash' }));
    const again = await fn.invoke(event, settingsFor(sandbox, { invalidKeyPolicy: 'hash' }));
    expect([first.treatment, again.treatment]).toEqual([{ result: 'delivered' }, { result: 'delivered' }]);
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toHaveLength(1);
    expect(snapshot.events[0]?.idempotencyKey).toMatch(/^oncekit-sha256-[A-Za-z0-9_-]{43}$/);
    expect(snapshot.requests.byStatus).toEqual({ '200': 1, '409': 1 });
  });

  test('reject: the event is refused with a ValidationError naming messageId and the rule', async () => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(
      trackEvent({ messageId: '1234567' }),
      settingsFor(sandbox, { invalidKeyPolicy: 'reject' }),
    );
    expect(invocation.treatment).toEqual({
      result: 'discard',
      category: 'Message Rejected',
      errorName: 'ValidationError',
      message:
        'messageId: idempotency key from segment rejected (too_short): it has 7 characters; the minimum is 8; the invalidKeyPolicy setting is "reject"',
    });
    expect(sandbox.inspect(TENANT).requests.total).toBe(0);
  });
});

describe('onIdentify', () => {
  test('upserts the user, mapping traits as SaaSquatch documents', async () => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(
      identifyEvent({
        userId: 'u-7',
        traits: {
          name: 'Ann Lee Smith',
          email: 'ann@example.com',
          avatar: 'https://example.com/ann.png',
          plan: 'pro',
          'signup-source': 'ads',
          seats: 3,
          address: { city: 'Victoria' },
          birthday: '1990-01-01',
          created_at: '2020-01-01',
          id: 'u-7',
        },
        context: { locale: 'fr-ca' },
      }),
      settingsFor(sandbox),
    );
    expect(invocation.treatment).toEqual({ result: 'delivered' });
    const { users, events, requests } = sandbox.inspect(TENANT);
    expect(users).toEqual([
      {
        id: 'u-7',
        accountId: 'u-7',
        firstName: 'Ann',
        lastName: 'Lee Smith',
        email: 'ann@example.com',
        imageUrl: 'https://example.com/ann.png',
        locale: 'fr_CA',
        customFields: { plan: 'pro', signupsource: 'ads', seats: 3 },
        dateCreated: expect.any(Number),
        dateModified: expect.any(Number),
        autoCreated: false,
      },
    ]);
    expect(events).toEqual([]);
    expect(requests.total).toBe(1);
  });

  test('firstName/lastName and first_name/last_name win over a split name; accountId from a trait path', async () => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(
      identifyEvent({ traits: { name: 'X Y', first_name: 'Ann', lastName: 'Lee', companyId: 'acme' }, context: {} }),
      settingsFor(sandbox, { accountIdFrom: 'traits.companyId' }),
    );
    expect(invocation.treatment).toEqual({ result: 'delivered' });
    expect(sandbox.inspect(TENANT).users).toEqual([
      expect.objectContaining({ id: 'ann', accountId: 'acme', firstName: 'Ann', lastName: 'Lee', customFields: { companyId: 'acme' } }),
    ]);
  });

  test('an anonymous identify is refused with a ValidationError', async () => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(identifyEvent({ userId: null, anonymousId: 'anon-9' }), settingsFor(sandbox));
    expect(invocation.treatment).toMatchObject({ result: 'discard', category: 'Message Rejected', errorName: 'ValidationError' });
    expect(invocation.thrown?.message).toMatch(/^userId: missing\. This identify event is anonymous/);
    expect(sandbox.inspect(TENANT).requests.total).toBe(0);
  });

  test('a trait of the wrong type is an InvalidEventPayload naming it', async () => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(identifyEvent({ traits: { email: ['a@example.com'] } }), settingsFor(sandbox));
    expect(invocation.treatment).toEqual({
      result: 'discard',
      category: 'Message Rejected',
      errorName: 'InvalidEventPayload',
      message: 'invalid identify event: traits.email: expected a string',
    });
  });
});

describe('settings', () => {
  test.each([
    [{ apiKey: '' }, 'invalid function settings: apiKey: required: the API key of your SaaSquatch tenant (a secret setting)'],
    [{ tenantAlias: undefined }, 'invalid function settings: tenantAlias: required: the tenant alias from SaaSquatch, e.g. "test_a1b2c3"'],
    [
      { apiBaseUrl: 'ftp://example.com' },
      'invalid function settings: apiBaseUrl: expected an http(s) URL such as https://app.referralsaasquatch.com',
    ],
    [{ invalidKeyPolicy: 'ignore' }, 'invalid function settings: invalidKeyPolicy: expected one of drop, hash, reject'],
    [
      { eventKeyMap: { 'Order Completed': '' } },
      'invalid function settings: eventKeyMap.Order Completed: expected a SaaSquatch event key, not an empty value',
    ],
    [
      { accountIdFrom: 'accountId' },
      'invalid function settings: accountIdFrom[0]: expected a path starting with traits., properties. or context., e.g. "traits.accountId"',
    ],
  ])('%j is refused before anything is sent, naming the setting', async (overrides, message) => {
    const sandbox = await startTestSandbox();
    const invocation = await builtFunction().invoke(trackEvent(), settingsFor(sandbox, overrides));
    expect(invocation.treatment).toEqual({
      result: 'discard',
      category: 'Bad Request',
      errorName: 'FunctionConfigurationError',
      message: `${message}. Fix the function's settings in Segment`,
    });
    expect(sandbox.inspect(TENANT).requests.total).toBe(0);
  });

  test('unset settings take their defaults; values pasted with spaces around them work', async () => {
    const sandbox = await startTestSandbox();
    const settings = {
      apiKey: ' sandbox-key\n',
      tenantAlias: ` ${TENANT} `,
      apiBaseUrl: `${sandbox.url}/`,
      invalidKeyPolicy: '',
      eventKeyMap: {},
      accountIdFrom: null,
    };
    const invocation = await builtFunction().invoke(trackEvent({ messageId: 'short' }), settings);
    expect(invocation.treatment).toEqual({ result: 'delivered' });
    expect(sandbox.inspect(TENANT).events.map(({ key, accountId, idempotencyKey }) => ({ key, accountId, idempotencyKey }))).toEqual([
      { key: 'purchase', accountId: 'ann', idempotencyKey: null },
    ]);
  });
});
