import type { Authentication, Bundle, ZObject } from 'zapier-platform-core';
import { DEFAULT_TARGET_URL, type TargetClient } from '../../shared/target/index.js';
import { authFailureMessage, delaySeconds, isInvalidKey, throwInputError } from './results.js';
import { connectionSettings, targetClientFor } from './target.js';

export interface ConnectionTestResult {
  readonly tenantAlias: string;
  readonly apiHost: string;
}

/** Core's text for a 429 (its throwForThrottling), so throttling reads here as on any other `z.request`. */
const THROTTLED_MESSAGE = 'The server returned 429 (Too Many Requests)';

async function testConnection(z: ZObject, bundle: Bundle): Promise<ConnectionTestResult> {
  // Building the client checks the settings (tenant, key, URL) with the same rules every action uses.
  let client: TargetClient;
  try {
    client = targetClientFor(z, bundle);
  } catch (error) {
    throwInputError(z, error, { lead: 'Check the connection settings' });
  }
  const settings = connectionSettings(bundle.authData);
  const check = await client.checkCredentials();
  if (check.ok) return { tenantAlias: settings.tenant, apiHost: hostOf(settings.baseUrl) };

  const { failure } = check;
  if (isInvalidKey(failure)) {
    throw new z.errors.Error(
      authFailureMessage(settings.tenant, `HTTP ${failure.status}: ${failure.message}`),
      'AuthenticationFailed',
      failure.status,
    );
  }
  if (failure.kind === 'throttled') {
    throw new z.errors.ThrottledError(THROTTLED_MESSAGE, delaySeconds(failure.retryAfterMs));
  }
  if (failure.status === null) {
    throw new z.errors.Error(`Could not reach SaaSquatch at ${settings.baseUrl}: ${failure.message}`, 'ConnectionFailed');
  }
  throw new z.errors.Error(
    `SaaSquatch at ${settings.baseUrl} refused the connection test for tenant "${settings.tenant}" (HTTP ${failure.status}: ${failure.message}).`,
    'ConnectionTestFailed',
    failure.status,
  );
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
