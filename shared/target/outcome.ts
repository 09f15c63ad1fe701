/**
 * Every call to the target ends in exactly one of these.
 * - accepted: the target took the event.
 * - duplicate: 409, the key was seen within its window; the event was already taken, so this is success.
 * - rejected: a 4xx other than 408/429 (or a GraphQL error that says so); retrying cannot help.
 * - failed: retries ran out (attempts or deadline) on 408, 429, 5xx, network errors, timeouts, or a 2xx whose body
 *   could not be read (it may have landed, so it is never `rejected`).
 */
export type DeliveryOutcome = 'accepted' | 'duplicate' | 'rejected' | 'failed';

export const isSuccess = (outcome: DeliveryOutcome): boolean => outcome === 'accepted' || outcome === 'duplicate';

/** The target's error body (REST `Error`, GraphQL `ApiError`). */
export interface TargetApiError {
  readonly message: string;
  readonly statusCode: number;
  readonly apiErrorCode: string | null;
  readonly rsCode: string | null;
}

export interface DeliveryResult {
  readonly outcome: DeliveryOutcome;
  /** The HTTP status, or the ApiError statusCode for GraphQL items; null when no response arrived. */
  readonly status: number | null;
  readonly attempts: number;
  /** The idempotency key sent (the same on every attempt), or null. */
  readonly key: string | null;
  /** The API's message for rejected and failed calls; a transport reason when no response arrived. */
  readonly message: string | null;
  readonly apiErrorCode: string | null;
  readonly rsCode: string | null;
  /** Ids of the events the target recorded, when it said. */
  readonly eventIds: readonly string[];
  /** For failed calls: the delay the target last asked for (Retry-After), so a platform can schedule its retry. */
  readonly retryAfterMs: number | null;
  /**
   * Why a rejected or failed call did not deliver; absent on success. The client always sets it; read it with
   * `deliveryFailureOf`, which also classifies a result built without it (a test fixture, a record read back).
   */
  readonly failure?: DeliveryFailure;
  /**
   * How many of this call's requests ended without knowing whether the target recorded the event (see
   * `leavesOutcomeUnknown`), the client's quick retries included. The client always sets it; absent reads as 0.
   */
  readonly uncertainRequests?: number;
}

/** How a transport failure or answer without a status ended: the three ways no answer arrives. */
export type NoAnswer = 'network' | 'timeout' | 'aborted';

/**
 * Why a call did not deliver, classified once here so that connectors branch on `kind`, never on a status.
 * - auth: 401 (`invalid-key`: the key or tenant is wrong) or 403 (`forbidden`: the key may not do this).
 * - rejected: any other final 4xx; retrying cannot help.
 * - throttled: 429, with the delay the target asked for.
 * - unavailable: a 5xx: the target failed (and may have recorded the event).
 * - timeout: no answer in time, or the target's own 408 (it gave up waiting for the request).
 * - network: the connection failed or was reset; aborted: the caller gave up.
 * - unreadable: a 2xx whose body is empty or not the JSON expected; the event may have been recorded, so it is
 *   handled like a timeout (retried with the same key), never as a rejection.
 * `status` is null exactly when no answer arrived.
 */
export type DeliveryFailure =
  | {
      readonly kind: 'auth';
      readonly reason: 'invalid-key' | 'forbidden';
      readonly status: number;
      readonly message: string;
      readonly apiErrorCode: string | null;
      readonly rsCode: string | null;
    }
  | {
      readonly kind: 'rejected';
      readonly status: number;
      readonly message: string;
      readonly apiErrorCode: string | null;
      readonly rsCode: string | null;
    }
  | { readonly kind: 'throttled'; readonly status: number; readonly message: string; readonly retryAfterMs: number | null }
  | { readonly kind: 'unavailable'; readonly status: number; readonly message: string }
  | { readonly kind: 'timeout'; readonly status: number | null; readonly message: string }
  | { readonly kind: 'unreadable'; readonly status: number; readonly message: string }
  | { readonly kind: 'network' | 'aborted'; readonly status: null; readonly message: string };

