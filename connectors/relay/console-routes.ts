import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { describeKey, isPossibleDuplicate, mayHaveLanded, resendSafeUntil, UNMAPPABLE_ADVICE } from '../../shared/outbox/ledger.js';
import { retryDeadLetters } from '../../shared/outbox/retry-dead.js';
import { type LedgerEntry, MAX_EVENT_PAGE, type OutboxStore, outboxStates } from '../../shared/outbox/types.js';
import { formatPath } from '../../shared/validation.js';
import type { InstanceRegistry } from './instances.js';

/** The console's own files, next to this module in the source tree and in dist/ alike (the build copies them). */
const here = new URL('./console/', import.meta.url);
const require = createRequire(import.meta.url);
const asset = (name: string): string => readFileSync(new URL(name, here), 'utf8');

/** Every file the console loads: its script and styles, uPlot from the package's dependencies, the favicon. No CDN. */
function consoleAssets(): Record<string, { readonly type: string; readonly body: string }> {
  return {
    '/console/app.js': { type: 'text/javascript; charset=utf-8', body: asset('app.js') },
    '/console/app.css': { type: 'text/css; charset=utf-8', body: asset('app.css') },
    '/console/uplot.js': {
      type: 'text/javascript; charset=utf-8',
      body: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    },
    '/console/uplot.css': { type: 'text/css; charset=utf-8', body: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8') },
    '/favicon.svg': { type: 'image/svg+xml', body: asset('favicon.svg') },
  };
}

export const CONSOLE_HTML_FILE = 'index.html';
export const consolePage = (): string => asset(CONSOLE_HTML_FILE);
export const expiredLinkPage = (): string => asset('signed-out.html');

export interface ConsoleRoutesOptions {
  readonly tenant: string;
  /** The relay's target: retries requeue only its dead letters (its worker delivers them). */
  readonly target: string;
  readonly outbox: OutboxStore;
  readonly keyWindowMs: number;
  readonly instances: InstanceRegistry;
  readonly authorized: (request: FastifyRequest) => 'bearer' | 'cookie' | null;
  readonly refuse: (request: FastifyRequest, reply: FastifyReply) => FastifyReply;
  /** Who this relay is (target without credentials, store, start time), for the overview. */
  readonly about: () => Record<string, unknown>;
  /** Wakes the relay's worker after a retry, so requeued events go out now. */
  readonly wake: () => void;
}

/** The header a cookie-authenticated write must carry: a cross-site form or image cannot set it. */
export const CONSOLE_WRITE_HEADER = 'x-oncekit-console';

const text = (field: string) => z.string().min(1, `${field} must not be empty`).max(1000, `${field} is at most 1000 characters`);
/** A time as ms since the epoch or an ISO date. */
const time = (field: string) =>
  z.string().transform((value, context) => {
    const at = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
    if (!Number.isSafeInteger(at) || at < 0) {
      context.addIssue({ code: 'custom', message: `${field} must be ms since the epoch or an ISO time` });
      return z.NEVER;
    }
    return at;
  });
const count = (field: string, min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `${field} must be a whole number`)
    .transform(Number)
    .pipe(z.number().min(min, `${field} must be at least ${min}`).max(max, `${field} must be at most ${max}`));

const filterShape = {
  source: text('source').optional(),
  target: text('target').optional(),
  key: text('key').optional(),
  sourceId: text('sourceId').optional(),
  since: time('since').optional(),
  until: time('until').optional(),
};
const eventsQuery = z
  .object({
    ...filterShape,
    state: z.enum(outboxStates, { error: `state must be one of ${outboxStates.join(', ')}` }).optional(),
    limit: count('limit', 1, MAX_EVENT_PAGE).optional(),
    offset: count('offset', 0, 1_000_000).optional(),
  })
  .strict();
const deadQuery = eventsQuery.omit({ state: true });
const activityQuery = z
  .object({ window: z.enum(['1h', '24h'], { error: 'window must be 1h or 24h' }).optional(), source: text('source').optional() })
  .strict();
const retryBody = z
  .object({
    ids: z.array(text('id')).min(1, 'ids must name at least one dead letter').max(1000, 'ids holds at most 1000').optional(),
    matching: z
      .object({
        source: z.string().max(1000).optional(),
        key: z.string().max(1000).optional(),
        sourceId: z.string().max(1000).optional(),
        since: z.number().int().min(0).optional(),
        until: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
  })
  .strict()
  .refine((body) => (body.ids === undefined) !== (body.matching === undefined), {
    message: 'give ids, or matching (a filter; {} for every dead letter)',
    path: ['ids'],
  });

/** Answers 400 naming each bad parameter; undefined when the value parsed. */
function parseOr400<T extends z.ZodType>(schema: T, value: unknown, reply: FastifyReply, where: string): z.output<T> | undefined {
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue) => {
    const unknownKeys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const field = unknownKeys.length > 0 ? unknownKeys.join(', ') : formatPath(issue.path);
    return { field, reason: unknownKeys.length > 0 ? 'unknown parameter' : issue.message };
  });
  void reply.code(400).send({
    error: 'invalid_input',
    message: `invalid ${where}: ${issues.map((issue) => `${issue.field}: ${issue.reason}`).join('; ')}`,
    issues,
  });
  return undefined;
}

/** Drops undefined values, for the store's exact optional types. */
function defined<T extends Record<string, unknown>>(value: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

const SECRET_NAME = /pass(word)?|secret|token|api[-_]?key|authori[sz]ation|credential|private[-_]?key|session|cookie/i;
const REDACTED = '[redacted]';
const MAX_REDACT_NODES = 10_000;

/**
 * A copy with every value under a secret-looking name replaced, objects and lists included (a secret may be nested
 * under it); an iterative, bounded walk (never recursion on input). Past the bound nothing is shown: a copy only
 * partly redacted could still carry a secret.
 */
export function redactSecrets(value: unknown): unknown {
  const root: { value: unknown } = { value: structuredClone(value) };
  const stack: unknown[] = [root.value];
  let visited = 0;
  while (stack.length > 0) {
    if (visited >= MAX_REDACT_NODES) return REDACTED;
    const node = stack.pop();
    visited += 1;
    if (node === null || typeof node !== 'object') continue;
    for (const [name, child] of Object.entries(node)) {
      if (!Array.isArray(node) && SECRET_NAME.test(name)) (node as Record<string, unknown>)[name] = REDACTED;
      else if (child !== null && typeof child === 'object') stack.push(child);
    }
  }
  return root.value;
}

/** The same for a raw payload kept as text (possibly cut short, so not always JSON). */
export function redactSecretText(raw: string): string {
  return raw.replace(/("([^"\\]{0,200})"\s*:\s*)("(?:[^"\\]|\\.){0,10000}"|[^,}\]\s]{1,200})/g, (whole, head: string, name: string) =>
    SECRET_NAME.test(name) ? `${head}"${REDACTED}"` : whole,
  );
}

