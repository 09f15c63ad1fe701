import type { Connection } from 'jsforce';
import { z } from 'zod';
import { messageOf, OncekitError } from '../../shared/errors.js';
import { type Logger, silentLogger } from '../../shared/log.js';
import { type BayeuxClient, type BayeuxSubscribeFailure, openBayeuxClient } from './bayeux-client.js';
import { DEFAULT_PLATFORM_EVENT_CHANNEL, type PlatformEventMessage } from './platform-event-mapping.js';
import { checkpointReplayId, type ReplayCheckpointStore } from './replay-checkpoint-store.js';
import { ResubscribeSchedule } from './resubscribe-schedule.js';

/**
 * Subscribes to a Platform Event channel over CometD (bayeux-client.ts), and hands each event to the caller's sink
 * one at a time, in order. A replayId is checkpointed only after the sink resolved, so a restart resumes right after
 * the last event the sink took: no loss within Salesforce's 72-hour retention, and no event the sink took is
 * delivered to it again.
 *
 * Failures:
 * - the sink rejects (or the checkpoint cannot be saved): the event is not checkpointed. Events queued behind it are
 *   dropped, the client is closed, and after a backoff a new client subscribes from the last checkpoint, so the failed
 *   event comes again, then the rest in order. (Before the first checkpoint it replays the retained events (-2) and
 *   skips those older than the first event it received.) The sink should reject only for transient trouble (its store is down);
 *   an event it can never take should be recorded and resolved, or it comes back forever.
 * - authentication fails (Salesforce refuses the token on a handshake, connect or subscribe): the token is refreshed
 *   and a NEW client is created, since a client keeps the token it was created with.
 * - the checkpoint is older than the retention window (Salesforce answers `400::The replayId {…} you provided was
 *   invalid`): by default the subscriber replays every retained event (-2) and logs the gap; with
 *   `onExpiredCheckpoint: 'fail'` it stops.
 */

export type PlatformEventSink = (event: PlatformEventMessage) => Promise<void>;

/** The parts of a Salesforce session the subscriber needs (salesforce-auth's SalesforceSession fits). */
export interface StreamingSession {
  readonly connection: Connection;
  refresh(): Promise<void>;
}

export type SubscriberActivity =
  | { readonly type: 'subscribed'; readonly client: number; readonly replayFrom: number }
  | { readonly type: 'received'; readonly replayId: number; readonly eventUuid: string | null }
  | { readonly type: 'skipped'; readonly reason: string }
  | { readonly type: 'checkpointed'; readonly replayId: number }
  | { readonly type: 'sink-failed'; readonly replayId: number; readonly error: unknown }
  | { readonly type: 'checkpoint-failed'; readonly replayId: number; readonly error: unknown }
  | { readonly type: 'auth-failed'; readonly client: number }
  | { readonly type: 'token-refreshed' }
  | { readonly type: 'subscribe-failed'; readonly reason: string }
  | { readonly type: 'checkpoint-expired'; readonly replayFrom: number }
  | { readonly type: 'resubscribing'; readonly reason: string; readonly delayMs: number }
  | { readonly type: 'paused'; readonly queued: number }
  | { readonly type: 'failed'; readonly error: Error }
  | { readonly type: 'stopped' };

export interface PlatformEventSubscriberOptions {
  readonly session: StreamingSession;
  readonly sink: PlatformEventSink;
  readonly checkpoints: ReplayCheckpointStore;
  /** Default `/event/SaaSquatch_User_Event__e`. */
  readonly channel?: string;
  /** Where to start without a checkpoint: -1 (default) only new events, -2 every retained event. */
  readonly replayWithoutCheckpoint?: -1 | -2;
  readonly onExpiredCheckpoint?: 'replay-retained' | 'fail';
  /** Backoff between resubscribe attempts, doubling from `initialMs` to `maxMs`. Default 1 s to 60 s. */
  readonly retryDelay?: { readonly initialMs?: number; readonly maxMs?: number };
  /** How long to wait for Salesforce to acknowledge a subscription. Default 30 s. */
  readonly subscribeTimeoutMs?: number;
  /** Events held for the sink at most; at the bound the client disconnects until they are delivered. Default 1,000. */
  readonly maxQueuedEvents?: number;
  readonly logger?: Logger;
  /** Observes what happens (metrics, status pages, tests). Must not throw. */
  readonly onActivity?: (activity: SubscriberActivity) => void;
}

