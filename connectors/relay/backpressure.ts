import type { FastifyInstance } from 'fastify';
import { formatDuration } from '../../shared/duration.js';

/** The routes that take events in; operations routes (health, readiness, status) always answer. */
const EVENT_ROUTE_PREFIXES = ['/salesforce/track-event/', '/segment', '/webhooks/keygen'] as const;

export interface BackpressureOptions {
  /** Undelivered events (pending or leased) in the outbox for the relay's tenant and target, read from the store. */
  readonly backlog: () => Promise<number>;
  /** How long the oldest due event has waited, in ms (0 when none is due), read from the store. */
  readonly deliveryLagMs: () => Promise<number>;
  /** Above this backlog the event routes answer 503; null: no limit. */
  readonly maxBacklog: number | null;
  /** Above this delivery lag the event routes answer 503; null: no limit. */
  readonly maxDeliveryLagMs: number | null;
  /** The settings' names, for the reason readiness and the 503 give. */
  readonly settingNames: { readonly maxBacklog: string; readonly maxDeliveryLag: string };
  /** How long one reading of the store serves every request (default 1000 ms). */
  readonly cacheMs?: number;
  /** Retry-After, in seconds, on a 503 (default 5). */
  readonly retryAfterSeconds?: number;
  readonly now?: () => number;
}

export interface Backpressure {
  /** Why the event routes refuse events now, or null when they accept. */
  reason(): Promise<string | null>;
  /**
   * Events this instance just committed to the outbox: added to the last reading until the next one, so a burst is
   * refused at the limit rather than a cache period's worth of events past it.
   */
  noteEnqueued(count: number): void;
  /** Readiness: throws with the reason while over a limit. */
  check(): Promise<void>;
  /** Answers 503 with Retry-After on the event routes while over a limit. */
  register(app: FastifyInstance): void;
}

/**
 * Pushes back on senders when delivery falls behind: above the backlog or lag limit the event routes answer 503 with
 * Retry-After (Segment, Zapier and Apex retry that, and nothing was taken), and readiness says why; below, they accept.
 * The figures come from the store, so every instance on it agrees; one reading serves all requests for `cacheMs`, with
 * this instance's own enqueues since then added to its backlog (others' show at the next reading).
 */
export function createBackpressure(options: BackpressureOptions): Backpressure {
  const cacheMs = options.cacheMs ?? 1000;
  const retryAfter = String(options.retryAfterSeconds ?? 5);
  const now = options.now ?? Date.now;
  const enabled = options.maxBacklog !== null || options.maxDeliveryLagMs !== null;
  type Reading = { readonly at: number; readonly backlog: number; readonly lagReason: string | null };
  let cached: Reading | null = null;
  let reading: Promise<Reading> | null = null;
  // Events this instance committed since the reading began (those before it are in it).
  let enqueuedSince = 0;

  async function read(): Promise<Reading> {
    const backlog = options.maxBacklog === null ? 0 : await options.backlog();
    let lagReason: string | null = null;
    if (options.maxDeliveryLagMs !== null && (options.maxBacklog === null || backlog <= options.maxBacklog)) {
      const lagMs = await options.deliveryLagMs();
      if (lagMs > options.maxDeliveryLagMs) {
        lagReason = `the oldest due event has waited ${formatDuration(lagMs)}, above ${options.settingNames.maxDeliveryLag} (${formatDuration(options.maxDeliveryLagMs)}); event routes answer 503 until delivery catches up`;
      }
    }
    return { at: now(), backlog, lagReason };
  }

  function reasonOf(current: Reading): string | null {
    if (options.maxBacklog !== null) {
      const backlog = current.backlog + enqueuedSince;
      if (backlog > options.maxBacklog) {
        return `${backlog} undelivered events in the outbox, above ${options.settingNames.maxBacklog} (${options.maxBacklog}); event routes answer 503 until delivery catches up`;
      }
    }
    return current.lagReason;
  }

  async function reason(): Promise<string | null> {
    if (!enabled) return null;
    if (cached && now() - cached.at < cacheMs) return reasonOf(cached);
    // Concurrent requests share one reading.
    reading ??= (() => {
      const counted = enqueuedSince;
      return read()
        .then((value) => {
          cached = value;
          enqueuedSince = Math.max(0, enqueuedSince - counted);
          return value;
        })
        .finally(() => {
          reading = null;
        });
    })();
    return reasonOf(await reading);
  }

  return {
    reason,
    noteEnqueued(count) {
      if (enabled && count > 0) enqueuedSince += count;
    },
    async check() {
      const why = await reason();
      if (why !== null) throw new Error(why);
    },
    register(app) {
      if (!enabled) return;
      app.addHook('onRequest', async (request, reply) => {
        const route = request.routeOptions.url;
        if (route === undefined || !EVENT_ROUTE_PREFIXES.some((prefix) => route.startsWith(prefix))) return;
        // A store that cannot be read is the store check's business (the route itself answers 503 then).
        const why = await reason().catch(() => null);
        if (why === null) return;
        return reply.code(503).header('retry-after', retryAfter).send({ error: 'backpressure', message: why });
      });
    },
  };
}
