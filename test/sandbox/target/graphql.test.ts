import { describe, expect, it } from 'vitest';
import { basicAuth, call, firstApiError, graphql, graphqlUrl, purchase, sandboxFor, TENANT, track, userUrl } from './helpers.js';

const LOG_ONE = `mutation log($userEventInput: UserEventInput!) {
  logUserEvent(userEventInput: $userEventInput) { userId accountId events { id key fields dateTriggered dateReceived dateProcessed userId accountId } }
}`;

const LOG_MANY = `mutation logMany($userEventInputs: [UserEventInput!]!) {
  logUserEvents(userEventInputs: $userEventInputs) {
    __typename
    ... on UserEventResult { userId events { id key } }
    ... on ApiError { message statusCode rsCode apiErrorCode }
  }
}`;

interface LogOneResponse {
  data: { logUserEvent: { userId: string; accountId: string; events: { id: string; key: string }[] } } | null;
  errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[];
}

describe('GraphQL logUserEvent', () => {
  it('records the event and answers with the UserEventResult', async () => {
    const sandbox = await sandboxFor();
    const now = sandbox.clock.now();
    const response = await graphql(sandbox, LOG_ONE, { userEventInput: purchase({ idempotencyKey: 'gql-key-0001' }) });
    expect(response.status).toBe(200);
    const body = response.json as LogOneResponse;
    expect(body.errors).toBeUndefined();
    expect(body.data?.logUserEvent).toEqual({
      userId: 'u1',
      accountId: 'a1',
      events: [
        {
          id: expect.stringMatching(/^[0-9a-f]{24}$/),
          key: 'purchase',
          fields: { currency: 'CAD', revenue: 10 },
          dateTriggered: now,
          dateReceived: now,
          dateProcessed: now,
          userId: 'u1',
          accountId: 'a1',
        },
      ],
    });
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toEqual([
      expect.objectContaining({ id: body.data?.logUserEvent.events[0]?.id, idempotencyKey: 'gql-key-0001', via: 'graphql' }),
    ]);
  });

  it('takes an inline literal input, as the idempotency guide shows', async () => {
    const sandbox = await sandboxFor();
    const query = `mutation { logUserEvent(userEventInput: {userId: "u1", accountId: "a1", idempotencyKey: "inline-key-1",
      events: [{key: "purchase", fields: {currency: "CAD", items: [{sku: "x"}]}, dateTriggered: 1700000000000}]}) { events { id dateTriggered fields } } }`;
    const response = await graphql(sandbox, query);
    expect(response.json).toMatchObject({
      data: { logUserEvent: { events: [{ dateTriggered: 1_700_000_000_000, fields: { currency: 'CAD', items: [{ sku: 'x' }] } }] } },
    });
    expect(sandbox.inspect(TENANT).events[0]?.idempotencyKey).toBe('inline-key-1');
  });

  it('reports a duplicate key as errors[].extensions.apiError with statusCode 409 and data null', async () => {
    const sandbox = await sandboxFor();
    const variables = { userEventInput: purchase({ idempotencyKey: 'gql-dup-0001' }) };
    await graphql(sandbox, LOG_ONE, variables);
    const response = await graphql(sandbox, LOG_ONE, variables);

    expect(response.status).toBe(200);
    const body = response.json as LogOneResponse;
    expect(body.data).toBeNull();
    expect(body.errors).toHaveLength(1);
    expect(body.errors?.[0]).toMatchObject({ message: expect.stringContaining('gql-dup-0001'), path: ['logUserEvent'] });
    expect(firstApiError(body)).toEqual({
      message: body.errors?.[0]?.message,
      statusCode: 409,
      apiErrorCode: 'IDEMPOTENCY_KEY_CONFLICT',
      rsCode: null,
    });
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
  });

  it('shares the key space with REST: a key used over REST is a duplicate over GraphQL', async () => {
    const sandbox = await sandboxFor();
    await track(sandbox, purchase({ idempotencyKey: 'cross-api-key' }));
    const response = await graphql(sandbox, LOG_ONE, { userEventInput: purchase({ idempotencyKey: 'cross-api-key' }) });
    expect(firstApiError(response.json)).toMatchObject({ statusCode: 409 });
  });

  it('reports invalid input as an apiError with statusCode 400 naming the field', async () => {
    const sandbox = await sandboxFor();
    const badKey = await graphql(sandbox, LOG_ONE, { userEventInput: purchase({ idempotencyKey: 'no spaces allowed' }) });
    expect(badKey.status).toBe(200);
    expect(firstApiError(badKey.json)).toMatchObject({
      statusCode: 400,
      apiErrorCode: 'VALIDATION_FAILED',
      message: expect.stringMatching(/^idempotencyKey: bad_characters/),
    });
    const longString = await graphql(sandbox, LOG_ONE, {
      userEventInput: purchase({ events: [{ key: 'k', fields: { s: 'x'.repeat(1501) } }] }),
    });
    expect(firstApiError(longString.json)).toMatchObject({ statusCode: 400, message: expect.stringMatching(/^events\[0\]\.fields\.s: /) });
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });

  it('reports an unknown user as a 404 apiError with strictUsers', async () => {
    const sandbox = await sandboxFor({ strictUsers: true });
    const response = await graphql(sandbox, LOG_ONE, { userEventInput: purchase() });
    expect(firstApiError(response.json)).toMatchObject({ statusCode: 404, rsCode: 'RS042' });
  });

  it('resolves the user of the result when selected', async () => {
    const sandbox = await sandboxFor();
    await call(userUrl(sandbox, 'a1', 'u1'), {
      method: 'PUT',
      body: { id: 'u1', accountId: 'a1', email: 'bob@example.com' },
      headers: { authorization: basicAuth() },
    });
    const response = await graphql(sandbox, 'mutation($i: UserEventInput!) { logUserEvent(userEventInput: $i) { user { id email } } }', {
      i: purchase(),
    });
    expect(response.json).toEqual({ data: { logUserEvent: { user: { id: 'u1', email: 'bob@example.com' } } } });
  });

  it('previewUserEvent validates without recording or using the key', async () => {
    const sandbox = await sandboxFor();
    const query = 'query($i: UserEventInput!) { previewUserEvent(userEventInput: $i) { events { key } } }';
    const preview = await graphql(sandbox, query, { i: purchase({ idempotencyKey: 'preview-key-1' }) });
    expect(preview.json).toEqual({ data: { previewUserEvent: { events: [{ key: 'purchase' }] } } });
    expect(sandbox.inspect(TENANT).events).toEqual([]);
    expect((await graphql(sandbox, LOG_ONE, { userEventInput: purchase({ idempotencyKey: 'preview-key-1' }) })).json).toMatchObject({
      data: { logUserEvent: {} },
    });
  });
});

