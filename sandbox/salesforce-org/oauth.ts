import { createPublicKey, type KeyObject, randomBytes, verify } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { jsonReply, type Reply } from '../http.js';

/** The fake org's id: in each token's identity URL, and the `tenantid` its Pub/Sub API wants. */
export const FAKE_ORG_ID = '00D000000000001AAA';

/** The connected app's JWT bearer settings: the assertion's RS256 signature is checked with `publicKey`. */
export interface JwtBearerApp {
  readonly clientId: string;
  readonly username: string;
  readonly publicKey: KeyObject | string;
  readonly audience?: string;
}

export interface ClientCredentialsApp {
  readonly clientId: string;
  readonly clientSecret: string;
}

export interface TokenGrant {
  readonly grantType: string;
  readonly ok: boolean;
}

/** `POST /services/oauth2/token` and the tokens it issued; they stay valid until invalidated. */
export interface OAuthEndpoint {
  readonly tokenGrants: readonly TokenGrant[];
  /** True when `Authorization: <scheme> <token>` carries a token issued and not invalidated. */
  authorized(request: IncomingMessage | null | undefined, scheme: 'Bearer' | 'OAuth'): boolean;
  /** True for a token issued and not invalidated (the Pub/Sub API gets it as gRPC metadata). */
  tokenIsValid(token: string): boolean;
  /** Answers a token request's form; `instanceUrl` goes into the granted token. */
  token(form: URLSearchParams, instanceUrl: string): Reply;
  invalidateTokens(): void;
  failTokenRequests(count: number): void;
}

export function createOAuthEndpoint(apps: {
  readonly jwt?: JwtBearerApp;
  readonly clientCredentials?: ClientCredentialsApp;
}): OAuthEndpoint {
  const validTokens = new Set<string>();
  const tokenGrants: TokenGrant[] = [];
  let tokenFailures = 0;

  return {
    tokenGrants,
    authorized(request, scheme) {
      const header = request?.headers.authorization ?? '';
      return header.startsWith(`${scheme} `) && validTokens.has(header.slice(scheme.length + 1));
    },
    tokenIsValid: (token) => validTokens.has(token),
    token(form, instanceUrl) {
      const grantType = form.get('grant_type') ?? '';
      const refuse = (error: string, description: string): Reply => {
        tokenGrants.push({ grantType, ok: false });
        return jsonReply(400, { error, error_description: description });
      };
      if (tokenFailures > 0) {
        tokenFailures--;
        return refuse('invalid_grant', 'authentication failure');
      }
      if (grantType === 'urn:ietf:params:oauth:grant-type:jwt-bearer' && apps.jwt) {
        const problem = checkAssertion(form.get('assertion') ?? '', apps.jwt);
        if (problem) return refuse('invalid_grant', problem);
      } else if (grantType === 'client_credentials' && apps.clientCredentials) {
        const expected = apps.clientCredentials;
        if (form.get('client_id') !== expected.clientId || form.get('client_secret') !== expected.clientSecret) {
          return refuse('invalid_client', 'invalid client credentials');
        }
      } else {
        return refuse('unsupported_grant_type', 'grant type not supported');
      }
      const accessToken = `00Dfake!${randomBytes(12).toString('hex')}`;
      validTokens.add(accessToken);
      tokenGrants.push({ grantType, ok: true });
      return jsonReply(200, {
        access_token: accessToken,
        scope: 'api',
        instance_url: instanceUrl,
        id: `${instanceUrl}/id/${FAKE_ORG_ID}/005000000000001AAA`,
        token_type: 'Bearer',
        issued_at: String(Date.now()),
      });
    },
    invalidateTokens() {
      validTokens.clear();
    },
    failTokenRequests(count) {
      tokenFailures = count;
    },
  };
}

function checkAssertion(assertion: string, jwt: JwtBearerApp): string | null {
  const parts = assertion.split('.');
  if (parts.length !== 3) return 'invalid assertion: not a JWT';
  const [header, claims, signature] = parts as [string, string, string];
  const decode = (part: string): Record<string, unknown> | null => {
    try {
      return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
    } catch {
      return null;
    }
  };
  if (decode(header)?.alg !== 'RS256') return 'invalid assertion: alg must be RS256';
  const key = typeof jwt.publicKey === 'string' ? createPublicKey(jwt.publicKey) : jwt.publicKey;
  if (!verify('sha256', Buffer.from(`${header}.${claims}`, 'utf8'), key, Buffer.from(signature, 'base64url'))) {
    return 'invalid assertion: signature does not verify';
  }
  const body = decode(claims);
  const nowSeconds = Math.floor(Date.now() / 1000);
  if (body?.iss !== jwt.clientId) return 'invalid assertion: client identifier invalid';
  if (body.sub !== jwt.username) return 'invalid assertion: user not approved';
  if (body.aud !== (jwt.audience ?? 'https://login.salesforce.com')) return 'invalid assertion: audience invalid';
  if (typeof body.exp !== 'number' || body.exp <= nowSeconds || body.exp > nowSeconds + 300)
    return 'invalid assertion: expired or too far ahead';
  return null;
}
