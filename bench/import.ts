import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ONCEKIT_BIN, startOncekit } from '../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY } from '../sandbox/target/index.js';
import type { UserEventInput } from '../shared/events/index.js';
import { createTargetClient } from '../shared/target/index.js';
import { undiciTransport } from '../shared/target/transport-undici.js';
import { figure, interleave, pairedRatios } from './interleave.js';
import { type BenchRow, compared, spreadRow } from './measure.js';
import { runId } from './run-id.js';
import { quick, repetitions } from './settings.js';

/** Rows of each interleaved import (ONCEKIT_BENCH_IMPORT_ROWS). */
const ROWS = Number(process.env.ONCEKIT_BENCH_IMPORT_ROWS ?? (quick ? 10_000 : 100_000));
/** Rows of the one large import that shows whether peak RSS stays flat (ONCEKIT_BENCH_IMPORT_BIG_ROWS; 0 skips it). */
const BIG_ROWS = Number(process.env.ONCEKIT_BENCH_IMPORT_BIG_ROWS ?? (quick ? 0 : 1_000_000));
/** How long the naive importer gets; it sends one request per row, so it would take far longer on the whole file. */
const NAIVE_SECONDS = Number(process.env.ONCEKIT_BENCH_NAIVE_SECONDS ?? (quick ? 2 : 10));
const CEILING_BATCH = 100;
const CEILING_IN_FLIGHT = 4;

