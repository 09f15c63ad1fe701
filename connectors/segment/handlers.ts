import type { UserEventInput } from '../../shared/events/index.js';
import { jsonLineLogger, type Logger } from '../../shared/log.js';
import {
  basicAuthHeader,
  createTargetClient,
  type DeliveryResult,
  deliveryFailureOf,
  fetchTransport,
  type RetryPolicy,
  type TargetClient,
  type UserUpsert,
} from '../../shared/target/index.js';
import { identifyToUserUpsert, type KeyDecider, mapTrackEvent, SegmentEventError } from './mapping.js';
import type { BatchEventStatus, SegmentErrorClasses, SegmentRuntime } from './segment-runtime.js';
import { InvalidSettingsError, parseSegmentSettings, type SegmentSettings } from './settings.js';

/** How long the function may spend on the target. Segment stops a function after 5 s and retries it. */
export interface InvocationTiming {
  /** The whole invocation; past it the calls still open are aborted and reported as retryable. */
  readonly budgetMs: number;
  /** One HTTP attempt. */
  readonly attemptTimeoutMs: number;
  /** In-function retries: short, since Segment itself retries for 4 hours. */
  readonly retry: RetryPolicy;
}

// A second of Segment's 5 s is left for a cold start, loading the script and answering.
export const defaultInvocationTiming: InvocationTiming = {
  budgetMs: 4_000,
  attemptTimeoutMs: 2_000,
  retry: { maxAttempts: 2, baseDelayMs: 100, maxDelayMs: 400, deadlineMs: 3_500 },
};

/** Segment's largest batch (its support can raise the default of 20 to 400); onBatch sends it in one request. */
export const MAX_SEGMENT_BATCH = 400;
/** Identify calls in one batch are separate upserts; this many run at once. */
const UPSERT_CONCURRENCY = 8;
const USER_AGENT = 'oncekit-segment-function';

export interface SegmentHandlerOptions {
  /** Only the benchmark replaces it, to measure the key layer's share of the handler's time. */
  readonly decideKey?: KeyDecider;
  readonly timing?: InvocationTiming;
}

type SingleEventHandler = (event: unknown, settings: unknown) => Promise<void>;

export interface SegmentHandlers {
  readonly onTrack: SingleEventHandler;
  readonly onIdentify: SingleEventHandler;
  readonly onBatch: (events: unknown, settings: unknown) => Promise<BatchEventStatus[]>;
  readonly onPage: SingleEventHandler;
  readonly onScreen: SingleEventHandler;
  readonly onGroup: SingleEventHandler;
  readonly onAlias: SingleEventHandler;
  readonly onDelete: SingleEventHandler;
}

/**
 * Why an event was not delivered, before it becomes one of Segment's error classes (single events) or a status
 * entry (onBatch). `configuration` is a wrong apiKey, tenantAlias or setting: a plain Error, which Segment
 * discards as "Bad Request".
 */
interface Failure {
  readonly kind: 'retry' | 'validation' | 'invalid-payload' | 'unsupported' | 'configuration';
  readonly message: string;
  /** The status reported for this event in onBatch's answer. */
  readonly status: number;
}

/** Thrown for configuration problems; a plain Error subclass, so Segment files it under "Bad Request". */
export class FunctionConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FunctionConfigurationError';
  }
}

/** Carries a Failure through `throw` inside one handler. */
class FailureSignal extends Error {
  readonly failure: Failure;
  constructor(failure: Failure) {
    super(failure.message);
    this.failure = failure;
  }
}

const unsupported = (type: string): Failure => ({
  kind: 'unsupported',
  message: `${type} events are not supported: this function forwards only track and identify calls to SaaSquatch`,
  status: 400,
});

/** Replaces the API key, and the Basic-auth value made from it, wherever a message might carry them. */
function secretScrubber(rawSettings: unknown): (text: string) => string {
  const apiKey = (rawSettings as { apiKey?: unknown } | null | undefined)?.apiKey;
  if (typeof apiKey !== 'string' || apiKey.trim().length < 4) return (text) => text;
  const secrets = [...new Set([apiKey, apiKey.trim(), basicAuthHeader(apiKey.trim()).slice('Basic '.length)])];
  return (text) => secrets.reduce((out, secret) => out.split(secret).join('[apiKey]'), text);
}

function failureOf(error: unknown): Failure {
  if (error instanceof FailureSignal) return error.failure;
  if (error instanceof SegmentEventError) return { kind: error.kind, message: error.message, status: 400 };
  if (error instanceof InvalidSettingsError) {
    return { kind: 'configuration', message: `${error.message}. Fix the function's settings in Segment`, status: 400 };
  }
  // A bug of ours: retrying would fail the same way, so it is discarded like Segment discards any plain Error.
  // Read by shape: an error from Segment's realm (its fetch, say) is not an instance of this script's Error.
  const message = (error as { message?: unknown } | null)?.message;
  return {
    kind: 'configuration',
    message: `unexpected error in the oncekit function: ${typeof message === 'string' ? message : String(error)}`,
    status: 400,
  };
}

