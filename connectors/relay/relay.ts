import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { messageOf, StateLostError } from '../../shared/errors.js';
import { registerErrorHandler, registerRawJsonParser } from '../../shared/http/http-basics.js';
import { Inbox } from '../../shared/inbox/inbox.js';
import type { DecideKeyOptions } from '../../shared/keys/decide.js';
import type { Logger } from '../../shared/log.js';
import { outboxDeliveryConfig } from '../../shared/outbox/config.js';
import { handOverEnqueue } from '../../shared/outbox/hand-over.js';
import type { Ingest } from '../../shared/outbox/ingest.js';
import type { OutboxStore } from '../../shared/outbox/types.js';
import { createOutboxWorker } from '../../shared/outbox/worker.js';
import { describeStoreLocation } from '../../shared/state/location.js';
import { openState, type State } from '../../shared/state/open-state.js';
import { createTargetClient, requireTargetAnswers, TargetCheckError, type TargetClient } from '../../shared/target/client.js';
import { targetId } from '../../shared/target/target-id.js';
import { undiciTransport } from '../../shared/target/transport-undici.js';
import { keygenWebhookPlugin } from '../keygen/webhook-plugin.js';
import { createSalesforceConnector, type PlatformEventSubscriber, type SalesforceConnector } from '../salesforce/relay-plugin.js';
import { segmentWebhookPlugin } from '../segment/webhook-plugin.js';
import { createBackpressure } from './backpressure.js';
import { RELAY_SETTING_NAMES, type RelayConfig } from './config.js';
import { consolePage } from './console-routes.js';
import { startHousekeeping } from './housekeeping.js';
import { createIngest } from './ingest.js';
import { type Heartbeat, instanceRegistry, RELAY_VERSION, startHeartbeat } from './instances.js';
import { createRelayLogger } from './logger.js';
import { createRelayMetrics, type RelayMetrics } from './metrics.js';
import { operationsRoutes } from './operations-routes.js';
import { recentEvents } from './recent-events.js';
import { recordSettlement } from './settlements.js';

/** Where the relay forwards: the configured target, or a sandbox its caller started (then `sandbox` is true). */
export interface RelayTarget {
  readonly url: string;
  readonly tenant: string;
  readonly apiKey: string;
  readonly sandbox?: boolean;
  /** The target's identity in the outbox; default `targetId(url)`. A sandbox whose port changes keeps one. */
  readonly id?: string;
}

/** The relay's configuration with its target decided. */
export type StartRelayConfig = Omit<RelayConfig, 'target'> & { readonly target: RelayTarget };

export interface RelayDependencies {
  /** Replaces the outbox worker's delivery settings (tests shorten backoff and polling). */
  readonly outbox?: {
    readonly backoffBaseMs?: number;
    readonly backoffMaxMs?: number;
    readonly pollMs?: number;
    readonly batchSize?: number;
  };
  /** Where JSON logs go; default stderr, so stdout keeps the human start-up lines. */
  readonly logStream?: NodeJS.WritableStream;
  /** How long one reading of the backlog serves the event routes (default 1000 ms; tests use 0). */
  readonly backpressureCacheMs?: number;
}

export interface RunningRelay {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly config: StartRelayConfig;
  readonly target: { readonly url: string; readonly tenant: string; readonly sandbox: boolean; readonly id: string };
  readonly outbox: OutboxStore;
  readonly subscriber: PlatformEventSubscriber | null;
  /** Stops accepting, lets in-flight requests and deliveries finish, then closes the stores. */
  stop(): Promise<void>;
}