async function writeRows(path: string, rows: number, label: string): Promise<void> {
  const out = createWriteStream(path);
  for (let n = 0; n < rows; n += 1) {
    const line = {
      userId: `user-${n % 5000}`,
      accountId: `account-${n % 5000}`,
      idempotencyKey: `bench-${label}-${n}`,
      event: {
        key: 'purchase',
        dateTriggered: 1_700_000_000_000 + n,
        fields: { revenue: n % 500, currency: 'USD', order_id: `order-${n}` },
      },
    };
    if (!out.write(`${JSON.stringify(line)}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
}

interface ImportRun {
  readonly seconds: number;
  /** Peak resident set size of the import process, from /proc; null where there is no /proc. */
  readonly peakRssBytes: number | null;
  readonly summary: Record<string, unknown>;
}

function peakRss(pid: number): number | null {
  try {
    const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Runs `oncekit import` as its own process, as a user would, sampling its peak RSS until it exits. */
async function runImport(file: string, store: string, tenant: string, url: string): Promise<ImportRun> {
  const env = { PATH: process.env.PATH, ONCEKIT_TARGET_URL: url, ONCEKIT_TENANT: tenant, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY };
  const started = performance.now();
  const child = spawn(process.execPath, [ONCEKIT_BIN, 'import', file, '--json', '--no-progress', '--store', `sqlite:${store}`], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  let peak: number | null = null;
  const sampler = setInterval(() => {
    const now = child.pid === undefined ? null : peakRss(child.pid);
    if (now !== null) peak = Math.max(peak ?? 0, now);
  }, 100);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`oncekit import exited with ${code}: ${stdout}`);
  return { seconds, peakRssBytes: peak, summary: JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown> };
}

/** The importer everyone writes first: read a line, send it, wait for the answer, next line. No outbox, no batching. */
async function runNaive(file: string, tenant: string, url: string): Promise<{ rows: number; seconds: number }> {
  const transport = undiciTransport({ connections: 1 });
  const client = createTargetClient({ baseUrl: url, tenant, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send });
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  const started = performance.now();
  const until = started + NAIVE_SECONDS * 1000;
  let rows = 0;
  try {
    for await (const text of lines) {
      const line = JSON.parse(text) as {
        userId: string;
        accountId: string;
        idempotencyKey: string;
        event: UserEventInput['events'][number];
      };
      await client.logUserEvent({
        userId: line.userId,
        accountId: line.accountId,
        idempotencyKey: line.idempotencyKey,
        events: [line.event],
      });
      rows += 1;
      if (performance.now() >= until) break;
    }
  } finally {
    lines.close();
    await transport.close();
  }
  return { rows, seconds: (performance.now() - started) / 1000 };
}

/** The ceiling: the file's rows through the target's own batched ingest, logUserEvents × 100 with 4 in flight. */
async function runCeiling(file: string, tenant: string, url: string): Promise<{ rows: number; seconds: number }> {
  const transport = undiciTransport({ connections: CEILING_IN_FLIGHT });
  const client = createTargetClient({ baseUrl: url, tenant, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send });
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  const started = performance.now();
  const inFlight = new Set<Promise<unknown>>();
  let batch: UserEventInput[] = [];
  let rows = 0;
  const flush = async () => {
    const sending = client.logUserEvents(batch);
    batch = [];
    const tracked = sending.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    if (inFlight.size >= CEILING_IN_FLIGHT) await Promise.race(inFlight);
  };
  try {
    for await (const text of lines) {
      const line = JSON.parse(text) as {
        userId: string;
        accountId: string;
        idempotencyKey: string;
        event: UserEventInput['events'][number];
      };
      batch.push({ userId: line.userId, accountId: line.accountId, idempotencyKey: line.idempotencyKey, events: [line.event] });
      rows += 1;
      if (batch.length === CEILING_BATCH) await flush();
    }
    if (batch.length > 0) await flush();
    await Promise.all(inFlight);
  } finally {
    lines.close();
    await transport.close();
  }
  return { rows, seconds: (performance.now() - started) / 1000 };
}

const MB = 1024 * 1024;

/**
 * Import rows per second beside a naive importer (one request per row, time-boxed) and the ceiling (the same rows
 * through the target's batched ingest), interleaved with a fresh tenant and store each run and the sandbox reset
 * before each; then peak RSS at ROWS and, once, at BIG_ROWS. The sandbox runs in its own process.
 */
export async function runImportBench(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'oncekit-bench-import-'));
  const sandbox = await startOncekit(['sandbox', '--port', '0'], { ...process.env, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY });
  try {
    const url = sandbox.url ?? '';
    const file = join(dir, 'rows.jsonl');
    const warmUpFile = join(dir, 'warm-up.jsonl');
    await writeRows(file, ROWS, `${runId}-rows`);
    await writeRows(warmUpFile, Math.min(ROWS, 2000), `${runId}-warm-up`);
    let runs = 0;
    const samples = await interleave(
      ['naive', 'ceiling', 'import'] as const,
      async (subject, repetition) => {
        runs += 1;
        await fetch(`${url}/__sandbox/reset`, { method: 'POST' });
        const tenant = `import_${subject}_${runs}`;
        const input = repetition < 0 ? warmUpFile : file;
        if (subject === 'naive') {
          const naive = await runNaive(input, tenant, url);
          return { perSecond: naive.rows / naive.seconds };
        }
        if (subject === 'ceiling') {
          const ceiling = await runCeiling(input, tenant, url);
          return { perSecond: ceiling.rows / ceiling.seconds };
        }
        const run = await runImport(input, join(dir, `import-${runs}.db`), tenant, url);
        return {
          perSecond: (repetition < 0 ? Math.min(ROWS, 2000) : ROWS) / run.seconds,
          peakRssMb: (run.peakRssBytes ?? Number.NaN) / MB,
        };
      },
      { repetitions },
    );
    const naiveRow = spreadRow(
      'naive importer: one request per row, sequential (baseline)',
      figure(samples, 'naive', 'perSecond'),
      'rows/s',
      undefined,
      `time-boxed to ${NAIVE_SECONDS} s`,
    );
    const ceilingRow = spreadRow(
      `ceiling: the same rows through logUserEvents × ${CEILING_BATCH}, ${CEILING_IN_FLIGHT} in flight`,
      figure(samples, 'ceiling', 'perSecond'),
      'rows/s',
      { row: naiveRow, paired: pairedRatios(samples, 'ceiling', 'naive', 'perSecond') },
      'the target client in the bench process, reading the file; no outbox',
    );
    const importName = `oncekit import, ${ROWS.toLocaleString('en-US')} rows, whole process (outbox in SQLite)`;
    const rows: BenchRow[] = [
      naiveRow,
      ceilingRow,
      spreadRow(importName, figure(samples, 'import', 'perSecond'), 'rows/s', {
        row: naiveRow,
        paired: pairedRatios(samples, 'import', 'naive', 'perSecond'),
      }),
      spreadRow(`${importName}, against the ceiling`, figure(samples, 'import', 'perSecond'), 'rows/s', {
        row: ceilingRow,
        paired: pairedRatios(samples, 'import', 'ceiling', 'perSecond'),
      }),
    ];
    const rss = spreadRow(`oncekit import peak RSS, ${ROWS.toLocaleString('en-US')} rows`, figure(samples, 'import', 'peakRssMb'), 'MB');
    rows.push(rss);
    if (BIG_ROWS > 0) {
      const bigFile = join(dir, 'big.jsonl');
      await writeRows(bigFile, BIG_ROWS, `${runId}-big`);
      await fetch(`${url}/__sandbox/reset`, { method: 'POST' });
      const big = await runImport(bigFile, join(dir, 'big.db'), `import_big_${runId}`, url);
      const accepted = Number(big.summary.accepted ?? 0) + Number(big.summary.duplicate ?? 0);
      if (big.peakRssBytes !== null) {
        rows.push(
          compared(
            `oncekit import peak RSS, ${BIG_ROWS.toLocaleString('en-US')} rows (one run)`,
            big.peakRssBytes / MB,
            'MB',
            rss,
            `a ratio near 1 means memory stays flat; ${(BIG_ROWS / big.seconds).toFixed(0)} rows/s, ${accepted.toLocaleString('en-US')} delivered`,
          ),
        );
      }
    }
    return rows;
  } finally {
    await sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