function toSegmentError(failure: Failure, errors: SegmentErrorClasses): Error {
  switch (failure.kind) {
    case 'retry':
      return new errors.RetryError(failure.message);
    case 'validation':
      return new errors.ValidationError(failure.message);
    case 'invalid-payload':
      return new errors.InvalidEventPayload(failure.message);
    case 'unsupported':
      return new errors.EventNotSupported(failure.message);
    case 'configuration':
      return new FunctionConfigurationError(failure.message);
  }
}

function batchStatusOf(failure: Failure): BatchEventStatus {
  return { status: failure.status, errormessage: failure.message };
}

/** What a target outcome means for Segment: nothing (delivered), a retry, or a discard with the API's message. */
function deliveryFailure(
  result: DeliveryResult,
  what: 'event' | 'user',
  settings: SegmentSettings,
  budget: { readonly signal: AbortSignal; readonly ms: number },
): Failure | null {
  const classified = deliveryFailureOf(result);
  if (classified === null) return null;
  const code = [result.status, result.apiErrorCode, result.rsCode].filter((part) => part !== null).join(' ');
  const apiMessage = result.message ?? 'no message';
  switch (classified.kind) {
    case 'auth':
      return {
        kind: 'configuration',
        message:
          `SaaSquatch refused the credentials (${code}): check the apiKey and tenantAlias settings; the API key must belong ` +
          `to tenant "${settings.tenantAlias}" at ${settings.apiBaseUrl}. SaaSquatch said: ${apiMessage}`,
        status: classified.status,
      };
    case 'rejected':
      return { kind: 'validation', message: `SaaSquatch rejected the ${what} (${code}): ${apiMessage}`, status: classified.status };
    case 'throttled':
    case 'unavailable':
    case 'timeout':
    case 'unreadable':
    case 'network':
    case 'aborted': {
      const why = budget.signal.aborted
        ? `no answer within ${budget.ms} ms, the function's share of Segment's 5 s limit`
        : result.status === null
          ? `no answer: ${apiMessage}`
          : `${code}: ${apiMessage}`;
      const keyNote = result.key === null ? '' : ` with the same idempotency key ${result.key}`;
      // Segment retries a batch entry by its status: keep the target's own 429 or 5xx; say 503 for a timeout (a 408
      // included) or no answer.
      const status = classified.kind === 'throttled' || classified.kind === 'unavailable' ? classified.status : 503;
      return {
        kind: 'retry',
        message: `SaaSquatch did not take the ${what} after ${result.attempts} attempt(s) (${why}); Segment will retry it${keyNote}`,
        status,
      };
    }
  }
}

async function mapWithConcurrency<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function eventTypeOf(event: unknown): string {
  const type = (event as { type?: unknown } | null)?.type;
  return typeof type === 'string' && type !== '' ? type : '(no type)';
}

/**
 * The destination function: track → SaaSquatch user event keyed by messageId, identify → user upsert, onBatch → one
 * logUserEvents call. Every outcome becomes what Segment expects: nothing on success (a 409 duplicate included),
 * RetryError for what may succeed later, ValidationError / InvalidEventPayload / EventNotSupported for what will not.
 */
