import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteHandlerMethod } from 'fastify';
import { z } from 'zod';
import { canonicalJson } from '../canonical-json.js';
import { InvalidInputError } from '../errors.js';
import { checkKey, idempotencyKeyHeaderProfile, type KeyFaultReason } from '../keys/profiles.js';
import {
  type ClaimOutcome,
  type IdempotencyRef,
  type IdempotencyStore,
  newOwnerToken,
  StoreUnavailableError,
} from '../state/idempotency.js';
import { requestKey } from '../state/key-spaces.js';
import { keepLeaseAlive, type LeaseKeeper } from '../state/lease-keeper.js';
import { parseInput } from '../validation.js';

/** Per route: `false` turns the plugin off; an object turns it on (for any method) and may require the key. */
export type IdempotencyRouteConfig = false | { readonly key?: KeyPolicy };
export type KeyPolicy = 'optional' | 'required';

declare module 'fastify' {
  interface FastifyContextConfig {
    idempotency?: IdempotencyRouteConfig;
  }
}

/**
 * Which first responses are stored and replayed (pre-execution failures never are: a bad key, the plugin's own 409
 * and 503, schema validation):
 * - `deterministic` (default): 2xx and the 4xx a retry would get again (not 408, 409, 425, 429);
 * - `stripe-v1`: every response of an executed handler except 429 and 5xx;
 * - `success-only`: 2xx only.
 * No policy stores a 5xx: a store failure or another transient fault must not be replayed for the key's lifetime.
 * A response that is not stored releases the key, so a retry executes again.
 */
export type StorePolicy = 'stripe-v1' | 'success-only' | 'deterministic';

export interface IdempotencyPluginOptions {
  readonly store: IdempotencyStore;
  /** Headers the key is read from, first match wins; default `['Idempotency-Key']`. E.g. add `X-SALESBRICKS-IDEMPOTENT-OPERATION-KEY`. */
  readonly keyHeaders?: readonly string[];
  /** Key policy of routes that do not set their own; default `optional` (a request without a key just executes). */
  readonly key?: KeyPolicy;
  /** Methods covered without route config; default POST and PATCH (the non-idempotent ones). */
  readonly methods?: readonly string[];
  /** The tenant of a request; keys and fingerprints are scoped by it. Default: every request is tenant `default`. */
  readonly resolveTenant?: (request: FastifyRequest) => string | Promise<string>;
  /** Status for a key reused with a different request: 400 (Stripe, Salesbricks; default) or 422 (IETF draft). */
  readonly mismatchStatus?: 400 | 422;
  readonly storePolicy?: StorePolicy;
  /** How long a handler may run before a retry may take its key over; renewed while it runs. Default 10 s. */
  readonly leaseMs?: number;
  /** How long a stored response is replayed; default 24 h. */
  readonly ttlMs?: number;
  /** Retry-After on 409 (in progress) and 503 (store unavailable); default 1. */
  readonly retryAfterSeconds?: number;
  /** A store call slower than this counts as a store failure (503); default 2000. */
  readonly storeTimeoutMs?: number;
  /** Bodies above this are not stored: the replay carries the status and headers only. Default 1 MiB. */
  readonly maxStoredBodyBytes?: number;
  /** Response headers stored and replayed with the body; default content-type and location. */
  readonly replayedHeaders?: readonly string[];
}

/** The problem `type` URIs the plugin answers with (RFC 9457); the IETF draft registers none, so these are ours. */
export const IDEMPOTENCY_PROBLEM_TYPES = {
  keyMissing: 'urn:oncekit:problem:idempotency-key-missing',
  keyInvalid: 'urn:oncekit:problem:idempotency-key-invalid',
  keyReused: 'urn:oncekit:problem:idempotency-key-reused',
  inProgress: 'urn:oncekit:problem:idempotency-request-in-progress',
  storeUnavailable: 'urn:oncekit:problem:idempotency-store-unavailable',
  requestInvalid: 'urn:oncekit:problem:request-invalid',
} as const;

export const REPLAYED_HEADER = 'idempotent-replayed';
/** Set on a replay whose original body was too large or streamed, so only status and headers were kept. */
export const BODY_OMITTED_HEADER = 'idempotent-replay-body-omitted';
export const DEFAULT_TENANT = 'default';

