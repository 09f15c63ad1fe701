import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { z } from 'zod';
import { InvalidInputError, OncekitError } from '../errors.js';
import { buildUserEventInput } from '../events/user-event.js';
import { rawCandidate } from '../keys/candidates.js';
import { decideKey, type InvalidKeyPolicy, invalidKeyPolicies, type KeyDecision, KeyRejectedError } from '../keys/decide.js';
import type { TargetKeyProfile } from '../keys/profiles.js';
import { type Logger, silentLogger } from '../log.js';
import { type OutboxDeliveryConfig, outboxDeliveryConfig } from '../outbox/config.js';
import { groupCommit } from '../outbox/group-commit.js';
import { type Ingest, outboxEventOf, type ReadyEvent, unmappableEventOf } from '../outbox/ingest.js';
import type { LedgerEntry, OutboxCounts, OutboxState } from '../outbox/types.js';
import { createOutboxWorker, outboxTargetId, type SettledEvent, waitUntilDrained } from '../outbox/worker.js';
import { defaultStoreLocation, describeStoreLocation, parseStoreLocation, type StoreLocation } from '../state/location.js';
import { openState } from '../state/open-state.js';
import type { TargetApi } from '../target/saasquatch-api.js';
import { targetApis } from '../target/saasquatch-api.js';
import type { HttpTransport } from '../target/transport.js';
import { undiciTransport } from '../target/transport-undici.js';
import { parseInput } from '../validation.js';

/** Where a sender delivers: the target's API, tenant and key. */
export interface SenderTarget {
  readonly baseUrl: string;
  readonly tenant: string;
  /** Sent as the Basic-auth password; never logged and never part of an error. */
  readonly apiKey: string;
  /** The API for single events; batches always use GraphQL `logUserEvents`. */
  readonly api?: TargetApi;
  /** The target's identity in the store; default its base URL. Keep it when the address of the same target changes. */
  readonly id?: string;
  /** How requests are sent; default undici with keep-alive, closed by `close()`. */
  readonly transport?: HttpTransport;
}

export interface SenderOptions {
  readonly target: SenderTarget;
  /**
   * Where events are kept until the target has them: `sqlite:PATH` (the default, `sqlite:.oncekit/oncekit.db` under
   * the working directory), `postgres://…` or `redis://…` (several processes on one store), or `memory` (tests only:
   * nothing survives the process).
   */
  readonly store?: string;
  /** Batching, concurrency, the lease, the retry horizon and backoff; defaults as the relay's. */
  readonly delivery?: Partial<OutboxDeliveryConfig>;
  /** What to do with an idempotency key that breaks the target's rules; default `drop` (sent without a key, logged). */
  readonly invalidKeyPolicy?: InvalidKeyPolicy;
  /** The target's key rules; default SaaSquatch's. */
  readonly keyProfile?: TargetKeyProfile;
  /** The source name in the ledger; default `sender`. */
  readonly source?: string;
  /** How long `close()` waits for the events still on their way; default 10 s. */
  readonly closeTimeoutMs?: number;
  /** Redis only: open a Redis that keeps nothing on disk (development; it warns). */
  readonly allowVolatileRedis?: boolean;
  /** Redis only: the prefix of every key; default `oncekit:`. */
  readonly redisKeyPrefix?: string;
  /** Warnings (a dropped key, delivery errors, dead letters); default silent. */
  readonly logger?: Logger;
  /** Called once per event that reached its end state (delivered, duplicate, dead) or was rescheduled. */
  readonly onSettled?: (settled: SettledEvent) => void;
}

/** One user event to send: as the target's `UserEventInput`, with dates as epoch ms, ISO-8601 text or a Date. */
export interface SenderEvent {
  readonly userId: string;
  readonly accountId: string;
  /** The key, when it is not given in the send options. */
  readonly idempotencyKey?: string;
  readonly events: readonly {
    readonly key: string;
    readonly fields?: Readonly<Record<string, unknown>>;
    readonly dateTriggered?: number | string | Date;
  }[];
}

export interface SendOptions {
  /** The idempotency key: the same key is one event, for the target (24 h) and for the store. */
  readonly idempotencyKey?: string;
  /** Your own id for the event, to find it in the ledger; default the key, else a random id. */
  readonly sourceId?: string;
}

/** The answer of `send`: the event is durable in the store. */
export interface SendReceipt {
  /** The event's id in the store (`status(id)`). */
  readonly id: string;
  /** `duplicate`: the store already had an event with this key; nothing was added. */
  readonly outcome: 'enqueued' | 'duplicate';
  /** Where the event is now (a duplicate may already be delivered). */
  readonly state: OutboxState;
  /** The key sent to the target; null when the event goes without one (see `decision`). */
  readonly key: string | null;
  readonly decision: KeyDecision | null;
}

