import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { z } from 'zod';
import { messageOf, OncekitError } from '../../shared/errors.js';
import { type Logger, silentLogger } from '../../shared/log.js';
import { DEFAULT_PLATFORM_EVENT_CHANNEL, type PlatformEventMessage } from './platform-event-mapping.js';
import type { PlatformEventSink, PlatformEventSubscriber, SubscriberState } from './platform-event-subscriber.js';
import {
  classifyGrpcError,
  compileEventSchema,
  DEFAULT_PUBSUB_ENDPOINT,
  type EventDecoder,
  metadataFor,
  openPubSubClient,
  type PubSubEndpoint,
  type PubSubFailure,
  type PubSubSession,
  parsePubSubEndpoint,
  UndecodableEventError,
  unary,
} from './pubsub-client.js';
import type {
  ConsumerEvent,
  FetchRequest,
  ManagedFetchRequest,
  ManagedFetchResponse,
  PubSubGrpcClient,
  ReplayPreset,
  SchemaInfo,
} from './pubsub-proto.js';
import type { ReplayCheckpointStore } from './replay-checkpoint-store.js';
import { ResubscribeSchedule } from './resubscribe-schedule.js';

/**
 * Subscribes to a Platform Event channel over Salesforce's Pub/Sub API (gRPC, Avro) and hands each event to the same
 * sink as the CometD subscriber, one at a time, in order.
 *
 * Flow control: it asks for `batchSize` events (`num_requested`) and asks for more only once every event received is
 * in the sink (the outbox) and the checkpoint is saved, and, with `backlog`, only while the outbox holds fewer than
 * `backlog.max` undelivered events. So at most `batchSize` events are ever held here, and a slow target leaves the
 * events waiting at Salesforce (72 h retention) rather than in memory.
 *
 * Replay: the checkpoint (the replay id of the last event the sink took, base64) is saved after the events before it
 * are in the sink, under `pubsub:{channel}` (Pub/Sub replay ids are not CometD's). A restart resumes after it (CUSTOM).
 * A replay id Salesforce no longer has: resume from EARLIEST and log it; the outbox's dedup absorbs the repeats, and
 * events between the checkpoint and the earliest retained one may be lost (the log says so).
 *
 * Managed subscription (`managedSubscription`, ManagedSubscribe, Beta at Salesforce): Salesforce keeps the position.
 * The same flow control; instead of saving a checkpoint, the replay id is committed to Salesforce on the stream after
 * the events before it are in the sink, and a new stream resumes after the last committed one.
 *
 * Failures: an event that cannot be decoded (bad Avro bytes, an unknown schema) goes to the sink with `undecodable`
 * set (the mapping refuses it, the sink records it as a dead letter) and the stream goes on. A stream error reconnects
 * with backoff from the checkpoint; UNAUTHENTICATED refreshes the token first; a sink failure saves what was taken,
 * then reconnects from there, so the failed event comes again.
 */

export type PubSubActivity =
  | { readonly type: 'subscribed'; readonly stream: number; readonly replayPreset: ReplayPreset }
  | { readonly type: 'requested'; readonly count: number }
  | { readonly type: 'received'; readonly count: number }
  | { readonly type: 'undecodable'; readonly eventUuid: string | null; readonly reason: string }
  | { readonly type: 'checkpointed'; readonly replayId: string }
  | { readonly type: 'committed'; readonly replayId: string }
  | { readonly type: 'commit-failed'; readonly reason: string }
  | { readonly type: 'sink-failed'; readonly error: unknown }
  | { readonly type: 'auth-failed' }
  | { readonly type: 'token-refreshed' }
  | { readonly type: 'stream-failed'; readonly reason: string }
  | { readonly type: 'checkpoint-expired'; readonly replayId: string }
  | { readonly type: 'waiting-for-outbox'; readonly backlog: number }
  | { readonly type: 'reconnecting'; readonly reason: string; readonly delayMs: number }
  | { readonly type: 'failed'; readonly error: Error }
  | { readonly type: 'stopped' };