const optionsSchema = z.object({
  keyHeaders: z
    .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name'))
    .min(1)
    .default(['Idempotency-Key']),
  key: z.enum(['optional', 'required']).default('optional'),
  methods: z.array(z.string().min(1)).default(['POST', 'PATCH']),
  mismatchStatus: z.union([z.literal(400), z.literal(422)]).default(400),
  storePolicy: z.enum(['stripe-v1', 'success-only', 'deterministic']).default('deterministic'),
  leaseMs: z.number().int().positive().default(10_000),
  ttlMs: z
    .number()
    .int()
    .positive()
    .default(24 * 60 * 60 * 1000),
  retryAfterSeconds: z.number().int().positive().default(1),
  storeTimeoutMs: z.number().int().positive().default(2000),
  maxStoredBodyBytes: z
    .number()
    .int()
    .nonnegative()
    .default(1024 * 1024),
  replayedHeaders: z.array(z.string().min(1)).default(['content-type', 'location']),
});

const storedResponseSchema = z.object({
  status: z.number().int(),
  headers: z.record(z.string(), z.string()),
  body: z.string(),
  encoding: z.enum(['utf8', 'base64']),
  omitted: z.enum(['too_large', 'stream']).optional(),
});
type StoredResponse = z.infer<typeof storedResponseSchema>;

interface HeldKey {
  readonly ref: IdempotencyRef;
  readonly owner: string;
  readonly keeper: LeaseKeeper;
}

const RETRYABLE_CLIENT_ERRORS = new Set([408, 409, 425, 429]);
const storePolicies: Record<StorePolicy, (status: number) => boolean> = {
  'stripe-v1': (status) => status !== 429 && status < 500,
  'success-only': (status) => status >= 200 && status < 300,
  deterministic: (status) => (status >= 200 && status < 300) || (status >= 400 && status < 500 && !RETRYABLE_CLIENT_ERRORS.has(status)),
};

const keyFaultText: Record<KeyFaultReason, string> = {
  missing: 'is missing',
  not_a_string: 'is not text',
  empty: 'is empty',
  bad_characters: 'has characters outside visible ASCII, or " or \\',
  too_short: 'is too short',
  too_long: `is longer than ${idempotencyKeyHeaderProfile.maxLength} characters`,
};

/**
 * Request idempotency for Fastify 5: the first response of a handler is stored under (tenant, key) and replayed with
 * `Idempotent-Replayed: true`; a reuse with a different request is refused; a concurrent duplicate gets 409. Register
 * it with `await app.register(idempotencyPlugin, options)` before the routes it covers: it wraps their handlers, so
 * the key is claimed only once routing, schema validation and every preHandler have passed.
 */
