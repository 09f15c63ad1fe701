import { createPrivateKey, type KeyObject, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { Connection, OAuth2 } from 'jsforce';
import { z } from 'zod';
import { type FieldIssue, InvalidInputError, messageOf, OncekitError } from '../../shared/errors.js';
import { type Logger, silentLogger } from '../../shared/log.js';
import { parseInput } from '../../shared/validation.js';

/**
 * Server-to-server auth for the relay's Salesforce connection: the OAuth 2.0 JWT bearer flow or the client credentials
 * flow. Neither issues a refresh token, so jsforce's own refresh cannot work (salesforce.md §2.2, "Refresh trap"):
 * the connection gets a `refreshFn` that mints a new token with the same grant. Streaming clients capture the token
 * when they are created, so token changes are announced for them to be recreated.
 */

/** jsforce defaults to 50.0, where platform events carry no EventUuid (it arrives at 52.0). */
export const DEFAULT_API_VERSION = '59.0';
export const MIN_API_VERSION = 52;
export const DEFAULT_LOGIN_URL = 'https://login.salesforce.com';
/** Salesforce accepts a JWT assertion whose exp is at most 3 minutes ahead. */
export const JWT_LIFETIME_SECONDS = 180;

export const SALESFORCE_ENV = {
  flow: 'ONCEKIT_SF_AUTH_FLOW',
  loginUrl: 'ONCEKIT_SF_LOGIN_URL',
  clientId: 'ONCEKIT_SF_CLIENT_ID',
  clientSecret: 'ONCEKIT_SF_CLIENT_SECRET',
  username: 'ONCEKIT_SF_USERNAME',
  privateKey: 'ONCEKIT_SF_PRIVATE_KEY',
  privateKeyFile: 'ONCEKIT_SF_PRIVATE_KEY_FILE',
  audience: 'ONCEKIT_SF_JWT_AUDIENCE',
  apiVersion: 'ONCEKIT_SF_API_VERSION',
} as const;

export type SalesforceAuthFlow = 'jwt-bearer' | 'client-credentials';

/** A secret that prints as `[redacted]` however it is logged, serialised or inspected. */
export class SecretText {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return '[redacted]';
  }
}

interface CommonAuthConfig {
  /** Origin of the token endpoint, `{loginUrl}/services/oauth2/token`. */
  readonly loginUrl: string;
  readonly clientId: string;
  readonly apiVersion: string;
}

export interface JwtBearerConfig extends CommonAuthConfig {
  readonly flow: 'jwt-bearer';
  readonly username: string;
  /** An RSA private key; a KeyObject never prints its key material. */
  readonly privateKey: KeyObject;
  /** The assertion's `aud`: https://login.salesforce.com, https://test.salesforce.com, or an Experience Cloud site URL. */
  readonly audience: string;
}

export interface ClientCredentialsConfig extends CommonAuthConfig {
  readonly flow: 'client-credentials';
  readonly clientSecret: SecretText;
}

export type SalesforceAuthConfig = JwtBearerConfig | ClientCredentialsConfig;

/** Minting a token failed: wrong credentials, an unapproved app, or the token endpoint did not answer. */
export class SalesforceAuthError extends OncekitError {
  /** Salesforce's OAuth error (e.g. `invalid_grant`), when it gave one. */
  readonly oauthError: string | null;
  constructor(message: string, oauthError: string | null = null, options?: { cause?: unknown }) {
    super('salesforce_auth_failed', message, options);
    this.oauthError = oauthError;
  }
}

const E = SALESFORCE_ENV;
const optional = z.preprocess((value) => (typeof value === 'string' && value.trim() === '' ? undefined : value), z.string().optional());

const envSchema = z.object({
  [E.flow]: z.preprocess(
    (value) => (value === '' ? undefined : value),
    z.enum(['jwt-bearer', 'client-credentials'], { error: 'expected jwt-bearer or client-credentials' }).optional(),
  ),
  [E.loginUrl]: optional,
  [E.clientId]: optional,
  [E.clientSecret]: optional,
  [E.username]: optional,
  [E.privateKey]: optional,
  [E.privateKeyFile]: optional,
  [E.audience]: optional,
  [E.apiVersion]: optional,
});

type Issue = FieldIssue;