export interface PubSubSubscriberOptions {
  readonly session: PubSubSession;
  readonly sink: PlatformEventSink;
  readonly checkpoints: ReplayCheckpointStore;
  /** Default `/event/SaaSquatch_User_Event__e`. */
  readonly channel?: string;
  /** Default api.pubsub.salesforce.com:7443 (TLS). */
  readonly endpoint?: PubSubEndpoint | string;
  /**
   * The developer name (or id) of a managed event subscription: Salesforce keeps its position, and replay ids are
   * committed to it instead of to `checkpoints`. Its topic should be `channel`.
   */
  readonly managedSubscription?: string;
  /** Where to start without a checkpoint: LATEST (default, new events only) or EARLIEST (every retained event). */
  readonly replayWithoutCheckpoint?: 'LATEST' | 'EARLIEST';
  /** Events asked for at a time (`num_requested`); Salesforce serves at most 100. Default 100. */
  readonly batchSize?: number;
  /** Ask for more only while `size()` (the outbox's undelivered events) is below `max`; checked every `pollMs`. */
  readonly backlog?: { readonly size: () => Promise<number>; readonly max: number; readonly pollMs?: number };
  /** Backoff between reconnects, doubling from `initialMs` to `maxMs`. Default 1 s to 60 s. */
  readonly retryDelay?: { readonly initialMs?: number; readonly maxMs?: number };
  /** A stream is counted as subscribed when the server answers or after this long without an error. Default 3 s. */
  readonly subscribeGraceMs?: number;
  /** Reconnect when the server sent nothing (events or keepalive) for this long. Default 300 s (Salesforce: ≤ 270 s). */
  readonly idleTimeoutMs?: number;
  /** HTTP/2 keepalive pings. Default 60 s. */
  readonly keepaliveMs?: number;
  readonly logger?: Logger;
  /** Observes what happens (metrics, status pages, tests). Must not throw. */
  readonly onActivity?: (activity: PubSubActivity) => void;
}

export class PubSubSubscriptionError extends OncekitError {
  constructor(message: string) {
    super('salesforce_pubsub_failed', message);
  }
}

/** The checkpoint stream of a channel's Pub/Sub replay ids. */
export function pubSubCheckpointName(channel: string): string {
  return `pubsub:${channel}`;
}

const storedReplayId = z.string().regex(/^[A-Za-z0-9+/]+={0,2}$/, 'expected a base64 replay id');

type StreamEnd =
  | { readonly kind: 'stopped' }
  | { readonly kind: 'sink'; readonly reason: string }
  | { readonly kind: 'idle' }
  | PubSubFailure;

const CONNECTIVITY_READY = grpc.connectivityState.READY;

/** A Subscribe or ManagedSubscribe stream: their responses share the event fields. */
type StreamCall = grpc.ClientDuplexStream<FetchRequest | ManagedFetchRequest, ManagedFetchResponse>;

type Item = { readonly kind: 'event'; readonly event: ConsumerEvent } | { readonly kind: 'position'; readonly replayId: Buffer };

export function createPubSubSubscriber(options: PubSubSubscriberOptions): PlatformEventSubscriber {
  return new PubSubSubscriber(options);
}

class PubSubSubscriber implements PlatformEventSubscriber {
  readonly channel: string;
  readonly transport = 'pubsub';
  readonly #options: PubSubSubscriberOptions;
  readonly #logger: Logger;
  readonly #batchSize: number;
  readonly #endpoint: PubSubEndpoint;
  readonly #checkpointName: string;
  #state: SubscriberState = 'idle';
  #client: PubSubGrpcClient | null = null;
  #call: StreamCall | null = null;
  #streams = 0;
  #decoders = new Map<string, EventDecoder>();
  /** Replay from EARLIEST on the next stream (the checkpoint's replay id is gone). */
  #earliest = false;
  /** Before the first checkpoint: the first replay id received, so a reconnect from EARLIEST skips older events. */
  #floor: Buffer | null = null;
  #started: Promise<void> | null = null;
  #settleStart: { resolve: () => void; reject: (error: Error) => void } | null = null;
  #lifecycle: Promise<void> = Promise.resolve();
  readonly #retries: ResubscribeSchedule;
  #endStream: ((end: StreamEnd) => void) | null = null;
  #stopping: Promise<void> | null = null;

