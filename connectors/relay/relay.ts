import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Connection } from 'jsforce';
import { pino } from 'pino';
import { DEFAULT_SANDBOX_API_KEY } from '../../sandbox/target/defaults.js';
import type { Sandbox } from '../../sandbox/target/server.js';
import { InvalidInputError } from '../../shared/errors.js';
import { idempotencyPlugin } from '../../shared/http/idempotency-plugin.js';
import { Inbox } from '../../shared/inbox/inbox.js';
import type { DecideKeyOptions } from '../../shared/keys/decide.js';
import type { Logger } from '../../shared/log.js';
import { openOutboxStore } from '../../shared/outbox/open-store.js';
import type { OutboxStore } from '../../shared/outbox/types.js';
import { createOutboxWorker, type OutboxWorker, type SettledEvent } from '../../shared/outbox/worker.js';
import type { IdempotencyStore } from '../../shared/store/idempotency-store.js';
import { describeStoreLocation } from '../../shared/store/location.js';
import { openIdempotencyStore } from '../../shared/store/open-idempotency-store.js';
import { basicAuthHeader, graphqlUrl } from '../../shared/target/saasquatch-api.js';
import { type ClosableTransport, undiciTransport } from '../../shared/target/transport-undici.js';
import { identityFieldsFromEnv } from '../salesforce/identity.js';
import {
  DEFAULT_PLATFORM_EVENT_CHANNEL,
  platformEventSourceId,
  platformEventToUserEventInput,
} from '../salesforce/platform-event-mapping.js';
import { createPlatformEventSubscriber, type PlatformEventSubscriber } from '../salesforce/platform-event-subscriber.js';
import { connectSalesforce, type SalesforceSession, salesforceAuthConfigFromEnv } from '../salesforce/salesforce-auth.js';
import { parseSegmentSettings } from '../segment/settings.js';
import { KEYGEN_MAPPING_ENV, parseKeygenEventMapping } from '../webhooks/keygen-event.js';
import { keygenWebhookVerifier } from '../webhooks/keygen-signature.js';
import type { RelayConfig } from './config.js';
import { registerErrorHandler, registerRawJsonParser } from './http-basics.js';
import { inboundAuthChecker } from './inbound-auth.js';
import { createIngest } from './ingest.js';
import { createRelayMetrics } from './metrics.js';
import { operationsRoutes, type ReadinessCheck } from './operations-routes.js';
import { recentEvents } from './recent-events.js';
import { openReplayCheckpointStore } from './replay-checkpoints.js';
import { salesforceRoutes } from './salesforce-routes.js';
import { STATUS_PAGE_HTML } from './status-page.js';
import { webhookRoutes } from './webhook-routes.js';

/** Tenant the embedded sandbox runs under when no target is configured. */
export const SANDBOX_TENANT = 'demo';

export interface RelayDependencies {
  /** Replaces the outbox worker's delivery settings (tests shorten backoff and polling). */
  readonly outbox?: {
    readonly backoffBaseMs?: number;
    readonly backoffMaxMs?: number;
    readonly pollMs?: number;
    readonly batchSize?: number;
  };
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where JSON logs go; default stderr, so stdout keeps the human start-up lines. */
  readonly logStream?: NodeJS.WritableStream;
}

export interface RunningRelay {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly config: RelayConfig;
  /** The target actually used: the configured one, or the embedded sandbox. */
  readonly target: { readonly url: string; readonly tenant: string; readonly sandbox: boolean };
  readonly outbox: OutboxStore;
  readonly sandbox: Sandbox | null;
  readonly subscriber: PlatformEventSubscriber | null;
  /** Stops accepting, lets in-flight requests and deliveries finish, then closes the stores. */
  stop(): Promise<void>;
}

// Everything that can carry a secret in a request log line.
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-oncekit-signature"]',
  'req.headers["keygen-signature"]',
  'req.headers["x-signature"]',
  'req.query.token',
];

