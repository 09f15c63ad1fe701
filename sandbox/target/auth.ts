import { timingSafeEqual } from 'node:crypto';
import { InvalidInputError } from '../../shared/errors.js';
import { apiErrors, BASIC_AUTH_HINT, type SandboxApiError } from './api-error.js';

export interface Authenticator {
  /** null when the request may act for `tenant`; else the 401 body. Messages never contain a key. */
  check(tenant: string, authorization: string | undefined): SandboxApiError | null;
  /** The configured tenants, when `tenantApiKeys` limits them; else empty (every tenant exists). */
  readonly configuredTenants: readonly string[];
}

const basicHeader = (key: string): string => `Basic ${Buffer.from(`:${key}`, 'utf8').toString('base64')}`;

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** API-key auth as the API does it: HTTP Basic, empty user name, the key as the password. */
export function createAuthenticator(apiKey: string, tenantApiKeys?: Readonly<Record<string, string>>): Authenticator {
  const keys = new Map<string, string>();
  if (tenantApiKeys !== undefined) {
    for (const [tenant, key] of Object.entries(tenantApiKeys)) {
      if (tenant === '' || typeof key !== 'string' || key === '') {
        throw new InvalidInputError([{ field: `tenantApiKeys.${tenant}`, reason: 'needs a non-empty tenant name and a non-empty key' }]);
      }
      keys.set(tenant, key);
    }
  } else if (typeof apiKey !== 'string' || apiKey === '') {
    throw new InvalidInputError([{ field: 'apiKey', reason: 'must be a non-empty string' }]);
  }
  // The exact header a well-behaved client sends, so the common case is one string comparison.
  const expectedHeaders = new Map<string, string>([...keys].map(([tenant, key]) => [tenant, basicHeader(key)]));
  const sharedHeader = basicHeader(apiKey);
  const limited = tenantApiKeys !== undefined;

  return {
    configuredTenants: [...keys.keys()],
    check(tenant, authorization) {
      const expectedKey = limited ? keys.get(tenant) : apiKey;
      if (authorization === undefined || authorization.trim() === '') return apiErrors.missingCredentials();
      if (expectedKey !== undefined && authorization === (limited ? expectedHeaders.get(tenant) : sharedHeader)) return null;

      const match = /^Basic\s+([A-Za-z0-9+/=_-]*)\s*$/i.exec(authorization);
      if (match === null) {
        return apiErrors.invalidCredentials(`unsupported Authorization scheme; ${BASIC_AUTH_HINT}`);
      }
      const decoded = Buffer.from(match[1] ?? '', 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) return apiErrors.invalidCredentials(`malformed Basic credentials; ${BASIC_AUTH_HINT}`);
      if (colon > 0) return apiErrors.invalidCredentials(`the Basic-auth user name must be empty; ${BASIC_AUTH_HINT}`);
      // One message for both cases, so a caller cannot probe which tenants exist.
      if (expectedKey === undefined || !sameSecret(decoded.slice(colon + 1), expectedKey)) {
        return apiErrors.invalidCredentials('the API key is not valid for this tenant');
      }
      return null;
    },
  };
}
