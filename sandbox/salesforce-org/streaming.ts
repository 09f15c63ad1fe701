import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';

export interface RecordedBayeuxMessage {
  readonly channel: string;
  readonly clientId: string | undefined;
  readonly authorized: boolean;
  readonly replay: unknown;
}

export interface PublishedEvent {
  readonly replayId: number;
  readonly eventUuid: string | null;
}

/**
 * The faye Bayeux endpoint at `/cometd/XX.X`: every message needs `Authorization: OAuth <token>`, a bad token is
 * answered as Salesforce does, and durable replay works from a retained event log.
 */
export interface StreamingApi {
  readonly bayeux: readonly RecordedBayeuxMessage[];
  /** Takes a CometD request and answers it; false for any other request. */
  handle(request: IncomingMessage, response: ServerResponse): boolean;
  publish(
    channel: string,
    payload: Readonly<Record<string, unknown>>,
    options?: { readonly eventUuid?: string | null },
  ): Promise<PublishedEvent>;
  expireEventsThrough(channel: string, replayId: number): void;
  /** Answers every held long-poll now, as when the tokens were invalidated. */
  flushConnections(): void;
  openRequests(): number;
  close(): void;
}

interface FayePublication {
  then(onDone: () => void, onFailed: (error: unknown) => void): unknown;
}
interface FayeAdapter {
  check(request: IncomingMessage): boolean;
  handle(request: IncomingMessage, response: ServerResponse): void;
  addExtension(extension: object): void;
  getClient(): { publish(channel: string, data: unknown): FayePublication; disconnect(): void };
  close(): void;
  // The engine is reached for one fake-only shortcut: answering held long-polls when tokens are invalidated.
  _server: { _engine: { flushConnection(clientId: string): void } };
}
type FayeModule = { NodeAdapter: new (options: { mount: string; timeout: number }) => FayeAdapter };
const faye = createRequire(import.meta.url)('faye') as FayeModule;

interface BayeuxMessage {
  channel: string;
  clientId?: string;
  subscription?: string;
  successful?: boolean;
  error?: string;
  advice?: Record<string, unknown>;
  ext?: Record<string, unknown>;
  supportedConnectionTypes?: string[];
  data?: { event?: { replayId?: number } };
}
type Next = (message: BayeuxMessage | null) => void;

interface RetainedEvent {
  readonly replayId: number;
  readonly data: unknown;
}