export type SubscriberState = 'idle' | 'subscribing' | 'subscribed' | 'recovering' | 'stopped' | 'failed';

export interface PlatformEventSubscriber {
  /**
   * Subscribes; resolves once Salesforce acknowledged the first subscription, or the subscriber holds back for a full
   * outbox before subscribing, or it was stopped.
   */
  start(): Promise<void>;
  /** Unsubscribes, disconnects and waits for the event in the sink (if any) to finish and be checkpointed. */
  stop(): Promise<void>;
  readonly state: SubscriberState;
  readonly channel: string;
  /** How events arrive: Salesforce's Pub/Sub API (pubsub-subscriber.ts) or CometD (this module). */
  readonly transport: 'pubsub' | 'cometd';
}

export class CheckpointExpiredError extends OncekitError {
  constructor(channel: string, replayId: number) {
    super('checkpoint_expired', `Salesforce no longer retains events after replayId ${replayId} on ${channel}; events may have been lost`);
  }
}

const eventDataSchema = z.object({
  payload: z.record(z.string(), z.unknown()),
  event: z.looseObject({
    replayId: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/).transform(Number)]),
    EventUuid: z.string().min(1).optional(),
  }),
});

type AttemptOutcome = { readonly kind: 'subscribed' } | BayeuxSubscribeFailure | { readonly kind: 'stopped' };

interface ActiveClient {
  readonly id: number;
  readonly client: BayeuxClient;
}

interface QueuedEvent {
  readonly client: number;
  readonly event: PlatformEventMessage;
}

export function createPlatformEventSubscriber(options: PlatformEventSubscriberOptions): PlatformEventSubscriber {
  return new Subscriber(options);
}

class Subscriber implements PlatformEventSubscriber {
  readonly channel: string;
  readonly transport = 'cometd';
  readonly #options: PlatformEventSubscriberOptions;
  readonly #logger: Logger;
  #state: SubscriberState = 'idle';
  /** Id of the current client; a message or failure from any other client is stale and ignored. */
  #current = 0;
  #clientCount = 0;
  #active: ActiveClient | null = null;
  #queue: QueuedEvent[] = [];
  readonly #maxQueued: number;
  /** The queue reached its bound: the client is closed and the queue drains before a new subscription. */
  #paused = false;
  #pump: Promise<void> | null = null;
  #lifecycle: Promise<void> = Promise.resolve();
  /**
   * The first replayId received while no checkpoint existed. If a failure comes before anything is checkpointed,
   * `-1` would skip the failed event, so the subscriber replays every retained event (-2) and skips those before it.
   */
  #firstReceived: number | null = null;
  #floor: number | null = null;
  #started: Promise<void> | null = null;
  #settleStart: { resolve: () => void; reject: (error: Error) => void } | null = null;
  #settleAttempt: ((outcome: AttemptOutcome) => void) | null = null;
  readonly #retries: ResubscribeSchedule;
  #stopping: Promise<void> | null = null;

  constructor(options: PlatformEventSubscriberOptions) {
    this.#options = options;
    this.#retries = new ResubscribeSchedule(options.retryDelay);
    this.channel = options.channel ?? DEFAULT_PLATFORM_EVENT_CHANNEL;
    this.#logger = options.logger ?? silentLogger;
    this.#maxQueued = options.maxQueuedEvents ?? 1000;
  }

  get state(): SubscriberState {
    return this.#state;
  }

