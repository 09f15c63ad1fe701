import { type Clock, systemClock } from '../clock.js';
import { formatDuration } from '../duration.js';
import { messageOf } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { createTargetClient, type TargetClient, type TargetClientOptions } from '../target/client.js';
import { type DeliveryResult, uncertainRequestsOf } from '../target/outcome.js';
import { backoffDelayMs, defaultRetryPolicy, sleep as realSleep } from '../target/retry.js';
import { targetId } from '../target/target-id.js';
import { type OutboxDeliveryConfig, outboxDeliveryConfig, targetCallBudget } from './config.js';
import { coalesced } from './group-commit.js';
import { attemptMayHaveLanded, describeAnswer, describePastKeyWindow, keyWindowClosesAt } from './ledger.js';
import { eventPacer } from './pacer.js';
import { newWorkerToken } from './store-support.js';
import type { AttemptRecord, LeasedEvent, OutboxStore, Settlement } from './types.js';

/** Where the worker sends: the target client's settings, minus the budget the worker sets from its lease. */
export type OutboxTarget = Omit<TargetClientOptions, 'retry' | 'timeoutMs' | 'maxBatchSize' | 'now' | 'sleep' | 'random' | 'logger'> & {
  /** The target's identity in the outbox; default `targetId(baseUrl)`. A stand-in whose address changes keeps one. */
  readonly id?: string;
};

/** The identity the outbox binds a target's events to. */
export const outboxTargetId = (target: Pick<OutboxTarget, 'baseUrl' | 'id'>): string => target.id ?? targetId(target.baseUrl);

export interface SettledEvent {
  readonly event: LeasedEvent;
  readonly settlement: Settlement;
}

/** A batch that failed and waits for its retry: what the worker logs as `outbox_delivery_retry`. */
export interface DeliveryRetry {
  readonly event: 'outbox_delivery_retry';
  readonly owner: string;
  /** The target's address without credentials. */
  readonly target: string;
  readonly events: number;
  readonly attempt: number;
  readonly status: number | null;
  readonly reason: string;
  readonly retryInMs: number;
  /** One line for people. */
  readonly message: string;
}

export interface OutboxWorkerOptions {
  readonly store: OutboxStore;
  /** The tenant whose events this worker delivers is `target.tenant`. */
  readonly target: OutboxTarget;
  readonly config?: Partial<OutboxDeliveryConfig>;
  /** Prefix of the worker's owner token, e.g. `import`; shown in the ledger for abandoned attempts. */
  readonly label?: string;
  readonly logger?: Logger;
  /** Called once per event whose settlement was applied (never for one whose lease was lost). */
  readonly onSettled?: (settled: SettledEvent) => void;
  /** Called once per failed batch that goes back to wait, with what the warning logged says (a CLI shows it). */
  readonly onRetry?: (retry: DeliveryRetry) => void;
  /** After this many failures in a row (store or target client threw), the worker stops and sets `failure`. */
  readonly maxConsecutiveErrors?: number;
  /** Injected in tests: time (due times, horizon), the client's retry waits, and jitter. */
  readonly clock?: Clock;
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  readonly random?: () => number;
}

export interface SubmitOptions {
  /**
   * `performance.now()` taken before the store call that granted the lease: while well inside the lease from then,
   * the worker sends without renewing it first (no other worker can hold the events). Unknown: renewed first.
   */
  readonly leaseRequestedAt?: number;
}

export interface OutboxWorker {
  readonly owner: string;
  readonly tenant: string;
  /** The target whose events this worker leases (its identity in the outbox). */
  readonly target: string;
  readonly config: OutboxDeliveryConfig;
  /** Starts `concurrency` delivery loops. */
  start(): void;
  /** Delivers one batch (a submitted one first, else one leased from the store); resolves with its size (0: nothing was due). */
  runOnce(): Promise<number>;
  /**
   * Hands over events the caller enqueued already leased to this worker (`enqueue(events, {lease: {owner}})`), so they
   * are sent without being read back. Resolves once at most `concurrency` batches wait: the caller's backpressure.
   */
  submit(events: readonly LeasedEvent[], options?: SubmitOptions): Promise<void>;
  /**
   * Wakes idle loops now, e.g. after an enqueue of `events` events (default 1): one loop per batch they make, not every
   * loop, so an enqueue of a few events costs one lease, not one per loop. A wake with no loop idle is kept for the
   * next loop that would go idle.
   */
  notify(events?: number): void;
  /**
   * Whether submit() takes events now: fewer batches wait for a loop than there are loops, so they are sent within about
   * one batch's time (their leases are renewed while they wait, as a batch in flight's are).
   */
  acceptsHandOver(): boolean;
  /** Lets in-flight batches finish and settle, then stops; everything else stays durable in the store. */
  stop(): Promise<void>;
  /** Set when the worker stopped itself after `maxConsecutiveErrors` failures. */
  readonly failure: Error | null;
}

