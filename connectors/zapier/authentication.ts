import type { Authentication, Bundle, HttpResponse, ZObject } from 'zapier-platform-core';
import { graphqlError, parseJson, restError } from '../../shared/target/api-error.js';
import { DEFAULT_TARGET_URL, graphqlUrl } from '../../shared/target/saasquatch-api.js';
import { authFailureMessage, throwInputError } from './results.js';
import { connectionSettings, targetClientFor } from './target.js';

/** The cheapest authenticated call the API has: any GraphQL server answers `__typename`, and it changes nothing. */
const CONNECTION_TEST_QUERY = 'query oncekitConnectionTest { __typename }';

export interface ConnectionTestResult {
  readonly tenantAlias: string;
  readonly apiHost: string;
}

async function testConnection(z: ZObject, bundle: Bundle): Promise<ConnectionTestResult> {
  // Building the client checks the settings (tenant, key, URL) with the same rules every action uses.
  try {
    targetClientFor(z, bundle);
  } catch (error) {
    throwInputError(z, error, { lead: 'Check the connection settings' });
  }
  const settings = connectionSettings(bundle.authData);
  let response: HttpResponse;
  try {
    // The Authorization header comes from the addBasicAuth middleware.
    response = await z.request({
      url: graphqlUrl(settings.baseUrl, settings.tenant),
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query: CONNECTION_TEST_QUERY, operationName: 'oncekitConnectionTest' }),
      skipThrowForStatus: true,
    });
  } catch (error) {
    if (error instanceof Error && error.name === 'ThrottledError') throw error;
    const reason = error instanceof Error ? error.message : 'the request failed';
    throw new z.errors.Error(`Could not reach SaaSquatch at ${settings.baseUrl}: ${reason}`, 'ConnectionFailed');
  }

  const document = parseJson(response.content);
  const apiError =
    graphqlError(document, response.status) ?? (response.status >= 400 ? restError(response.status, response.content) : null);
  if (response.status === 401 || apiError?.statusCode === 401) {
    throw new z.errors.Error(
      authFailureMessage(settings.tenant, `HTTP 401: ${apiError?.message ?? 'unauthorized'}`),
      'AuthenticationFailed',
      401,
    );
  }
  if (apiError !== null) {
    throw new z.errors.Error(
      `SaaSquatch at ${settings.baseUrl} refused the connection test for tenant "${settings.tenant}" (HTTP ${apiError.statusCode}: ${apiError.message}).`,
      'ConnectionTestFailed',
      apiError.statusCode,
    );
  }
  return { tenantAlias: settings.tenant, apiHost: hostOf(settings.baseUrl) };
}

/** Names the connection by tenant and host, so a test tenant is never mistaken for the live one. */
async function connectionLabel(_z: ZObject, bundle: Bundle): Promise<string> {
  const settings = connectionSettings(bundle.authData);
  return `${settings.tenant} (${hostOf(settings.baseUrl)})`;
}

const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
};

export const authentication = {
  type: 'custom',
  fields: [
    {
      key: 'tenantAlias',
      label: 'Tenant Alias',
      type: 'string',
      required: true,
      helpText: 'Your SaaSquatch tenant alias, shown in the Portal under Settings → API. Test tenants start with `test_`.',
    },
    {
      key: 'apiKey',
      label: 'API Key',
      type: 'password',
      required: true,
      helpText: "The tenant's API key (Portal → Settings → API). It is sent only to the API Base URL, as the Basic-auth password.",
    },
    {
      key: 'apiBaseUrl',
      label: 'API Base URL',
      type: 'string',
      required: false,
      default: DEFAULT_TARGET_URL,
      helpText: `Where the SaaSquatch API lives. Keep \`${DEFAULT_TARGET_URL}\` unless SaaSquatch gave you another host.`,
    },
  ],
  test: testConnection,
  connectionLabel,
} satisfies Authentication;
