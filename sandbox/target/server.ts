import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../../shared/clock.js';
import { InvalidInputError } from '../../shared/errors.js';
import { saasquatchKeyProfile } from '../../shared/keys/profiles.js';
import { type Logger, silentLogger } from '../../shared/log.js';
import { ClientGoneError, type Reply, readBody, send } from '../http.js';
import { apiErrors } from './api-error.js';
import { createAuthenticator } from './auth.js';
import { CONTROL_PREFIX, handleControl } from './control.js';
import { DEFAULT_SANDBOX_API_KEY } from './defaults.js';
import { lostResponseReply, statusFaultReply, throttleReply } from './fault-replies.js';
import { type FaultAction, type FaultConfig, type FaultController, FaultInjector } from './faults.js';
import { handleGraphql, noteGraphqlKeys } from './graphql.js';
import { dropConnection, errorReply, MAX_BODY_BYTES } from './http-io.js';
import { createRateCap, eventsInRequest, type RateCap } from './rate-cap.js';
import { handleGetUser, handleTrackEvent, handleUpsertUser, noteRestKey, type RestRequest } from './rest.js';
import { type ApiRoute, matchApiRoute } from './routes.js';
import { SandboxState, type TenantSnapshot, type TenantState } from './state.js';

export { DEFAULT_SANDBOX_API_KEY };

export interface SandboxOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Accepted for every tenant; default DEFAULT_SANDBOX_API_KEY. Ignored when tenantApiKeys is set. */
  apiKey?: string;
  /** When set, only these tenants exist, each with its own key. */
  tenantApiKeys?: Record<string, string>;
  /** Default: the system clock. The key window, event dates and ids run on it. */
  clock?: Clock;
  /** How long a tenant's key is remembered; default saasquatchKeyProfile.retentionMs (24 h). */
  keyRetentionMs?: number;
  /** When true, events of users never upserted get 404 (RS042); default false (the user is created). */
  strictUsers?: boolean;
  /** Fault rates in force at start (and after reset()): a FaultConfig or a spec string. */
  faults?: FaultConfig | string;
  /**
   * The target's capacity: at most this many events per second (a token bucket holding one second's worth, on the
   * sandbox clock); over it, event requests get 429 with Retry-After. Each event of a batch counts. Default: no cap.
   */
  maxEventsPerSecond?: number;
  logger?: Logger;
}

export interface Sandbox {
  /** e.g. http://127.0.0.1:40123, without a trailing slash. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
  readonly faults: FaultController;
  /** What the sandbox holds for `tenant` (an empty snapshot for a tenant never seen); a deep copy. */
  inspect(tenant: string): TenantSnapshot;
  /** Forgets every tenant's events, keys, users and counters; faults go back to the startup config. The clock is kept. */
  reset(): void;
  readonly clock: Clock;
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const host = options.host ?? '127.0.0.1';
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const retentionMs = options.keyRetentionMs ?? saasquatchKeyProfile.retentionMs;
  if (!Number.isFinite(retentionMs) || retentionMs <= 0) {
    throw new InvalidInputError([{ field: 'keyRetentionMs', reason: `expected milliseconds > 0, got ${retentionMs}` }]);
  }
  const strictUsers = options.strictUsers ?? false;
  const auth = createAuthenticator(options.apiKey ?? DEFAULT_SANDBOX_API_KEY, options.tenantApiKeys);
  const startupFaults = options.faults ?? {};
  const faults = new FaultInjector(startupFaults);
  const state = new SandboxState(auth.configuredTenants);
  const newCap = (): RateCap | null =>
    options.maxEventsPerSecond === undefined ? null : createRateCap(options.maxEventsPerSecond, clock.now());
  let cap = newCap();
  const reset = (): void => {
    state.reset();
    cap = newCap();
    faults.clear();
    faults.set(startupFaults);
  };