describe('GraphQL logUserEvents', () => {
  it('processes each item on its own and answers in input order', async () => {
    const sandbox = await sandboxFor();
    await track(sandbox, purchase({ idempotencyKey: 'already-used-1' }));
    const response = await graphql(sandbox, LOG_MANY, {
      userEventInputs: [
        purchase({ userId: 'u1', idempotencyKey: 'batch-key-0001' }),
        purchase({ userId: 'u2', idempotencyKey: 'already-used-1' }),
        purchase({ userId: 'u3', idempotencyKey: 'bad' }),
        purchase({ userId: 'u4', idempotencyKey: 'batch-key-0001' }),
        purchase({ userId: 'u5' }),
      ],
    });
    expect(response.status).toBe(200);
    expect(response.json).toEqual({
      data: {
        logUserEvents: [
          { __typename: 'UserEventResult', userId: 'u1', events: [{ id: expect.any(String), key: 'purchase' }] },
          { __typename: 'ApiError', message: expect.any(String), statusCode: 409, rsCode: null, apiErrorCode: 'IDEMPOTENCY_KEY_CONFLICT' },
          {
            __typename: 'ApiError',
            message: expect.stringMatching(/^idempotencyKey: too_short/),
            statusCode: 400,
            rsCode: null,
            apiErrorCode: 'VALIDATION_FAILED',
          },
          { __typename: 'ApiError', message: expect.any(String), statusCode: 409, rsCode: null, apiErrorCode: 'IDEMPOTENCY_KEY_CONFLICT' },
          { __typename: 'UserEventResult', userId: 'u5', events: [{ id: expect.any(String), key: 'purchase' }] },
        ],
      },
    });
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events.map((event) => event.userId)).toEqual(['u1', 'u1', 'u5']);
    expect(snapshot.keys.find((key) => key.key === 'batch-key-0001')?.requests).toBe(2);
  });
});

