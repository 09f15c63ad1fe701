import { describe, expect, it } from 'vitest';
import type { Bundle, HttpRequestOptions, ZObject } from 'zapier-platform-core';
import { addBasicAuth } from '../../../connectors/zapier/middleware.js';
import { API_KEY, appTester, authDataFor, BASIC_CREDENTIALS, TENANT, useSandbox } from './helpers.js';

const sandbox = useSandbox();
const graphql = () => `${sandbox.current().url}/api/v1/${TENANT}/graphql`;
const TYPENAME_QUERY = JSON.stringify({ query: '{ __typename }' });

/** The headers addBasicAuth leaves on a request, run with the platform's real z and bundle. */
async function headersAfter(url: string, headers: Record<string, string>, authData = authDataFor(sandbox.current())) {
  const request = await appTester(async (z: ZObject, bundle: Bundle) => addBasicAuth({ url, method: 'POST', headers }, z, bundle), {
    authData,
  });
  return request.headers;
}

/** Sends a z.request through the app's middleware to the sandbox; resolves with the status. */
async function statusOf(headers: Record<string, string>): Promise<number> {
  const options: HttpRequestOptions & { url: string } = {
    url: graphql(),
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: TYPENAME_QUERY,
    skipThrowForStatus: true,
  };
  return appTester(async (z: ZObject) => (await z.request(options)).status, { authData: authDataFor(sandbox.current()) });
}

describe('addBasicAuth', () => {
  it('adds the Basic-auth header, built from the API key, to a request to the API', async () => {
    expect(await headersAfter(graphql(), { accept: 'application/json' })).toEqual({
      accept: 'application/json',
      authorization: `Basic ${BASIC_CREDENTIALS}`,
    });
    expect(await statusOf({})).toBe(200);
  });

  it('leaves a request that already carries an Authorization header (the target client) as it is', async () => {
    expect(await headersAfter(graphql(), { authorization: 'Basic from-the-client' })).toEqual({ authorization: 'Basic from-the-client' });
    expect(await headersAfter(graphql(), { Authorization: 'Basic from-the-client' })).toEqual({ Authorization: 'Basic from-the-client' });
    // One header, not two: the API would refuse a doubled one; and not replaced: a wrong one stays wrong.
    expect(await statusOf({ authorization: `Basic ${BASIC_CREDENTIALS}` })).toBe(200);
    expect(await statusOf({ Authorization: `Basic ${Buffer.from(':another-key').toString('base64')}` })).toBe(401);
  });

  it('never sends the key to another origin, nor without a key', async () => {
    expect(await headersAfter('https://example.com/api/v1/test/graphql', {})).toEqual({});
    expect(await headersAfter(`${sandbox.current().url.replace('127.0.0.1', 'localhost')}/x`, {})).toEqual({});
    expect(await headersAfter(graphql(), {}, authDataFor(sandbox.current(), { apiKey: '' }))).toEqual({});
  });

  it('uses the default API origin when the API Base URL is left empty', async () => {
    const headers = await headersAfter(
      'https://app.referralsaasquatch.com/api/v1/t/graphql',
      {},
      { tenantAlias: 't', apiKey: API_KEY, apiBaseUrl: '' },
    );
    expect(headers).toEqual({ authorization: `Basic ${BASIC_CREDENTIALS}` });
  });
});