  // Requests waiting out an injected latency; close() releases them so it never waits for a timer.
  const waiting = new Map<NodeJS.Timeout, () => void>();
  let closed = false;
  const delay = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiting.delete(timer);
        resolve();
      }, ms);
      waiting.set(timer, resolve);
    });

  const dispatch = (route: ApiRoute, body: string, contentType: string | undefined, request: RestRequest): Reply | Promise<Reply> => {
    switch (route.kind) {
      case 'track-event':
        return handleTrackEvent(route, body, contentType, request);
      case 'upsert-user':
        return handleUpsertUser(route, body, contentType, request);
      case 'get-user':
        return handleGetUser(route, request);
      case 'graphql':
        return handleGraphql(body, contentType, request);
    }
  };

  /** A request a pre-processing fault answers still counts towards the key it carries. */
  const noteKeys = async (route: ApiRoute, body: string, contentType: string | undefined, request: RestRequest): Promise<void> => {
    if (route.kind === 'track-event') noteRestKey(body, request);
    else if (route.kind === 'graphql') await noteGraphqlKeys(body, contentType, request);
  };

  const answer = (res: ServerResponse, tenant: TenantState, reply: Reply): void => {
    tenant.countResponse(reply.status);
    send(res, reply);
  };

  const drop = (res: ServerResponse, tenant: TenantState): void => {
    tenant.countDrop();
    dropConnection(res);
  };

  const answerFault = (res: ServerResponse, tenant: TenantState, action: Exclude<FaultAction, { kind: 'record-then-fail' }>): void => {
    if (action.kind === 'drop') drop(res, tenant);
    else answer(res, tenant, action.kind === 'throttle' ? throttleReply(action.retryAfterSeconds) : statusFaultReply(action.status));
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, method: string, pathname: string): Promise<void> => {
    const match = matchApiRoute(method, pathname);
    if (!match.ok) {
      req.resume();
      send(res, errorReply(match.error, match.allow === undefined ? undefined : { allow: match.allow }));
      return;
    }
    const { route } = match;
    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === null) {
      send(res, errorReply(apiErrors.payloadTooLarge(MAX_BODY_BYTES), { connection: 'close' }));
      return;
    }
    // Auth comes before faults: a 401 never consumes a queued fault, so a test's script stays in step.
    const denied = auth.check(route.tenant, req.headers.authorization);
    if (denied !== null) {
      send(res, errorReply(denied, { 'www-authenticate': 'Basic realm="SaaSquatch API"' }));
      return;
    }
    const tenant = state.tenant(route.tenant);
    // The cap comes before faults, like auth: a refused request never consumes a queued fault.
    if (cap !== null) {
      const events = eventsInRequest(route.kind, body);
      const waitSeconds = events > 0 ? cap.take(events, clock.now()) : 0;
      if (waitSeconds > 0) {
        answer(res, tenant, throttleReply(waitSeconds, 'rate-cap'));
        return;
      }
    }
    const plan = faults.draw();
    if (plan.latencyMs > 0) {
      await delay(plan.latencyMs);
      if (closed) {
        res.destroy();
        return;
      }
    }
    const contentType = req.headers['content-type'];
    const request: RestRequest = { tenant, now: clock.now(), retentionMs, strictUsers };
    const action = plan.action;
    if (action !== null && action.kind !== 'record-then-fail') {
      await noteKeys(route, body, contentType, request);
      answerFault(res, tenant, action);
      return;
    }
    const reply = await dispatch(route, body, contentType, request);
    if (action === null) answer(res, tenant, reply);
    else if (action.failWith === 'drop') drop(res, tenant);
    else answer(res, tenant, lostResponseReply());
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const pathname = query < 0 ? url : url.slice(0, query);
    const method = req.method ?? 'GET';
    if (pathname.startsWith(CONTROL_PREFIX)) {
      const body = await readBody(req, MAX_BODY_BYTES);
      if (body === null) send(res, errorReply(apiErrors.payloadTooLarge(MAX_BODY_BYTES), { connection: 'close' }));
      else send(res, handleControl(method, pathname, body, { state, faults, clock, reset }));
      return;
    }
    await handleApi(req, res, method, pathname);
  };

  const server = createServer({ noDelay: true }, (req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (error instanceof ClientGoneError) return;
      // Only the error: never the request headers, which hold the API key.
      logger.error({ error: error instanceof Error ? error.message : String(error), method: req.method }, 'sandbox request failed');
      if (!res.headersSent) send(res, errorReply(apiErrors.internal()));
      else res.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${urlHost(host)}:${port}`;
  logger.info({ url, strictUsers, keyRetentionMs: retentionMs, tenants: auth.configuredTenants.length || 'any' }, 'sandbox listening');

  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      closed = true;
      for (const [timer, release] of waiting) {
        clearTimeout(timer);
        release();
      }
      waiting.clear();
      server.close(() => {
        logger.info({ url }, 'sandbox closed');
        resolve();
      });
      server.closeAllConnections();
    });
    return closing;
  };

  return {
    url,
    port,
    close,
    faults,
    inspect: (tenant) => state.snapshot(tenant),
    reset,
    clock,
  };
}