  constructor(options: PubSubSubscriberOptions) {
    this.#options = options;
    this.#retries = new ResubscribeSchedule(options.retryDelay);
    this.channel = options.channel ?? DEFAULT_PLATFORM_EVENT_CHANNEL;
    this.#checkpointName = pubSubCheckpointName(this.channel);
    this.#logger = options.logger ?? silentLogger;
    this.#batchSize = Math.max(1, Math.min(options.batchSize ?? 100, 100));
    const endpoint = options.endpoint ?? DEFAULT_PUBSUB_ENDPOINT;
    this.#endpoint = typeof endpoint === 'string' ? parsePubSubEndpoint(endpoint) : endpoint;
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
    this.#client = openPubSubClient(
      this.#endpoint,
      this.#options.keepaliveMs === undefined ? {} : { keepaliveMs: this.#options.keepaliveMs },
    );
    this.#lifecycle = this.#run().catch((error: unknown) => this.#fail(error instanceof Error ? error : new Error(String(error))));
    return this.#started;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#shutdown();
    return this.#stopping;
  }

  async #shutdown(): Promise<void> {
    const failed = this.#state === 'failed';
    this.#state = 'stopped';
    this.#retries.wake();
    this.#endStream?.({ kind: 'stopped' });
    await this.#lifecycle;
    this.#client?.close();
    this.#client = null;
    this.#settleStart?.resolve();
    this.#settleStart = null;
    if (!failed) this.#logger.info({ event: 'platform_events_stopped', channel: this.channel }, `stopped the ${this.channel} subscription`);
    this.#emit({ type: 'stopped' });
  }

  get #stopped(): boolean {
    return this.#state === 'stopped' || this.#state === 'failed';
  }

  /** One stream at a time, until stopped: each ends with a reason that decides the next. */
  async #run(): Promise<void> {
    let refresh = false;
    let delayMs = 0;
    for (;;) {
      if (delayMs > 0) await this.#retries.sleep(delayMs);
      if (this.#stopped) return;
      if (refresh) {
        const retryInMs = await this.#retries.refreshSession(() => this.#options.session.refresh(), this.#logger, {
          channel: this.channel,
          transport: 'the Pub/Sub API',
        });
        if (retryInMs !== null) {
          delayMs = retryInMs;
          continue;
        }
        this.#emit({ type: 'token-refreshed' });
        refresh = false;
      }
      let start: { preset: ReplayPreset; replayId: Buffer | null };
      try {
        // A managed subscription starts where Salesforce has it.
        start = this.#options.managedSubscription ? { preset: 'CUSTOM', replayId: null } : await this.#replayStart();
      } catch (error) {
        delayMs = this.#retries.nextDelay();
        this.#logger.error(
          { event: 'platform_events_checkpoint_unreadable', channel: this.channel, error: messageOf(error), retryInMs: delayMs },
          'could not read the replay checkpoint',
        );
        continue;
      }
      // A new stream asks for a batch at once: while the outbox is full, open none (Salesforce closes a stream that
      // asks for nothing for a minute, so a long wait would otherwise take a batch past the bound at every reconnect).
      if (!(await this.#outboxHasRoom(() => false))) return;
      const end = await this.#stream(start);
      if (end.kind === 'stopped' || this.#stopped) return;
      this.#state = 'recovering';
      let reason: string;
      switch (end.kind) {
        case 'auth':
          this.#emit({ type: 'auth-failed' });
          refresh = true;
          delayMs = this.#retries.authDelay();
          reason = `Salesforce refused the token (${end.reason}); refreshing it`;
          break;
        case 'replay-id': {
          const replayId = start.replayId?.toString('base64') ?? '';
          this.#emit({ type: 'checkpoint-expired', replayId });
          this.#logger.error(
            { event: 'platform_events_checkpoint_expired', channel: this.channel, replayId, reason: end.reason },
            `Salesforce no longer has replay id ${replayId}; resuming from EARLIEST (repeats are absorbed by dedup; events between it and the earliest retained one may be lost)`,
          );
          this.#earliest = true;
          delayMs = 0;
          continue;
        }
        case 'not-found':
          if (this.#options.managedSubscription) {
            const name = this.#options.managedSubscription;
            this.#fail(new PubSubSubscriptionError(`Salesforce has no managed subscription ${name}: ${end.reason}`));
            return;
          }
          if (start.preset !== 'CUSTOM' || this.#earliest) {
            this.#fail(
              new PubSubSubscriptionError(`Salesforce has no topic ${this.channel}, or the user may not subscribe to it: ${end.reason}`),
            );
            return;
          }
          delayMs = this.#retries.nextDelay();
          reason = end.reason;
          break;
        case 'idle':
          delayMs = 0;
          reason = 'no response or keepalive from the server in time';
          break;
        default:
          delayMs = this.#retries.nextDelay();
          reason = end.reason;
          this.#emit({ type: 'stream-failed', reason });
      }
      this.#emit({ type: 'reconnecting', reason, delayMs });
      this.#logger.warn(
        { event: 'platform_events_reconnecting', channel: this.channel, reason, delayMs },
        `reconnecting to ${this.channel}`,
      );
    }
  }

  async #replayStart(): Promise<{ preset: ReplayPreset; replayId: Buffer | null }> {
    if (this.#earliest) return { preset: 'EARLIEST', replayId: null };
    const stored = await this.#options.checkpoints.load(this.#checkpointName);
    if (stored !== null) {
      const parsed = storedReplayId.safeParse(String(stored));
      if (!parsed.success) throw new PubSubSubscriptionError(`checkpoint ${this.#checkpointName} is not a base64 replay id`);
      return { preset: 'CUSTOM', replayId: Buffer.from(parsed.data, 'base64') };
    }
    if (this.#floor !== null) return { preset: 'EARLIEST', replayId: null };
    return { preset: this.#options.replayWithoutCheckpoint ?? 'LATEST', replayId: null };
  }

  /** One Subscribe stream: requests, receives and delivers until it ends; resolves with why. */
  #stream(start: { preset: ReplayPreset; replayId: Buffer | null }): Promise<StreamEnd> {
    const client = this.#client;
    if (!client) return Promise.resolve({ kind: 'stopped' });
    let metadata: grpc.Metadata;
    try {
      metadata = metadataFor(this.#options.session.credentials());
    } catch (error) {
      return Promise.resolve({ kind: 'auth', reason: messageOf(error) });
    }
    const id = ++this.#streams;
    const managed = this.#options.managedSubscription ?? null;
    const call = (managed ? client.ManagedSubscribe(metadata) : client.Subscribe(metadata)) as unknown as StreamCall;
    this.#call = call;
    const queue: Item[] = [];
    let outstanding = 0;
    let pumping: Promise<void> | null = null;
    let ended = false;
    let lastTaken: Buffer | null = null;
    let savedTaken: Buffer | null = null;
    let idleTimer: ReturnType<typeof setTimeout> | null = null;
    let graceTimer: ReturnType<typeof setTimeout> | null = null;

    return new Promise<StreamEnd>((resolve) => {
      const finish = (end: StreamEnd): void => {
        if (ended) return;
        ended = true;
        this.#endStream = null;
        if (idleTimer) clearTimeout(idleTimer);
        if (graceTimer) clearTimeout(graceTimer);
        call.removeAllListeners('data');
        call.on('error', () => {});
        call.cancel();
        if (this.#call === call) this.#call = null;
        queue.length = 0;
        // The event in the sink finishes, and what the sink took is checkpointed, before the next stream reads it.
        void (async () => {
          await pumping;
          await persist(lastTaken).catch(() => {});
          resolve(end);
        })();
      };
      this.#endStream = finish;

      const idleTimeoutMs = this.#options.idleTimeoutMs ?? 300_000;
      const resetIdle = (): void => {
        if (idleTimer) clearTimeout(idleTimer);
        idleTimer = setTimeout(() => finish({ kind: 'idle' }), idleTimeoutMs);
        idleTimer.unref?.();
      };

      /** Saves the checkpoint, or commits it to a managed subscription while the stream is open. */
      const persist = async (replayId: Buffer | null): Promise<void> => {
        if (replayId === null || replayId === savedTaken) return;
        if (managed) {
          if (ended) return;
          call.write({ commit_replay_id_request: { commit_request_id: randomUUID(), replay_id: replayId } });
          this.#emit({ type: 'committed', replayId: replayId.toString('base64') });
        } else {
          await this.#save(replayId);
        }
        savedTaken = replayId;
      };

      const subscribed = (): void => {
        if (this.#state === 'subscribed' || ended) return;
        if (graceTimer) clearTimeout(graceTimer);
        this.#state = 'subscribed';
        this.#retries.authenticated();
        this.#logger.info(
          {
            event: 'platform_events_subscribed',
            channel: this.channel,
            transport: 'pubsub',
            ...(managed ? { managedSubscription: managed } : { replayPreset: start.preset }),
            stream: id,
          },
          `subscribed to ${this.channel} over the Pub/Sub API (${managed ? `managed subscription ${managed}` : start.preset})`,
        );
        this.#emit({ type: 'subscribed', stream: id, replayPreset: start.preset });
        this.#settleStart?.resolve();
        this.#settleStart = null;
      };

      const request = (count: number, first: boolean): void => {
        if (count <= 0 || ended) return;
        outstanding += count;
        const message: FetchRequest | ManagedFetchRequest = managed
          ? { ...(first ? { developer_name: managed } : {}), num_requested: count }
          : first
            ? {
                topic_name: this.channel,
                replay_preset: start.preset,
                ...(start.replayId ? { replay_id: start.replayId } : {}),
                num_requested: count,
              }
            : { topic_name: this.channel, num_requested: count };
        call.write(message);
        this.#emit({ type: 'requested', count });
      };

      /** Delivers what was received; when all of it is durable, checkpoints and asks for the next batch. */
      const pump = async (): Promise<void> => {
        for (let item = queue.shift(); item !== undefined && !ended; item = queue.shift()) {
          if (item.kind === 'position') {
            // An idle keepalive's replay id (the tip): nothing is in flight, so the checkpoint may move up to it.
            lastTaken = item.replayId;
            continue;
          }
          const event = await this.#decode(item.event, metadata);
          if (event === null) return finish({ kind: 'failed', reason: 'could not fetch the event schema' });
          if (event === 'auth') return finish({ kind: 'auth', reason: 'GetSchema: unauthenticated' });
          try {
            await this.#options.sink(event);
          } catch (error) {
            this.#emit({ type: 'sink-failed', error });
            return finish({ kind: 'sink', reason: `the sink failed: ${messageOf(error)}` });
          }
          lastTaken = item.event.replay_id;
          this.#retries.succeeded();
        }
        if (ended) return;
        try {
          await persist(lastTaken);
        } catch (error) {
          return finish({ kind: 'sink', reason: `could not save the checkpoint: ${messageOf(error)}` });
        }
        if (outstanding === 0 && queue.length === 0) {
          if (!(await this.#outboxHasRoom(() => ended))) return;
          request(this.#batchSize, false);
        }
      };
      const kick = (): void => {
        if (pumping || ended) return;
        pumping = pump().finally(() => {
          pumping = null;
          if (queue.length > 0) kick();
        });
      };

      call.on('metadata', subscribed);
      call.on('data', (response: ManagedFetchResponse) => {
        if (ended) return;
        subscribed();
        resetIdle();
        const commitError = response.commit_response?.error;
        if (commitError) {
          this.#emit({ type: 'commit-failed', reason: commitError.msg });
          this.#logger.warn(
            { event: 'platform_events_commit_failed', channel: this.channel, managedSubscription: managed, reason: commitError.msg },
            'Salesforce did not commit the replay id; events since the last commit may come again (dedup absorbs them)',
          );
        }
        const events = response.events ?? [];
        if (events.length > outstanding) {
          return finish({ kind: 'failed', reason: `the server sent ${events.length} events where ${outstanding} were asked for` });
        }
        outstanding -= events.length;
        if (events.length === 0) {
          if (isCaughtUpKeepalive(response, outstanding) && queue.length === 0 && !pumping) {
            queue.push({ kind: 'position', replayId: response.latest_replay_id });
          } else return;
        }
        for (const event of events) {
          if (this.#floor !== null && this.#before(event.replay_id)) continue;
          if (!managed && savedTaken === null && this.#floor === null && start.preset !== 'CUSTOM') this.#floor = event.replay_id;
          queue.push({ kind: 'event', event });
        }
        if (events.length > 0) this.#emit({ type: 'received', count: events.length });
        kick();
      });
      call.on('error', (error: unknown) => finish(classifyGrpcError(error)));
      call.on('end', () => finish({ kind: 'failed', reason: 'the server ended the stream' }));

      // A server that answers nothing until it has events: the stream counts as subscribed once the connection is up
      // and no error came within the grace period.
      const graceMs = this.#options.subscribeGraceMs ?? 3000;
      const grace = (): void => {
        if (client.getChannel().getConnectivityState(false) === CONNECTIVITY_READY) subscribed();
        else {
          graceTimer = setTimeout(grace, graceMs);
          graceTimer.unref?.();
        }
      };
      graceTimer = setTimeout(grace, graceMs);
      graceTimer.unref?.();
      resetIdle();
      request(this.#batchSize, true);
    });
  }

  /** True when `replayId` comes before the floor (same-length big-endian ids compare as numbers). */
  #before(replayId: Buffer): boolean {
    const floor = this.#floor;
    return floor !== null && replayId.length === floor.length && Buffer.compare(replayId, floor) < 0;
  }

  async #save(replayId: Buffer): Promise<void> {
    const text = replayId.toString('base64');
    await this.#options.checkpoints.save(this.#checkpointName, text);
    // From here on the checkpoint says where to resume.
    this.#floor = null;
    this.#earliest = false;
    this.#emit({ type: 'checkpointed', replayId: text });
  }

  /** Waits while the outbox holds `backlog.max` or more undelivered events; false when the stream ended meanwhile. */
  async #outboxHasRoom(ended: () => boolean): Promise<boolean> {
    const backlog = this.#options.backlog;
    if (!backlog) return true;
    let announced = false;
    for (;;) {
      if (ended() || this.#stopped) return false;
      let size: number;
      try {
        size = await backlog.size();
      } catch {
        size = Number.POSITIVE_INFINITY;
      }
      if (size < backlog.max) return !ended();
      if (!announced) {
        announced = true;
        // Holding back is part of running: a start waits for it no longer (the relay would not come up on a full outbox).
        this.#settleStart?.resolve();
        this.#settleStart = null;
        this.#emit({ type: 'waiting-for-outbox', backlog: size });
        this.#logger.info(
          { event: 'platform_events_waiting_for_outbox', channel: this.channel, backlog: size, max: backlog.max },
          'the outbox is full; asking Salesforce for more events once it drains',
        );
      }
      await this.#retries.sleep(backlog.pollMs ?? 200);
    }
  }

  /** The event for the sink; `undecodable` set when its payload cannot be read. Null/auth: the schema fetch failed. */
  async #decode(consumed: ConsumerEvent, metadata: grpc.Metadata): Promise<PlatformEventMessage | null | 'auth'> {
    const producer = consumed.event;
    const base = {
      channel: this.channel,
      eventUuid: producer?.id ? producer.id : null,
      replayId: replayNumber(consumed.replay_id),
    };
    const undecodable = (reason: string): PlatformEventMessage => {
      this.#emit({ type: 'undecodable', eventUuid: base.eventUuid, reason });
      return { ...base, payload: {}, undecodable: reason };
    };
    if (!producer) return undecodable('the event has no body');
    let decoder = this.#decoders.get(producer.schema_id);
    if (!decoder) {
      const client = this.#client;
      if (!client) return null;
      let info: SchemaInfo;
      try {
        info = await unary(client.GetSchema.bind(client), { schema_id: producer.schema_id }, metadata);
      } catch (error) {
        const failure = classifyGrpcError(error);
        if (failure.kind === 'auth') return 'auth';
        if (failure.kind === 'not-found') return undecodable(`Salesforce has no schema ${producer.schema_id}`);
        this.#logger.warn({ event: 'platform_events_schema_failed', channel: this.channel, reason: failure.reason }, 'GetSchema failed');
        return null;
      }
      try {
        decoder = compileEventSchema(info.schema_json);
      } catch (error) {
        return undecodable(messageOf(error));
      }
      this.#decoders.set(producer.schema_id, decoder);
    }
    try {
      return { ...base, payload: decoder.decode(producer.payload) };
    } catch (error) {
      if (error instanceof UndecodableEventError) return undecodable(error.message);
      throw error;
    }
  }

  #fail(error: Error): void {
    this.#state = 'failed';
    this.#endStream?.({ kind: 'stopped' });
    this.#logger.error(
      { event: 'platform_events_failed', channel: this.channel, error: error.message },
      'the Platform Event subscription stopped',
    );
    this.#emit({ type: 'failed', error });
    this.#settleStart?.reject(error);
    this.#settleStart = null;
  }

  #emit(activity: PubSubActivity): void {
    try {
      this.#options.onActivity?.(activity);
    } catch {
      // An observer's bug must not stop delivery.
    }
  }
}

/**
 * Whether an empty response's replay id may become the checkpoint: only a keepalive sent while every event this stream
 * asked for is still owed (the server's `pending_num_requested` equals what we wait for), so the server had seen our
 * last request and sent all it had. A response written before our last request reached the server (its pending count
 * is lower) could name a position past events we never asked for, and moving the checkpoint there would skip them.
 */
function isCaughtUpKeepalive(response: ManagedFetchResponse, outstanding: number): boolean {
  return outstanding > 0 && response.pending_num_requested === outstanding && (response.latest_replay_id?.length ?? 0) > 0;
}

/** A replay id as a number for PlatformEventMessage (informational: the checkpoint keeps the bytes). */
function replayNumber(replayId: Buffer): number {
  if (replayId.length === 0 || replayId.length > 8) return -1;
  return Number(BigInt(`0x${replayId.toString('hex')}`));
}
