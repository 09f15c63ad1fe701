import { runClientBench } from './client.js';
import { runImportBench } from './import.js';
import { runInboxBench } from './inbox.js';
import { runKeyBench } from './keys.js';
import { type BenchRow, formatRows } from './measure.js';
import { runRelayBench } from './relay.js';
import { runSegmentBench } from './segment.js';
import { runStateBench } from './state.js';

/** Every benchmark, each figure beside its baseline from the same run. `npm run bench -- keys` runs one. */
const benches: Record<string, { title: string; run: () => Promise<BenchRow[]> }> = {
  keys: { title: 'Key decisions', run: runKeyBench },
  client: { title: 'Target client → sandbox (separate process, loopback)', run: runClientBench },
  inbox: { title: 'Inbox claims on Redis, beside raw SET NX and Powertools (same Redis, same client)', run: runInboxBench },
  import: { title: 'Import: rows per second and peak RSS, beside a naive importer (one request per row)', run: runImportBench },
  relay: {
    title: 'Relay under load (autocannon): beside a naive forwarder and the sandbox alone, same sandbox, same run',
    run: runRelayBench,
  },
  state: {
    title: 'Durable state: enqueue cost by group size on each engine; group commit in the relay; three relays on PostgreSQL',
    run: runStateBench,
  },
  segment: { title: "Segment function: onBatch requests and the key layer's share of handler CPU", run: runSegmentBench },
};

const only = process.argv.slice(2);
const unknown = only.filter((name) => !(name in benches));
if (unknown.length > 0) {
  process.stderr.write(`unknown benchmark ${unknown.join(', ')}; choose from ${Object.keys(benches).join(', ')}\n`);
  process.exit(2);
}

process.stdout.write(
  `# oncekit benchmarks\n\nnode ${process.version}, ${new Date().toISOString()}. Ratios compare figures measured in this same run.\n`,
);
for (const [name, bench] of Object.entries(benches)) {
  if (only.length > 0 && !only.includes(name)) continue;
  const rows = await bench.run();
  process.stdout.write(`${formatRows(bench.title, rows)}\n`);
}