export const idempotencyPlugin: FastifyPluginAsync<IdempotencyPluginOptions> = async (app, options) => {
  const { store, resolveTenant = () => DEFAULT_TENANT, ...rest } = options;
  const settings = parseInput(optionsSchema, rest, 'idempotency plugin options');
  const keyHeaders = settings.keyHeaders.map((name) => name.toLowerCase());
  const methods = new Set(settings.methods.map((method) => method.toUpperCase()));
  const shouldStore = storePolicies[settings.storePolicy];
  const held = new WeakMap<FastifyRequest, HeldKey>();

  const withTimeout = <T>(operation: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new StoreUnavailableError(`store did not answer within ${settings.storeTimeoutMs} ms`)),
        settings.storeTimeoutMs,
      );
    });
    return Promise.race([operation, timeout]).finally(() => clearTimeout(timer));
  };

  const problem = (reply: FastifyReply, status: number, type: string, title: string, detail: string, retryAfter?: number): FastifyReply => {
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    return reply
      .code(status)
      .header('content-type', 'application/problem+json; charset=utf-8')
      .send(JSON.stringify({ type, title, status, detail }));
  };

  const mismatch = (reply: FastifyReply): FastifyReply =>
    problem(
      reply,
      settings.mismatchStatus,
      IDEMPOTENCY_PROBLEM_TYPES.keyReused,
      'Idempotency key reused with a different request',
      'This key was first used with a different body, method, route or tenant. Send a new key for a new request.',
    );

  /** Claims the key, or answers the request itself (replay, 4xx, 409, 503). Returns true when the handler may run. */
  const gate = async (request: FastifyRequest, reply: FastifyReply, keyPolicy: KeyPolicy): Promise<boolean> => {
    const read = readKey(request, keyHeaders);
    if (read.kind === 'absent') {
      if (keyPolicy === 'optional') return true;
      problem(
        reply,
        400,
        IDEMPOTENCY_PROBLEM_TYPES.keyMissing,
        'Idempotency key required',
        `This route requires the ${settings.keyHeaders[0]} header.`,
      );
      return false;
    }
    if (read.kind === 'invalid') {
      problem(
        reply,
        400,
        IDEMPOTENCY_PROBLEM_TYPES.keyInvalid,
        'Invalid idempotency key',
        `${read.detail}; a key is ${idempotencyKeyHeaderProfile.rule}.`,
      );
      return false;
    }
    const tenant = await resolveTenant(request);
    const ref: IdempotencyRef = { tenant, key: requestKey(read.key) };
    let fingerprint: string;
    try {
      fingerprint = fingerprintOf(request, tenant);
    } catch (error) {
      // A body past the canonicalisation bounds (too deep, too many values): a 400 naming where, before any claim.
      if (!(error instanceof InvalidInputError)) throw error;
      problem(reply, 400, IDEMPOTENCY_PROBLEM_TYPES.requestInvalid, 'Invalid request', error.message);
      return false;
    }
    const owner = newOwnerToken();
    let outcome: ClaimOutcome;
    try {
      outcome = await withTimeout(store.claim(ref, { owner, leaseMs: settings.leaseMs, fingerprint }));
      // An expired lease is taken over only by the same request: a different one is a key reuse, answered below.
      if (outcome.status === 'in_progress' && outcome.leaseExpired && outcome.record.fingerprint === fingerprint) {
        outcome = await withTimeout(store.takeOver(ref, { owner, leaseMs: settings.leaseMs, fingerprint }));
      }
    } catch (error) {
      request.log.error({ err: error, tenant }, 'idempotency store unavailable; refusing the request (fail closed)');
      problem(
        reply,
        503,
        IDEMPOTENCY_PROBLEM_TYPES.storeUnavailable,
        'Idempotency store unavailable',
        'The request was not executed. Retry with the same key.',
        settings.retryAfterSeconds,
      );
      return false;
    }
    if (outcome.status !== 'claimed' && outcome.record.fingerprint !== fingerprint) {
      mismatch(reply);
      return false;
    }
    if (outcome.status === 'in_progress') {
      problem(
        reply,
        409,
        IDEMPOTENCY_PROBLEM_TYPES.inProgress,
        'Request with this idempotency key in progress',
        'The first request with this key has not finished yet. Retry with the same key to get its response.',
        settings.retryAfterSeconds,
      );
      return false;
    }
    if (outcome.status === 'completed') {
      const stored = storedResponseSchema.safeParse(safeJson(outcome.record.result));
      if (!stored.success) {
        request.log.error({ tenant }, 'idempotency record holds an unreadable response');
        problem(
          reply,
          503,
          IDEMPOTENCY_PROBLEM_TYPES.storeUnavailable,
          'Idempotency store unavailable',
          'The stored response cannot be read.',
          settings.retryAfterSeconds,
        );
        return false;
      }
      replay(reply, stored.data);
      return false;
    }
    if (outcome.takenOverFrom !== undefined) request.log.warn({ tenant }, 'idempotency: took over the expired lease of an earlier request');
    const keeper = keepLeaseAlive(store, ref, owner, settings.leaseMs, (reason) =>
      request.log.warn({ tenant, reason }, 'idempotency: lease renewal failed'),
    );
    held.set(request, { ref, owner, keeper });
    return true;
  };

  app.addHook('onRoute', (route) => {
    const config = route.config?.idempotency;
    if (config === false) return;
    const explicit = config !== undefined;
    const keyPolicy = config?.key ?? settings.key;
    const handler = route.handler as RouteHandlerMethod;
    const wrapped: RouteHandlerMethod = async function (this: unknown, request, reply) {
      if ((explicit || methods.has(request.method)) && !(await gate(request, reply, keyPolicy))) return reply;
      const result: unknown = await handler.call(this as never, request, reply);
      // A handler that sends through `reply` itself may return nothing; returning `reply` tells Fastify to wait.
      return result === undefined && !reply.sent ? reply : result;
    };
    route.handler = wrapped;
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const claim = held.get(request);
    if (!claim) return payload;
    held.delete(request);
    claim.keeper.stop();
    const status = reply.statusCode;
    try {
      if (!shouldStore(status)) {
        await withTimeout(store.release(claim.ref, claim.owner));
        return payload;
      }
      const response = toStoredResponse(reply, status, payload, settings.replayedHeaders, settings.maxStoredBodyBytes);
      const stored = await withTimeout(store.complete(claim.ref, claim.owner, { result: JSON.stringify(response), ttlMs: settings.ttlMs }));
      if (!stored)
        request.log.error(
          { tenant: claim.ref.tenant },
          'idempotency: the key was taken over while the handler ran; its response is not stored',
        );
    } catch (error) {
      // The handler has run; its answer still goes out. The lease runs out and a retry executes again.
      request.log.error({ err: error, tenant: claim.ref.tenant }, 'idempotency: could not store the response');
    }
    return payload;
  });
};
// Like fastify-plugin: the hooks apply to the routes of the app that registers the plugin, not just to a child context.
Object.assign(idempotencyPlugin, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: 'oncekit-idempotency' });