/**
 * Reads the Salesforce auth settings from the environment. Throws InvalidInputError whose issues name the variable;
 * no message echoes a secret.
 * - JWT bearer: ONCEKIT_SF_CLIENT_ID, ONCEKIT_SF_USERNAME, ONCEKIT_SF_PRIVATE_KEY (PEM) or ONCEKIT_SF_PRIVATE_KEY_FILE,
 *   optional ONCEKIT_SF_LOGIN_URL (default https://login.salesforce.com) and ONCEKIT_SF_JWT_AUDIENCE;
 * - client credentials: ONCEKIT_SF_CLIENT_ID, ONCEKIT_SF_CLIENT_SECRET, ONCEKIT_SF_LOGIN_URL (the org's My Domain);
 * - ONCEKIT_SF_AUTH_FLOW picks the flow when both a key and a secret are set;
 * - ONCEKIT_SF_API_VERSION, default 59.0, at least 52.0.
 */
export function salesforceAuthConfigFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): SalesforceAuthConfig {
  const values = parseInput(envSchema, env, 'invalid Salesforce settings');
  const issues: Issue[] = [];
  const hasKey = values[E.privateKey] !== undefined || values[E.privateKeyFile] !== undefined;
  const hasSecret = values[E.clientSecret] !== undefined;

  let flow = values[E.flow];
  if (flow === undefined) {
    if (hasKey && hasSecret)
      issues.push({
        field: E.flow,
        reason: `required: both a private key and ${E.clientSecret} are set; choose jwt-bearer or client-credentials`,
      });
    else if (hasKey) flow = 'jwt-bearer';
    else if (hasSecret) flow = 'client-credentials';
    else issues.push({ field: E.flow, reason: `required: set ${E.privateKey} (JWT bearer) or ${E.clientSecret} (client credentials)` });
  }

  const clientId = values[E.clientId];
  if (clientId === undefined) issues.push({ field: E.clientId, reason: 'required: the connected app consumer key' });
  const apiVersion = checkApiVersion(values[E.apiVersion], issues);
  const loginUrl = checkLoginUrl(values[E.loginUrl], flow, issues);

  if (flow === 'jwt-bearer') {
    const username = values[E.username];
    if (username === undefined) issues.push({ field: E.username, reason: 'required for the JWT bearer flow: the integration user' });
    const privateKey = readPrivateKey(values[E.privateKey], values[E.privateKeyFile], issues);
    const audience = checkAudience(values[E.audience], loginUrl, issues);
    if (issues.length === 0 && clientId && username && privateKey && loginUrl && audience) {
      return { flow, loginUrl, clientId, apiVersion, username, privateKey, audience };
    }
  } else if (flow === 'client-credentials') {
    const secret = values[E.clientSecret];
    if (secret === undefined) issues.push({ field: E.clientSecret, reason: 'required for the client credentials flow' });
    if (issues.length === 0 && clientId && secret && loginUrl) {
      return { flow, loginUrl, clientId, apiVersion, clientSecret: new SecretText(secret) };
    }
  }
  throw new InvalidInputError(issues, 'invalid Salesforce settings');
}

/** Checks an API version such as `59.0`; streaming needs 52.0 or later for EventUuid. */
export function checkApiVersion(value: string | undefined, issues: Issue[] = []): string {
  if (value === undefined) return DEFAULT_API_VERSION;
  const match = /^(\d{2,3})\.0$/.exec(value.trim());
  if (!match) issues.push({ field: E.apiVersion, reason: `expected a version such as ${DEFAULT_API_VERSION}` });
  else if (Number(match[1]) < MIN_API_VERSION) {
    issues.push({ field: E.apiVersion, reason: `${value} is too old: platform events carry EventUuid from ${MIN_API_VERSION}.0` });
  }
  return value.trim();
}

function checkLoginUrl(value: string | undefined, flow: SalesforceAuthFlow | undefined, issues: Issue[]): string | undefined {
  if (value === undefined) {
    if (flow === 'client-credentials')
      issues.push({ field: E.loginUrl, reason: 'required for client credentials: your My Domain URL, https://<domain>.my.salesforce.com' });
    return DEFAULT_LOGIN_URL;
  }
  const url = URL.canParse(value) ? new URL(value) : null;
  if (url === null || !['https:', 'http:'].includes(url.protocol)) {
    issues.push({ field: E.loginUrl, reason: 'expected a URL such as https://login.salesforce.com' });
    return undefined;
  }
  // Plain http only for loopback (local fakes): a token request carries the key's assertion or the client secret.
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    issues.push({ field: E.loginUrl, reason: 'must use https (http is accepted for localhost only)' });
  }
  if (url.pathname !== '/' || url.search !== '') issues.push({ field: E.loginUrl, reason: 'expected the origin only, without a path' });
  if (flow === 'client-credentials' && ['login.salesforce.com', 'test.salesforce.com'].includes(url.hostname)) {
    issues.push({ field: E.loginUrl, reason: `${url.hostname} does not take client credentials; use your My Domain URL` });
  }
  return url.origin;
}