describe('GraphQL request errors', () => {
  it('answers a syntax error with a standard GraphQL error (HTTP 200, no apiError)', async () => {
    const sandbox = await sandboxFor();
    const response = await graphql(sandbox, 'mutation { logUserEvent(');
    expect(response.status).toBe(200);
    const body = response.json as { data?: unknown; errors: { message: string; extensions?: Record<string, unknown> }[] };
    expect(body.errors[0]?.message).toMatch(/^Syntax Error/);
    expect(body.data).toBeUndefined();
    expect(firstApiError(body)).toBeUndefined();
  });

  it('answers schema validation and variable errors the same way', async () => {
    const sandbox = await sandboxFor();
    const unknownField = await graphql(sandbox, 'mutation($i: UserEventInput!) { logUserEvent(userEventInput: $i) { nope } }', {
      i: purchase(),
    });
    expect(unknownField.status).toBe(200);
    expect(unknownField.json).toMatchObject({ errors: [{ message: expect.stringContaining('Cannot query field "nope"') }] });
    const singularArg = await graphql(sandbox, 'mutation($i: [UserEventInput!]!) { logUserEvents(userEventInput: $i) { __typename } }', {
      i: [],
    });
    expect((singularArg.json as { errors: { message: string }[] }).errors[0]?.message).toContain('Did you mean "userEventInputs"?');
    const missingVariable = await graphql(sandbox, LOG_ONE, { userEventInput: { accountId: 'a1', events: [{ key: 'k' }] } });
    expect(missingVariable.status).toBe(200);
    expect(missingVariable.json).toMatchObject({ errors: [{ message: expect.stringContaining('userId') }] });
    expect(firstApiError(missingVariable.json)).toBeUndefined();
    const stringDate = await graphql(sandbox, LOG_ONE, {
      userEventInput: purchase({ events: [{ key: 'k', dateTriggered: '2025-01-01' }] }),
    });
    expect(stringDate.json).toMatchObject({ errors: [{ message: expect.stringContaining('RSDate') }] });
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });

  it('answers a body that is not JSON with HTTP 400 and a top-level extensions.apiError', async () => {
    const sandbox = await sandboxFor();
    const response = await call(graphqlUrl(sandbox), { body: '{"query": ', headers: { authorization: basicAuth() } });
    expect(response.status).toBe(400);
    expect(response.json).toEqual({
      errors: [{ message: expect.stringMatching(/invalid JSON/i) }],
      extensions: {
        apiError: { message: expect.stringMatching(/invalid JSON/i), statusCode: 400, apiErrorCode: 'BAD_REQUEST', rsCode: 'RS046' },
      },
    });
  });

  it('answers a body without a query with HTTP 400 naming the field', async () => {
    const sandbox = await sandboxFor();
    const response = await call(graphqlUrl(sandbox), { body: { variables: {} }, headers: { authorization: basicAuth() } });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({
      extensions: { apiError: { statusCode: 400, message: expect.stringMatching(/^query: required/) } },
    });
  });

  it('needs the API key like REST does', async () => {
    const sandbox = await sandboxFor();
    const response = await call(graphqlUrl(sandbox), { body: { query: LOG_ONE, variables: { userEventInput: purchase() } } });
    expect(response.status).toBe(401);
    expect(response.json).toMatchObject({ statusCode: 401, rsCode: 'RS045' });
    expect(sandbox.inspect(TENANT).events).toEqual([]);
  });
});
