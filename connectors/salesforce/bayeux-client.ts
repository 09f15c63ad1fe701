import type { Connection } from 'jsforce';
import { StreamingExtension } from 'jsforce/lib/api/streaming.js';

/**
 * One CometD (Bayeux) client with one channel subscription, on jsforce's faye client: it connects with the
 * connection's access token and API version (`/cometd/XX.X`) and asks to replay from a given replayId. faye's loose
 * types and internals stay in this module; the subscriber sees only the typed events below.
 *
 * faye keeps the token a client was created with, so a refreshed token needs a new client.
 */

/** Why Salesforce refused the subscribe this client asked for. */
export type BayeuxSubscribeFailure =
  | { readonly kind: 'auth' }
  /** Salesforce no longer retains events after the stored replayId asked for (`400::The replayId {…} you provided was invalid`). */
  | { readonly kind: 'expired' }
  | { readonly kind: 'failed'; readonly reason: string };

/** What a client reports to its owner while it runs; called from faye's callbacks. */
export interface BayeuxClientEvents {
  /** An event on the channel, as Salesforce sent it: the owner validates it. */
  readonly message: (data: unknown) => void;
  /**
   * Salesforce refused the token (jsforce's AuthFailure extension on `advice.reconnect: none`, or an auth error on a
   * `/meta/*` reply). The client cannot recover from it. May come more than once for one failure.
   */
  readonly authFailed: () => void;
  /**
   * Salesforce refused a `/meta/subscribe` for another reason. This includes the re-subscriptions faye makes by itself
   * after a re-handshake, which never reach `onAnswer`; a refusal of the first subscribe comes to both.
   */
  readonly subscribeRefused: (reason: string) => void;
}

export interface BayeuxClient {
  /** Calls one of these once Salesforce answered the subscribe. */
  onAnswer(subscribed: () => void, refused: (failure: BayeuxSubscribeFailure) => void): void;
  /**
   * Unsubscribes and disconnects (when `graceful`, waits up to 2 s for Salesforce's answer), then ends what faye
   * left running. Never rejects.
   */
  close(graceful: boolean): Promise<void>;
}

// The few faye client members used. faye ships no types; jsforce's createClient returns its Client.
interface FayeSubscription {
  callback(listener: () => void): void;
  errback(listener: (error: unknown) => void): void;
  cancel(): void;
}
interface FayeClient {
  subscribe(channel: string, listener: (message: unknown) => void): FayeSubscription;
  disconnect(): { then(onDone: () => void, onFailed: () => void): unknown } | undefined;
  disable(feature: string): void;
}
/**
 * faye has no call that ends everything a client has under way: a held long-poll and its timeout timer (110 s at
 * Salesforce) would keep the process alive after stop(), and a client whose handshake failed retries on a timer.
 * These internals (the same ones sfdx-core's streaming client reaches into) let close() end them.
 */
interface FayeClientInternals {
  _advice?: { reconnect?: string };
  _dispatcher?: {
    close?: () => void;
    _envelopes?: Map<
      unknown,
      { timer?: ReturnType<typeof setTimeout> | null; request?: PromiseLike<{ abort?: () => void } | undefined> | null }
    >;
  };
}

interface BayeuxMessage {
  readonly channel?: string;
  readonly successful?: boolean;
  readonly error?: string;
  readonly advice?: { readonly reconnect?: string };
  readonly ext?: { readonly sfdc?: { readonly failureReason?: string } };
}

/** Creates a client for `channel`, replaying from `replayFrom` (a replayId, -1 new events only, -2 every retained one). */
export function openBayeuxClient(connection: Connection, channel: string, replayFrom: number, events: BayeuxClientEvents): BayeuxClient {
  const client = connection.streaming.createClient([
    new StreamingExtension.AuthFailure(() => events.authFailed()),
    // Auth errors that come without `advice.reconnect: none`, and failed re-subscriptions faye makes on its own
    // after a re-handshake (those never reach the subscription's errback).
    { incoming: (message: BayeuxMessage, callback: (message: BayeuxMessage) => void) => watch(message, callback, events) },
    new StreamingExtension.Replay(channel, replayFrom),
  ]) as unknown as FayeClient;
  // Salesforce offers long-polling only; skip faye's WebSocket probe.
  client.disable('websocket');
  const subscription = client.subscribe(channel, (data) => events.message(data));
  return {
    onAnswer(subscribed, refused) {
      subscription.callback(() => subscribed());
      subscription.errback((error) => refused(classifySubscribeError(error, replayFrom)));
    },
    close: (graceful) => close(client, subscription, graceful),
  };
}

function watch(message: BayeuxMessage, callback: (message: BayeuxMessage) => void, events: BayeuxClientEvents): void {
  callback(message);
  if (message.successful !== false) return;
  if (isAuthError(message)) events.authFailed();
  else if (message.channel === '/meta/subscribe') events.subscribeRefused(message.error ?? 'no reason given');
}

function isAuthError(message: BayeuxMessage): boolean {
  if (message.channel !== '/meta/handshake' && message.channel !== '/meta/connect' && message.channel !== '/meta/subscribe') return false;
  const text = `${message.error ?? ''} ${message.ext?.sfdc?.failureReason ?? ''}`;
  // Not faye's "401::Unknown client" (an expired Bayeux session, which faye re-handshakes by itself).
  return /Authentication invalid|Handshake denied/i.test(text);
}

function classifySubscribeError(error: unknown, replayFrom: number): BayeuxSubscribeFailure {
  const text = errorText(error);
  if (/Authentication invalid|Handshake denied/i.test(text)) return { kind: 'auth' };
  // Only a stored replayId can fall out of retention; -1 and -2 cannot.
  if (replayFrom >= 0 && /replayId/i.test(text) && /invalid/i.test(text)) return { kind: 'expired' };
  return { kind: 'failed', reason: text };
}

function errorText(error: unknown): string {
  if (error !== null && typeof error === 'object') {
    const { code, message } = error as { code?: unknown; message?: unknown };
    const parts = [code, message].filter((part) => part !== null && part !== undefined && part !== '');
    if (parts.length > 0) return parts.join(': ');
  }
  return String(error);
}

async function close(client: FayeClient, subscription: FayeSubscription, graceful: boolean): Promise<void> {
  let ack: ReturnType<FayeClient['disconnect']>;
  try {
    subscription.cancel();
    ack = client.disconnect();
  } catch {
    // a client that never connected has nothing to cancel or disconnect
  }
  if (graceful && ack) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      ack.then(done, done);
    });
  }
  try {
    const internals = client as unknown as FayeClientInternals;
    if (internals._advice) internals._advice.reconnect = 'none';
    const dispatcher = internals._dispatcher;
    for (const envelope of dispatcher?._envelopes?.values() ?? []) {
      if (envelope.timer) clearTimeout(envelope.timer);
      envelope.request?.then(
        (request) => {
          try {
            request?.abort?.();
          } catch {
            // already closed
          }
        },
        () => {},
      );
    }
    dispatcher?._envelopes?.clear();
    dispatcher?.close?.();
  } catch {
    // Best effort: a faye version without these internals leaves its long-poll to time out.
  }
}