/** One line of the events list. */
function summaryOf(entry: LedgerEntry) {
  const last = entry.attempts.at(-1);
  return {
    id: entry.id,
    source: entry.source,
    sourceId: entry.sourceId,
    target: entry.target,
    key: entry.key,
    state: entry.state,
    event: entry.input?.events?.map((event) => event.key).join(', ') ?? null,
    enqueuedAt: entry.enqueuedAt,
    updatedAt: entry.updatedAt,
    attempts: entry.attempts.length,
    lastStatus: last?.status ?? null,
    lastOutcome: last?.outcome ?? null,
    deadReason: entry.deadReason,
    unmappable: entry.input === null,
    mayHaveLanded: mayHaveLanded(entry),
  };
}

/** An event's whole story, secrets left out. */
function detailOf(entry: LedgerEntry, keyWindowMs: number) {
  return {
    ...summaryOf(entry),
    tenant: entry.tenant,
    dedupKey: entry.dedupKey,
    keyDecision: entry.keyDecision,
    keyExplanation: describeKey(entry),
    dueAt: entry.dueAt,
    leaseExpiresAt: entry.leaseExpiresAt,
    firstAttemptAt: entry.firstAttemptAt,
    landedSince: entry.landedSince,
    // Past it, a retry is refused (the target may no longer remember the key); null when nothing may have landed.
    resendSafeUntil: resendSafeUntil(entry, keyWindowMs),
    deadAt: entry.deadAt,
    possibleDuplicate: isPossibleDuplicate(entry),
    payload: entry.input === null ? null : redactSecrets(entry.input),
    raw: entry.unmappable === null ? null : { ...entry.unmappable, text: redactSecretText(entry.unmappable.text) },
    notRetried: entry.input === null ? UNMAPPABLE_ADVICE : null,
    attempts: entry.attempts,
  };
}

/**
 * The console's JSON API (the page uses it; an operator can script it): overview, activity, events, one event, dead
 * letters and their retry, instances. Everything is read from the store, so it survives restarts and shows what every
 * instance and every import did. Writes are POSTs that a cross-site page cannot make (see sameSiteWrite).
 */
