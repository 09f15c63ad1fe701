import type { FastifyPluginAsync } from 'fastify';
import type { Connection } from 'jsforce';
import { idempotencyPlugin } from '../../shared/http/idempotency-plugin.js';
import type { ReadinessCheck } from '../../shared/http/readiness.js';
import type { DecideKeyOptions } from '../../shared/keys/decide.js';
import type { Logger } from '../../shared/log.js';
import type { Ingest } from '../../shared/outbox/ingest.js';
import { unmappableReason } from '../../shared/outbox/unmappable.js';
import type { CheckpointStore } from '../../shared/state/checkpoints.js';
import type { IdempotencyStore } from '../../shared/state/idempotency.js';
import type { IdentityFields } from './identity.js';
import { inboundAuthChecker } from './inbound-auth.js';
import { invocableRoutes } from './invocable-routes.js';
import {
  DEFAULT_PLATFORM_EVENT_CHANNEL,
  type PlatformEventMessage,
  platformEventSourceId,
  platformEventToUserEventInput,
} from './platform-event-mapping.js';
import {
  createPlatformEventSubscriber,
  type PlatformEventSubscriber,
  type PlatformEventSubscriberOptions,
} from './platform-event-subscriber.js';
import { type PubSubEndpoint, pubSubSessionOf } from './pubsub-client.js';
import { createPubSubSubscriber } from './pubsub-subscriber.js';
import { replayCheckpointsIn } from './replay-checkpoint-store.js';
import { connectSalesforce, type SalesforceAuthConfig, type SalesforceSession } from './salesforce-auth.js';

// What the relay reads from its environment for this connector, and what it shows of it.
export { type IdentityFields, identityFieldsFromEnv } from './identity.js';
export type { PlatformEventSubscriber } from './platform-event-subscriber.js';
export { DEFAULT_PUBSUB_ENDPOINT, type PubSubEndpoint, parsePubSubEndpoint } from './pubsub-client.js';
export { type SalesforceAuthConfig, salesforceAuthConfigFromEnv } from './salesforce-auth.js';

export interface SalesforceConnectorOptions {
  readonly ingest: Ingest;
  readonly keys: DecideKeyOptions;
  readonly logger: Logger;
  /** The secret the Named Credential sends, as a Bearer token or the key of an HMAC of the body. */
  readonly inboundSecret: string;
  /** An Apex retry with the same Idempotency-Key replays the first answer from here. */
  readonly requestIdempotency: { readonly store: IdempotencyStore; readonly tenant: string };
  /** Null when Salesforce is not configured: invocable items must then carry userId and accountId themselves. */
  readonly auth: SalesforceAuthConfig | null;
  readonly identityFields: IdentityFields;
  /** Per Salesforce lookup by the invocable routes; default 10 s. */
  readonly lookupTimeoutMs?: number;
  /** The Platform Event channel; with auth and no channel, the default one. */
  readonly platformEventChannel: string | null;
  /** Pub/Sub API (gRPC, flow control) or CometD (the Streaming API). */
  readonly platformEventTransport: PlatformEventTransport;
  /** Where the Pub/Sub API is; unused with CometD. */
  readonly pubSubEndpoint: PubSubEndpoint;
  /** Pub/Sub only: a managed event subscription, whose position Salesforce keeps (replay ids committed to it). */
  readonly managedSubscription?: string | null;
  /**
   * Flow control: the Pub/Sub subscriber asks for more only while the outbox holds fewer than `max` undelivered events
   * (the relay passes its backlog limit, ONCEKIT_MAX_BACKLOG). Absent: no bound.
   */
  readonly outboxBacklog?: { readonly size: () => Promise<number>; readonly max: number };
  /** Where the subscriber's replay checkpoints live: the relay's state, under this tenant. */
  readonly checkpoints: { readonly store: CheckpointStore; readonly tenant: string };
}

export type PlatformEventTransport = 'pubsub' | 'cometd';

export interface SalesforceConnector {
  /** The invocable routes and, when configured, the Platform Event subscription; both end when the app closes. */
  readonly plugin: FastifyPluginAsync;
  /** The running subscriber once the plugin is registered; null without Platform Events. */
  readonly subscriber: PlatformEventSubscriber | null;
  /** What `/readyz` checks for Salesforce once the plugin is registered. */
  readonly readiness: readonly ReadinessCheck[];
}

/** The ledger's source name for Platform Events. */
export const PLATFORM_EVENT_SOURCE = 'salesforce-event';