/** Starts the relay: stores, delivery worker, the connectors' plugins, operations, the HTTP server. Reads no environment. */
export async function startRelay(config: StartRelayConfig, dependencies: RelayDependencies = {}): Promise<RunningRelay> {
  const log = createRelayLogger(config.logLevel, dependencies.logStream);
  const { target } = config;
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const close of closers.reverse()) await close().catch((error: unknown) => log.error({ err: error }, 'close failed'));
  };
  try {
    // Redis: refused unless it persists (or ONCEKIT_REDIS_ALLOW_VOLATILE=1, which warns through `log`).
    const state = await openState(config.store, {
      redisKeyPrefix: config.redis.keyPrefix,
      allowVolatile: config.redis.allowVolatile,
      logger: log,
    });
    closers.push(() => state.close());
    const { outbox } = state;
    const housekeeping = startHousekeeping({ state, retentionMs: config.retentionMs, logger: log });
    closers.push(() => housekeeping.stop());
    const transport = undiciTransport({ connections: 16 });
    closers.push(() => transport.close());
    // Ready means the target takes our API key; the probe costs it nothing.
    const probe = createTargetClient({ baseUrl: target.url, tenant: target.tenant, apiKey: target.apiKey, transport: transport.send });
    await checkTargetAtStart(probe, target, log);

    const recent = recentEvents();
    const targetKey = target.id ?? targetId(target.url);
    const metrics = createRelayMetrics({
      outboxEvents: () => outbox.counts(target.tenant, { target: targetKey }),
      possibleDuplicates: () => outbox.countPossibleDuplicates(target.tenant, { target: targetKey }),
    });
    const workerConfig = outboxDeliveryConfig({ ...config.delivery, ...dependencies.outbox });
    // The instance's id is its worker's owner token: the ledger's attempts name it (handledBy).
    let heartbeat: Heartbeat | null = null;
    const worker = createOutboxWorker({
      store: outbox,
      target: { baseUrl: target.url, tenant: target.tenant, apiKey: target.apiKey, transport: transport.send, id: targetKey },
      config: { ...config.delivery, ...dependencies.outbox },
      label: 'relay',
      logger: log,
      onSettled: (settled) => {
        recordSettlement(settled, metrics, recent);
        heartbeat?.note(settled.settlement.to);
      },
    });
    heartbeat = startHeartbeat({
      checkpoints: state.checkpoints,
      tenant: target.tenant,
      target: targetKey,
      id: worker.owner,
      version: RELAY_VERSION,
      onError: (error) => log.warn({ event: 'heartbeat_failed', error: messageOf(error) }, 'heartbeat not saved'),
    });
    const beating = heartbeat;
    closers.push(() => beating.stop());
    worker.start();
    closers.push(() => worker.stop());
    const backlog = async (): Promise<number> => {
      const counts = await outbox.counts(target.tenant, { target: targetKey });
      return counts.pending + counts.leased;
    };
    const backpressure = createBackpressure({
      backlog,
      deliveryLagMs: async () => {
        const dueAt = await outbox.nextDueAt(target.tenant, targetKey);
        return dueAt === null ? 0 : Math.max(0, Date.now() - dueAt);
      },
      maxBacklog: config.maxBacklog,
      maxDeliveryLagMs: config.maxDeliveryLagMs,
      settingNames: { maxBacklog: RELAY_SETTING_NAMES.maxBacklog, maxDeliveryLag: RELAY_SETTING_NAMES.maxDeliveryLag },
      ...(dependencies.backpressureCacheMs === undefined ? {} : { cacheMs: dependencies.backpressureCacheMs }),
    });
    const handOver = handOverEnqueue(outbox, worker, { groupCommit: config.groupCommit, logger: log });
    const ingest = createIngest({
      tenant: target.tenant,
      target: targetKey,
      // Hands the events to an idle delivery loop, leased in the same commit, or wakes one loop per batch.
      // ONCEKIT_GROUP_COMMIT=off (diagnostic): each request commits by itself, the benchmark's baseline.
      enqueue: async (events) => {
        const results = await handOver(events);
        backpressure.noteEnqueued(results.filter((result) => result.outcome !== 'existing').length);
        return results;
      },
      // Looked up at each call, not bound once: a test can make the store fail for a while.
      recordUnmappable: (events) => outbox.recordUnmappable(events),
      metrics,
      recent,
      logger: log,
    });
    const keys: DecideKeyOptions = { policy: config.invalidKeyPolicy, logger: log };

    const app = createRelayApp(log, metrics);
    const stateLoss = stateLossReporter(log);
    app.addHook('onError', async (_request, _reply, error) => stateLoss.note(error));
    closers.push(() => app.close()); // closed first: no new requests, in-flight ones finish, then the plugins' onClose
    backpressure.register(app);
    const salesforce = await registerConnectors(app, { config, ingest, keys, state, log, backlog });
    const startedAt = Date.now();
    await app.register(operationsRoutes, {
      secret: config.relaySecret,
      tenant: target.tenant,
      target: targetKey,
      outbox,
      metrics,
      recent,
      readiness: [
        {
          name: 'store',
          check: async () => {
            try {
              await outbox.counts(target.tenant);
            } catch (error) {
              stateLoss.note(error);
              throw error;
            }
          },
        },
        { name: 'target', check: async () => requireTargetAnswers(await probe.checkCredentials({ timeoutMs: 2000 })) },
        { name: 'backlog', check: () => backpressure.check() },
        ...salesforce.readiness,
      ],
      page: consolePage(),
      keyWindowMs: workerConfig.keyWindowMs,
      instances: instanceRegistry(state.checkpoints, target.tenant),
      wake: () => worker.notify(),
      snapshot: () => ({
        tenant: target.tenant,
        target: { url: target.url, sandbox: target.sandbox === true },
        store: describeStoreLocation(config.store),
        startedAt,
        subscriber: salesforce.subscriber
          ? `${salesforce.subscriber.channel} (${salesforce.subscriber.transport}): ${salesforce.subscriber.state}`
          : null,
      }),
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
      target: { url: target.url, tenant: target.tenant, sandbox: target.sandbox === true, id: targetKey },
      outbox,
      subscriber: salesforce.subscriber,
      stop() {
        stopped ??= closeAll();
        return stopped;
      },
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * A key the target refuses stops the relay at start (queueing events it can never deliver helps nobody); a target that
 * does not answer only warns: the outbox keeps events until it does, and `/readyz` says not ready meanwhile.
 */
async function checkTargetAtStart(probe: TargetClient, target: RelayTarget, log: Logger): Promise<void> {
  const check = await probe.checkCredentials({ timeoutMs: START_CHECK_TIMEOUT_MS });
  if (check.ok) return;
  const { failure } = check;
  if (failure.kind === 'auth') {
    throw new TargetCheckError(
      failure,
      `the target at ${target.url} refused the API key in ${RELAY_SETTING_NAMES.apiKey} for tenant "${target.tenant}" ` +
        `(HTTP ${failure.status}${failure.reason === 'forbidden' ? ': the key may not log events' : ': unknown key or tenant'}); ` +
        "set the tenant's API key and start again",
    );
  }
  log.warn(
    { event: 'target_unavailable_at_start', target: target.url, failure: failure.kind, status: failure.status },
    `the target at ${target.url} did not answer as expected at start (${failure.message}); events are accepted into the outbox and delivered once it answers; /readyz is not ready until then`,
  );
}

const START_CHECK_TIMEOUT_MS = 5000;

/** Registers each connector's plugin: Salesforce (invocable routes, Platform Events), Segment and Keygen webhooks. */
async function registerConnectors(
  app: FastifyInstance,
  parts: {
    readonly config: StartRelayConfig;
    readonly ingest: Ingest;
    readonly keys: DecideKeyOptions;
    readonly state: State;
    readonly log: Logger;
    /** Undelivered events for the relay's tenant and target, from the store. */
    readonly backlog: () => Promise<number>;
  },
): Promise<SalesforceConnector> {
  const { config, ingest, keys, state, log } = parts;
  const { target } = config;
  const salesforce = createSalesforceConnector({
    ingest,
    keys,
    logger: log,
    inboundSecret: config.relaySecret,
    requestIdempotency: { store: state.idempotency, tenant: target.tenant },
    auth: config.salesforceAuth,
    identityFields: config.identityFields,
    platformEventChannel: config.platformEventChannel,
    platformEventTransport: config.platformEventTransport,
    pubSubEndpoint: config.pubSubEndpoint,
    managedSubscription: config.managedSubscription,
    ...(config.maxBacklog === null ? {} : { outboxBacklog: { size: parts.backlog, max: config.maxBacklog } }),
    checkpoints: { store: state.checkpoints, tenant: target.tenant },
  });
  await app.register(salesforce.plugin);
  await app.register(segmentWebhookPlugin, {
    ingest,
    logger: log,
    sharedSecretSetting: RELAY_SETTING_NAMES.segmentSharedSecret,
    webhook: config.segmentSharedSecret
      ? {
          sharedSecret: config.segmentSharedSecret,
          target: { apiBaseUrl: target.url, tenantAlias: target.tenant, apiKey: target.apiKey },
          invalidKeyPolicy: config.invalidKeyPolicy,
        }
      : null,
  });
  await app.register(keygenWebhookPlugin, {
    tenant: target.tenant,
    ingest,
    inbox: new Inbox({ store: state.idempotency, logger: log }),
    keys,
    publicKeySetting: RELAY_SETTING_NAMES.keygenPublicKey,
    webhook: config.keygen ? { ...config.keygen, mapping: config.keygenMapping } : null,
  });
  return salesforce;
}

/**
 * Logs once, as an error, that the store's data was lost (StateLostError): every request and readiness probe after it
 * fails the same way, and one line is what an operator needs.
 */
function stateLossReporter(log: Logger): { note(error: unknown): void } {
  let reported = false;
  return {
    note(error) {
      if (reported || !(error instanceof StateLostError)) return;
      reported = true;
      log.error(
        { event: 'state_lost', error: error.message },
        'DATA LOST: the store no longer holds the state this relay wrote; event routes answer 503 until it is restarted',
      );
    },
  };
}

/** Fastify with the relay's JSON parser (raw bytes kept for signatures), error answers and request metrics. */
function createRelayApp(log: ReturnType<typeof createRelayLogger>, metrics: RelayMetrics): FastifyInstance {
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
  return app;
}