function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '127.0.0.1' || hostname === '[::1]';
}

/** Salesforce takes login.salesforce.com, test.salesforce.com (sandboxes) or an Experience Cloud site URL as `aud`. */
function checkAudience(value: string | undefined, loginUrl: string | undefined, issues: Issue[]): string | undefined {
  if (value !== undefined) {
    if (!URL.canParse(value)) issues.push({ field: E.audience, reason: 'expected a URL such as https://login.salesforce.com' });
    return value.replace(/\/+$/, '');
  }
  const host = loginUrl && URL.canParse(loginUrl) ? new URL(loginUrl).hostname : '';
  return host === 'test.salesforce.com' || host.endsWith('.sandbox.my.salesforce.com') ? 'https://test.salesforce.com' : DEFAULT_LOGIN_URL;
}

function readPrivateKey(pem: string | undefined, file: string | undefined, issues: Issue[]): KeyObject | undefined {
  if (pem !== undefined && file !== undefined) {
    issues.push({ field: E.privateKeyFile, reason: `set either ${E.privateKey} or ${E.privateKeyFile}, not both` });
    return undefined;
  }
  if (pem === undefined && file === undefined) {
    issues.push({ field: E.privateKey, reason: `required for the JWT bearer flow (or ${E.privateKeyFile})` });
    return undefined;
  }
  const field = pem !== undefined ? E.privateKey : E.privateKeyFile;
  let text: string;
  if (pem !== undefined) {
    // Environment files often hold a PEM on one line with literal \n.
    text = pem.includes('\\n') && !pem.includes('\n') ? pem.replace(/\\n/g, '\n') : pem;
  } else {
    try {
      text = readFileSync(file as string, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      issues.push({ field, reason: `cannot read ${file} (${code})` });
      return undefined;
    }
  }
  try {
    const key = createPrivateKey(text);
    if (key.asymmetricKeyType !== 'rsa') {
      issues.push({ field, reason: `expected an RSA private key for RS256, got ${key.asymmetricKeyType ?? 'another kind of key'}` });
      return undefined;
    }
    return key;
  } catch {
    // The parser's message is not passed on: it could quote part of the key.
    issues.push({ field, reason: 'is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)' });
    return undefined;
  }
}

/** The RS256-signed assertion of the JWT bearer flow: iss = client id, sub = username, aud, exp within 3 minutes. */
export function createJwtAssertion(input: {
  readonly clientId: string;
  readonly username: string;
  readonly audience: string;
  readonly privateKey: KeyObject;
  readonly nowMs?: number;
}): string {
  const encode = (value: object): string => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
  const exp = Math.floor((input.nowMs ?? Date.now()) / 1000) + JWT_LIFETIME_SECONDS;
  const signingInput = `${encode({ alg: 'RS256' })}.${encode({ iss: input.clientId, sub: input.username, aud: input.audience, exp })}`;
  const signature = sign('sha256', Buffer.from(signingInput, 'utf8'), input.privateKey).toString('base64url');
  return `${signingInput}.${signature}`;
}

const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  instance_url: z.url(),
  /** The identity URL, `…/id/{orgId}/{userId}`. */
  id: z.string().optional(),
});

export interface TokenGrant {
  readonly accessToken: string;
  readonly instanceUrl: string;
  /** The org id from the identity URL; the Pub/Sub API wants it as `tenantid`. Null when Salesforce sent none. */
  readonly orgId: string | null;
}

