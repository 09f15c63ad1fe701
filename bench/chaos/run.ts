import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dropSchema, POSTGRES_URL, postgresAnswers, postgresUrl, uniqueSchema } from '../postgres.js';
import { type ChaosResult, chaosHeld, formatChaosResult, runChaos } from './driver.js';

/**
 * `npm run chaos [-- --events N --seed N --senders N --engine sqlite|postgres|all]`: the chaos proof at full size, on
 * SQLite (one relay) and on PostgreSQL (three relays); exits 1 unless every acknowledged event was recorded once.
 */
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '1' },
    senders: { type: 'string', default: '12' },
    kills: { type: 'string', default: '3' },
    engine: { type: 'string', default: 'all' },
  },
});

function wholeNumber(name: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    process.stderr.write(`--${name}: expected a whole number of at least ${min}, got ${JSON.stringify(text)}\n`);
    process.exit(2);
  }
  return value;
}

const events = wholeNumber('events', values.events, 1);
const seed = wholeNumber('seed', values.seed, 0);
const senders = wholeNumber('senders', values.senders, 1);
const kills = wholeNumber('kills', values.kills, 0);
if (!['sqlite', 'postgres', 'all'].includes(values.engine)) {
  process.stderr.write(`--engine: expected sqlite, postgres or all, got ${JSON.stringify(values.engine)}\n`);
  process.exit(2);
}
const progress = (line: string) => process.stderr.write(`${line}\n`);
const common = { events, seed, senders, kills, progress };

process.stdout.write(
  `# oncekit chaos: ${events} keyed events per engine over the relay's routes (Salesforce by-id, Segment, Keygen), ` +
    `target faults 20 % 5xx, 5 % record-then-fail, 5 % resets; ${kills} SIGKILLs with restarts; seed ${seed}\n`,
);

const results: ChaosResult[] = [];
if (values.engine !== 'postgres') {
  const dir = await mkdtemp(join(tmpdir(), 'oncekit-chaos-'));
  try {
    results.push(await runChaos({ ...common, label: 'sqlite', store: `sqlite:${join(dir, 'oncekit.db')}`, relays: 1 }));
    process.stdout.write(`${formatChaosResult(results.at(-1) as ChaosResult)}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
if (values.engine !== 'sqlite') {
  if (!(await postgresAnswers())) {
    process.stdout.write(`postgres: skipped, no PostgreSQL answered at ${POSTGRES_URL} (ONCEKIT_POSTGRES_URL)\n`);
  } else {
    const schema = uniqueSchema('chaos');
    try {
      results.push(await runChaos({ ...common, label: 'postgres', store: postgresUrl(schema), relays: 3 }));
      process.stdout.write(`${formatChaosResult(results.at(-1) as ChaosResult)}\n`);
    } finally {
      await dropSchema(schema);
    }
  }
}
process.exit(results.every(chaosHeld) ? 0 : 1);
