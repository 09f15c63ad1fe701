import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ReadinessCheck } from '../../shared/http/readiness.js';
import { isPossibleDuplicate } from '../../shared/outbox/ledger.js';
import type { OutboxStore } from '../../shared/outbox/types.js';
import { expiredLinkPage, registerConsoleRoutes } from './console-routes.js';
import type { InstanceRegistry } from './instances.js';
import type { RelayMetrics } from './metrics.js';
import type { RecentEvents } from './recent-events.js';

/**
 * Prefix of the session cookie's name. Browsers share cookies between the ports of one host, so each relay secret gets
 * a cookie of its own (`oncekit_session_<digest>`): opening a second relay on the same machine does not sign the
 * first one out.
 */
export const SESSION_COOKIE = 'oncekit_session';

export interface StatusSnapshot {
  readonly tenant: string;
  readonly target: { readonly url: string; readonly sandbox: boolean };
  readonly store: string;
  readonly startedAt: number;
  readonly subscriber: string | null;
}

export interface OperationsRoutesOptions {
  readonly secret: string;
  readonly tenant: string;
  /** The relay's target identity: the outbox tile counts its events. */
  readonly target: string;
  readonly outbox: OutboxStore;
  readonly metrics: RelayMetrics;
  readonly recent: RecentEvents;
  readonly readiness: readonly ReadinessCheck[];
  readonly snapshot: () => StatusSnapshot;
  /** The console's HTML. */
  readonly page: string;
  /** The target's key window: the console's retries refuse events that may have landed longer ago. */
  readonly keyWindowMs: number;
  readonly instances: InstanceRegistry;
  /** Wakes the delivery worker (after a retry from the console). */
  readonly wake: () => void;
}

function sameSecret(given: string, secret: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Every value sent for the cookie `name`. The parser keeps only the first cookie of a name, and a browser may send
 * several (other paths, a sibling subdomain's), so each pair is parsed on its own. A malformed value comes back as
 * sent and simply does not match; nothing here throws.
 */
function cookieValues(app: FastifyInstance, request: FastifyRequest, name: string): string[] {
  const header = request.headers.cookie;
  if (!header) return [];
  return header.split(';').flatMap((pair) => {
    const value = app.parseCookie(pair)[name];
    return value === undefined ? [] : [value];
  });
}

/** The target's address without any user name or password it may carry. */
function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (!parsed.username && !parsed.password) return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url;
  }
}

const ledgerQuerySchema = z.union([
  z.object({ key: z.string().min(1, 'must not be empty') }),
  z.object({ sourceId: z.string().min(1, 'must not be empty') }),
]);

/**
 * Health, readiness, metrics and the status page. Health and readiness are open (they reveal nothing); metrics, the
 * page and its data need the relay secret: a Bearer header (Prometheus, curl), or the session cookie the page gets
 * from the `?token=` link the relay prints at start-up, as Jupyter does.
 */