export type DeliveryFailureKind = DeliveryFailure['kind'];

/** How one response (or its absence) is classified before the retry loop decides. */
export type AttemptVerdict =
  | { readonly kind: 'accepted'; readonly status: number; readonly eventIds: readonly string[] }
  | { readonly kind: 'duplicate'; readonly status: number; readonly error: TargetApiError | null }
  | { readonly kind: 'rejected'; readonly status: number; readonly error: TargetApiError }
  | {
      readonly kind: 'retryable';
      readonly status: number | null;
      readonly error: TargetApiError | null;
      readonly retryAfterMs: number | null;
      /** How it ended when no answer arrived (`status` null); null for an answer. */
      readonly noAnswer: NoAnswer | null;
      /** The connection failed before the request went out (refused, no such host): certainly not recorded. */
      readonly neverSent?: boolean;
    };

/**
 * Whether a request that got this verdict may have been recorded by the target without us knowing: no answer (timeout,
 * reset, abort), a 5xx or a 408 after the request was sent, or a 2xx whose body cannot be read. Among the retryable
 * ones only a 429 (refused before it was taken) and a connection that never opened (refused, no such host) are certain.
 */
export function leavesOutcomeUnknown(verdict: AttemptVerdict): boolean {
  return verdict.kind === 'retryable' && verdict.status !== 429 && verdict.neverSent !== true;
}

/**
 * How many requests left the outcome unknown, for a result (or a record) that does not say: its final answer's, as
 * `leavesOutcomeUnknown` would judge it. A failed call ended on a retryable answer: any but a 429 may have landed.
 */
export function uncertainFinalRequests(outcome: DeliveryOutcome | 'abandoned', status: number | null): number {
  return outcome === 'failed' && status !== 429 ? 1 : 0;
}

/** The requests of a result that left the outcome unknown: the client's count, or the final answer's for a bare result. */
export const uncertainRequestsOf = (result: DeliveryResult): number =>
  result.uncertainRequests ?? uncertainFinalRequests(result.outcome, result.status);

/** The one place that maps a status to a verdict kind. */
export function classifyStatus(status: number): 'accepted' | 'duplicate' | 'rejected' | 'retryable' {
  if (status >= 200 && status < 300) return 'accepted';
  if (status === 409) return 'duplicate';
  if (status === 408 || status === 429 || status >= 500) return 'retryable';
  return 'rejected';
}

type FailureFields = Pick<DeliveryResult, 'outcome' | 'status' | 'message' | 'apiErrorCode' | 'rsCode' | 'retryAfterMs'>;

/**
 * The one place that maps a final outcome and its status to a DeliveryFailure; null for accepted and duplicate.
 * `noAnswer` says how a call without a status ended (the client knows; a bare result says only "no answer").
 */
export function classifyFailure(result: FailureFields, noAnswer: NoAnswer = 'network'): DeliveryFailure | null {
  if (isSuccess(result.outcome)) return null;
  const { status } = result;
  if (status === null) return { kind: noAnswer, status: null, message: result.message ?? 'no response' };
  const message = result.message ?? `HTTP ${status}`;
  if (result.outcome === 'rejected') {
    const codes = { apiErrorCode: result.apiErrorCode, rsCode: result.rsCode };
    if (status === 401) return { kind: 'auth', reason: 'invalid-key', status, message, ...codes };
    if (status === 403) return { kind: 'auth', reason: 'forbidden', status, message, ...codes };
    return { kind: 'rejected', status, message, ...codes };
  }
  if (classifyStatus(status) === 'accepted') return { kind: 'unreadable', status, message };
  if (status === 429) return { kind: 'throttled', status, message, retryAfterMs: result.retryAfterMs };
  if (status === 408) return { kind: 'timeout', status, message };
  return { kind: 'unavailable', status, message };
}

/** The failure of a result: the one the client classified, or, for a result built without one, its fields'. */
export const deliveryFailureOf = (result: DeliveryResult): DeliveryFailure | null => result.failure ?? classifyFailure(result);