/** What `flush` and `close` leave behind. */
export interface DrainReport {
  /** Nothing was pending or in flight when the wait ended. */
  readonly drained: boolean;
  /** Events not yet settled (pending or leased): durable, and sent by the next sender on this store. */
  readonly left: number;
  readonly counts: OutboxCounts;
}

export interface Sender {
  /** The store, for display (a password is never shown). */
  readonly store: string;
  /** Persists the event and resolves once it is durable; it is delivered in the background. */
  send(event: SenderEvent, options?: SendOptions): Promise<SendReceipt>;
  /** The ledger entry of an event: its state, key decision and every attempt. */
  status(id: string): Promise<LedgerEntry | undefined>;
  /** Events of this sender's target per state. */
  counts(): Promise<OutboxCounts>;
  /** Waits, at most `timeoutMs` (default the close timeout), until nothing is pending or in flight. */
  flush(options?: { readonly timeoutMs?: number }): Promise<DrainReport>;
  /** Where Fastify route plugins (`oncekit/fastify`) hand their events: the same store and worker. */
  readonly ingest: Ingest;
  /**
   * Stops taking events, waits for sends in progress, then at most `timeoutMs` (default the close timeout) for
   * deliveries, and closes the store. Says what is left: it stays durable and goes with the next sender on this store.
   */
  close(options?: { readonly timeoutMs?: number }): Promise<DrainReport>;
}

/** `send` after `close`. */
export class SenderClosedError extends OncekitError {
  constructor() {
    super('sender_closed', 'the sender is closed');
  }
}

const optionsSchema = z.object({
  target: z.object(
    {
      baseUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
      tenant: z.string({ error: 'required' }).min(1, 'must not be empty'),
      apiKey: z.string({ error: 'required' }).min(1, 'must not be empty'),
      api: z.enum(targetApis).optional(),
      id: z.string().min(1, 'must not be empty').optional(),
      transport: z.custom<HttpTransport>((value) => typeof value === 'function', 'expected a function').optional(),
    },
    { error: 'required: { baseUrl, tenant, apiKey }' },
  ),
  store: z.string().min(1, 'must not be empty').optional(),
  delivery: z.record(z.string(), z.unknown()).optional(),
  invalidKeyPolicy: z.enum(invalidKeyPolicies).optional(),
  source: z.string().min(1, 'must not be empty').optional(),
  closeTimeoutMs: z.number().int('expected whole milliseconds').nonnegative().optional(),
  allowVolatileRedis: z.boolean().optional(),
  redisKeyPrefix: z.string().min(1, 'must not be empty').optional(),
});

const waitSchema = z.object({ timeoutMs: z.number().int('expected whole milliseconds').nonnegative().optional() });

const sendOptionsSchema = z.object({
  idempotencyKey: z.string({ error: 'expected a string' }).optional(),
  sourceId: z.string().min(1, 'must not be empty').optional(),
});

/**
 * The durable sender, the library form of the relay (a transactional outbox): `send` resolves once the event is in the
 * store, and a worker delivers it in the background with batching, retries within the retry horizon and a ledger.
 * Keys go through the key rules (`decideKey`) as on every other path.
 */