export function registerConsoleRoutes(app: FastifyInstance, options: ConsoleRoutesOptions): void {
  const { outbox, tenant } = options;
  const assets = consoleAssets();
  for (const [path, file] of Object.entries(assets)) {
    app.get(path, async (_request, reply) =>
      reply
        .header('content-type', file.type)
        .header('cache-control', 'no-cache')
        .header('x-content-type-options', 'nosniff')
        .send(file.body),
    );
  }
  app.get('/favicon.ico', async (_request, reply) => reply.redirect('/favicon.svg', 301));

  const guard =
    (handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>) =>
    async (request: FastifyRequest, reply: FastifyReply) => {
      if (options.authorized(request) === null) return options.refuse(request, reply);
      reply.header('cache-control', 'no-store');
      return handler(request, reply);
    };

  app.get(
    '/api/overview',
    guard(async () => ({
      ...options.about(),
      tenant,
      targetId: options.target,
      now: Date.now(),
      counts: await outbox.counts(tenant),
      possibleDuplicates: await outbox.countPossibleDuplicates(tenant),
    })),
  );

  app.get(
    '/api/activity',
    guard(async (request, reply) => {
      const query = parseOr400(activityQuery, request.query, reply, 'activity query');
      if (query === undefined) return reply;
      const minute = 60_000;
      const window = query.window === '24h' ? 24 * 60 * minute : 60 * minute;
      // Whole minutes, the current one included.
      const until = (Math.floor(Date.now() / minute) + 1) * minute;
      return outbox.activity(tenant, { since: until - window, until, bucketMs: minute, ...defined({ source: query.source }) });
    }),
  );

  const listing = async (query: z.output<typeof eventsQuery>) => {
    const page = await outbox.listEvents(tenant, defined(query));
    return {
      events: page.entries.map(summaryOf),
      hasMore: page.hasMore,
      limit: query.limit ?? 50,
      offset: query.offset ?? 0,
      ...(page.searchStopped === undefined ? {} : { searchStopped: page.searchStopped }),
    };
  };

  app.get(
    '/api/events',
    guard(async (request, reply) => {
      const query = parseOr400(eventsQuery, request.query, reply, 'events query');
      return query === undefined ? reply : listing(query);
    }),
  );

  app.get(
    '/api/events/:id',
    guard(async (request, reply) => {
      const { id } = request.params as { id: string };
      const entry = id.length > 64 ? undefined : await outbox.get(tenant, id);
      if (entry === undefined)
        return reply.code(404).send({ error: 'not_found', message: `no event ${id} in the ledger of tenant ${tenant}` });
      return detailOf(entry, options.keyWindowMs);
    }),
  );

  app.get(
    '/api/dead-letters',
    guard(async (request, reply) => {
      const query = parseOr400(deadQuery, request.query, reply, 'dead-letters query');
      return query === undefined ? reply : listing({ ...query, state: 'dead' });
    }),
  );

  app.post(
    '/api/dead-letters/retry',
    guard(async (request, reply) => {
      const refusal = crossSiteRefusal(request, options.authorized(request));
      if (refusal !== null) return reply.code(403).send({ error: 'cross_site_refused', message: refusal });
      const body = parseOr400(retryBody, request.body, reply, 'retry request');
      if (body === undefined) return reply;
      const matching = body.matching === undefined ? undefined : defined(body.matching);
      const result = await retryDeadLetters(outbox, {
        tenant,
        target: options.target,
        select:
          body.ids !== undefined
            ? { ids: body.ids }
            : { matching: Object.fromEntries(Object.entries(matching ?? {}).filter(([, v]) => v !== '')) },
        keyWindowMs: options.keyWindowMs,
      });
      if (result.requeued.length > 0) options.wake();
      return {
        requeued: result.requeued,
        refused: result.refused.map((item) => ({ id: item.id, why: `not resent: ${item.why}` })),
        unmappable: result.unmappable.map((entry) => ({ id: entry.id, why: `not retried: ${UNMAPPABLE_ADVICE}` })),
        notRequeued: result.notRequeued.map((id) => ({ id, why: 'not a dead letter of this relay’s tenant and target; left alone' })),
        moreMatching: result.moreMatching,
      };
    }),
  );

  app.get(
    '/api/instances',
    guard(async () => ({ instances: await options.instances.list() })),
  );
}

/**
 * Why a write must be refused as cross-site, or null. A browser says where a request comes from (Sec-Fetch-Site,
 * Origin); either one naming another site is refused, whatever the credentials. A write carried by the session cookie
 * must also bear CONSOLE_WRITE_HEADER, which only the console's own script sets (a cross-site page would need CORS).
 */
export function crossSiteRefusal(request: FastifyRequest, by: 'bearer' | 'cookie' | null): string | null {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `a ${site} request cannot write here`;
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string | null = null;
    try {
      host = new URL(origin).host;
    } catch {
      host = null;
    }
    if (host !== request.headers.host) return `a request from ${origin} cannot write here`;
  } else if (origin === 'null') return 'a request from an opaque origin cannot write here';
  if (by === 'cookie' && request.headers[CONSOLE_WRITE_HEADER] !== '1')
    return `a write from the browser must carry the ${CONSOLE_WRITE_HEADER} header`;
  return null;
}
