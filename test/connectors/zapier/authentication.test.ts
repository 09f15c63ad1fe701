import { describe, expect, it } from 'vitest';
import { authentication, type ConnectionTestResult } from '../../../connectors/zapier/authentication.js';
import {
  API_KEY,
  appErrorBody,
  appTester,
  authDataFor,
  BASIC_CREDENTIALS,
  rejectionOf,
  TENANT,
  throttledBody,
  useSandbox,
} from './helpers.js';

const sandbox = useSandbox();
// The API as it is for a real account: only the configured tenant exists, with its own key.
const singleTenant = useSandbox({ tenantApiKeys: { [TENANT]: API_KEY } });

const testConnection = (authData: Record<string, string>) => appTester(authentication.test, { authData }) as Promise<ConnectionTestResult>;

describe('authentication', () => {
  it('is custom auth with the tenant alias, the API key as a password and an optional API base URL', () => {
    expect(authentication.type).toBe('custom');
    expect(authentication.fields.map(({ key, type, required }) => ({ key, type, required }))).toEqual([
      { key: 'tenantAlias', type: 'string', required: true },
      { key: 'apiKey', type: 'password', required: true },
      { key: 'apiBaseUrl', type: 'string', required: false },
    ]);
    expect(authentication.fields[2]?.default).toBe('https://app.referralsaasquatch.com');
  });

  describe('test', () => {
    it('passes with the right key, through one authenticated request that records nothing', async () => {
      const result = await testConnection(authDataFor(singleTenant.current()));

      expect(result).toEqual({ tenantAlias: TENANT, apiHost: new URL(singleTenant.current().url).host });
      const snapshot = singleTenant.current().inspect(TENANT);
      expect(snapshot.requests).toEqual({ total: 1, byStatus: { '200': 1 }, dropped: 0 });
      expect(snapshot.events).toEqual([]);
    });

    it('fails with a clear message for a wrong key, without the key', async () => {
      const error = await rejectionOf(testConnection(authDataFor(singleTenant.current(), { apiKey: 'sq-test-wrong-key' })));

      expect(appErrorBody(error)).toEqual({
        code: 'AuthenticationFailed',
        status: 401,
        message:
          `SaaSquatch did not accept the API key for tenant "${TENANT}" (HTTP 401: Invalid credentials: the API key is not valid for this tenant). ` +
          'Check the tenant alias and use an API key of that tenant (Portal → Settings → API), then reconnect.',
      });
      expect(error.message).not.toContain('sq-test-wrong-key');
    });

    it('fails with a clear message for a wrong tenant', async () => {
      const error = await rejectionOf(testConnection(authDataFor(singleTenant.current(), { tenantAlias: 'test_other' })));

      const body = appErrorBody(error);
      expect(body).toMatchObject({ code: 'AuthenticationFailed', status: 401 });
      expect(body.message).toMatch(/^SaaSquatch did not accept the API key for tenant "test_other" \(HTTP 401: /);
      expect(error.message).not.toContain(API_KEY);
      expect(error.message).not.toContain(BASIC_CREDENTIALS);
    });

    it('names the missing or malformed setting before calling anything', async () => {
      const noKey = await rejectionOf(testConnection(authDataFor(sandbox.current(), { apiKey: '  ' })));
      const badUrl = await rejectionOf(testConnection(authDataFor(sandbox.current(), { apiBaseUrl: 'ftp://example.com' })));
      const noTenant = await rejectionOf(testConnection(authDataFor(sandbox.current(), { tenantAlias: '' })));

      expect(appErrorBody(noKey)).toEqual({ code: 'InvalidInput', message: 'Check the connection settings: apiKey: must not be empty' });
      expect(appErrorBody(badUrl).message).toBe('Check the connection settings: apiBaseUrl: must be an http(s) URL');
      expect(appErrorBody(noTenant).message).toBe('Check the connection settings: tenantAlias: must not be empty');
      expect(sandbox.current().inspect(TENANT).requests.total).toBe(0);
    });

    it('says where it could not connect when nothing answers', async () => {
      const closedPort = 'http://127.0.0.1:9';
      const error = await rejectionOf(testConnection(authDataFor(sandbox.current(), { apiBaseUrl: closedPort })));

      const body = appErrorBody(error);
      expect(body.code).toBe('ConnectionFailed');
      expect(body.message).toMatch(/^Could not reach SaaSquatch at http:\/\/127\.0\.0\.1:9: .*ECONNREFUSED/);
    });

    it('reports any other refusal with the status and the API message', async () => {
      sandbox.current().faults.enqueue({ kind: 'status', status: 503 });
      const error = await rejectionOf(testConnection(authDataFor(sandbox.current())));

      expect(appErrorBody(error)).toEqual({
        code: 'ConnectionTestFailed',
        status: 503,
        message: `SaaSquatch at ${sandbox.current().url} refused the connection test for tenant "${TENANT}" (HTTP 503: Service Unavailable).`,
      });
    });

    it('lets a 429 through as a ThrottledError', async () => {
      sandbox.current().faults.enqueue({ kind: 'throttle', retryAfterSeconds: 3 });
      const error = await rejectionOf(testConnection(authDataFor(sandbox.current())));

      expect(throttledBody(error).delay).toBe(3);
    });
  });

  it('labels the connection with the tenant and the API host', async () => {
    const label = await appTester(authentication.connectionLabel, {
      authData: { tenantAlias: 'test_a1b2', apiKey: API_KEY, apiBaseUrl: '' },
    });

    expect(label).toBe('test_a1b2 (app.referralsaasquatch.com)');
  });
});
