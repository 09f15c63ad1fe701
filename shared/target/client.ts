import { z } from 'zod';
import { OncekitError } from '../errors.js';
import type { UserEventInput } from '../events/user-event.js';
import { type Logger, silentLogger } from '../log.js';
import { parseInput } from '../validation.js';
import { eventIdsOf, graphqlError, parseJson, restError } from './api-error.js';
import {
  type AttemptVerdict,
  classifyFailure,
  classifyStatus,
  type DeliveryFailure,
  type DeliveryResult,
  leavesOutcomeUnknown,
  type NoAnswer,
  type TargetApiError,
} from './outcome.js';
import { backoffDelayMs, defaultRetryPolicy, parseRetryAfter, type RetryPolicy, retryPolicySchema, sleep } from './retry.js';
import {
  basicAuthHeader,
  CREDENTIALS_CHECK_QUERY,
  graphqlUrl,
  LOG_USER_EVENT_MUTATION,
  LOG_USER_EVENTS_MUTATION,
  type TargetApi,
  targetApis,
  trackEventUrl,
  userUpsertUrl,
} from './saasquatch-api.js';
import { type HttpRequest, type HttpResponse, type HttpTransport, TransportError } from './transport.js';

export interface TargetClientOptions {
  readonly baseUrl: string;
  readonly tenant: string;
  /** Sent as the Basic-auth password; never logged and never part of an error. */
  readonly apiKey: string;
  readonly transport: HttpTransport;
  /** REST by default; GraphQL for `logUserEvent` when chosen. Batches always use GraphQL `logUserEvents`. */
  readonly api?: TargetApi;
  /** Timeout of one attempt. */
  readonly timeoutMs?: number;
  readonly retry?: Partial<RetryPolicy>;
  /** Most inputs in one `logUserEvents` call; larger batches are split. */
  readonly maxBatchSize?: number;
  readonly userAgent?: string;
  readonly logger?: Logger;
  /** Injected in tests: time, waiting and jitter. */
  readonly now?: () => number;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly random?: () => number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** A user as the open user-upsert endpoint takes it (Segment identify). */
export interface UserUpsert {
  readonly id: string;
  readonly accountId: string;
  readonly [field: string]: unknown;
}

export interface BatchDeliveryResult {
  /** One result per input, in input order. */
  readonly results: readonly DeliveryResult[];
  /** HTTP requests made, retries included. */
  readonly requests: number;
}

/** The answer of `checkCredentials`: ok, or why the target did not take the key (or did not answer). */
export type CredentialCheck = { readonly ok: true } | { readonly ok: false; readonly failure: DeliveryFailure };

/** Thrown by `requireTargetAnswers`: the target refused the key, failed, or did not answer. */
export class TargetCheckError extends OncekitError {
  readonly failure: DeliveryFailure;
  constructor(failure: DeliveryFailure, message: string) {
    super(`target_${failure.kind}`, message);
    this.failure = failure;
  }
}

/**
 * For readiness probes: throws a TargetCheckError when the target refused the key (auth), failed (5xx) or did not
 * answer. Any other answer (a 429, a 408, another 4xx) shows the target is up and did not refuse the key, so it passes.
 */
export function requireTargetAnswers(check: CredentialCheck): void {
  if (check.ok) return;
  const { failure } = check;
  if (failure.kind === 'auth') throw new TargetCheckError(failure, `the target refused the API key (HTTP ${failure.status})`);
  if (failure.kind === 'unavailable') throw new TargetCheckError(failure, `the target answered HTTP ${failure.status}`);
  if (failure.kind === 'unreadable') throw new TargetCheckError(failure, failure.message);
  if (failure.status === null) throw new TargetCheckError(failure, failure.message);
}

export interface TargetClient {
  readonly tenant: string;
  /**
   * One authenticated GraphQL `{ __typename }`, which records nothing and costs the target nothing: does the target
   * take this key? One attempt, never retried; `timeoutMs` defaults to the client's attempt timeout.
   */
  checkCredentials(options?: CallOptions & { readonly timeoutMs?: number }): Promise<CredentialCheck>;
  logUserEvent(input: UserEventInput, options?: CallOptions & { readonly api?: TargetApi }): Promise<DeliveryResult>;
  logUserEvents(inputs: readonly UserEventInput[], options?: CallOptions): Promise<BatchDeliveryResult>;
  upsertUser(user: UserUpsert, options?: CallOptions): Promise<DeliveryResult>;
}

const optionsSchema = z.object({
  baseUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  tenant: z.string({ error: 'required' }).min(1, 'must not be empty'),
  // Callers name where the key comes from (an environment variable, a connection field) when they rename the field.
  apiKey: z.string({ error: 'required' }).min(1, 'must not be empty'),
  api: z.enum(targetApis).optional(),
  timeoutMs: z.number().int().positive().optional(),
  maxBatchSize: z.number().int().positive().optional(),
  retry: retryPolicySchema.partial().optional(),
});

type Attempt = (attempt: number, timeoutMs: number, signal: AbortSignal | undefined) => Promise<AttemptVerdict>;

/**
 * The client for SaaSquatch's user-events API. Every call ends in one DeliveryResult (accepted, duplicate,
 * rejected or failed); it never throws for an HTTP or network outcome. Retries keep the same body, so the same key.
 */
export function createTargetClient(options: TargetClientOptions): TargetClient {
  parseInput(optionsSchema, options, 'invalid target client options');
  const policy: RetryPolicy = { ...defaultRetryPolicy, ...options.retry };
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxBatchSize = options.maxBatchSize ?? 100;
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const random = options.random ?? Math.random;
  const logger = options.logger ?? silentLogger;
  const headers: Record<string, string> = {
    authorization: basicAuthHeader(options.apiKey),
    'content-type': 'application/json',
    accept: 'application/json',
    'user-agent': options.userAgent ?? 'oncekit',
  };

  async function send(request: Omit<HttpRequest, 'headers'>): Promise<HttpResponse | TransportError> {
    try {
      return await options.transport({ ...request, headers });
    } catch (error) {
      if (error instanceof TransportError) return error;
      return new TransportError('network', error instanceof Error ? error.message : 'request failed', { cause: error });
    }
  }

  /** Runs attempts until one is final or the attempts or the deadline run out. */
  async function withRetries(key: string | null, signal: AbortSignal | undefined, attempt: Attempt): Promise<DeliveryResult> {
    const startedAt = now();
    let attempts = 0;
    let uncertain = 0;
    for (;;) {
      attempts += 1;
      const remaining = policy.deadlineMs - (now() - startedAt);
      const verdict = await attempt(attempts, Math.max(1, Math.min(timeoutMs, remaining)), signal);
      if (leavesOutcomeUnknown(verdict)) uncertain += 1;
      if (verdict.kind !== 'retryable') return finalResult(verdict, attempts, key, uncertain);
      const delay = backoffDelayMs(attempts, policy, random, verdict.retryAfterMs);
      const outOfTime = now() - startedAt + delay >= policy.deadlineMs;
      if (attempts >= policy.maxAttempts || outOfTime || signal?.aborted) return failedResult(verdict, attempts, key, signal, uncertain);
      logger.warn(
        { event: 'target_retry', attempt: attempts, status: verdict.status, delayMs: delay, key, reason: verdict.error?.message ?? null },
        'target call failed; retrying with the same key',
      );
      try {
        await wait(delay, signal);
      } catch {
        return failedResult(verdict, attempts, key, signal, uncertain);
      }
    }
  }

  async function post(url: string, body: string, attemptTimeoutMs: number, signal: AbortSignal | undefined) {
    return send({ method: 'POST', url, body, timeoutMs: attemptTimeoutMs, ...(signal ? { signal } : {}) });
  }

  function transportVerdict(error: TransportError): AttemptVerdict {
    return {
      kind: 'retryable',
      status: null,
      error: { message: error.message, statusCode: 0, apiErrorCode: null, rsCode: null },
      retryAfterMs: null,
      noAnswer: error.failure,
      neverSent: error.neverSent,
    };
  }

  function httpVerdict(response: HttpResponse, error: TargetApiError): AttemptVerdict {
    const kind = classifyStatus(response.status);
    if (kind === 'accepted') return { kind, status: response.status, eventIds: [] };
    if (kind === 'duplicate') return { kind, status: response.status, error };
    if (kind === 'rejected') return { kind, status: response.status, error };
    return { kind, status: response.status, error, retryAfterMs: parseRetryAfter(response.headers['retry-after'], now()), noAnswer: null };
  }

  /** A 2xx whose body cannot be read: the target may have recorded the event, so retry it with the same key. */
  function unreadableVerdict(response: HttpResponse): AttemptVerdict {
    const what = response.body.length === 0 ? 'an empty body' : 'a body that is not the JSON expected';
    const message = `HTTP ${response.status} with ${what}; the event may have been recorded`;
    return {
      kind: 'retryable',
      status: response.status,
      error: { message, statusCode: response.status, apiErrorCode: null, rsCode: null },
      retryAfterMs: null,
      noAnswer: null,
    };
  }

  function restEventAttempt(input: UserEventInput): Attempt {
    const url = trackEventUrl(options.baseUrl, options.tenant, input);
    const body = JSON.stringify(input);
    return async (_attempt, attemptTimeoutMs, signal) => {
      const response = await post(url, body, attemptTimeoutMs, signal);
      if (response instanceof TransportError) return transportVerdict(response);
      if (classifyStatus(response.status) === 'accepted') {
        const document = parseJson(response.body);
        if (document === undefined) return unreadableVerdict(response);
        return { kind: 'accepted', status: response.status, eventIds: eventIdsOf(document) };
      }
      return httpVerdict(response, restError(response.status, response.body));
    };
  }

  /** The verdict of a single-operation GraphQL answer; `field` is the operation's result in `data`. */
  function graphqlVerdict(response: HttpResponse | TransportError, field: string): AttemptVerdict {
    if (response instanceof TransportError) return transportVerdict(response);
    const document = parseJson(response.body);
    const error = graphqlError(document, response.status);
    if (classifyStatus(response.status) !== 'accepted') return httpVerdict(response, error ?? restError(response.status, response.body));
    if (error) return verdictForApiError(error, response);
    if (!isJsonObject(document) || !isJsonObject(document.data)) return unreadableVerdict(response);
    const data = document.data[field];
    return { kind: 'accepted', status: response.status, eventIds: eventIdsOf(data) };
  }

  function graphqlEventAttempt(input: UserEventInput): Attempt {
    const url = graphqlUrl(options.baseUrl, options.tenant);
    const body = JSON.stringify({ query: LOG_USER_EVENT_MUTATION, variables: { userEventInput: input }, operationName: 'logUserEvent' });
    return async (_attempt, attemptTimeoutMs, signal) => graphqlVerdict(await post(url, body, attemptTimeoutMs, signal), 'logUserEvent');
  }

  function verdictForApiError(error: TargetApiError, response: HttpResponse | null): AttemptVerdict {
    const kind = classifyStatus(error.statusCode);
    if (kind === 'duplicate') return { kind, status: error.statusCode, error };
    if (kind === 'retryable') {
      const retryAfterMs = response ? parseRetryAfter(response.headers['retry-after'], now()) : null;
      return { kind, status: error.statusCode, error, retryAfterMs, noAnswer: null };
    }
    // An ApiError never means success; anything not 409 or retryable is final.
    return { kind: 'rejected', status: error.statusCode, error };
  }

  async function logBatch(inputs: readonly UserEventInput[], signal: AbortSignal | undefined): Promise<BatchDeliveryResult> {
    const results: (DeliveryResult | undefined)[] = new Array(inputs.length).fill(undefined);
    const attempts = new Array<number>(inputs.length).fill(0);
    // Per item: requests that may have recorded it without an answer saying so.
    const uncertain = new Array<number>(inputs.length).fill(0);
    const last = new Array<AttemptVerdict | undefined>(inputs.length).fill(undefined);
    let pending = inputs.map((_, index) => index);
    let requests = 0;
    const url = graphqlUrl(options.baseUrl, options.tenant);

    // The batch is one retry loop whose attempt sends only the items still pending; each item keeps its key.
    await withRetries(null, signal, async (_attempt, attemptTimeoutMs, attemptSignal) => {
      requests += 1;
      for (const index of pending) attempts[index] = (attempts[index] ?? 0) + 1;
      const body = JSON.stringify({
        query: LOG_USER_EVENTS_MUTATION,
        variables: { userEventInputs: pending.map((index) => inputs[index]) },
        operationName: 'logUserEvents',
      });
      const response = await post(url, body, attemptTimeoutMs, attemptSignal);
      const verdicts = batchVerdicts(response, pending.length);
      const stillPending: number[] = [];
      verdicts.forEach((verdict, position) => {
        const index = pending[position] as number;
        last[index] = verdict;
        if (leavesOutcomeUnknown(verdict)) uncertain[index] = (uncertain[index] ?? 0) + 1;
        if (verdict.kind === 'retryable') stillPending.push(index);
        else results[index] = finalResult(verdict, attempts[index] ?? 1, inputs[index]?.idempotencyKey ?? null, uncertain[index] ?? 0);
      });
      pending = stillPending;
      const firstRetryable = verdicts.find((verdict) => verdict.kind === 'retryable');
      return firstRetryable ?? { kind: 'accepted', status: 200, eventIds: [] };
    });

    const finished = results.map((result, index) => {
      if (result) return result;
      const verdict = last[index] ?? { kind: 'retryable', status: null, error: null, retryAfterMs: null, noAnswer: 'network' };
      return failedResult(verdict, attempts[index] ?? 0, inputs[index]?.idempotencyKey ?? null, signal, uncertain[index] ?? 0);
    });
    return { results: finished, requests };
  }

  function batchVerdicts(response: HttpResponse | TransportError, count: number): AttemptVerdict[] {
    const all = (verdict: AttemptVerdict): AttemptVerdict[] => new Array(count).fill(verdict);
    if (response instanceof TransportError) return all(transportVerdict(response));
    const document = parseJson(response.body);
    const items = (document as { data?: { logUserEvents?: unknown } } | undefined)?.data?.logUserEvents;
    if (classifyStatus(response.status) !== 'accepted' || !Array.isArray(items)) {
      const error = graphqlError(document, response.status);
      if (classifyStatus(response.status) !== 'accepted')
        return all(httpVerdict(response, error ?? restError(response.status, response.body)));
      // A 2xx without results or errors says nothing about what was recorded: unknown, never rejected.
      return all(error ? verdictForApiError(error, response) : unreadableVerdict(response));
    }
    if (items.length !== count) {
      const error: TargetApiError = {
        message: `logUserEvents returned ${items.length} results for ${count} inputs`,
        statusCode: 502,
        apiErrorCode: null,
        rsCode: null,
      };
      return all({ kind: 'retryable', status: 502, error, retryAfterMs: null, noAnswer: null });
    }
    return items.map((item: unknown): AttemptVerdict => {
      const typed = item as { __typename?: unknown; message?: unknown; statusCode?: unknown; rsCode?: unknown } | null;
      if (typed && typed.__typename === 'ApiError') {
        const statusCode = typeof typed.statusCode === 'number' ? typed.statusCode : 500;
        const error: TargetApiError = {
          message: typeof typed.message === 'string' ? typed.message : `HTTP ${statusCode}`,
          statusCode,
          apiErrorCode: null,
          rsCode: typeof typed.rsCode === 'string' ? typed.rsCode : null,
        };
        return verdictForApiError(error, null);
      }
      return { kind: 'accepted', status: 200, eventIds: eventIdsOf(item) };
    });
  }

  return {
    tenant: options.tenant,

    async checkCredentials(callOptions = {}) {
      const url = graphqlUrl(options.baseUrl, options.tenant);
      const body = JSON.stringify({ query: CREDENTIALS_CHECK_QUERY, operationName: 'oncekitCredentialsCheck' });
      const { signal } = callOptions;
      const verdict = graphqlVerdict(await post(url, body, callOptions.timeoutMs ?? timeoutMs, signal), '__typename');
      const result = verdict.kind === 'retryable' ? failedResult(verdict, 1, null, signal, 0) : finalResult(verdict, 1, null, 0);
      return result.failure ? { ok: false, failure: result.failure } : { ok: true };
    },

    logUserEvent(input, callOptions = {}) {
      const api = callOptions.api ?? options.api ?? 'rest';
      const attempt = api === 'graphql' ? graphqlEventAttempt(input) : restEventAttempt(input);
      return withRetries(input.idempotencyKey ?? null, callOptions.signal, attempt);
    },

    async logUserEvents(inputs, callOptions = {}) {
      const results: DeliveryResult[] = [];
      let requests = 0;
      for (let start = 0; start < inputs.length; start += maxBatchSize) {
        const chunk = await logBatch(inputs.slice(start, start + maxBatchSize), callOptions.signal);
        results.push(...chunk.results);
        requests += chunk.requests;
      }
      return { results, requests };
    },

    upsertUser(user, callOptions = {}) {
      const url = userUpsertUrl(options.baseUrl, options.tenant, user.accountId, user.id);
      const body = JSON.stringify(user);
      return withRetries(null, callOptions.signal, async (_attempt, attemptTimeoutMs, signal) => {
        const response = await send({ method: 'PUT', url, body, timeoutMs: attemptTimeoutMs, ...(signal ? { signal } : {}) });
        if (response instanceof TransportError) return transportVerdict(response);
        if (classifyStatus(response.status) === 'accepted') return { kind: 'accepted', status: response.status, eventIds: [] };
        return httpVerdict(response, restError(response.status, response.body));
      });
    },
  };
}

const isJsonObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

function finalResult(
  verdict: Exclude<AttemptVerdict, { kind: 'retryable' }>,
  attempts: number,
  key: string | null,
  uncertainRequests: number,
): DeliveryResult {
  const base = { attempts, key, retryAfterMs: null, uncertainRequests };
  if (verdict.kind === 'accepted') {
    return {
      ...base,
      outcome: 'accepted',
      status: verdict.status,
      message: null,
      apiErrorCode: null,
      rsCode: null,
      eventIds: verdict.eventIds,
    };
  }
  const error = verdict.error;
  return withFailure({
    ...base,
    outcome: verdict.kind,
    status: verdict.status,
    message: error?.message ?? null,
    apiErrorCode: error?.apiErrorCode ?? null,
    rsCode: error?.rsCode ?? null,
    eventIds: [],
  });
}

function failedResult(
  verdict: AttemptVerdict,
  attempts: number,
  key: string | null,
  signal: AbortSignal | undefined,
  uncertainRequests: number,
): DeliveryResult {
  const error = 'error' in verdict ? verdict.error : null;
  const aborted = signal?.aborted === true;
  const noAnswer = verdict.kind === 'retryable' ? verdict.noAnswer : null;
  return withFailure(
    {
      outcome: 'failed',
      status: verdict.status,
      attempts,
      key,
      message: aborted ? 'aborted by the caller' : (error?.message ?? null),
      apiErrorCode: error?.apiErrorCode ?? null,
      rsCode: error?.rsCode ?? null,
      eventIds: [],
      retryAfterMs: verdict.kind === 'retryable' ? verdict.retryAfterMs : null,
      uncertainRequests,
    },
    aborted ? 'aborted' : (noAnswer ?? 'network'),
  );
}

/** Adds the classified failure to a rejected or failed result; a success carries none. */
function withFailure(result: DeliveryResult, noAnswer?: NoAnswer): DeliveryResult {
  const failure = classifyFailure(result, noAnswer);
  return failure === null ? result : { ...result, failure };
}