export function createStreamingApi(settings: {
  readonly apiVersion: string;
  readonly timeoutSeconds: number;
  readonly authorized: (request: IncomingMessage) => boolean;
}): StreamingApi {
  const { apiVersion, authorized } = settings;
  const bayeux: RecordedBayeuxMessage[] = [];
  const retained = new Map<string, RetainedEvent[]>();
  let lastReplayId = 1000;
  let openCometd = 0;

  // Per Bayeux client: the position in each channel it has been given events up to.
  const positions = new Map<string, Map<string, number>>();
  const pendingSubscribes = new Map<string, number>();
  const requestClients = new WeakMap<IncomingMessage, string>();
  const knownClients = new Set<string>();

  const adapter = new faye.NodeAdapter({ mount: `/cometd/${apiVersion}`, timeout: settings.timeoutSeconds });
  const publisher = adapter.getClient();
  const publishData = (channel: string, data: unknown): Promise<void> =>
    new Promise((resolve, reject) => {
      publisher.publish(channel, data).then(resolve, reject);
    });

  adapter.addExtension({
    incoming(message: BayeuxMessage, request: IncomingMessage | null, next: Next) {
      // The in-process publisher has no request; it is the org itself.
      const ok = !request || authorized(request);
      if (request && message.channel.startsWith('/meta/')) {
        const replay = (message.ext?.replay as Record<string, unknown> | undefined)?.[message.subscription ?? ''];
        bayeux.push({ channel: message.channel, clientId: message.clientId, authorized: ok, replay });
      }
      if (request && message.clientId) requestClients.set(request, message.clientId);
      if (!ok) {
        message.error = message.channel === '/meta/handshake' ? '403::Handshake denied' : '401::Authentication invalid';
        return next(message);
      }
      if (request && message.channel === '/meta/subscribe' && message.clientId && message.subscription) {
        const start = subscribeStart(
          message.subscription,
          (message.ext?.replay as Record<string, unknown> | undefined)?.[message.subscription],
        );
        if (typeof start === 'string') message.error = start;
        else pendingSubscribes.set(`${message.clientId} ${message.subscription}`, start);
      }
      next(message);
    },
    outgoing(reply: BayeuxMessage, request: IncomingMessage | null, next: Next) {
      const authFailure = reply.error === '403::Handshake denied' || reply.error === '401::Authentication invalid';
      if (reply.channel === '/meta/handshake') {
        if (authFailure) {
          reply.advice = { reconnect: 'none' };
          reply.ext = { sfdc: { failureReason: '401::Authentication invalid' }, replay: true };
        } else if (reply.successful && request) {
          // Not for the in-process publisher: it must keep its in-process transport.
          if (reply.clientId) knownClients.add(reply.clientId);
          reply.ext = { replay: true, 'payload.format': true };
          reply.supportedConnectionTypes = ['long-polling'];
        }
        return next(reply);
      }
      if (reply.channel === '/meta/connect' && authFailure) {
        reply.advice = { reconnect: 'none' };
        return next(reply);
      }
      if (reply.channel === '/meta/subscribe' && reply.successful && reply.clientId && reply.subscription) {
        const channel = reply.subscription;
        const key = `${reply.clientId} ${channel}`;
        const start = pendingSubscribes.get(key) ?? latest(channel);
        pendingSubscribes.delete(key);
        const clientPositions = positions.get(reply.clientId) ?? new Map<string, number>();
        clientPositions.set(channel, start);
        positions.set(reply.clientId, clientPositions);
        // Replay: publish the retained events again; the delivery filter below passes each client only what is
        // after its own position, so the others do not get them twice.
        const replays = (retained.get(channel) ?? []).filter((event) => event.replayId > start);
        next(reply);
        for (const event of replays) void publishData(channel, event.data);
        return;
      }
      const replayId = reply.data?.event?.replayId;
      const clientId = request ? requestClients.get(request) : undefined;
      if (typeof replayId === 'number' && clientId !== undefined) {
        const clientPositions = positions.get(clientId);
        const position = clientPositions?.get(reply.channel);
        if (clientPositions === undefined || position === undefined) return next(reply);
        if (replayId <= position) return next(null);
        clientPositions.set(reply.channel, replayId);
      }
      next(reply);
    },
  });

  function latest(channel: string): number {
    return retained.get(channel)?.at(-1)?.replayId ?? lastReplayId;
  }

  /** Where a subscription starts, or the error Salesforce gives for a replayId it no longer retains. */
  function subscribeStart(channel: string, replay: unknown): number | string {
    const events = retained.get(channel) ?? [];
    if (replay === undefined || replay === -1) return latest(channel);
    if (replay === -2) return events.length > 0 ? (events[0] as RetainedEvent).replayId - 1 : latest(channel);
    if (typeof replay === 'number' && events.some((event) => event.replayId === replay)) return replay;
    return `400::The replayId {${String(replay)}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.`;
  }

  return {
    bayeux,
    handle(request, response) {
      if (!adapter.check(request)) return false;
      openCometd++;
      response.on('close', () => openCometd--);
      adapter.handle(request, response);
      return true;
    },
    async publish(channel, payload, publishOptions = {}) {
      const replayId = ++lastReplayId;
      const eventUuid = publishOptions.eventUuid === undefined ? randomUUID() : publishOptions.eventUuid;
      const data = {
        schema: 'fake-schema-1',
        payload: { CreatedDate: new Date().toISOString(), CreatedById: '005000000000001AAA', ...payload },
        // Salesforce adds EventUuid to the event header from API 52.0.
        event: { replayId, ...(eventUuid !== null && Number(apiVersion) >= 52 ? { EventUuid: eventUuid } : {}) },
      };
      const list = retained.get(channel) ?? [];
      list.push({ replayId, data });
      retained.set(channel, list);
      await publishData(channel, data);
      return { replayId, eventUuid };
    },
    expireEventsThrough(channel, replayId) {
      retained.set(
        channel,
        (retained.get(channel) ?? []).filter((event) => event.replayId > replayId),
      );
    },
    flushConnections() {
      for (const clientId of knownClients) adapter._server._engine.flushConnection(clientId);
    },
    openRequests: () => openCometd,
    close() {
      publisher.disconnect();
      adapter.close();
    },
  };
}
