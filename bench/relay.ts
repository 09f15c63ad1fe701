import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startOncekit } from '../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY } from '../sandbox/target/defaults.js';
import { createTargetClient } from '../shared/target/client.js';
import { undiciTransport } from '../shared/target/transport-undici.js';
import { type Figures, figure, interleave, pairedRatios } from './interleave.js';
import { type BenchRow, spreadRow } from './measure.js';
import { runId } from './run-id.js';
import { loadSeconds, quick, repetitions, warmUpSeconds } from './settings.js';

/** The part of autocannon's programmatic API used here (the package ships no types). */
export interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (request: AutocannonRequest, context: Record<string, unknown>) => AutocannonRequest;
  /** Called with each answer; autocannon reads the bodies only when this is set. */
  onResponse?: (status: number, body: string, context: Record<string, unknown>) => void;
}
interface AutocannonResult {
  readonly duration: number;
  readonly latency: { readonly p99: number; readonly p50: number; readonly average: number };
  readonly requests: { readonly average: number; readonly total: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly '2xx': number;
}
type Autocannon = (options: {
  url: string;
  connections: number;
  duration: number;
  requests: AutocannonRequest[];
}) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

export const CONNECTIONS = 10;
export const WARM_UP_SECONDS = warmUpSeconds;
const DRAIN_LIMIT_MS = 120_000;

export interface Load {
  /** 2xx answers per second over the run. */
  readonly perSecond: number;
  readonly p99Ms: number;
  readonly ok: number;
  /** 2xx answers during the warm-up, which the figures leave out. */
  readonly warmUpOk: number;
  readonly failed: number;
}

let sequence = 0;

export function nextEvent() {
  sequence += 1;
  const id = `u-${sequence % 1000}@bench.test`;
  return {
    userId: id,
    accountId: id,
    key: 'purchase',
    fields: { revenue: 42, currency: 'USD', orderId: `o-${sequence}` },
    idempotencyKey: `bench-${runId}-${sequence}`,
  };
}

export interface LoadOptions {
  /** Default CONNECTIONS. */
  readonly connections?: number;
  /** Sees every answer (warm-up included), e.g. to collect the idempotency keys acknowledged. */
  readonly onResponse?: AutocannonRequest['onResponse'];
}

/** The by-id invocable's body: one event per request. */
export const byIdRequest = () => ({ path: '/salesforce/track-event/by-id', body: JSON.stringify({ usersEvents: [nextEvent()] }) });

/** Warms up, then loads `url` for `seconds` with a fresh request (and idempotency key) each time. */
export async function load(
  url: string,
  seconds: number,
  request: () => Pick<AutocannonRequest, 'path' | 'body'>,
  headers: Record<string, string>,
  options: LoadOptions = {},
): Promise<Load> {
  const connections = options.connections ?? CONNECTIONS;
  const requests: AutocannonRequest[] = [
    {
      method: 'POST',
      headers,
      setupRequest: (template) => ({ ...template, ...request() }),
      ...(options.onResponse ? { onResponse: options.onResponse } : {}),
    },
  ];
  const warmUp = await autocannon({ url, connections, duration: WARM_UP_SECONDS, requests });
  const result = await autocannon({ url, connections, duration: seconds, requests });
  return {
    perSecond: result['2xx'] / result.duration,
    p99Ms: result.latency.p99,
    ok: result['2xx'],
    warmUpOk: warmUp['2xx'],
    failed: result.non2xx + result.errors,
  };
}

/** Starts a script of this directory in its own process and resolves with the URL on its first line. */
async function startScript(script: string, env: NodeJS.ProcessEnv): Promise<{ url: string; stop: () => Promise<void> }> {
  const child: ChildProcess = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url))], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const match = /(https?:\/\/\S+)/.exec(stdout);
      if (match?.[1]) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return {
    url,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function json<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const response = await fetch(url, { headers });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return (await response.json()) as T;
}

export async function recordedEvents(sandboxUrl: string, tenant: string): Promise<number> {
  const snapshot = await json<{ events: unknown[] }>(`${sandboxUrl}/__sandbox/tenants/${tenant}`);
  return snapshot.events.length;
}

