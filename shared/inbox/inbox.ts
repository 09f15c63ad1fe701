import { z } from 'zod';
import { type Clock, systemClock } from '../clock.js';
import { type Logger, silentLogger } from '../log.js';
import { type ClaimOutcome, type IdempotencyRef, type IdempotencyStore, newOwnerToken } from '../state/idempotency.js';
import { inboxKey } from '../state/key-spaces.js';
import { keepLeaseAlive } from '../state/lease-keeper.js';
import { parseInput } from '../validation.js';

const HOUR_MS = 60 * 60 * 1000;

/** Longer than the retry horizon of the usual webhook senders (Standard Webhooks ≈ 75 h is the outlier; see the README). */
export const DEFAULT_DONE_TTL_MS = 72 * HOUR_MS;
/** How long a delivery may be processed before another delivery of it may take over; renewed while processing runs. */
export const DEFAULT_LEASE_MS = 10_000;

const durationMs = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const sourceSettings = z.object({ doneTtlMs: durationMs.optional(), leaseMs: durationMs.optional() }).strict();
const optionsSchema = z
  .object({
    doneTtlMs: durationMs.default(DEFAULT_DONE_TTL_MS),
    leaseMs: durationMs.default(DEFAULT_LEASE_MS),
    sources: z.record(z.string().min(1), sourceSettings).default({}),
  })
  .strict();
const deliverySchema = z.object({
  source: z.string().min(1, 'must name the sender'),
  tenant: z.string().min(1),
  token: z.string().min(1, "the delivery token (the sender's redelivery id, e.g. a webhook-id) must not be empty"),
});

export interface InboxSettings {
  /** How long a processed token is remembered: must cover the sender's whole retry horizon. */
  readonly doneTtlMs?: number;
  readonly leaseMs?: number;
}

export interface InboxOptions extends InboxSettings {
  readonly store: IdempotencyStore;
  /** Per sender, e.g. `{ 'outbound-messages': { doneTtlMs: 26 * HOUR } }`; unset fields use the inbox defaults. */
  readonly sources?: Readonly<Record<string, InboxSettings>>;
  /** Used only to tell an in-flight duplicate when to come back; give it the store's clock. */
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** One delivery from a sender: its token stays the same across the sender's retries. */
export interface InboxDelivery {
  readonly source: string;
  readonly tenant: string;
  readonly token: string;
}

export type InboxOutcome<T> =
  /** This call processed the delivery; `recoveredFrom` names a holder whose lease had expired (it crashed or stalled). */
  | { readonly status: 'processed'; readonly value: T; readonly recoveredFrom?: string }
  /** Already processed: acknowledge it without processing again. */
  | { readonly status: 'duplicate'; readonly processedAt: number }
  /** Another worker is processing it right now: answer non-2xx (409 + Retry-After, or 503) so the sender retries. */
  | { readonly status: 'in_flight'; readonly retryAfterMs: number };

/**
 * Inbound dedup for webhooks and Platform Events: claim the token with a short lease, process, then mark it done for
 * the sender's retry horizon. A failed processing releases our own lease (compare-and-delete), so the sender's retry
 * runs; a crash leaves the lease to run out, and the next retry takes it over. Nothing is lost, nothing runs twice
 * while a holder is alive.
 */
export class Inbox {
  readonly #store: IdempotencyStore;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #defaults: { doneTtlMs: number; leaseMs: number };
  readonly #sources: z.output<typeof optionsSchema>['sources'];

  constructor(options: InboxOptions) {
    const { store, clock, logger, ...settings } = options;
    const parsed = parseInput(optionsSchema, settings, 'inbox options');
    this.#store = store;
    this.#clock = clock ?? systemClock;
    this.#logger = logger ?? silentLogger;
    this.#defaults = { doneTtlMs: parsed.doneTtlMs, leaseMs: parsed.leaseMs };
    this.#sources = parsed.sources;
  }

