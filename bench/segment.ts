import { createSegmentHandlers, type KeyDecider, type SegmentHandlers } from '../connectors/segment/handlers.js';
import type { SegmentErrorClasses } from '../connectors/segment/segment-runtime.js';
import { DEFAULT_SANDBOX_API_KEY, startSandbox } from '../shared/sandbox/index.js';
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

/**
 * CPU microseconds per onTrack call. The two handlers take turns in rounds, in alternating order (ABBA), so warm-up,
 * GC and drift fall on both alike; CPU time rather than wall time, since the target is not part of the figure.
 */
async function cpuPerEvent(
  real: SegmentHandlers,
  trivial: SegmentHandlers,
  messageIds: () => string | undefined,
): Promise<{ real: number; trivial: number }> {
  const settings = { apiKey: DEFAULT_SANDBOX_API_KEY, tenantAlias: TENANT, apiBaseUrl: 'http://127.0.0.1:1' };
  const rounds = 12;
  const perRound = 1_000;
  const totals = { real: 0, trivial: 0 };
  const run = async (handlers: SegmentHandlers): Promise<number> => {
    const events = Array.from({ length: perRound }, () => trackEvent(messageIds()));
    const start = process.cpuUsage();
    for (const event of events) await handlers.onTrack(event, settings);
    const used = process.cpuUsage(start);
    return used.user + used.system;
  };
  for (let warmUp = 0; warmUp < 2; warmUp += 1) {
    await run(real);
    await run(trivial);
  }
  for (let round = 0; round < rounds; round += 1) {
    if (round % 2 === 0) {
      totals.real += await run(real);
      totals.trivial += await run(trivial);
    } else {
      totals.trivial += await run(trivial);
      totals.real += await run(real);
    }
  }
  return { real: totals.real / (rounds * perRound), trivial: totals.trivial / (rounds * perRound) };
}

async function keyLayerShare(): Promise<BenchRow[]> {
  const runtime = { fetch: answeringFetch, errors, warn: () => {} };
  const real = createSegmentHandlers(runtime);
  const trivial = createSegmentHandlers(runtime, { decideKey: trivialKeyDecider });
  const rows: BenchRow[] = [];
  const scenarios: [string, () => string | undefined][] = [
    ['analytics-node messageIds (kept)', () => undefined],
    ['custom "order:N" messageIds (dropped, one warning line each)', () => `order:${sequence}`],
  ];
  for (const [label, messageIds] of scenarios) {
    const cpu = await cpuPerEvent(real, trivial, messageIds);
    const baseline = compared(`onTrack CPU, trivial key function (baseline), ${label}`, cpu.trivial, 'µs/event');
    rows.push(
      baseline,
      compared(`onTrack CPU, real key layer, ${label}`, cpu.real, 'µs/event', baseline),
      compared(
        `key layer share of onTrack CPU, ${label}`,
        Math.max(0, (100 * (cpu.real - cpu.trivial)) / cpu.real),
        '%',
        undefined,
        '(real − trivial) ÷ real; target answered in-process so the figure is the handler alone',
      ),
    );
  }
  return rows;
}

export async function runSegmentBench(): Promise<BenchRow[]> {
  return [...(await requestsPerBatch()), ...(await keyLayerShare())];
}
