import { runClientBench } from './client.js';
import { runImportBench } from './import.js';
import { runInboxBench } from './inbox.js';
import { loadAverage } from './interleave.js';
import { runKeyBench } from './keys.js';
import { type BenchRow, formatRows } from './measure.js';
import { runOverloadBench } from './overload.js';
import { runRelayBench } from './relay.js';
import { runSegmentBench } from './segment.js';
import { QUICK_BENCHES, quick, REDIS_URL, repetitions } from './settings.js';
import { runStateBench } from './state.js';

/**
 * Every benchmark, each figure beside its baseline from the same run. `npm run bench -- keys` runs one;
 * `npm run bench -- --quick` runs a short selection in about a minute.
 */
const benches: Record<string, { title: string; run: () => Promise<BenchRow[]> }> = {
  keys: { title: 'Key decisions', run: runKeyBench },
  client: { title: 'Target client → sandbox (separate process, loopback)', run: runClientBench },
  inbox: {
    title: 'Inbox claims on Redis, beside bare SET NX, SET NX + SET and Powertools (same Redis, same client, interleaved)',
    run: runInboxBench,
  },
  import: {
    title: "Import: rows per second beside a naive importer (one request per row) and the ceiling (the target's batched ingest); peak RSS",
    run: runImportBench,
  },
  relay: {
    title:
      "Relay under load (autocannon): beside a naive forwarder (undici) and the ceiling (the sandbox's batched ingest), same sandbox, interleaved",
    run: runRelayBench,
  },
  overload: {
    title: 'Overload: the relay (SQLite) against a target capped at 2,000 events/s, with backpressure beside ONCEKIT_MAX_BACKLOG=off',
    run: runOverloadBench,
  },
  state: {
    title: 'Durable state: enqueue cost by group size on each engine; group commit in the relay; three relays on PostgreSQL',
    run: runStateBench,
  },
  segment: { title: "Segment function: onBatch requests and the key layer's share of handler CPU", run: runSegmentBench },
};

const named = process.argv.slice(2).filter((arg) => !arg.startsWith('--'));
const only = named.length > 0 ? named : quick ? QUICK_BENCHES : [];
const unknown = only.filter((name) => !(name in benches));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; choose from ${Object.keys(benches).join(', ')}\n`);
  process.exit(2);
}

process.stdout.write(
  `# oncekit benchmarks${quick ? ' (--quick)' : ''}\n\nnode ${process.version}, ${new Date().toISOString()}, load average ${loadAverage()}. ` +
    `Figures are medians of ${repetitions} interleaved repetitions (min–max) after a warm-up, unless a row says otherwise; ` +
    `ratios compare figures measured in this same run. Redis: ${REDIS_URL.replace(/\/\/[^@/]*@/, '//…@')}.\n`,
);
const started = performance.now();
for (const [name, bench] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  const loadBefore = loadAverage();
  const rows = await bench.run();
  process.stdout.write(`${formatRows(bench.title, rows, { loadBefore, loadAfter: loadAverage() })}\n`);
}
process.stdout.write(`\n(${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
