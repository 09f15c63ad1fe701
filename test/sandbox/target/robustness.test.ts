import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { basicAuth, call, eventsUrl, graphql, graphqlUrl, purchase, sandboxFor, TENANT, track } from './helpers.js';

describe('odd input never gets a 500 and never stops the sandbox', () => {
  it('answers odd REST bodies with 4xx JSON', async () => {
    const sandbox = await sandboxFor();
    const bodies: unknown[] = [
      'null',
      '42',
      '"text"',
      '[]',
      '{}',
      { userId: 1, accountId: {}, events: 'x' },
      { userId: 'u1', accountId: 'a1', events: [null] },
      { userId: 'u1', accountId: 'a1', events: [{ key: 'k', fields: 'not an object' }] },
      { userId: 'u1', accountId: 'a1', events: [{ key: 'k', fields: { deep: { deeper: [{ deepest: [[1]] }] } } }] },
      { userId: 'u1', accountId: 'a1', events: [{ key: 'k', dateTriggered: -1 }] },
      { userId: 'u1', accountId: 'a1', events: [{ key: 'k', dateTriggered: 1.5 }] },
      { userId: 'u1', accountId: 'a1', idempotencyKey: ['array-key-1'], events: [{ key: 'k' }] },
      '\u0000\u0001',
      '{"userId": "u1", "accountId": "a1", "events": [{"key": "k"}]} trailing',
    ];
    for (const body of bodies) {
      const response = await track(sandbox, body as string, { accountId: 'a1', userId: 'u1' });
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.json, JSON.stringify(body)).toMatchObject({ statusCode: 400, message: expect.any(String) });
    }
    expect(sandbox.inspect(TENANT).events).toEqual([]);
    expect((await track(sandbox, purchase())).status).toBe(200);
  });

  it('keeps __proto__ members as plain data', async () => {
    const sandbox = await sandboxFor();
    const response = await track(
      sandbox,
      '{"userId":"u1","accountId":"a1","events":[{"key":"k","fields":{"__proto__":{"polluted":true},"a":1}}]}',
    );
    expect(response.status).toBeLessThan(500);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('answers odd paths, methods and headers with 4xx JSON', async () => {
    const sandbox = await sandboxFor();
    const auth = { authorization: basicAuth() };
    const cases: [string, Parameters<typeof call>[1]][] = [
      [`${sandbox.url}/api/v1//open/account/a1/user/u1/events`, { body: purchase(), headers: auth }],
      [`${sandbox.url}/api/v1/${TENANT}/open/account//user/u1/events`, { body: purchase(), headers: auth }],
      [`${sandbox.url}/api/v1/${TENANT}/open/account/a1/user/u1/events/`, { body: purchase(), headers: auth }],
      [`${sandbox.url}/api/v1/${TENANT}/${'x/'.repeat(500)}`, { headers: auth }],
      [`${sandbox.url}/api/v1/${TENANT}/graphql`, { method: 'PATCH', headers: auth }],
      [eventsUrl(sandbox, 'a1', 'u1'), { body: purchase(), headers: { authorization: 'Basic !!!not-base64' } }],
      [eventsUrl(sandbox, 'a1', 'u1'), { body: purchase(), headers: { authorization: 'Basic ' } }],
      [
        eventsUrl(sandbox, 'a1', 'u1'),
        { body: purchase(), headers: { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` } },
      ],
      [graphqlUrl(sandbox), { body: { query: 42 }, headers: auth }],
      [graphqlUrl(sandbox), { body: { query: '{ __typename }', variables: [1] }, headers: auth }],
      [graphqlUrl(sandbox), { body: 'null', headers: auth }],
    ];
    for (const [url, options] of cases) {
      const response = await call(url, options);
      expect(response.status, url).toBeGreaterThanOrEqual(400);
      expect(response.status, url).toBeLessThan(500);
      expect(response.json, url).toBeDefined();
    }
    // The query string is not part of the route and is ignored, even when malformed.
    expect((await call(`${eventsUrl(sandbox, 'a1', 'u1')}?x=%ZZ`, { body: purchase(), headers: auth })).status).toBe(200);
    // The empty accountId in the path is named, with the API's code for it.
    const emptyAccount = await call(`${sandbox.url}/api/v1/${TENANT}/open/account//user/u1/events`, {
      body: purchase({ accountId: '' }),
      headers: auth,
    });
    expect(emptyAccount.json).toMatchObject({ statusCode: 400, rsCode: 'RS044', message: expect.stringContaining('accountId') });
    expect((await track(sandbox, purchase())).status).toBe(200);
  });

  it('answers odd GraphQL documents with GraphQL errors, not 500', async () => {
    const sandbox = await sandboxFor();
    const documents = [
      '{ __typename }',
      'subscription { x }',
      'mutation { logUserEvents(userEventInputs: []) { __typename } }',
      'mutation a { logUserEvent(userEventInput: {userId: "u", accountId: "a", events: []}) { userId } } mutation b { __typename }',
      `mutation { ${'logUserEvents(userEventInputs: []) { __typename } '.repeat(3)} }`,
      'query { previewUserEvent(userEventInput: {userId: "u", accountId: "a", events: [{key: "k", dateTriggered: "yesterday"}]}) { userId } }',
    ];
    for (const document of documents) {
      const response = await graphql(sandbox, document);
      expect(response.status, document).toBe(200);
      expect(response.json, document).toBeDefined();
    }
    expect((await graphql(sandbox, 'mutation { logUserEvents(userEventInputs: []) { __typename } }')).json).toEqual({
      data: { logUserEvents: [] },
    });
  });

  it('survives a client that hangs up mid-request', async () => {
    const sandbox = await sandboxFor();
    const controller = new AbortController();
    const pending = request(eventsUrl(sandbox, 'a1', 'u1'), {
      method: 'POST',
      headers: { authorization: basicAuth(), 'content-type': 'application/json', 'content-length': '1000' },
      body: '{"userId": "u1"',
      signal: controller.signal,
    }).catch(() => 'aborted');
    await new Promise((resolve) => setTimeout(resolve, 30));
    controller.abort();
    expect(await pending).toBe('aborted');
    expect((await track(sandbox, purchase())).status).toBe(200);
  });
});