function orgIdOf(identityUrl: string | undefined): string | null {
  return /\/id\/(00D[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)\/[A-Za-z0-9]{15,18}\/?$/.exec(identityUrl ?? '')?.[1] ?? null;
}

/** Mints one access token with the configured grant, through jsforce's OAuth2 client (the same transport as the API). */
export async function mintAccessToken(config: SalesforceAuthConfig, nowMs: number = Date.now()): Promise<TokenGrant> {
  const oauth2 =
    config.flow === 'jwt-bearer'
      ? new OAuth2({ loginUrl: config.loginUrl, clientId: config.clientId })
      : new OAuth2({ loginUrl: config.loginUrl, clientId: config.clientId, clientSecret: config.clientSecret.reveal() });
  const params =
    config.flow === 'jwt-bearer'
      ? { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: createJwtAssertion({ ...config, nowMs }) }
      : { grant_type: 'client_credentials' };
  let response: unknown;
  try {
    response = await oauth2.requestToken(params);
  } catch (error) {
    // jsforce names the error after Salesforce's `error` and gives `error_description` as the message; neither
    // carries the assertion or the secret.
    const name = error instanceof Error ? error.name : 'Error';
    const oauthError = /^[a-z_]+$/.test(name) ? name : null;
    const description = messageOf(error);
    throw new SalesforceAuthError(
      `Salesforce refused the ${config.flow} token request at ${config.loginUrl}: ${oauthError ? `${oauthError}: ` : ''}${description}`,
      oauthError,
      { cause: error },
    );
  }
  const parsed = tokenResponseSchema.safeParse(response);
  if (!parsed.success)
    throw new SalesforceAuthError(`the token endpoint at ${config.loginUrl} answered without access_token and instance_url`);
  return {
    accessToken: parsed.data.access_token,
    instanceUrl: parsed.data.instance_url.replace(/\/+$/, ''),
    orgId: orgIdOf(parsed.data.id),
  };
}

export interface TokenChange {
  readonly reason: 'initial' | 'refresh';
  readonly instanceUrl: string;
  readonly mintedAt: number;
}

export interface SalesforceSession {
  readonly connection: Connection;
  readonly flow: SalesforceAuthFlow;
  readonly apiVersion: string;
  /** The org id of the latest token (the Pub/Sub API's `tenantid`); null when the token endpoint gave no identity URL. */
  readonly orgId: string | null;
  /** Mints a new token and installs it on the connection; concurrent calls share one request. */
  refresh(): Promise<void>;
  /** Called after every refreshed token (streaming clients must be recreated); returns an unsubscribe function. */
  onTokenChange(listener: (change: TokenChange) => void): () => void;
}

export interface ConnectSalesforceOptions {
  readonly logger?: Logger;
  readonly now?: () => number;
  /**
   * At most `count` refreshes per `windowMs`. jsforce retries a 401 after every refresh, so a token Salesforce keeps
   * refusing (a user without API access) would otherwise loop on the token endpoint. Default 5 per minute.
   */
  readonly refreshLimit?: { readonly count: number; readonly windowMs: number };
}

/** Mints the first token and returns a jsforce Connection that mints a new one whenever Salesforce answers 401. */
export async function connectSalesforce(config: SalesforceAuthConfig, options: ConnectSalesforceOptions = {}): Promise<SalesforceSession> {
  const logger = options.logger ?? silentLogger;
  const now = options.now ?? Date.now;
  const limit = options.refreshLimit ?? { count: 5, windowMs: 60_000 };
  const listeners = new Set<(change: TokenChange) => void>();
  const refreshTimes: number[] = [];
  let inFlight: Promise<void> | null = null;

  const announce = (change: TokenChange): void => {
    logger.info(
      { event: 'salesforce_token_minted', flow: config.flow, reason: change.reason, instance: new URL(change.instanceUrl).host },
      `Salesforce access token minted (${change.reason})`,
    );
    for (const listener of listeners) {
      try {
        listener(change);
      } catch (error) {
        logger.error({ event: 'salesforce_token_listener_failed', error: messageOf(error) }, 'a token-change listener threw');
      }
    }
  };

  const first = await mintAccessToken(config, now());
  let orgId = first.orgId;
  const connection = new Connection({
    loginUrl: config.loginUrl,
    instanceUrl: first.instanceUrl,
    accessToken: first.accessToken,
    version: config.apiVersion,
    // Called by jsforce on a 401; it then retries the request once with the new token.
    refreshFn: (_conn, callback) => {
      refresh().then(
        () => callback(null, connection.accessToken ?? undefined),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    },
  });

  async function mintAndInstall(): Promise<void> {
    const at = now();
    while (refreshTimes.length > 0 && (refreshTimes[0] as number) <= at - limit.windowMs) refreshTimes.shift();
    if (refreshTimes.length >= limit.count) {
      throw new SalesforceAuthError(
        `Salesforce refused ${limit.count} fresh tokens within ${Math.round(limit.windowMs / 1000)} s; not minting another yet (check the integration user's API access)`,
      );
    }
    refreshTimes.push(at);
    const grant = await mintAccessToken(config, at);
    connection.accessToken = grant.accessToken;
    connection.instanceUrl = grant.instanceUrl;
    orgId = grant.orgId ?? orgId;
    announce({ reason: 'refresh', instanceUrl: grant.instanceUrl, mintedAt: at });
  }

  function refresh(): Promise<void> {
    inFlight ??= mintAndInstall().finally(() => {
      inFlight = null;
    });
    return inFlight;
  }

  announce({ reason: 'initial', instanceUrl: first.instanceUrl, mintedAt: now() });
  return {
    connection,
    flow: config.flow,
    apiVersion: config.apiVersion,
    get orgId() {
      return orgId;
    },
    refresh,
    onTokenChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