/** Delivers a tenant's outbox through the target client, with batching, a concurrency limit, backoff and a horizon. */
export function createOutboxWorker(options: OutboxWorkerOptions): OutboxWorker {
  const config = outboxDeliveryConfig(options.config);
  const clock = options.clock ?? systemClock;
  const random = options.random ?? Math.random;
  const logger = options.logger ?? silentLogger;
  const store = options.store;
  const tenant = options.target.tenant;
  const target = outboxTargetId(options.target);
  const owner = newWorkerToken(options.label ?? 'worker');
  const maxConsecutiveErrors = options.maxConsecutiveErrors ?? Number.POSITIVE_INFINITY;
  const budget = targetCallBudget(config);
  const { id: _id, ...clientTarget } = options.target;
  const client: TargetClient = createTargetClient({
    ...clientTarget,
    timeoutMs: budget.timeoutMs,
    retry: budget.retry,
    maxBatchSize: config.batchSize,
    now: () => clock.now(),
    random,
    logger,
    ...(options.sleep ? { sleep: options.sleep } : {}),
  });
  // Where the worker sends, as logs may show it: no credentials, no query.
  const targetLabel = (() => {
    try {
      const url = new URL(options.target.baseUrl);
      return `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
    } catch {
      return 'the target';
    }
  })();
  const backoff = { ...defaultRetryPolicy, baseDelayMs: config.backoffBaseMs, maxDelayMs: config.backoffMaxMs };
  const pacer = eventPacer(config.maxEventsPerSecond);
  // Settlements of the batches in flight at once share one store transaction.
  const settle = coalesced((settlements: Settlement[]) => store.settle(settlements));
  // So do the leases of loops that look at the same moment: one lease of their summed sizes, handed out oldest first,
  // one slot per event each loop asked for.
  const leaseBatch = coalesced(
    async (slots: null[]): Promise<(LeasedEvent | null)[]> => {
      const events = await store.lease({ tenant, target, owner, limit: slots.length, leaseMs: config.leaseMs });
      return slots.map((_, index) => events[index] ?? null);
    },
    { maxGroupEvents: 10_000 },
  );

  let running: Promise<void>[] = [];
  // Set while the loops run, when the store can say that another instance enqueued (PostgreSQL's LISTEN/NOTIFY).
  let unsubscribe: (() => void) | undefined;
  // Batches handed over by submit(), already leased to this worker; taken before anything is leased from the store.
  const handed: HandedBatch[] = [];
  // Batches on their way to the target now.
  let sending = 0;
  const roomWaiters = new Set<() => void>();
  let stopping = false;
  let failure: Error | null = null;
  let consecutiveErrors = 0;
  const sleepers = new Set<() => void>();
  // The wake-ups of loops idle for lack of work (a subset of sleepers), and wakes that found none idle.
  const idleLoops = new Set<() => void>();
  let pendingWakes = 0;

  const wakeLoops = (count: number): void => {
    for (const wake of [...idleLoops].slice(0, count)) {
      idleLoops.delete(wake); // at once: a second wake in the same turn goes to another loop
      wake();
      count -= 1;
    }
    pendingWakes = Math.min(config.concurrency, pendingWakes + Math.max(0, count));
  };

  const wakeAll = (): void => {
    for (const wake of [...sleepers]) wake();
  };

  /** An idle wait that notify() and stop() cut short. Real time: it only paces polling, it decides nothing. */
  const idle = (ms: number, onWaker?: (wake: () => void) => void): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      sleepers.add(done);
      onWaker?.(done);
    });

  /** A loop's wait for work: idle() that notify() can cut short for this loop alone. */
  const idleLoop = (ms: number): Promise<void> => {
    let wake: (() => void) | undefined;
    const waiting = idle(ms, (done) => {
      wake = done;
    });
    if (wake) idleLoops.add(wake);
    return waiting.finally(() => {
      if (wake) idleLoops.delete(wake);
    });
  };

  function attemptFrom(event: LeasedEvent, result: DeliveryResult, startedAt: number, finishedAt: number): AttemptRecord {
    return {
      number: event.previousAttempts + 1,
      startedAt,
      finishedAt,
      outcome: result.outcome,
      status: result.status,
      message: result.message,
      apiErrorCode: result.apiErrorCode,
      rsCode: result.rsCode,
      requests: result.attempts,
      uncertainRequests: uncertainRequestsOf(result),
      eventIds: result.eventIds,
    };
  }

  /**
   * `storeFinishedAt`: finishedAt on the store's clock (see storeTimeOf), which firstAttemptAt is on. `jitter`: the
   * batch's one draw for its backoff (see deliver).
   */
  function settlementFor(
    event: LeasedEvent,
    result: DeliveryResult,
    startedAt: number,
    finishedAt: number,
    storeFinishedAt: number,
    jitter: number,
  ): Settlement {
    const attempt = attemptFrom(event, result, startedAt, finishedAt);
    const base = { id: event.id, owner, attempt };
    switch (result.outcome) {
      case 'accepted':
        return { ...base, to: 'delivered' };
      case 'duplicate':
        return { ...base, to: 'duplicate' };
      case 'rejected':
        // Retrying cannot help: the target refused the event itself.
        return { ...base, to: 'dead', reason: `rejected by the target: ${describeAnswer(attempt)}` };
      case 'failed': {
        const delayMs = backoffDelayMs(attempt.number, backoff, () => jitter, result.retryAfterMs);
        const retryAt = storeFinishedAt + delayMs;
        const gaveUp = `gave up after ${attempt.number} attempt${attempt.number === 1 ? '' : 's'}: the next retry would fall past`;
        const lastAnswer = `last answer: ${describeAnswer(attempt)}`;
        // dueAt is on this worker's clock (the store carries the delay over to its own); the horizon is on the store's.
        if (retryAt >= event.firstAttemptAt + config.horizonMs) {
          const horizon = `${formatDuration(config.horizonMs)} after the first attempt at ${new Date(event.firstAttemptAt).toISOString()}`;
          return { ...base, to: 'dead', reason: `${gaveUp} the retry horizon (${horizon}); ${lastAnswer}` };
        }
        // After a requeue, the key window can close before the fresh horizon: this attempt may be the one that landed.
        const landedSince = event.landedSince ?? (attemptMayHaveLanded(attempt) ? event.leasedAt : null);
        if (landedSince !== null && retryAt >= keyWindowClosesAt(landedSince, config.keyWindowMs)) {
          return {
            ...base,
            to: 'dead',
            reason: `${gaveUp} the target's key window: ${describePastKeyWindow(landedSince, config.keyWindowMs)}; ${lastAnswer}`,
          };
        }
        return { ...base, to: 'pending', dueAt: finishedAt + delayMs };
      }
    }
  }

  /**
   * Renews the leases of a batch in flight every third of the lease, so a short lease holds as long as the call runs
   * and a worker that dies loses its events within one lease. Real time: it paces renewals, the store decides expiry.
   */
  function keepLeases(ids: readonly string[]): { stop(): void } {
    const timer = setInterval(
      () => {
        store.renewLeases(owner, ids, config.leaseMs).then(
          (renewed) => {
            if (renewed.length < ids.length) {
              logger.warn({ event: 'outbox_lease_lost', owner, lost: ids.length - renewed.length }, 'outbox leases lost while sending');
            }
          },
          (error: unknown) =>
            logger.warn({ event: 'outbox_lease_renewal_failed', owner, error: messageOf(error) }, 'could not renew outbox leases'),
        );
      },
      Math.max(10, Math.floor(config.leaseMs / 3)),
    );
    timer.unref();
    return { stop: () => clearInterval(timer) };
  }

  /** Waits for the batch's turn under the rate cap; false when the worker stops first. */
  async function awaitTurn(events: number): Promise<boolean> {
    const sendAt = pacer.reserve(events);
    while (!stopping && performance.now() < sendAt) await idle(sendAt - performance.now());
    return performance.now() >= sendAt;
  }

  /**
   * The store's time now, as seen from a batch's lease: the time the store stamped on the lease plus how long this
   * process has held the batch since asking for it (monotonic), so it never runs behind the store's clock, whatever this
   * host's clock says. firstAttemptAt is on the store's clock too, so the horizon decision never mixes the two. Without
   * the lease request time (a submit that did not give it), this host's clock stands in.
   */
  function storeTimeOf(leaseRequestedAt: number | null): (event: LeasedEvent) => number {
    if (leaseRequestedAt === null) return () => clock.now();
    return (event) => event.leasedAt + Math.max(0, performance.now() - leaseRequestedAt);
  }

  async function deliver(batch: readonly LeasedEvent[], leaseRequestedAt: number | null): Promise<void> {
    if (!(await awaitTurn(batch.length))) {
      // Stopping while the cap held the batch back: give it back, due now, for the next worker.
      const at = clock.now();
      await store.settle(batch.map((event) => ({ id: event.id, owner, attempt: null, to: 'pending', dueAt: at })));
      return;
    }
    // Renewed first, unless leased just now (less than a third of the lease ago, on this process's monotonic clock, so
    // no clock skew with the store matters): a batch may have waited, and an event another worker took over is not
    // ours to send. Once sending, keepLeases renews every third of the lease.
    const fresh = leaseRequestedAt !== null && performance.now() - leaseRequestedAt < config.leaseMs / 3;
    const held = new Set(
      fresh
        ? batch.map((event) => event.id)
        : await store.renewLeases(
            owner,
            batch.map((event) => event.id),
            config.leaseMs,
          ),
    );
    for (const event of batch) {
      if (!held.has(event.id))
        logger.warn({ event: 'outbox_lease_lost', id: event.id, owner }, 'outbox lease lost before sending; not sent');
    }
    const storeNow = storeTimeOf(leaseRequestedAt);
    const settlements: { event: LeasedEvent; settlement: Settlement }[] = [];
    const sendable: LeasedEvent[] = [];
    for (const event of batch) {
      if (!held.has(event.id)) continue;
      // An event can come back long after its first attempt (its worker died, or nothing ran for a day). Sending it
      // past the horizon could land outside the target's key window, after an earlier attempt that did land.
      const now = storeNow(event);
      if (now >= event.firstAttemptAt + config.horizonMs) {
        const reason =
          `the retry horizon (${formatDuration(config.horizonMs)} after the first attempt at ${new Date(event.firstAttemptAt).toISOString()}) ` +
          `passed before attempt ${event.previousAttempts + 1} could start`;
        settlements.push({ event, settlement: { id: event.id, owner, attempt: null, to: 'dead', reason } });
        continue;
      }
      // A requeue gives a fresh horizon but cannot reopen the target's key window: an event that may have landed is
      // not resent once that has closed (the operator may force it, knowing what it means).
      if (event.landedSince !== null && now >= keyWindowClosesAt(event.landedSince, config.keyWindowMs)) {
        const reason =
          `not sent: ${describePastKeyWindow(event.landedSince, config.keyWindowMs)}; check the target first, ` +
          '`oncekit dead-letters retry --force-past-window` sends it anyway';
        settlements.push({ event, settlement: { id: event.id, owner, attempt: null, to: 'dead', reason } });
        continue;
      }
      sendable.push(event);
    }
    if (sendable.length > 0) {
      const startedAt = clock.now();
      const keeper = keepLeases(sendable.map((event) => event.id));
      let results: readonly DeliveryResult[];
      sending += 1;
      try {
        ({ results } = await client.logUserEvents(sendable.map((event) => event.input)));
      } finally {
        sending -= 1;
        keeper.stop();
      }
      const finishedAt = clock.now();
      // One draw per batch: events that failed together come due together and go out as one batch again. A draw per
      // event scattered a batch of 100 into dozens of small requests to a target that was just recovering.
      const jitter = random();
      sendable.forEach((event, index) => {
        const result = results[index];
        if (result) settlements.push({ event, settlement: settlementFor(event, result, startedAt, finishedAt, storeNow(event), jitter) });
      });
    }
    const applied = await settle(settlements.map(({ settlement }) => settlement));
    reportRetries(settlements.filter((_, index) => applied[index]).map(({ settlement }) => settlement));
    applied.forEach((ok, index) => {
      const settled = settlements[index];
      if (!settled) return;
      if (!ok) {
        // Another worker took the event over after our lease ran out; its result is the one that counts.
        logger.warn({ event: 'outbox_lease_lost', id: settled.event.id, owner }, 'outbox lease lost before settling; result discarded');
        return;
      }
      if (settled.settlement.to === 'dead') {
        logger.warn(
          { event: 'outbox_dead_letter', id: settled.event.id, sourceId: settled.event.sourceId, reason: settled.settlement.reason },
          'event became a dead letter',
        );
      }
      options.onSettled?.(settled);
    });
  }

  /**
   * One warning per batch that failed and goes back to wait: an unreachable or failing target is said with each retry
   * (its reason, how many events, when they come due), never left to spin silently.
   */
  function reportRetries(settlements: readonly Settlement[]): void {
    let retrying = 0;
    let first: Extract<Settlement, { to: 'pending' }> | null = null;
    for (const settlement of settlements) {
      if (settlement.to !== 'pending' || settlement.attempt === null) continue;
      retrying += 1;
      first ??= settlement;
    }
    if (first === null || first.attempt === null) return;
    const reason = describeAnswer(first.attempt);
    const retryInMs = Math.max(0, Math.round(first.dueAt - clock.now()));
    const retry: DeliveryRetry = {
      event: 'outbox_delivery_retry',
      owner,
      target: targetLabel,
      events: retrying,
      attempt: first.attempt.number,
      status: first.attempt.status,
      reason,
      retryInMs,
      message: `delivery to ${targetLabel} failed (${reason}); ${retrying} event${retrying === 1 ? '' : 's'} retry in ${formatDuration(retryInMs)} (attempt ${first.attempt.number})`,
    };
    const { message, ...fields } = retry;
    logger.warn(fields, message);
    options.onRetry?.(retry);
  }

  /** The next handed batch, no longer waiting: its leases are kept from here on by whoever sends it. */
  function takeHanded(): HandedBatch | undefined {
    const batch = handed.shift();
    batch?.keeper.stop();
    return batch;
  }

  /**
   * A handed batch short of a full one, while another batch is on its way to the target (so the target is keeping up
   * and more events are coming), waits BATCH_FILL_MS for the batches handed meanwhile and goes with them: fewer, fuller
   * calls and settlements. An idle worker sends at once.
   */
  async function filled(batch: HandedBatch): Promise<Omit<HandedBatch, 'keeper'>> {
    if (batch.events.length >= config.batchSize || sending === 0 || stopping) return batch;
    await idle(BATCH_FILL_MS);
    let { events, leaseRequestedAt } = batch;
    while (handed.length > 0 && events.length + (handed[0] as HandedBatch).events.length <= config.batchSize) {
      const next = takeHanded() as HandedBatch;
      events = events.concat(next.events);
      // The oldest lease decides whether the merged batch is renewed before it is sent.
      leaseRequestedAt =
        leaseRequestedAt === null || next.leaseRequestedAt === null ? null : Math.min(leaseRequestedAt, next.leaseRequestedAt);
    }
    if (events !== batch.events) for (const resume of [...roomWaiters]) resume();
    return { events, leaseRequestedAt };
  }

  /** Delivers a handed batch, else one leased from the store; says which (0 events: nothing was due). */
  async function runNext(): Promise<{ readonly events: number; readonly handed: boolean }> {
    const submitted = takeHanded();
    if (submitted) {
      for (const resume of [...roomWaiters]) resume();
      const batch = await filled(submitted);
      await deliver(batch.events, batch.leaseRequestedAt);
      return { events: batch.events.length, handed: true };
    }
    const leaseRequestedAt = performance.now();
    const batch = (await leaseBatch(new Array<null>(config.batchSize).fill(null))).filter(isLeased);
    if (batch.length > 0) await deliver(batch, leaseRequestedAt);
    return { events: batch.length, handed: false };
  }

  async function runOnce(): Promise<number> {
    return (await runNext()).events;
  }

  /** Gives submitted batches nobody will send back to the store, due now, so no one waits for their lease to run out. */
  async function releaseHanded(): Promise<void> {
    const events = handed.splice(0).flatMap((batch) => {
      batch.keeper.stop();
      return batch.events;
    });
    for (const resume of [...roomWaiters]) resume();
    if (events.length === 0) return;
    const now = clock.now();
    await store.settle(events.map((event) => ({ id: event.id, owner, attempt: null, to: 'pending', dueAt: now })));
  }

  /** How long an idle loop waits: until the store's next due time or lease expiry, at most pollMs; 0: due now. */
  async function idleDelay(): Promise<number> {
    const next = await store.nextDueAt(tenant, target);
    if (next === null) return config.pollMs;
    const untilDue = next - clock.now();
    return untilDue <= 0 ? 0 : Math.max(5, Math.min(config.pollMs, untilDue));
  }

  async function loop(): Promise<void> {
    while (!stopping) {
      try {
        const ran = await runNext();
        consecutiveErrors = 0;
        // After a handed batch the store is read, not leased from: most often nothing else is due there, and a read
        // costs less than a lease (a write transaction on SQLite, a script on Redis).
        if ((ran.events === 0 || (ran.handed && handed.length === 0)) && !stopping) {
          const delay = await idleDelay();
          if (ran.handed && delay === 0) continue; // something in the store is due: lease it
          if (pendingWakes > 0)
            pendingWakes -= 1; // an enqueue came while this loop was looking: look again
          else await idleLoop(Math.max(5, delay));
        }
      } catch (error) {
        consecutiveErrors += 1;
        const reason = messageOf(error);
        logger.error({ event: 'outbox_worker_error', owner, consecutiveErrors, error: reason }, 'outbox delivery failed; will retry');
        if (consecutiveErrors >= maxConsecutiveErrors) {
          failure = error instanceof Error ? error : new Error(reason);
          stopping = true;
          // Nobody here will send the handed batches: their leases run out and any worker takes them over.
          for (const batch of handed) batch.keeper.stop();
          wakeAll();
          for (const resume of [...roomWaiters]) resume();
          return;
        }
        if (!stopping) await idle(config.pollMs);
      }
    }
  }

  return {
    owner,
    tenant,
    target,
    config,
    get failure() {
      return failure;
    },
    start() {
      if (running.length > 0 || stopping) return;
      running = Array.from({ length: config.concurrency }, () => loop());
      unsubscribe = store.onEnqueued?.((enqueuedFor) => {
        if (enqueuedFor === tenant) wakeAll();
      });
    },
    runOnce,
    notify(events = 1) {
      wakeLoops(Math.max(1, Math.ceil(events / config.batchSize)));
    },
    // Only while its loops run: a worker not started (or stopping) would hold handed events, leased, unsent.
    acceptsHandOver: () => running.length > 0 && !stopping && handed.length < config.concurrency,
    async submit(events, submitOptions = {}) {
      let batches = 0;
      for (let start = 0; start < events.length; start += config.batchSize) {
        const slice = events.slice(start, start + config.batchSize);
        // Kept leased while it waits for a loop, as a batch in flight is: however long the loops ahead of it take.
        const keeper = keepLeases(slice.map((event) => event.id));
        handed.push({ events: slice, leaseRequestedAt: submitOptions.leaseRequestedAt ?? null, keeper });
        batches += 1;
      }
      wakeLoops(batches);
      if (stopping) {
        await releaseHanded();
        return;
      }
      while (handed.length > config.concurrency && !stopping) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            roomWaiters.delete(done);
            resolve();
          };
          roomWaiters.add(done);
        });
      }
    },
    async stop() {
      stopping = true;
      unsubscribe?.();
      unsubscribe = undefined;
      wakeAll();
      await Promise.all(running);
      running = [];
      try {
        await releaseHanded();
      } catch (error) {
        // Their leases run out on their own; stop() must not hide the failure that brought the caller here.
        logger.error({ event: 'outbox_release_failed', owner, error: messageOf(error) }, 'could not give back submitted events');
      }
    },
  };
}

