import { createSegmentHandlers, type SegmentHandlers } from '../connectors/segment/handlers.js';
import { type KeyDecider, segmentCandidate } from '../connectors/segment/mapping.js';
import type { SegmentErrorClasses } from '../connectors/segment/segment-runtime.js';
import { DEFAULT_SANDBOX_API_KEY, startSandbox } from '../sandbox/target/index.js';
import { decideKey } from '../shared/keys/index.js';
import { jsonLineLogger } from '../shared/log.js';
import type { FetchLike } from '../shared/target/index.js';
import { type BenchRow, compared } from './measure.js';

/**
 * The Segment function: what onBatch saves in target requests, and what share of a handler's CPU time the key layer
 * (segmentCandidate + decideKey) takes. Handlers are the connector's own (the code the bundle wraps), run in Node.
 */

const TENANT = 'bench_segment';

// Stand-ins for Segment's error classes: the benchmark only needs them to exist.
class BenchError extends Error {}
const errors: SegmentErrorClasses = {
  RetryError: BenchError,
  ValidationError: BenchError,
  InvalidEventPayload: BenchError,
  EventNotSupported: BenchError,
};

let sequence = 0;
function trackEvent(messageId?: string): Record<string, unknown> {
  sequence += 1;
  return {
    type: 'track',
    event: 'Order Completed',
    userId: `user-${sequence % 100}`,
    messageId: messageId ?? `node-next-${1_700_000_000_000 + sequence}-${crypto.randomUUID()}`,
    timestamp: '2025-11-07T10:20:30.456Z',
    properties: { order_id: `o-${sequence}`, revenue: 42.5, currency: 'USD', products: [{ sku: 'a', quantity: 2 }] },
  };
}

/** 400 track events through onBatch against the sandbox, beside the same events through onTrack one by one. */
async function requestsPerBatch(): Promise<BenchRow[]> {
  const sandbox = await startSandbox({ port: 0 });
  try {
    const handlers = createSegmentHandlers({ fetch: globalThis.fetch as FetchLike, errors, warn: () => {} });
    const settings = { apiKey: DEFAULT_SANDBOX_API_KEY, tenantAlias: TENANT, apiBaseUrl: sandbox.url };

    for (const event of Array.from({ length: 400 }, () => trackEvent())) await handlers.onTrack(event, settings);
    const single = sandbox.inspect(TENANT).requests.total;

    const statuses = await handlers.onBatch(
      Array.from({ length: 400 }, () => trackEvent()),
      settings,
    );
    const batched = sandbox.inspect(TENANT).requests.total - single;
    const delivered = statuses.filter((entry) => entry.status === 200).length;

    const batchRow = compared(
      'onBatch(400 track events): target requests',
      batched,
      'requests',
      undefined,
      `${delivered} of 400 events answered 200, through one logUserEvents call`,
    );
    return [
      batchRow,
      compared('onTrack × 400 track events: target requests', single, 'requests', batchRow, 'one trackEvent call per event'),
    ];
  } finally {
    await sandbox.close();
  }
}

/** An instant 200, so the measured CPU time is the handler's own (mapping, validation, key, request body). */
const answeringFetch: FetchLike = async () => ({
  status: 200,
  headers: { forEach() {} },
  text: async () => '{"userId":"u","accountId":"u","events":[{"id":"e1","key":"purchase"}]}',
});

/** Keeps any string as the key: the cheapest stand-in for the key layer. */
const trivialKeyDecider: KeyDecider = (candidate) => ({
  source: candidate.source,
  candidate: candidate.value,
  key: typeof candidate.value === 'string' ? candidate.value : null,
  decision: 'kept',
  reason: null,
  detail: null,
});

const cpuMicros = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return used.user + used.system;
};

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
};

interface HandlerCpu {
  /** Median over rounds of CPU µs per onTrack call. */
  readonly real: number;
  readonly trivial: number;
  /** Per-round real ÷ trivial, to show how much of the difference is noise. */
  readonly ratios: readonly number[];
}