  start(): Promise<void> {
    if (this.#started) return this.#started;
    this.#started = new Promise<void>((resolve, reject) => {
      this.#settleStart = { resolve, reject };
    });
    this.#state = 'subscribing';
    this.#lifecycle = this.#run({ refresh: false, delayMs: 0 });
    return this.#started;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    this.#state = 'stopped';
    this.#current = -1;
    this.#queue = [];
    this.#retries.wake();
    this.#settleAttempt?.({ kind: 'stopped' });
    const active = this.#active;
    this.#active = null;
    if (active) await active.client.close(true);
    await this.#pump;
    await this.#lifecycle;
    this.#settleStart?.resolve();
    this.#settleStart = null;
    this.#logger.info({ event: 'platform_events_stopped', channel: this.channel }, `stopped the ${this.channel} subscription`);
    this.#emit({ type: 'stopped' });
  }

  get #stopped(): boolean {
    return this.#state === 'stopped' || this.#state === 'failed';
  }

  #run(plan: { refresh: boolean; delayMs: number }): Promise<void> {
    return this.#connect(plan).catch((error: unknown) => this.#fail(error instanceof Error ? error : new Error(String(error))));
  }

  /** Subscribes until it works or the subscriber stops; at most one of these runs at a time. */
  async #connect(plan: { refresh: boolean; delayMs: number }): Promise<void> {
    let { refresh, delayMs } = plan;
    let replayOverride: number | null = null;
    for (;;) {
      if (delayMs > 0) await this.#retries.sleep(delayMs);
      if (this.#stopped) return;
      // The event in the sink finishes (and is checkpointed) before the next subscription reads the checkpoint.
      await this.#pump;
      if (this.#stopped) return;
      if (refresh) {
        const retryInMs = await this.#retries.refreshSession(() => this.#options.session.refresh(), this.#logger, {
          channel: this.channel,
          transport: 'streaming',
        });
        if (retryInMs !== null) {
          delayMs = retryInMs;
          continue;
        }
        this.#emit({ type: 'token-refreshed' });
        refresh = false;
      }
      let replayFrom: number;
      try {
        replayFrom = replayOverride ?? (await this.#replayFrom());
      } catch (error) {
        delayMs = this.#retries.nextDelay();
        this.#logger.error(
          { event: 'platform_events_checkpoint_unreadable', channel: this.channel, error: messageOf(error), retryInMs: delayMs },
          'could not read the replay checkpoint',
        );
        continue;
      }
      let outcome: AttemptOutcome;
      try {
        outcome = await this.#attempt(replayFrom);
      } catch (error) {
        outcome = { kind: 'failed', reason: messageOf(error) };
      }
      switch (outcome.kind) {
        case 'subscribed':
        case 'stopped':
          return;
        case 'auth':
          refresh = true;
          delayMs = this.#retries.authDelay();
          continue;
        case 'expired':
          this.#emit({ type: 'checkpoint-expired', replayFrom });
          if ((this.#options.onExpiredCheckpoint ?? 'replay-retained') === 'fail') {
            this.#fail(new CheckpointExpiredError(this.channel, replayFrom));
            return;
          }
          this.#logger.error(
            { event: 'platform_events_checkpoint_expired', channel: this.channel, replayId: replayFrom },
            `Salesforce no longer retains events after replayId ${replayFrom}; replaying every retained event (-2). Events in between may be lost`,
          );
          replayOverride = -2;
          delayMs = 0;
          continue;
        case 'failed':
          delayMs = this.#retries.nextDelay();
          this.#emit({ type: 'subscribe-failed', reason: outcome.reason });
          this.#logger.warn(
            { event: 'platform_events_subscribe_failed', channel: this.channel, reason: outcome.reason, retryInMs: delayMs },
            `could not subscribe to ${this.channel}`,
          );
          continue;
      }
    }
  }

  async #replayFrom(): Promise<number> {
    const stored = checkpointReplayId(this.channel, await this.#options.checkpoints.load(this.channel));
    if (stored !== null) return stored;
    if (this.#firstReceived !== null) {
      this.#floor = this.#firstReceived;
      return -2;
    }
    return this.#options.replayWithoutCheckpoint ?? -1;
  }

  /** One client, one subscription; resolves with how it went. */
  #attempt(replayFrom: number): Promise<AttemptOutcome> {
    const stale = this.#active;
    this.#active = null;
    if (stale) void stale.client.close(false);
    const id = ++this.#clientCount;
    this.#current = id;
    const client = openBayeuxClient(this.#options.session.connection, this.channel, replayFrom, {
      message: (data) => this.#onMessage(id, data),
      authFailed: () => this.#onAuthFailure(id),
      subscribeRefused: (reason) => this.#onSubscribeRefused(id, reason),
    });
    this.#active = { id, client };

    return new Promise<AttemptOutcome>((resolve) => {
      const timer = setTimeout(
        () => settle({ kind: 'failed', reason: 'no subscription acknowledgement in time' }),
        this.#options.subscribeTimeoutMs ?? 30_000,
      );
      const settle = (outcome: AttemptOutcome): void => {
        if (this.#settleAttempt !== settle) return;
        this.#settleAttempt = null;
        clearTimeout(timer);
        if (outcome.kind === 'subscribed') this.#subscribed(id, replayFrom);
        else if (outcome.kind !== 'stopped') this.#drop(id, outcome.kind === 'auth' ? 'auth' : 'subscribe');
        resolve(outcome);
      };
      this.#settleAttempt = settle;
      client.onAnswer(() => settle({ kind: 'subscribed' }), settle);
    });
  }

  #subscribed(id: number, replayFrom: number): void {
    this.#state = 'subscribed';
    this.#retries.authenticated();
    this.#logger.info(
      { event: 'platform_events_subscribed', channel: this.channel, replayFrom, client: id },
      `subscribed to ${this.channel} from replayId ${replayFrom}`,
    );
    this.#emit({ type: 'subscribed', client: id, replayFrom });
    this.#settleStart?.resolve();
    this.#settleStart = null;
  }

  #onSubscribeRefused(id: number, reason: string): void {
    // While an attempt waits, its own subscribe's refusal settles it. Otherwise faye re-subscribed by itself (after a
    // re-handshake) and Salesforce refused: without this the client would sit subscribed to nothing. Start over from
    // the checkpoint.
    if (this.#settleAttempt === null) this.#recover(id, 'subscribe', `Salesforce refused the re-subscription: ${reason}`);
  }

  #onAuthFailure(id: number): void {
    if (id !== this.#current || this.#stopped) return;
    this.#emit({ type: 'auth-failed', client: id });
    this.#logger.warn(
      { event: 'platform_events_auth_failed', channel: this.channel, client: id },
      'Salesforce refused the streaming client’s token; refreshing it and creating a new client',
    );
    if (this.#settleAttempt) this.#settleAttempt({ kind: 'auth' });
    else this.#recover(id, 'auth', 'authentication failed');
  }

  #onMessage(id: number, data: unknown): void {
    // While paused, later events are left to the replay from the checkpoint.
    if (id !== this.#current || this.#stopped || this.#paused) return;
    const parsed = eventDataSchema.safeParse(data);
    if (!parsed.success) {
      // Without a replayId the event cannot be checkpointed; the payload is not logged (it holds personal data).
      this.#logger.error({ event: 'platform_event_unreadable', channel: this.channel }, 'skipped a message without a payload or replayId');
      this.#emit({ type: 'skipped', reason: 'no payload or replayId' });
      return;
    }
    const event: PlatformEventMessage = {
      channel: this.channel,
      eventUuid: parsed.data.event.EventUuid ?? null,
      replayId: parsed.data.event.replayId,
      payload: parsed.data.payload,
    };
    if (this.#floor !== null && event.replayId < this.#floor) {
      this.#emit({ type: 'skipped', reason: `replayId ${event.replayId} is from before this subscriber started` });
      return;
    }
    this.#firstReceived ??= event.replayId;
    this.#emit({ type: 'received', replayId: event.replayId, eventUuid: event.eventUuid });
    this.#queue.push({ client: id, event });
    if (this.#queue.length >= this.#maxQueued) this.#pause(id);
    this.#kick();
  }

  /**
   * Backpressure at the queue's bound. Bayeux has no flow control, so the honest way to stop taking events is to
   * close the client (unsubscribing), deliver what is queued, then subscribe again from the checkpoint: Salesforce
   * retains the events meanwhile (72 h) and replays them in order, so nothing is lost and nothing comes twice.
   */
  #pause(id: number): void {
    this.#paused = true;
    const active = this.#active;
    if (active?.id === id) {
      this.#active = null;
      void active.client.close(true);
    }
    this.#emit({ type: 'paused', queued: this.#queue.length });
    this.#logger.info(
      { event: 'platform_events_paused', channel: this.channel, queued: this.#queue.length },
      `paused ${this.channel}: ${this.#queue.length} events wait for the sink; resubscribing from the checkpoint once they are delivered`,
    );
  }

  #kick(): void {
    if (this.#pump !== null) return;
    if (this.#queue.length === 0) {
      if (this.#paused && !this.#stopped) this.#resume();
      return;
    }
    this.#pump = this.#drain().finally(() => {
      this.#pump = null;
      this.#kick();
    });
  }

  /** The paused queue is empty (delivered and checkpointed): subscribe again from the checkpoint. */
  #resume(): void {
    this.#paused = false;
    this.#current = 0;
    const previous = this.#lifecycle;
    this.#lifecycle = previous.then(() => this.#run({ refresh: false, delayMs: 0 }));
  }

  /** Hands queued events to the sink one at a time; checkpoints each after the sink resolved. */
  async #drain(): Promise<void> {
    for (let next = this.#queue.shift(); next !== undefined; next = this.#queue.shift()) {
      if (next.client !== this.#current) continue;
      const { event } = next;
      try {
        await this.#options.sink(event);
      } catch (error) {
        this.#emit({ type: 'sink-failed', replayId: event.replayId, error });
        this.#recover(next.client, 'sink', `the sink failed for replayId ${event.replayId}: ${messageOf(error)}`);
        continue;
      }
      // Checkpointed even when a newer client took over meanwhile: the sink has the event, so it must not come again.
      try {
        await this.#options.checkpoints.save(this.channel, event.replayId);
      } catch (error) {
        this.#emit({ type: 'checkpoint-failed', replayId: event.replayId, error });
        this.#recover(next.client, 'sink', `could not save checkpoint ${event.replayId}: ${messageOf(error)}`);
        continue;
      }
      this.#retries.succeeded();
      // From here on the checkpoint says where to resume.
      this.#floor = null;
      this.#emit({ type: 'checkpointed', replayId: event.replayId });
    }
  }

  /** Drops the failed client and everything queued from it, then subscribes anew from the checkpoint. */
  #recover(id: number, cause: 'auth' | 'sink' | 'subscribe', reason: string): void {
    if (id !== this.#current || this.#stopped) return;
    if (this.#settleAttempt) {
      // The connect loop is waiting for this client's subscription: it takes the failure and retries itself.
      this.#settleAttempt(cause === 'auth' ? { kind: 'auth' } : { kind: 'failed', reason });
      return;
    }
    this.#drop(id, cause);
    this.#state = 'recovering';
    const delayMs = cause === 'auth' ? this.#retries.authDelay() : this.#retries.nextDelay();
    this.#emit({ type: 'resubscribing', reason, delayMs });
    this.#logger.warn(
      { event: 'platform_events_resubscribing', channel: this.channel, reason, delayMs },
      `resubscribing to ${this.channel}`,
    );
    const previous = this.#lifecycle;
    this.#lifecycle = previous.then(() => this.#run({ refresh: cause === 'auth', delayMs }));
  }

  #drop(id: number, cause: 'auth' | 'sink' | 'subscribe'): void {
    if (this.#current === id) this.#current = 0;
    // A recovery resubscribes by itself; a pause must not add a second subscription.
    this.#paused = false;
    this.#queue = this.#queue.filter((queued) => queued.client !== id);
    const active = this.#active;
    if (active?.id === id) {
      this.#active = null;
      // A client refused for auth cannot unsubscribe anyway; the others are told, without waiting.
      void active.client.close(cause !== 'auth');
    }
  }

  #fail(error: Error): void {
    this.#state = 'failed';
    this.#current = -1;
    this.#queue = [];
    const active = this.#active;
    this.#active = null;
    if (active) void active.client.close(true);
    this.#logger.error(
      { event: 'platform_events_failed', channel: this.channel, error: error.message },
      'the Platform Event subscription stopped',
    );
    this.#emit({ type: 'failed', error });
    this.#settleStart?.reject(error);
    this.#settleStart = null;
  }

  #emit(activity: SubscriberActivity): void {
    try {
      this.#options.onActivity?.(activity);
    } catch {
      // An observer's bug must not stop delivery.
    }
  }
}