export async function createSender(options: SenderOptions): Promise<Sender> {
  parseInput(optionsSchema, options, 'invalid sender options');
  const logger = options.logger ?? silentLogger;
  const source = options.source ?? 'sender';
  const closeTimeoutMs = options.closeTimeoutMs ?? 10_000;
  // Checked before the store is opened, so bad options create nothing.
  const delivery = outboxDeliveryConfig(options.delivery);
  const location: StoreLocation = options.store === undefined ? defaultStoreLocation() : parseStoreLocation(options.store, 'store');
  // A library user's first send creates the store: the folder of the SQLite file too.
  if (location.kind === 'sqlite') mkdirSync(dirname(location.path), { recursive: true });
  const state = await openState(location, {
    logger,
    ...(options.allowVolatileRedis === undefined ? {} : { allowVolatile: options.allowVolatileRedis }),
    ...(options.redisKeyPrefix === undefined ? {} : { redisKeyPrefix: options.redisKeyPrefix }),
  });
  const { target: given } = options;
  const owned = given.transport === undefined ? undiciTransport() : null;
  const tenant = given.tenant;
  const target = outboxTargetId(given);
  let worker: ReturnType<typeof createOutboxWorker>;
  try {
    worker = createOutboxWorker({
      store: state.outbox,
      target: {
        baseUrl: given.baseUrl,
        tenant,
        apiKey: given.apiKey,
        transport: given.transport ?? (owned as NonNullable<typeof owned>).send,
        id: target,
        ...(given.api === undefined ? {} : { api: given.api }),
      },
      config: delivery,
      label: source,
      logger,
      ...(options.onSettled === undefined ? {} : { onSettled: options.onSettled }),
    });
  } catch (error) {
    await owned?.close();
    await state.close();
    throw error;
  }
  worker.start();
  const enqueue = groupCommit(state.outbox);
  const inFlight = new Set<Promise<unknown>>();
  let closed: Promise<DrainReport> | null = null;

  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    const forget = (): void => {
      inFlight.delete(work);
    };
    work.then(forget, forget);
    return work;
  };

  const ingest: Ingest = {
    accept(events) {
      if (closed) return Promise.reject(new SenderClosedError());
      if (events.length === 0) return Promise.resolve([]);
      return track(
        enqueue(events.map((event) => outboxEventOf(event, tenant, target))).then((results) => {
          worker.notify();
          return results;
        }),
      );
    },
    deadLetter(events) {
      if (closed) return Promise.reject(new SenderClosedError());
      if (events.length === 0) return Promise.resolve([]);
      return track(state.outbox.recordUnmappable(events.map((event) => unmappableEventOf(event, tenant, target))));
    },
  };

  const counts = (): Promise<OutboxCounts> => state.outbox.counts(tenant, { target });

  async function flush(timeoutMs: number): Promise<DrainReport> {
    const signal = AbortSignal.timeout(Math.max(1, timeoutMs));
    const result = await waitUntilDrained({ store: state.outbox, worker, pollMs: 50, signal });
    const now = await counts();
    return { drained: result === 'drained', left: now.pending + now.leased, counts: now };
  }

  return {
    store: describeStoreLocation(location),
    ingest,
    async send(event, sendOptions = {}) {
      if (closed) throw new SenderClosedError();
      parseInput(sendOptionsSchema, sendOptions, 'invalid send options');
      const candidate = sendOptions.idempotencyKey ?? event.idempotencyKey;
      if (
        sendOptions.idempotencyKey !== undefined &&
        event.idempotencyKey !== undefined &&
        sendOptions.idempotencyKey !== event.idempotencyKey
      ) {
        throw new InvalidInputError([
          { field: 'idempotencyKey', reason: 'given both in the event and in the send options, with different values' },
        ]);
      }
      const decision =
        candidate === undefined
          ? null
          : decideKey(rawCandidate(candidate, source), {
              policy: options.invalidKeyPolicy ?? 'drop',
              logger,
              ...(options.keyProfile === undefined ? {} : { profile: options.keyProfile }),
            });
      if (decision?.decision === 'rejected') throw new KeyRejectedError(decision, options.keyProfile);
      const input = buildUserEventInput(event, decision);
      const ready: ReadyEvent = { source, sourceId: sendOptions.sourceId ?? decision?.key ?? randomUUID(), input, decision };
      const [result] = await ingest.accept([ready]);
      if (!result) throw new OncekitError('sender_store', 'the store returned no result for the event');
      return {
        id: result.id,
        outcome: result.outcome === 'existing' ? 'duplicate' : 'enqueued',
        state: result.state,
        key: input.idempotencyKey ?? null,
        decision,
      };
    },
    status: (id) => state.outbox.get(tenant, id),
    counts,
    async flush(flushOptions = {}) {
      parseInput(waitSchema, flushOptions, 'invalid flush options');
      return flush(flushOptions.timeoutMs ?? closeTimeoutMs);
    },
    close(closeOptions = {}) {
      try {
        parseInput(waitSchema, closeOptions, 'invalid close options');
      } catch (error) {
        return Promise.reject(error);
      }
      closed ??= (async () => {
        await Promise.allSettled([...inFlight]);
        let stopped = false;
        try {
          await flush(closeOptions.timeoutMs ?? closeTimeoutMs);
          // In-flight batches settle before stop() resolves; what is left stays pending in the store.
          await worker.stop();
          stopped = true;
          const after = await counts();
          return { drained: after.pending + after.leased === 0, left: after.pending + after.leased, counts: after };
        } finally {
          if (!stopped) await worker.stop();
          await owned?.close();
          await state.close();
        }
      })();
      return closed;
    },
  };
}