export const operationsRoutes: FastifyPluginAsync<OperationsRoutesOptions> = async (app, options) => {
  await app.register(fastifyCookie);
  // The browser keeps a token derived from the secret, never the secret itself.
  const sessionToken = createHmac('sha256', options.secret).update('oncekit status page session').digest('base64url');
  const cookieName = `${SESSION_COOKIE}_${createHash('sha256').update(sessionToken).digest('hex').slice(0, 12)}`;
  const authorizedBy = (request: FastifyRequest): 'bearer' | 'cookie' | null => {
    const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.authorization ?? '')?.[1];
    if (bearer !== undefined && sameSecret(bearer.trim(), options.secret)) return 'bearer';
    return cookieValues(app, request, cookieName).some((session) => sameSecret(session, sessionToken)) ? 'cookie' : null;
  };
  const authorized = (request: FastifyRequest): boolean => authorizedBy(request) !== null;
  const refuse = (reply: FastifyReply) =>
    reply.code(401).header('www-authenticate', 'Bearer realm="oncekit"').send({
      error: 'unauthorized',
      message: 'open the link with ?token= that the relay printed at start-up, or send Authorization: Bearer <relay secret>',
    });
  // A person's browser asking for a page gets a page saying what to do; scripts get the JSON above.
  const refusePage = (request: FastifyRequest, reply: FastifyReply) =>
    /text\/html/.test(request.headers.accept ?? '') && !request.url.startsWith('/api/')
      ? reply
          .code(401)
          .header('www-authenticate', 'Bearer realm="oncekit"')
          .header('content-type', 'text/html; charset=utf-8')
          .header('cache-control', 'no-store')
          .send(expiredLinkPage())
      : refuse(reply);

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const checks = await Promise.all(
      options.readiness.map(async (check) => {
        try {
          await check.check();
          return [check.name, 'ok'] as const;
        } catch (error) {
          return [check.name, error instanceof Error ? error.message : 'failed'] as const;
        }
      }),
    );
    const ready = checks.every(([, state]) => state === 'ok');
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not_ready', checks: Object.fromEntries(checks) });
  });

  app.get('/metrics', async (request, reply) => {
    if (!authorized(request)) return refuse(reply);
    return reply.header('content-type', options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });

  app.get('/', async (request, reply) => {
    const token = (request.query as { token?: unknown }).token;
    if (typeof token === 'string' && sameSecret(token, options.secret)) {
      // Trade the link's token for a cookie and drop it from the address bar and history.
      return reply
        .setCookie(cookieName, sessionToken, { httpOnly: true, sameSite: 'strict', path: '/' })
        .header('cache-control', 'no-store')
        .header('referrer-policy', 'no-referrer')
        .redirect('/', 303);
    }
    if (!authorized(request)) return refusePage(request, reply);
    return reply
      .header('content-type', 'text/html; charset=utf-8')
      .header(
        'content-security-policy',
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
      )
      .header('cache-control', 'no-store')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY')
      .send(options.page);
  });

  registerConsoleRoutes(app, {
    tenant: options.tenant,
    target: options.target,
    outbox: options.outbox,
    keyWindowMs: options.keyWindowMs,
    instances: options.instances,
    authorized: authorizedBy,
    refuse: refusePage,
    wake: options.wake,
    about: () => {
      const snapshot = options.snapshot();
      return { ...snapshot, target: { ...snapshot.target, url: withoutCredentials(snapshot.target.url) } };
    },
  });

  app.get('/status/api/summary', async (request, reply) => {
    if (!authorized(request)) return refuse(reply);
    const metrics = await options.metrics.registry.getMetricsAsJSON();
    const perSource: Record<string, Record<string, number>> = {};
    const add = (source: string, name: string, value: number): void => {
      perSource[source] ??= {};
      perSource[source][name] = (perSource[source][name] ?? 0) + value;
    };
    for (const metric of metrics) {
      for (const sample of metric.values) {
        const source = String(sample.labels.source ?? '');
        if (!source) continue;
        if (metric.name === 'oncekit_events_received_total') add(source, 'received', sample.value);
        if (metric.name === 'oncekit_events_settled_total') add(source, String(sample.labels.outcome), sample.value);
        if (metric.name === 'oncekit_key_decisions_total' && sample.labels.decision !== 'kept')
          add(source, `key_${sample.labels.decision}`, sample.value);
        if (metric.name === 'oncekit_delivery_retries_total') add(source, 'retries', sample.value);
      }
    }
    const snapshot = options.snapshot();
    return {
      ...snapshot,
      target: { ...snapshot.target, url: withoutCredentials(snapshot.target.url) },
      now: Date.now(),
      counters: perSource,
      outbox: await options.outbox.counts(options.tenant, { target: options.target }),
      possibleDuplicates: await options.outbox.countPossibleDuplicates(options.tenant, { target: options.target }),
      recent: options.recent.list(),
    };
  });

  app.get('/status/api/ledger', async (request, reply) => {
    if (!authorized(request)) return refuse(reply);
    const query = ledgerQuerySchema.safeParse(request.query);
    if (!query.success)
      return reply.code(400).send({ error: 'invalid_input', message: 'give ?key=IDEMPOTENCY_KEY or ?sourceId=SOURCE_ID' });
    const entries =
      'key' in query.data
        ? await options.outbox.findByKey(options.tenant, query.data.key)
        : await options.outbox.findBySourceId(options.tenant, query.data.sourceId);
    return { entries: entries.map((entry) => ({ ...entry, possibleDuplicate: isPossibleDuplicate(entry) })) };
  });
};
