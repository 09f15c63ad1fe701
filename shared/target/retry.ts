import { z } from 'zod';

/** Bounds on the client's own retries: attempts, and a deadline for the whole call including waits. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly deadlineMs: number;
}

export const retryPolicySchema = z.object({
  maxAttempts: z.number().int().min(1).max(100),
  baseDelayMs: z.number().int().min(0),
  maxDelayMs: z.number().int().min(0),
  deadlineMs: z.number().int().min(1),
});

export const defaultRetryPolicy: RetryPolicy = { maxAttempts: 5, baseDelayMs: 200, maxDelayMs: 10_000, deadlineMs: 30_000 };

/**
 * Exponential backoff with full jitter (a uniform draw in [0, min(max, base·2^(n-1))]), so that many
 * callers failing together do not come back together. A Retry-After from the target is a floor.
 */
export function backoffDelayMs(failedAttempts: number, policy: RetryPolicy, random: () => number, retryAfterMs: number | null): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.max(0, failedAttempts - 1));
  const jittered = Math.floor(random() * ceiling);
  return retryAfterMs === null ? jittered : Math.max(retryAfterMs, jittered);
}

/** Retry-After as delta-seconds or an HTTP date, in ms from `nowMs`; null when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

/** Waits `ms`, or rejects as soon as `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