/** Fastify's request log fields, with secrets in the query string (the status page's ?token=) redacted. */
function serializeRequest(request: {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url?.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]'),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** Starts the relay: stores, delivery worker, Salesforce (when configured), the HTTP server. */
export async function startRelay(config: RelayConfig, dependencies: RelayDependencies = {}): Promise<RunningRelay> {
  const env = dependencies.env ?? process.env;
  const log = pino(
    {
      level: config.logLevel,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      // Fastify logs each request's URL; the status page link carries the relay secret as ?token=.
      serializers: { req: serializeRequest },
    },
    dependencies.logStream ?? pino.destination(2),
  );
  const logger: Logger = log;
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) await close().catch((error: unknown) => log.error({ err: error }, 'close failed'));
  };

  try {
    let sandbox: Sandbox | null = null;
    let target: { url: string; tenant: string; apiKey: string; sandbox: boolean };
    if (config.target) {
      target = { ...config.target, sandbox: false };
    } else {
      // Loaded only when needed: graphql-js is the sandbox's alone.
      const { startSandbox } = await import('../../sandbox/target/server.js');
      const started = await startSandbox({ port: 0 });
      sandbox = started;
      closers.push(() => started.close());
      target = { url: started.url, tenant: SANDBOX_TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, sandbox: true };
    }

    const idempotencyStore: IdempotencyStore = await openIdempotencyStore(config.store);
    closers.push(() => idempotencyStore.close());
    const outbox = await openOutboxStore(config.store);
    closers.push(() => outbox.close());

    const keys: DecideKeyOptions = { policy: config.invalidKeyPolicy, logger };
    const recent = recentEvents();
    const metrics = createRelayMetrics(async () => outbox.counts(target.tenant));
    const transport: ClosableTransport = undiciTransport({ connections: 16 });
    closers.push(() => transport.close());

    const worker: OutboxWorker = createOutboxWorker({
      store: outbox,
      target: { baseUrl: target.url, tenant: target.tenant, apiKey: target.apiKey, transport: transport.send },
      ...(dependencies.outbox ? { config: dependencies.outbox } : {}),
      label: 'relay',
      logger,
      onSettled: (settled) => recordSettlement(settled, metrics, recent),
    });
    worker.start();
    closers.push(() => worker.stop());

    const ingest = createIngest({ tenant: target.tenant, outbox, metrics, recent, logger, wake: () => worker.notify() });
    const inbox = new Inbox({ store: idempotencyStore, logger });

    // Salesforce is optional: without it, invocable items must carry userId and accountId themselves.
    let salesforce: Promise<SalesforceSession> | null = null;
    const salesforceSession = (): Promise<SalesforceSession> | null => {
      if (!config.salesforceConfigured) return null;
      salesforce ??= connectSalesforce(salesforceAuthConfigFromEnv(env), { logger }).catch((error: unknown) => {
        salesforce = null; // the next request tries again
        throw error;
      });
      return salesforce;
    };
    const connection = async (): Promise<Connection | null> => {
      const session = salesforceSession();
      return session ? (await session).connection : null;
    };
    const identityFields = identityFieldsFromEnv(env);

    let subscriber: PlatformEventSubscriber | null = null;
    const channel = config.platformEventChannel ?? (config.salesforceConfigured ? DEFAULT_PLATFORM_EVENT_CHANNEL : null);
    const sessionPromise = salesforceSession();
    if (channel && sessionPromise) {
      const session = await sessionPromise;
      const checkpoints = await openReplayCheckpointStore(config.store, target.tenant);
      closers.push(() => checkpoints.close());
      subscriber = createPlatformEventSubscriber({
        session,
        channel,
        checkpoints,
        logger,
        // The event is in the outbox before the sink resolves; only then is its replayId checkpointed.
        sink: async (event) => {
          const sourceId = platformEventSourceId(event);
          try {
            const { input, decision } = platformEventToUserEventInput(event, keys);
            await ingest.accept([{ source: 'salesforce-event', sourceId, input, decision }]);
          } catch (error) {
            if (!(error instanceof InvalidInputError)) throw error;
            // A malformed event would come back forever if the sink failed: log it and move on.
            log.error(
              { event: 'platform_event_unmappable', sourceId, issues: error.issues },
              'a Platform Event could not be mapped; it is skipped',
            );
            metrics.deadLetters.inc({ source: 'salesforce-event', reason: 'unmappable' });
          }
        },
      });
      await subscriber.start();
      const started = subscriber;
      closers.push(() => started.stop());
    }

    const keygenMapping = parseKeygenEventMapping(env[KEYGEN_MAPPING_ENV]);
    const segmentSettings = config.segmentSharedSecret
      ? parseSegmentSettings({
          apiKey: target.apiKey,
          tenantAlias: target.tenant,
          apiBaseUrl: target.url,
          invalidKeyPolicy: config.invalidKeyPolicy,
        })
      : null;

    // pino's Logger is a FastifyBaseLogger; typed as such so the app is the plain FastifyInstance plugins expect.
    const app: FastifyInstance = Fastify({ loggerInstance: log as FastifyBaseLogger, bodyLimit: 5 * 1024 * 1024, requestIdHeader: false });
    registerRawJsonParser(app);
    registerErrorHandler(app);
    app.addHook('onResponse', async (request, reply) => {
      metrics.httpDuration.observe(
        { route: request.routeOptions.url ?? 'unmatched', method: request.method, status: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });

    const readiness: ReadinessCheck[] = [
      { name: 'store', check: async () => void (await outbox.counts(target.tenant)) },
      { name: 'target', check: () => targetAnswers(transport, target) },
      ...(subscriber ? [{ name: 'salesforce', check: async () => checkSubscriber(subscriber) }] : []),
    ];
    const startedAt = Date.now();
    await app.register(operationsRoutes, {
      secret: config.relaySecret,
      tenant: target.tenant,
      outbox,
      metrics,
      recent,
      readiness,
      page: STATUS_PAGE_HTML,
      snapshot: () => ({
        tenant: target.tenant,
        target: { url: target.url, sandbox: target.sandbox },
        store: describeStoreLocation(config.store),
        startedAt,
        subscriber: subscriber ? `${subscriber.channel}: ${subscriber.state}` : null,
      }),
    });
    await app.register(webhookRoutes, {
      tenant: target.tenant,
      ingest,
      inbox,
      keys,
      keygen: config.keygen
        ? { verify: keygenWebhookVerifier({ publicKey: config.keygen.publicKey }), host: config.keygen.host, mapping: keygenMapping }
        : null,
      segment:
        config.segmentSharedSecret && segmentSettings ? { sharedSecret: config.segmentSharedSecret, settings: segmentSettings } : null,
    });
    // Request idempotency covers the Salesforce calls: an Apex retry with the same Idempotency-Key replays the answer.
    await app.register(async (scope) => {
      await scope.register(idempotencyPlugin, { store: idempotencyStore, resolveTenant: () => target.tenant });
      await scope.register(salesforceRoutes, {
        ingest,
        authenticate: inboundAuthChecker(config.relaySecret),
        connection,
        identityFields,
        keys,
      });
    });

    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;

    let stopped: Promise<void> | null = null;
    return {
      url: `http://${host}:${port}`,
      app,
      config,
      target: { url: target.url, tenant: target.tenant, sandbox: target.sandbox },
      outbox,
      sandbox,
      subscriber,
      stop() {
        stopped ??= (async () => {
          await app.close(); // stop accepting; in-flight requests finish
          await closeAll(); // then the subscriber, the worker (in-flight batches settle), the stores
        })();
        return stopped;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

function recordSettlement(
  settled: SettledEvent,
  metrics: ReturnType<typeof createRelayMetrics>,
  recent: ReturnType<typeof recentEvents>,
): void {
  const { event, settlement } = settled;
  const source = event.source;
  const latency = Math.max(0, (settlement.attempt?.finishedAt ?? Date.now()) - event.firstAttemptAt) / 1000;
  switch (settlement.to) {
    case 'delivered':
      metrics.settled.inc({ source, outcome: 'forwarded' });
      metrics.deliveryLatency.observe({ source, outcome: 'forwarded' }, latency);
      recent.settled(event.id, 'delivered', null);
      return;
    case 'duplicate':
      metrics.settled.inc({ source, outcome: 'duplicate' });
      metrics.deliveryLatency.observe({ source, outcome: 'duplicate' }, latency);
      recent.settled(event.id, 'duplicate', 'the target had it already (409)');
      return;
    case 'dead':
      metrics.settled.inc({ source, outcome: 'dead' });
      metrics.deadLetters.inc({ source, reason: settlement.attempt?.outcome === 'rejected' ? 'rejected' : 'horizon' });
      recent.settled(event.id, 'dead', settlement.reason);
      return;
    case 'pending':
      metrics.retries.inc({ source });
      recent.settled(event.id, 'retrying', settlement.attempt?.message ?? null);
      return;
  }
}

/** Ready means the target answers our API key: a GraphQL `{ __typename }` costs it nothing. */
async function targetAnswers(transport: ClosableTransport, target: { url: string; tenant: string; apiKey: string }): Promise<void> {
  const response = await transport.send({
    method: 'POST',
    url: graphqlUrl(target.url, target.tenant),
    headers: { authorization: basicAuthHeader(target.apiKey), 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ __typename }' }),
    timeoutMs: 2000,
  });
  if (response.status === 401 || response.status === 403) throw new Error(`the target refused the API key (HTTP ${response.status})`);
  if (response.status >= 500) throw new Error(`the target answered HTTP ${response.status}`);
}

function checkSubscriber(subscriber: PlatformEventSubscriber | null): void {
  if (subscriber && subscriber.state === 'failed') throw new Error(`Platform Event subscription to ${subscriber.channel} failed`);
}