/** What the ledger keeps of an unmappable Platform Event: its identity, position and payload, as received. */
function platformEventRaw(event: PlatformEventMessage): unknown {
  return { channel: event.channel, replayId: event.replayId, EventUuid: event.eventUuid, payload: event.payload };
}

/** The Salesforce side of the relay: invocable calls from Apex, and Platform Events from the org. */
export function createSalesforceConnector(options: SalesforceConnectorOptions): SalesforceConnector {
  const { auth, logger } = options;
  // Connected on first use, and again after a failure: the next request tries again.
  let session: Promise<SalesforceSession> | null = null;
  const salesforceSession = (): Promise<SalesforceSession> | null => {
    if (!auth) return null;
    session ??= connectSalesforce(auth, { logger }).catch((error: unknown) => {
      session = null;
      throw error;
    });
    return session;
  };
  const connection = async (): Promise<Connection | null> => {
    const started = salesforceSession();
    return started ? (await started).connection : null;
  };

  let subscriber: PlatformEventSubscriber | null = null;
  const channel = options.platformEventChannel ?? (auth ? DEFAULT_PLATFORM_EVENT_CHANNEL : null);

  // Both transports take the same sink and checkpoints; Pub/Sub adds flow control against the outbox's backlog.
  const createSubscriber = (
    settings: Pick<PlatformEventSubscriberOptions, 'sink' | 'checkpoints' | 'channel' | 'logger'> & { readonly session: SalesforceSession },
  ): PlatformEventSubscriber =>
    options.platformEventTransport === 'cometd'
      ? createPlatformEventSubscriber(settings)
      : createPubSubSubscriber({
          ...settings,
          session: pubSubSessionOf(settings.session),
          endpoint: options.pubSubEndpoint,
          ...(options.managedSubscription ? { managedSubscription: options.managedSubscription } : {}),
          ...(options.outboxBacklog ? { backlog: options.outboxBacklog } : {}),
        });

  async function subscribe(app: Parameters<FastifyPluginAsync>[0]): Promise<void> {
    const started = salesforceSession();
    if (!channel || !started) return;
    const checkpoints = replayCheckpointsIn(options.checkpoints.store, options.checkpoints.tenant);
    const running = createSubscriber({
      session: await started,
      channel,
      checkpoints,
      logger,
      // The event is in the outbox (or, unmappable, a dead letter) before the sink resolves; only then is its replayId
      // checkpointed. A store failure rejects: the subscriber resubscribes from the checkpoint and the event comes again.
      sink: async (event) => {
        const sourceId = platformEventSourceId(event);
        let mapped: ReturnType<typeof platformEventToUserEventInput>;
        try {
          mapped = platformEventToUserEventInput(event, options.keys);
        } catch (error) {
          // Any mapping error, not only bad input: the same event would fail the same way forever, blocking the channel.
          await options.ingest.deadLetter([
            {
              source: PLATFORM_EVENT_SOURCE,
              sourceId,
              dedupKey: event.eventUuid === null ? null : `${PLATFORM_EVENT_SOURCE}:${event.eventUuid}`,
              reason: unmappableReason(error),
              raw: platformEventRaw(event),
            },
          ]);
          return;
        }
        await options.ingest.accept([{ source: PLATFORM_EVENT_SOURCE, sourceId, input: mapped.input, decision: mapped.decision }]);
      },
    });
    subscriber = running;
    // Added before start, so a start that fails still closes the client.
    app.addHook('onClose', () => running.stop());
    await running.start();
  }

  const plugin: FastifyPluginAsync = async (app) => {
    await subscribe(app);
    // Request idempotency covers only these routes: an Apex retry with the same Idempotency-Key replays the answer.
    await app.register(idempotencyPlugin, {
      store: options.requestIdempotency.store,
      resolveTenant: () => options.requestIdempotency.tenant,
    });
    await app.register(invocableRoutes, {
      ingest: options.ingest,
      authenticate: inboundAuthChecker(options.inboundSecret),
      connection,
      identityFields: options.identityFields,
      ...(options.lookupTimeoutMs === undefined ? {} : { lookupTimeoutMs: options.lookupTimeoutMs }),
      keys: options.keys,
    });
  };

  return {
    plugin,
    get subscriber() {
      return subscriber;
    },
    get readiness() {
      const running = subscriber;
      if (!running) return [];
      return [
        {
          name: 'salesforce',
          check: async () => {
            if (running.state === 'failed')
              throw new Error(`Platform Event subscription to ${running.channel} (${running.transport}) failed`);
          },
        },
      ];
    },
  };
}
