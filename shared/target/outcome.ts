/**
 * Every call to the target ends in exactly one of these.
 * - accepted: the target took the event.
 * - duplicate: 409, the key was seen within its window; the event was already taken, so this is success.
 * - rejected: a 4xx other than 408/429 (or a GraphQL error that says so); retrying cannot help.
 * - failed: retries ran out (attempts or deadline) on 408, 429, 5xx, network errors or timeouts.
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
}

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
    };

/** The one place that maps a status to a verdict kind. */
export function classifyStatus(status: number): 'accepted' | 'duplicate' | 'rejected' | 'retryable' {
  if (status >= 200 && status < 300) return 'accepted';
  if (status === 409) return 'duplicate';
  if (status === 408 || status === 429 || status >= 500) return 'retryable';
  return 'rejected';
}