  /** The settings in force for `source`. */
  settingsFor(source: string): { readonly doneTtlMs: number; readonly leaseMs: number } {
    const own = this.#sources[source] ?? {};
    return { doneTtlMs: own.doneTtlMs ?? this.#defaults.doneTtlMs, leaseMs: own.leaseMs ?? this.#defaults.leaseMs };
  }

  /**
   * Runs `process` at most once per live delivery token. If `process` throws, the lease is released and the error
   * rethrown, so the caller answers with an error and the sender retries.
   */
  async deliver<T>(delivery: InboxDelivery, process: () => Promise<T>): Promise<InboxOutcome<T>> {
    const { source, tenant, token } = parseInput(deliverySchema, delivery, 'inbox delivery');
    const { doneTtlMs, leaseMs } = this.settingsFor(source);
    const ref: IdempotencyRef = { tenant, key: inboxKey(source, token) };
    const owner = newOwnerToken();

    let claim = await this.#store.claim(ref, { owner, leaseMs });
    if (claim.status === 'in_progress' && claim.leaseExpired) claim = await this.#store.takeOver(ref, { owner, leaseMs });
    if (claim.status !== 'claimed') return this.#notOurs(claim);
    if (claim.takenOverFrom !== undefined) {
      this.#logger.warn(
        { source, tenant, previousOwner: claim.takenOverFrom },
        'inbox: took over an expired lease; the earlier holder never finished',
      );
    }

    const keeper = keepLeaseAlive(this.#store, ref, owner, leaseMs, (reason) =>
      this.#logger.warn({ source, tenant, reason }, 'inbox: could not renew the lease while processing'),
    );
    let value: T;
    try {
      value = await process();
    } catch (error) {
      keeper.stop();
      await this.#store.release(ref, owner).catch((releaseError: unknown) => {
        // The lease still runs out, so the sender's next retry is processed; only later.
        this.#logger.error({ source, tenant, error: String(releaseError) }, 'inbox: could not release the lease after a failure');
      });
      throw error;
    }
    keeper.stop();
    const marked = await this.#store.complete(ref, owner, { result: 'processed', ttlMs: doneTtlMs });
    if (!marked) {
      this.#logger.error(
        { source, tenant },
        'inbox: the lease was taken over while processing; the delivery may have been processed twice',
      );
    }
    return claim.takenOverFrom === undefined
      ? { status: 'processed', value }
      : { status: 'processed', value, recoveredFrom: claim.takenOverFrom };
  }

  /**
   * The fast path for a synchronous handler, i.e. one whose outcome is decided before the delivery is recorded and for
   * which recording `result` (opaque text, e.g. JSON) is all the processing there is: claiming the token and marking it
   * done are then one atomic step (one script, one round trip on Redis), and nothing runs in between that could fail or
   * crash, so no lease is needed. `processed` (value: `result`) means this call recorded it, and it is durable once this
   * returns; `duplicate` means the token was already processed (the earlier result is kept); `in_flight` means `deliver`
   * holds it. An expired lease is taken over, as in `deliver`. Whatever the caller does after `processed` is not covered
   * (a crash in between would lose it): work with effects elsewhere goes through `deliver`.
   */
  async acceptOnce(delivery: InboxDelivery, result: string): Promise<InboxOutcome<string>> {
    const { source, tenant, token } = parseInput(deliverySchema, delivery, 'inbox delivery');
    const { doneTtlMs, leaseMs } = this.settingsFor(source);
    const ref: IdempotencyRef = { tenant, key: inboxKey(source, token) };
    const completion = { result, ttlMs: doneTtlMs };
    const outcome = this.#store.claimCompleted
      ? await this.#store.claimCompleted(ref, completion)
      : await this.#claimThenComplete(ref, leaseMs, completion);
    if (outcome.status !== 'claimed') return this.#notOurs(outcome);
    if (outcome.takenOverFrom === undefined) return { status: 'processed', value: result };
    this.#logger.warn(
      { source, tenant, previousOwner: outcome.takenOverFrom },
      'inbox: took over an expired lease; the earlier holder never finished',
    );
    return { status: 'processed', value: result, recoveredFrom: outcome.takenOverFrom };
  }

  /** acceptOnce on a store without claimCompleted: a crash between the two steps leaves a lease that runs out. */
  async #claimThenComplete(
    ref: IdempotencyRef,
    leaseMs: number,
    completion: { result: string; ttlMs: number },
  ): Promise<{ status: 'claimed'; takenOverFrom?: string } | Exclude<ClaimOutcome, { status: 'claimed' }>> {
    const owner = newOwnerToken();
    const claim = await this.#store.takeOver(ref, { owner, leaseMs });
    if (claim.status !== 'claimed') return claim;
    // Nobody else can take a live lease, so this completion only fails if the lease ran out and was taken over.
    if (!(await this.#store.complete(ref, owner, completion))) {
      this.#logger.error({ tenant: ref.tenant }, 'inbox: the lease was taken over before the done mark; recorded twice');
    }
    return claim;
  }

  #notOurs(claim: Exclude<ClaimOutcome, { status: 'claimed' }>): InboxOutcome<never> {
    if (claim.status === 'completed') return { status: 'duplicate', processedAt: claim.record.completedAt };
    return { status: 'in_flight', retryAfterMs: Math.max(0, claim.leaseExpiresAt - this.#clock.now()) };
  }
}

/** What an HTTP receiver answers for an outcome: 2xx acknowledges; an in-flight duplicate gets 409 and Retry-After. */
export function inboxHttpAnswer(outcome: InboxOutcome<unknown>): { readonly statusCode: 200 | 409; readonly retryAfterSeconds?: number } {
  if (outcome.status !== 'in_flight') return { statusCode: 200 };
  return { statusCode: 409, retryAfterSeconds: Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)) };
}
