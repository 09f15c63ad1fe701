import './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox } from '../../../sandbox/target/index.js';
import type { Sandbox } from '../../../sandbox/target/server.js';
import { postJson, RELAY_SECRET, request, startTestRelay, type TestRelay, waitForSettled } from './helpers.js';

const API_KEY = 'target-api-key-Metrics4Hq8';

interface Exposition {
  /** Metric name → its TYPE. */
  readonly types: Map<string, string>;
  /** Every sample line: its name, its labels as written, and each label's value. */
  readonly samples: { readonly name: string; readonly labels: Record<string, string>; readonly line: string }[];
}

/** Reads Prometheus' text format, as a scraper would. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Exposition['samples'] = [];
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type?.[1] && type[2]) types.set(type[1], type[2]);
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (!sample?.[1]) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const label of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (label[1] !== undefined) labels[label[1]] = label[2] ?? '';
    }
    samples.push({ name: sample[1], labels, line });
  }
  return { types, samples };
}

/** The metric a sample belongs to: histogram and summary samples carry a suffix. */
function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return types.has(base) ? base : name;
}

let target: Sandbox;
let harness: TestRelay;
let scraped: Exposition;

beforeAll(async () => {
  target = await startSandbox({ port: 0, apiKey: API_KEY });
  harness = await startTestRelay({ ONCEKIT_TARGET_URL: target.url, ONCEKIT_TENANT: 'metrics', ONCEKIT_API_KEY: API_KEY }, 'memory');
  const { relay } = harness;
  const sent = await postJson(`${relay.url}/salesforce/track-event/by-id`, {
    usersEvents: [
      { userId: 'k@example.com', accountId: 'k@example.com', key: 'purchase', idempotencyKey: 'metrics-kept-0001' },
      { userId: 'k@example.com', accountId: 'k@example.com', key: 'purchase', idempotencyKey: 'bad key' },
      { userId: 'k@example.com', accountId: 'k@example.com', key: 'purchase' },
    ],
  });
  expect(sent.status).toBe(200);
  await waitForSettled(relay, 3);
  const answer = await request(`${relay.url}/metrics`, { headers: { authorization: `Bearer ${RELAY_SECRET}` } });
  expect(answer.status).toBe(200);
  scraped = parseExposition(answer.text);
});
afterAll(async () => {
  await harness?.relay.stop();
  await target?.close();
});

describe('/metrics', () => {
  it("has Node's default process metrics, under their usual names", () => {
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_start_time_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
      'nodejs_version_info',
    ]) {
      expect(scraped.types.has(name), name).toBe(true);
    }
    expect(scraped.samples.some((sample) => sample.name === 'process_cpu_user_seconds_total')).toBe(true);
  });

  it('emits no empty label value: a label that does not apply is left out', () => {
    expect(scraped.samples.length).toBeGreaterThan(20);
    const empty = scraped.samples.filter((sample) => Object.values(sample.labels).some((value) => value === ''));
    expect(empty.map((sample) => sample.line)).toEqual([]);
    // The kept key has no reason; a dropped one says why.
    const decisions = scraped.samples.filter((sample) => sample.name === 'oncekit_key_decisions_total').map((sample) => sample.labels);
    expect(decisions).toEqual(
      expect.arrayContaining([
        { source: 'salesforce', decision: 'kept' },
        { source: 'salesforce', decision: 'dropped', reason: 'bad_characters' },
        { source: 'salesforce', decision: 'dropped', reason: 'missing' },
      ]),
    );
  });

  it('names carry their unit per Prometheus conventions: _total on counters only, base units, oncekit_ first', () => {
    const ours = [...scraped.types].filter(([name]) => name.startsWith('oncekit_'));
    expect(ours.map(([name]) => name).sort()).toEqual([
      'oncekit_dead_letters_total',
      'oncekit_delivery_latency_seconds',
      'oncekit_delivery_retries_total',
      'oncekit_events_received_total',
      'oncekit_events_settled_total',
      'oncekit_http_request_duration_seconds',
      'oncekit_key_decisions_total',
      'oncekit_outbox_events',
      'oncekit_possible_duplicate_events',
      'oncekit_unmappable_events_total',
    ]);
    for (const [name, type] of scraped.types) {
      // (prom-client's own nodejs_active_resources_total is a gauge, so only ours are held to the converse.)
      if (type === 'counter' || name.startsWith('oncekit_')) expect(name.endsWith('_total'), `${name} (${type})`).toBe(type === 'counter');
      // Base units only: seconds and bytes, never milliseconds or kilobytes.
      expect(name, name).not.toMatch(/_(ms|milliseconds|millis|microseconds|minutes|hours|kb|kib|mb|mib|percent)(_|$)/);
      if (type === 'histogram' || type === 'summary') expect(name, name).toMatch(/_(seconds|bytes)$/);
    }
    for (const [name, type] of ours) {
      if (type === 'gauge') expect(name, name).toMatch(/_(events|seconds|bytes|ratio|info)$/);
    }
    expect(scraped.samples.find((sample) => sample.name === 'oncekit_outbox_events' && sample.labels.state === 'delivered')?.line).toBe(
      'oncekit_outbox_events{state="delivered"} 3',
    );
    // Every sample belongs to a declared metric.
    for (const sample of scraped.samples) expect(scraped.types.has(familyOf(sample.name, scraped.types)), sample.line).toBe(true);
  });
});