/**
 * CPU microseconds per onTrack call, the real key layer against a trivial key function. They take turns in rounds, in
 * alternating order, so warm-up, GC and drift fall on both alike; CPU time, since the target is not part of the figure.
 */
async function handlerCpu(real: SegmentHandlers, trivial: SegmentHandlers, messageIds: () => string | undefined): Promise<HandlerCpu> {
  const settings = { apiKey: DEFAULT_SANDBOX_API_KEY, tenantAlias: TENANT, apiBaseUrl: 'http://127.0.0.1:1' };
  const rounds = 12;
  const perRound = 1_000;
  const run = async (handlers: SegmentHandlers): Promise<number> => {
    const events = Array.from({ length: perRound }, () => trackEvent(messageIds()));
    const start = process.cpuUsage();
    for (const event of events) await handlers.onTrack(event, settings);
    return cpuMicros(start) / perRound;
  };
  for (let warmUp = 0; warmUp < 2; warmUp += 1) {
    await run(real);
    await run(trivial);
  }
  const reals: number[] = [];
  const trivials: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    if (round % 2 === 0) {
      reals.push(await run(real));
      trivials.push(await run(trivial));
    } else {
      trivials.push(await run(trivial));
      reals.push(await run(real));
    }
  }
  return { real: median(reals), trivial: median(trivials), ratios: reals.map((value, round) => value / (trivials[round] as number)) };
}

/** CPU µs of the key layer alone, as the handler runs it: segmentCandidate, decideKey and its warning line. */
function keyLayerCpu(messageIds: () => string | undefined): number {
  const logger = jsonLineLogger(() => {});
  const candidates = Array.from({ length: 20_000 }, () => segmentCandidate(trackEvent(messageIds())));
  let kept = 0;
  const run = (): number => {
    const start = process.cpuUsage();
    for (const candidate of candidates) if (decideKey(candidate, { policy: 'drop', logger }).key !== null) kept += 1;
    return cpuMicros(start) / candidates.length;
  };
  run(); // warm-up
  const micros = median([run(), run(), run(), run(), run()]);
  return kept < 0 ? Number.NaN : micros;
}

async function keyLayerShare(): Promise<BenchRow[]> {
  const runtime = { fetch: answeringFetch, errors, warn: () => {} };
  const real = createSegmentHandlers(runtime);
  const trivial = createSegmentHandlers(runtime, { decideKey: trivialKeyDecider });
  const rows: BenchRow[] = [];
  const scenarios: [string, () => string | undefined][] = [
    ['analytics-node messageIds, kept', () => undefined],
    ['custom "order:N" messageIds, dropped with a warning line', () => `order:${sequence}`],
  ];
  for (const [label, messageIds] of scenarios) {
    const cpu = await handlerCpu(real, trivial, messageIds);
    const keyLayer = keyLayerCpu(messageIds);
    const spread = `per-round ratio ${Math.min(...cpu.ratios).toFixed(2)}–${Math.max(...cpu.ratios).toFixed(2)}×`;
    const baseline = compared(`onTrack CPU with a trivial key function (${label})`, cpu.trivial, 'µs/event');
    const withKeys = compared(
      `onTrack CPU with the real key layer (${label})`,
      cpu.real,
      'µs/event',
      baseline,
      `median of 12 rounds; ${spread}`,
    );
    rows.push(
      baseline,
      withKeys,
      compared(
        `key layer alone (${label})`,
        keyLayer,
        'µs/event',
        undefined,
        'segmentCandidate + decideKey + its log line, on the same ids',
      ),
      compared(
        `key layer share of onTrack CPU (${label})`,
        (100 * keyLayer) / cpu.real,
        '%',
        undefined,
        'key layer alone ÷ onTrack with the real key layer; the handler-to-handler ratio also carries the handler writing the warning line and round-to-round noise',
      ),
    );
  }
  return rows;
}

export async function runSegmentBench(): Promise<BenchRow[]> {
  return [...(await requestsPerBatch()), ...(await keyLayerShare())];
}