/** Waits until the relay's outbox (its tenant and target) holds nothing pending or leased; resolves with its counts. */
export async function drained(relayUrl: string, auth: Record<string, string>, limitMs = DRAIN_LIMIT_MS): Promise<Record<string, number>> {
  const started = performance.now();
  for (;;) {
    const { outbox } = await json<{ outbox: Record<string, number> }>(`${relayUrl}/status/api/summary`, auth);
    if ((outbox.pending ?? 0) + (outbox.leased ?? 0) === 0) return outbox;
    if (performance.now() - started > limitMs) throw new Error(`the relay's outbox did not drain in ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export type ForwarderSubject = 'ceiling' | 'naive' | 'relay';

interface Shape {
  readonly label: string;
  readonly eventsPerRequest: number;
}

/** The invocable's body with `count` events. */
const invocableRequest = (count: number) => () => ({
  path: '/salesforce/track-event/by-id',
  body: JSON.stringify({ usersEvents: Array.from({ length: count }, nextEvent) }),
});

/** Batches of CEILING_BATCH events the ceiling keeps in flight at once. */
const CEILING_BATCH = 100;
const CEILING_IN_FLIGHT = 4;

/**
 * The ceiling: the sandbox's own batched ingest, `logUserEvents` with CEILING_BATCH events, CEILING_IN_FLIGHT calls in
 * flight, for `seconds` (after a warm-up), through the target client on undici. Nothing forwards faster to this sandbox.
 */
async function ceilingLoad(sandboxUrl: string, tenant: string, seconds: number): Promise<Figures> {
  const transport = undiciTransport({ connections: CEILING_IN_FLIGHT });
  const client = createTargetClient({ baseUrl: sandboxUrl, tenant, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send });
  const toInput = () => {
    const { key, fields, ...ids } = nextEvent();
    return { ...ids, events: [{ key, fields }] };
  };
  let accepted = 0;
  let failed = 0;
  const run = async (until: number, count: boolean) => {
    await Promise.all(
      Array.from({ length: CEILING_IN_FLIGHT }, async () => {
        while (performance.now() < until) {
          const result = await client.logUserEvents(Array.from({ length: CEILING_BATCH }, toInput));
          if (!count) continue;
          for (const item of result.results) {
            if (item.outcome === 'accepted' || item.outcome === 'duplicate') accepted += 1;
            else failed += 1;
          }
        }
      }),
    );
  };
  try {
    await run(performance.now() + warmUpSeconds * 1000, false);
    const started = performance.now();
    await run(started + seconds * 1000, true);
    return { perSecond: accepted / ((performance.now() - started) / 1000), failed };
  } finally {
    await transport.close();
  }
}

/**
 * Relay throughput, p99 latency and delivery beside the naive forwarder (undici keep-alive, one REST call per event,
 * synchronous) and the ceiling (the sandbox's own batched ingest), all against one sandbox, interleaved. Every
 * measurement starts a fresh process (relay or forwarder) on a fresh tenant, and resets the sandbox first, so nothing
 * one run leaves behind slows the next.
 */
export async function runRelayBench(): Promise<BenchRow[]> {
  const seconds = loadSeconds;
  const shapes: Shape[] = quick
    ? [{ label: '10 × 1', eventsPerRequest: 1 }]
    : [
        { label: '10 × 1', eventsPerRequest: 1 },
        { label: '10 × 50', eventsPerRequest: 50 },
      ];
  const base = { PATH: process.env.PATH, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY };
  const sandbox = await startOncekit(['sandbox', '--port', '0'], base);
  const sandboxUrl = sandbox.url ?? '';
  const dataDir = await mkdtemp(join(tmpdir(), 'oncekit-bench-relay-'));
  let runs = 0;
  const notes: string[] = [];
  try {
    const rows: BenchRow[] = [];
    for (const shape of shapes) {
      const subjects: ForwarderSubject[] = ['ceiling', 'naive', 'relay'];
      const samples = await interleave(
        subjects,
        async (subject, repetition) => {
          runs += 1;
          await fetch(`${sandboxUrl}/__sandbox/reset`, { method: 'POST' });
          const tenant = `${subject}-${runId}-${runs}`;
          const length = repetition < 0 ? warmUpSeconds : seconds;
          if (subject === 'ceiling') return ceilingLoad(sandboxUrl, tenant, length);
          const request = invocableRequest(shape.eventsPerRequest);
          if (subject === 'naive') {
            const naive = await startScript('./naive-forwarder.js', { ...base, ONCEKIT_TARGET_URL: sandboxUrl, ONCEKIT_TENANT: tenant });
            try {
              const result = await load(naive.url, length, request, { 'content-type': 'application/json' });
              return {
                perSecond: result.perSecond * shape.eventsPerRequest,
                endToEnd: result.perSecond * shape.eventsPerRequest,
                p99Ms: result.p99Ms,
                failed: result.failed,
              };
            } finally {
              await naive.stop();
            }
          }
          const secret = randomBytes(24).toString('base64url');
          const store = `sqlite:${join(dataDir, `relay-${runs}.db`)}`;
          const relay = await startOncekit(['relay', '--port', '0', '--target-url', sandboxUrl, '--tenant', tenant, '--store', store], {
            ...base,
            ONCEKIT_RELAY_SECRET: secret,
            ONCEKIT_LOG_LEVEL: 'warn',
            // Throughput, not backpressure: the relay takes everything and the drain is counted end to end.
            ONCEKIT_MAX_BACKLOG: 'off',
          });
          try {
            const relayUrl = relay.url ?? '';
            const auth = { authorization: `Bearer ${secret}` };
            const result = await load(relayUrl, length, request, { ...auth, 'content-type': 'application/json' });
            // The relay answers once the events are in its outbox; delivery goes on after the load ends.
            const loadEnded = performance.now();
            const outbox = await drained(relayUrl, auth);
            const drainSeconds = (performance.now() - loadEnded) / 1000;
            const acked = result.ok * shape.eventsPerRequest;
            return {
              perSecond: result.perSecond * shape.eventsPerRequest,
              endToEnd: acked / (length + drainSeconds),
              drainSeconds,
              p99Ms: result.p99Ms,
              failed: result.failed,
              dead: outbox.dead ?? 0,
            };
          } finally {
            await relay.stop();
          }
        },
        { repetitions },
      );

      const how = `${CONNECTIONS} connections × ${shape.eventsPerRequest} event${shape.eventsPerRequest > 1 ? 's' : ''}/request`;
      const ceilingRow = spreadRow(
        `${shape.label}: ceiling, the sandbox's batched ingest (logUserEvents × ${CEILING_BATCH}, ${CEILING_IN_FLIGHT} in flight)`,
        figure(samples, 'ceiling', 'perSecond'),
        'events/s',
        undefined,
        shape === shapes[0] ? 'the target client on undici in the bench process; measured again beside each shape' : undefined,
      );
      rows.push(ceilingRow);
      const naiveRow = spreadRow(
        `${shape.label}: naive forwarder (undici keep-alive, 1 REST call per event)`,
        figure(samples, 'naive', 'perSecond'),
        'events/s',
      );
      const relayAcked = spreadRow(
        `${shape.label}: relay acknowledged, SQLite`,
        figure(samples, 'relay', 'perSecond'),
        'events/s',
        { row: naiveRow, paired: pairedRatios(samples, 'relay', 'naive', 'perSecond') },
        'answered once durable in the outbox',
      );
      const relayEndToEnd = spreadRow(
        `${shape.label}: relay end to end (acked ÷ (load + drain))`,
        figure(samples, 'relay', 'endToEnd'),
        'events/s',
        { row: naiveRow, paired: pairedRatios(samples, 'relay', 'naive', 'endToEnd') },
      );
      rows.push(naiveRow, relayAcked, relayEndToEnd);
      rows.push(
        spreadRow(`${shape.label}: relay end to end against the ceiling`, figure(samples, 'relay', 'endToEnd'), 'events/s', {
          row: ceilingRow,
          paired: pairedRatios(samples, 'relay', 'ceiling', 'endToEnd', 'perSecond'),
        }),
      );
      const naiveP99 = spreadRow(`${shape.label}: naive forwarder p99`, figure(samples, 'naive', 'p99Ms'), 'ms');
      rows.push(
        naiveP99,
        spreadRow(`${shape.label}: relay p99`, figure(samples, 'relay', 'p99Ms'), 'ms', {
          row: naiveP99,
          paired: pairedRatios(samples, 'relay', 'naive', 'p99Ms'),
        }),
        spreadRow(`${shape.label}: relay outbox drain after the load`, figure(samples, 'relay', 'drainSeconds'), 's'),
      );
      const failedOf = (subject: 'naive' | 'relay') => samples[subject].reduce((sum, f) => sum + (f.failed ?? 0), 0);
      const dead = samples.relay.reduce((sum, f) => sum + (f.dead ?? 0), 0);
      notes.push(
        `${how}, ${seconds} s per load after a ${warmUpSeconds} s warm-up: ${failedOf('naive')} naive and ${failedOf('relay')} relay requests failed, ${dead} dead letters; the relay runs with ONCEKIT_MAX_BACKLOG=off`,
      );
    }
    const first = rows[0];
    if (first)
      rows[0] = {
        ...first,
        note: [
          first.note,
          ...notes,
          `processes share ${cpus().length} cores: autocannon and the ceiling's client (this process), the sandbox, and the forwarder or the relay`,
        ]
          .filter(Boolean)
          .join('; '),
      };
    return rows;
  } finally {
    await sandbox.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}
