import { messageOf } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';

/**
 * The subscribers' waits between attempts to (re)subscribe: doubling from `initialMs` to `maxMs` with each failure
 * since the last success. After the org refuses the session the first retry is immediate (with a fresh token), and
 * repeats back off the same way. A stop cuts the current wait short.
 */
export class ResubscribeSchedule {
  readonly #initialMs: number;
  readonly #maxMs: number;
  /** Failed deliveries and subscriptions since the last success: the backoff grows with them. */
  #failures = 0;
  /** Auth failures since the last subscription: the first is retried at once, a repeat backs off. */
  #authFailures = 0;
  #wake: (() => void) | null = null;

  constructor(delays: { readonly initialMs?: number; readonly maxMs?: number } = {}) {
    this.#initialMs = delays.initialMs ?? 1000;
    this.#maxMs = delays.maxMs ?? 60_000;
  }

  /** The wait before the next attempt after a failure. */
  nextDelay(): number {
    const delay = this.#delay(this.#failures);
    this.#failures++;
    return delay;
  }

  /** The wait before the next attempt after the org refused the session. */
  authDelay(): number {
    const delay = this.#authFailures === 0 ? 0 : this.#delay(this.#authFailures - 1);
    this.#authFailures++;
    return delay;
  }

  /** Something was delivered and checkpointed: the next failure starts from the shortest wait. */
  succeeded(): void {
    this.#failures = 0;
  }

  /** A subscription was accepted: the next auth refusal is retried at once. */
  authenticated(): void {
    this.#authFailures = 0;
  }

  /** Waits `ms`, or less when `wake` is called meanwhile. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const wakeable = this;
      function done(): void {
        clearTimeout(timer);
        if (wakeable.#wake === done) wakeable.#wake = null;
        resolve();
      }
      this.#wake = done;
    });
  }

  /**
   * Mints a new token before a resubscription (`refresh`). Null when it did; when it failed, the failure is logged and
   * the wait before the next try is returned.
   */
  async refreshSession(
    refresh: () => Promise<unknown>,
    logger: Logger,
    about: { readonly channel: string; readonly transport: string },
  ): Promise<number | null> {
    try {
      await refresh();
      return null;
    } catch (error) {
      const retryInMs = this.nextDelay();
      logger.error(
        { event: 'platform_events_refresh_failed', channel: about.channel, error: messageOf(error), retryInMs },
        `could not refresh the Salesforce token for ${about.transport}`,
      );
      return retryInMs;
    }
  }

  /** Ends the current wait at once (the subscriber is stopping). */
  wake(): void {
    this.#wake?.();
  }

  #delay(failures: number): number {
    return Math.min(this.#maxMs, this.#initialMs * 2 ** Math.min(failures, 20));
  }
}
