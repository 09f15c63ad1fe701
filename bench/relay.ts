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
import { basicAuthHeader, trackEventUrl } from '../shared/target/saasquatch-api.js';
import { type BenchRow, compared } from './measure.js';
import { runId } from './run-id.js';

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
export const WARM_UP_SECONDS = 1;
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

/**
 * Relay throughput and p99 latency under autocannon, beside a naive pass-through forwarder and the sandbox alone (the
 * ceiling), all against one sandbox in the same run. ONCEKIT_BENCH_SECONDS sets each load's length (default 5).
 */
export async function runRelayBench(): Promise<BenchRow[]> {
  const seconds = Number(process.env.ONCEKIT_BENCH_SECONDS ?? 5);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error('ONCEKIT_BENCH_SECONDS must be a positive number');
  const base = { PATH: process.env.PATH, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY };
  const sandbox = await startOncekit(['sandbox', '--port', '0'], base);
  const sandboxUrl = sandbox.url ?? '';
  const dataDir = await mkdtemp(join(tmpdir(), 'oncekit-bench-relay-'));
  const stops: (() => Promise<unknown>)[] = [() => sandbox.stop()];
  try {
    // (a) The sandbox alone: its REST events endpoint with Basic auth, a unique key per request.
    const sandboxTenant = `ceiling-${runId}`;
    const ceiling = await load(
      sandboxUrl,
      seconds,
      () => {
        const { key, fields, ...ids } = nextEvent();
        const input = { ...ids, events: [{ key, fields }] };
        return { path: new URL(trackEventUrl(sandboxUrl, sandboxTenant, input)).pathname, body: JSON.stringify(input) };
      },
      { authorization: basicAuthHeader(DEFAULT_SANDBOX_API_KEY), 'content-type': 'application/json' },
    );

    // (b) The naive forwarder, in its own process.
    const naiveTenant = `naive-${runId}`;
    const naive = await startScript('./naive-forwarder.js', { ...base, ONCEKIT_TARGET_URL: sandboxUrl, ONCEKIT_TENANT: naiveTenant });
    stops.unshift(() => naive.stop());
    const invocable = byIdRequest;
    const naiveLoad = await load(naive.url, seconds, invocable, { 'content-type': 'application/json' });
    await naive.stop();

    // (c) The relay, in its own process, SQLite store in a temporary directory.
    const relayTenant = `relay-${runId}`;
    const secret = randomBytes(24).toString('base64url');
    const relay = await startOncekit(
      ['relay', '--port', '0', '--target-url', sandboxUrl, '--tenant', relayTenant, '--store', `sqlite:${join(dataDir, 'oncekit.db')}`],
      { ...base, ONCEKIT_RELAY_SECRET: secret, ONCEKIT_LOG_LEVEL: 'warn' },
    );
    stops.unshift(() => relay.stop());
    const relayUrl = relay.url ?? '';
    const auth = { authorization: `Bearer ${secret}` };
    const relayLoad = await load(relayUrl, seconds, invocable, { ...auth, 'content-type': 'application/json' });
    // The relay answers once the event is in its outbox; delivery goes on after the load ends.
    const loadEnded = performance.now();
    const outbox = await drained(relayUrl, auth);
    const drainSeconds = (performance.now() - loadEnded) / 1000;
    const delivered = (outbox.delivered ?? 0) + (outbox.duplicate ?? 0);
    const enqueued = Object.values(outbox).reduce((sum, n) => sum + n, 0);
    const relayRecorded = await recordedEvents(sandboxUrl, relayTenant);
    await relay.stop();

    const failures = (what: string, result: Load) => (result.failed > 0 ? `; ${result.failed} ${what} requests failed` : '');
    const ceilingRow = compared(
      'sandbox alone: REST events, 1 event/request (ceiling)',
      ceiling.perSecond,
      'req/s',
      undefined,
      `${CONNECTIONS} connections, ${seconds} s after a ${WARM_UP_SECONDS} s warm-up${failures('sandbox', ceiling)}`,
    );
    const naiveRow = compared(
      'naive forwarder (Fastify + fetch, no dedup, no outbox)',
      naiveLoad.perSecond,
      'req/s',
      ceilingRow,
      `forwards synchronously to the sandbox${failures('naive', naiveLoad)}`,
    );
    const relayRow = compared(
      'relay /salesforce/track-event/by-id, SQLite',
      relayLoad.perSecond,
      'req/s',
      naiveRow,
      `answers once the event is durable in the outbox; the worker delivers in batches concurrently${failures('relay', relayLoad)}`,
    );
    const ceilingP99 = compared('sandbox alone p99', ceiling.p99Ms, 'ms');
    const naiveP99 = compared('naive forwarder p99', naiveLoad.p99Ms, 'ms', ceilingP99);
    return [
      ceilingRow,
      naiveRow,
      relayRow,
      compared('relay, against the ceiling', relayLoad.perSecond, 'req/s', ceilingRow),
      ceilingP99,
      naiveP99,
      compared('relay p99', relayLoad.p99Ms, 'ms', naiveP99),
      compared(
        'relay outbox drain after the load',
        drainSeconds,
        's',
        undefined,
        `${delivered} of ${enqueued} outbox events delivered (${outbox.dead ?? 0} dead), ${relayRecorded} recorded by the sandbox, for ${relayLoad.warmUpOk + relayLoad.ok} 2xx answers counted (warm-up included; up to ${2 * CONNECTIONS} more were in flight when autocannon stopped)`,
      ),
      compared(
        'relay end to end: accepted events ÷ (load + drain)',
        relayLoad.ok / (seconds + drainSeconds),
        'events/s',
        naiveRow,
        `processes share ${cpus().length} cores: autocannon (this process), the sandbox, and the naive forwarder or the relay (its HTTP server and outbox worker in one event loop); logs at warn`,
      ),
    ];
  } finally {
    for (const stop of stops) await stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}