const isLeased = (event: LeasedEvent | null): event is LeasedEvent => event !== null;

interface HandedBatch {
  /** Renews the batch's leases while it waits. */
  readonly keeper: { stop(): void };
  readonly events: LeasedEvent[];
  /** performance.now() before the store call that leased them; null: unknown. */
  readonly leaseRequestedAt: number | null;
}

/** How long a short handed batch waits for more while another batch is in flight (see `filled`). */
const BATCH_FILL_MS = 2;

export interface DrainOptions {
  readonly store: OutboxStore;
  readonly worker: OutboxWorker;
  /** Only this source's events count (the worker still delivers all of the tenant's). */
  readonly source?: string;
  readonly pollMs?: number;
  /** Stops waiting (the worker is left running; the caller stops it). */
  readonly signal?: AbortSignal;
}

/** Resolves once the tenant (or one source of it) has nothing pending or leased; throws if the worker failed. */
export async function waitUntilDrained(options: DrainOptions): Promise<'drained' | 'aborted'> {
  const pollMs = options.pollMs ?? 100;
  for (;;) {
    if (options.worker.failure) throw options.worker.failure;
    if (options.signal?.aborted) return 'aborted';
    const counts = await options.store.counts(options.worker.tenant, {
      target: options.worker.target,
      ...(options.source === undefined ? {} : { source: options.source }),
    });
    if (counts.pending + counts.leased === 0) return 'drained';
    try {
      await realSleep(pollMs, options.signal);
    } catch {
      return 'aborted';
    }
  }
}
