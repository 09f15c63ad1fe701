import { request } from 'undici';
import { afterEach } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, manualClock, type Sandbox, type SandboxOptions, startSandbox } from '../../../sandbox/target/index.js';

export const TENANT = 'test_tenant';

export const basicAuth = (key: string = DEFAULT_SANDBOX_API_KEY): string => `Basic ${Buffer.from(`:${key}`, 'utf8').toString('base64')}`;

const open: Sandbox[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((sandbox) => sandbox.close()));
});

/** A sandbox on a free loopback port, on a manual clock unless told otherwise; closed after each test. */
export async function sandboxFor(options: SandboxOptions = {}): Promise<Sandbox & { clock: ReturnType<typeof manualClock> }> {
  const clock = manualClock();
  const sandbox = await startSandbox({ port: 0, clock, ...options });
  open.push(sandbox);
  return sandbox as Sandbox & { clock: ReturnType<typeof manualClock> };
}

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** The parsed body, or undefined when it is not JSON. */
  readonly json: unknown;
}

export interface CallOptions {
  readonly method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  readonly headers?: Record<string, string>;
  /** A string is sent as it is; anything else as JSON. */
  readonly body?: unknown;
}

/** One raw HTTP request: every status resolves, only a missing response rejects. */
export async function call(url: string, options: CallOptions = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await request(url, { method: options.method ?? (body === undefined ? 'GET' : 'POST'), headers, body: body ?? null });
  const text = await response.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.statusCode, headers: response.headers, text, json };
}

export const eventsUrl = (sandbox: Sandbox, accountId: string, userId: string, tenant: string = TENANT): string =>
  `${sandbox.url}/api/v1/${encodeURIComponent(tenant)}/open/account/${encodeURIComponent(accountId)}/user/${encodeURIComponent(userId)}/events`;

export const userUrl = (sandbox: Sandbox, accountId: string, userId: string, tenant: string = TENANT): string =>
  `${sandbox.url}/api/v1/${encodeURIComponent(tenant)}/open/account/${encodeURIComponent(accountId)}/user/${encodeURIComponent(userId)}`;

export const graphqlUrl = (sandbox: Sandbox, tenant: string = TENANT): string =>
  `${sandbox.url}/api/v1/${encodeURIComponent(tenant)}/graphql`;

export interface EventInput {
  userId?: unknown;
  accountId?: unknown;
  idempotencyKey?: unknown;
  events?: unknown;
  [extra: string]: unknown;
}

export const purchase = (overrides: EventInput = {}): EventInput => ({
  userId: 'u1',
  accountId: 'a1',
  events: [{ key: 'purchase', fields: { currency: 'CAD', revenue: 10 } }],
  ...overrides,
});

/** POSTs a UserEventInput to trackEvent; the path ids come from the body unless given. */
export function track(
  sandbox: Sandbox,
  input: EventInput | string,
  options: { tenant?: string; apiKey?: string; accountId?: string; userId?: string; headers?: Record<string, string> } = {},
): Promise<HttpResult> {
  const fromBody = typeof input === 'string' ? {} : input;
  const accountId = options.accountId ?? (typeof fromBody.accountId === 'string' ? fromBody.accountId : 'a1');
  const userId = options.userId ?? (typeof fromBody.userId === 'string' ? fromBody.userId : 'u1');
  return call(eventsUrl(sandbox, accountId, userId, options.tenant), {
    body: input,
    headers: { authorization: basicAuth(options.apiKey), ...options.headers },
  });
}

export function graphql(
  sandbox: Sandbox,
  query: string,
  variables?: Record<string, unknown>,
  options: { tenant?: string; apiKey?: string } = {},
): Promise<HttpResult> {
  return call(graphqlUrl(sandbox, options.tenant), {
    body: variables === undefined ? { query } : { query, variables },
    headers: { authorization: basicAuth(options.apiKey) },
  });
}

/** The first ApiError of a GraphQL answer's errors[].extensions.apiError. */
export function firstApiError(json: unknown): Record<string, unknown> | undefined {
  const errors = (json as { errors?: { extensions?: { apiError?: Record<string, unknown> } }[] }).errors;
  return errors?.[0]?.extensions?.apiError;
}

export const DAY_MS = 24 * 60 * 60 * 1000;