export function createSegmentHandlers(runtime: SegmentRuntime, options: SegmentHandlerOptions = {}): SegmentHandlers {
  const timing = options.timing ?? defaultInvocationTiming;

  function loggerFor(scrub: (text: string) => string): Logger {
    return jsonLineLogger((line) => runtime.warn(scrub(line.trimEnd())));
  }

  function clientFor(settings: SegmentSettings, logger: Logger, batchSize = MAX_SEGMENT_BATCH): TargetClient {
    return createTargetClient({
      baseUrl: settings.apiBaseUrl,
      tenant: settings.tenantAlias,
      apiKey: settings.apiKey,
      transport: fetchTransport(runtime.fetch),
      timeoutMs: timing.attemptTimeoutMs,
      retry: timing.retry,
      maxBatchSize: Math.max(batchSize, MAX_SEGMENT_BATCH),
      userAgent: USER_AGENT,
      logger,
    });
  }

  /** Runs `work` with a signal that aborts when the invocation's budget is spent. */
  async function withinBudget<T>(work: (budget: { readonly signal: AbortSignal; readonly ms: number }) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timing.budgetMs);
    try {
      return await work({ signal: controller.signal, ms: timing.budgetMs });
    } finally {
      clearTimeout(timer);
    }
  }

  /** The track event's target input through the one Segment mapping. */
  function trackInput(event: unknown, settings: SegmentSettings, logger: Logger): UserEventInput {
    return mapTrackEvent(event, settings, { logger, ...(options.decideKey ? { decide: options.decideKey } : {}) }).input;
  }

  /** Runs one single-event handler body and turns whatever it throws into Segment's error for it. */
  function singleEventHandler(body: (event: unknown, settings: SegmentSettings, logger: Logger) => Promise<void>): SingleEventHandler {
    return async (event, rawSettings) => {
      const scrub = secretScrubber(rawSettings);
      try {
        await body(event, parseSegmentSettings(rawSettings), loggerFor(scrub));
      } catch (error) {
        const failure = failureOf(error);
        throw toSegmentError({ ...failure, message: scrub(failure.message) }, runtime.errors);
      }
    };
  }

  const onTrack = singleEventHandler(async (event, settings, logger) => {
    const input = trackInput(event, settings, logger);
    await withinBudget(async (budget) => {
      const result = await clientFor(settings, logger).logUserEvent(input, { signal: budget.signal });
      const failure = deliveryFailure(result, 'event', settings, budget);
      if (failure) throw new FailureSignal(failure);
    });
  });

  const onIdentify = singleEventHandler(async (event, settings, logger) => {
    const user = identifyToUserUpsert(event, settings);
    await withinBudget(async (budget) => {
      const result = await clientFor(settings, logger).upsertUser(user, { signal: budget.signal });
      const failure = deliveryFailure(result, 'user', settings, budget);
      if (failure) throw new FailureSignal(failure);
    });
  });

  async function onBatch(events: unknown, rawSettings: unknown): Promise<BatchEventStatus[]> {
    const scrub = secretScrubber(rawSettings);
    const logger = loggerFor(scrub);
    let settings: SegmentSettings;
    try {
      if (!Array.isArray(events)) throw new SegmentEventError('invalid-payload', 'onBatch expects an array of events');
      settings = parseSegmentSettings(rawSettings);
    } catch (error) {
      // Nothing in the batch can be sent: throwing discards it whole, as Segment does for any non-retry error.
      const failure = failureOf(error);
      throw toSegmentError({ ...failure, message: scrub(failure.message) }, runtime.errors);
    }

    const statuses: (BatchEventStatus | undefined)[] = new Array(events.length).fill(undefined);
    const fail = (index: number, failure: Failure): void => {
      statuses[index] = batchStatusOf({ ...failure, message: scrub(failure.message) });
    };
    const tracks: { index: number; input: UserEventInput }[] = [];
    const users: { index: number; user: UserUpsert }[] = [];
    events.forEach((event: unknown, index) => {
      try {
        const type = eventTypeOf(event);
        if (type === 'track') tracks.push({ index, input: trackInput(event, settings, logger) });
        else if (type === 'identify') users.push({ index, user: identifyToUserUpsert(event, settings) });
        else fail(index, unsupported(type));
      } catch (error) {
        fail(index, failureOf(error));
      }
    });

    const client = clientFor(settings, logger, tracks.length);
    await withinBudget(async (budget) => {
      const { signal } = budget;
      // Users first: someone identified in this batch then exists before the batch logs their events.
      await mapWithConcurrency(users, UPSERT_CONCURRENCY, async ({ index, user }) => {
        const failure = deliveryFailure(await client.upsertUser(user, { signal }), 'user', settings, budget);
        if (failure) fail(index, failure);
        else statuses[index] = { status: 200 };
      });
      if (tracks.length === 0) return;
      if (signal.aborted) {
        // The upserts used up the budget; a call started now would run past Segment's limit.
        const failure: Failure = {
          kind: 'retry',
          message: `not sent: the function's ${budget.ms} ms were used up; Segment will retry it`,
          status: 503,
        };
        for (const { index } of tracks) fail(index, failure);
        return;
      }
      const { results } = await client.logUserEvents(
        tracks.map((track) => track.input),
        { signal },
      );
      results.forEach((result, position) => {
        const index = (tracks[position] as { index: number }).index;
        const failure = deliveryFailure(result, 'event', settings, budget);
        if (failure) fail(index, failure);
        else statuses[index] = { status: 200 };
      });
    });
    // Every index is filled above; the fallback only guards the contract Segment relies on (one entry per event).
    return statuses.map((status) => status ?? { status: 500, errormessage: 'no result for this event; Segment will retry it' });
  }

  const refuse = (type: string): SingleEventHandler => {
    return async () => {
      throw toSegmentError(unsupported(type), runtime.errors);
    };
  };

  return {
    onTrack,
    onIdentify,
    onBatch,
    onPage: refuse('page'),
    onScreen: refuse('screen'),
    onGroup: refuse('group'),
    onAlias: refuse('alias'),
    onDelete: refuse('delete'),
  };
}