type KeyRead =
  | { readonly kind: 'absent' }
  | { readonly kind: 'invalid'; readonly detail: string }
  | { readonly kind: 'key'; readonly key: string };

/** The key from the first configured header present; every present header must carry the same single value. */
function readKey(request: FastifyRequest, headerNames: readonly string[]): KeyRead {
  let found: { name: string; value: string } | undefined;
  for (const name of headerNames) {
    const value = request.headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) return { kind: 'invalid', detail: `${name} was sent more than once` };
    if (found && found.value !== value) return { kind: 'invalid', detail: `${found.name} and ${name} disagree` };
    found ??= { name, value };
  }
  if (!found) return { kind: 'absent' };
  const check = checkKey(found.value, idempotencyKeyHeaderProfile);
  return check.valid ? { kind: 'key', key: check.key } : { kind: 'invalid', detail: `${found.name} ${keyFaultText[check.reason]}` };
}

/** What the key is bound to: method, route, path parameters, query, tenant and body, each independent of key order. */
function fingerprintOf(request: FastifyRequest, tenant: string): string {
  const body = Buffer.isBuffer(request.body) ? { base64: request.body.toString('base64') } : request.body;
  const bound = { method: request.method, route: request.routeOptions.url, params: request.params, query: request.query, tenant, body };
  return createHash('sha256').update(canonicalJson(bound)).digest('base64url');
}

function toStoredResponse(
  reply: FastifyReply,
  status: number,
  payload: unknown,
  headerNames: readonly string[],
  maxBytes: number,
): StoredResponse {
  const headers: Record<string, string> = {};
  for (const name of headerNames) {
    const value = reply.getHeader(name);
    if (value !== undefined) headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  const base = { status, headers };
  if (payload === null || payload === undefined) return { ...base, body: '', encoding: 'utf8' };
  if (typeof payload === 'string') {
    return Buffer.byteLength(payload) > maxBytes
      ? { ...base, body: '', encoding: 'utf8', omitted: 'too_large' }
      : { ...base, body: payload, encoding: 'utf8' };
  }
  if (Buffer.isBuffer(payload)) {
    return payload.length > maxBytes
      ? { ...base, body: '', encoding: 'utf8', omitted: 'too_large' }
      : { ...base, body: payload.toString('base64'), encoding: 'base64' };
  }
  return { ...base, body: '', encoding: 'utf8', omitted: 'stream' };
}

function replay(reply: FastifyReply, stored: StoredResponse): void {
  reply.code(stored.status).headers(stored.headers).header(REPLAYED_HEADER, 'true');
  if (stored.omitted) reply.header(BODY_OMITTED_HEADER, stored.omitted === 'too_large' ? 'too-large' : 'stream');
  reply.send(stored.encoding === 'base64' ? Buffer.from(stored.body, 'base64') : stored.body);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
