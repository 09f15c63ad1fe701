import { z } from 'zod';
import { formatDuration } from '../duration.js';
import { saasquatchKeyProfile } from '../keys/profiles.js';
import type { RetryPolicy } from '../target/retry.js';
import { parseInput } from '../validation.js';

/** How workers deliver: batching, parallelism, leases, the retry horizon and the backoff between attempts. */
export interface OutboxDeliveryConfig {
  /** Events per `logUserEvents` call. */
  readonly batchSize: number;
  /** Batches in flight at once, per worker. */
  readonly concurrency: number;
  /** How long a worker holds leased events; past it they are due again (a crashed worker's events come back). */
  readonly leaseMs: number;
  /** How long after an event's first attempt it may still be retried; past it, it becomes a dead letter. */
  readonly horizonMs: number;
  /** How long the target remembers an idempotency key (SaaSquatch: 24 h). */
  readonly keyWindowMs: number;
  /** Backoff between attempts of one event: exponential from the base, capped, with full jitter; Retry-After is a floor. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** How often an idle worker looks for due events (an enqueue in the same process wakes it at once). */
  readonly pollMs: number;
  /** At most this many events per second towards the target, per worker; null: no cap. */
  readonly maxEventsPerSecond: number | null;
}

const HOUR_MS = 3_600_000;

export const defaultOutboxDeliveryConfig: OutboxDeliveryConfig = {
  batchSize: 100,
  concurrency: 4,
  // Short, and renewed while a batch is in flight: a dead worker's events are sent again within about 10 s.
  leaseMs: 10_000,
  // 4 h short of the 24 h window: room for the lease, clock skew between us and the target, and a slow last attempt.
  horizonMs: 20 * HOUR_MS,
  keyWindowMs: saasquatchKeyProfile.retentionMs,
  backoffBaseMs: 1000,
  backoffMaxMs: 5 * 60_000,
  pollMs: 500,
  maxEventsPerSecond: null,
};

const ms = (what: string, min = 1) =>
  z
    .number({ error: `${what}: expected milliseconds` })
    .int(`${what}: expected whole milliseconds`)
    .min(min);

const configSchema = z
  .object({
    batchSize: z.number().int().min(1, 'at least 1').max(1000, 'at most 1000'),
    concurrency: z.number().int().min(1, 'at least 1').max(256, 'at most 256'),
    leaseMs: ms('leaseMs', 100),
    horizonMs: ms('horizonMs'),
    keyWindowMs: ms('keyWindowMs'),
    backoffBaseMs: ms('backoffBaseMs', 0),
    backoffMaxMs: ms('backoffMaxMs', 0),
    pollMs: ms('pollMs', 1),
    maxEventsPerSecond: z.number({ error: 'expected events per second' }).positive('must be more than 0').nullable(),
  })
  .superRefine((config, ctx) => {
    // The one place that holds the rule: every send of an event must fall inside the key window of its first receipt.
    // The last send can start just before the horizon and, if its worker dies, be repeated when the lease runs out.
    if (config.horizonMs + config.leaseMs >= config.keyWindowMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['horizonMs'],
        message:
          `the retry horizon (${formatDuration(config.horizonMs)}) plus the lease (${formatDuration(config.leaseMs)}) must stay shorter ` +
          `than the target's key window (${formatDuration(config.keyWindowMs)}): a retry after the window could record the event twice`,
      });
    }
    if (config.backoffMaxMs < config.backoffBaseMs) {
      ctx.addIssue({ code: 'custom', path: ['backoffMaxMs'], message: 'must not be below backoffBaseMs' });
    }
  });

/** The defaults with `overrides` applied, validated; an InvalidInputError names each bad field. */
export function outboxDeliveryConfig(overrides: Partial<OutboxDeliveryConfig> = {}): OutboxDeliveryConfig {
  return parseInput(configSchema, { ...defaultOutboxDeliveryConfig, ...overrides }, 'invalid outbox delivery config');
}

/**
 * The target client's budget for one delivery attempt: its own quick retries (with the same key). The worker renews
 * its leases while the call runs, so the budget may outlast one lease; it stays within three, so that a worker whose
 * renewals fail (its store is down) gives up before long, and at most 30 s.
 */
export function targetCallBudget(config: OutboxDeliveryConfig): { readonly timeoutMs: number; readonly retry: RetryPolicy } {
  const deadlineMs = Math.max(1, Math.min(30_000, config.leaseMs * 3));
  return {
    timeoutMs: Math.min(10_000, deadlineMs),
    retry: { maxAttempts: 3, baseDelayMs: 200, maxDelayMs: 2000, deadlineMs },
  };
}
