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
import { type BenchRow, compared } from './measure.js';

/** Rows of the main run; ONCEKIT_BENCH_IMPORT_ROWS makes a quick run smaller. */
const ROWS = Number(process.env.ONCEKIT_BENCH_IMPORT_ROWS ?? 1_000_000);
/** How long the naive importer gets; it sends one request per row, so it would take far longer on the whole file. */
const NAIVE_SECONDS = Number(process.env.ONCEKIT_BENCH_NAIVE_SECONDS ?? 10);

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

const MB = 1024 * 1024;

/** Import rows per second and peak RSS for ROWS generated rows against the sandbox (its own process), beside a naive importer. */
export async function runImportBench(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'oncekit-bench-import-'));
  const small = Math.max(1, Math.floor(ROWS / 10));
  const sandbox = await startOncekit(['sandbox', '--port', '0'], { ...process.env, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY });
  try {
    const url = sandbox.url ?? '';
    const bigFile = join(dir, 'big.jsonl');
    const smallFile = join(dir, 'small.jsonl');
    await writeRows(bigFile, ROWS, 'big');
    await writeRows(smallFile, small, 'small');

    const naive = await runNaive(bigFile, 'bench_naive', url);
    const smallRun = await runImport(smallFile, join(dir, 'small.db'), 'bench_small', url);
    const bigRun = await runImport(bigFile, join(dir, 'big.db'), 'bench_big', url);

    const naiveRow = compared(
      'naive importer: one request per row, sequential (baseline)',
      naive.rows / naive.seconds,
      'rows/s',
      undefined,
      `${naive.rows} rows in ${naive.seconds.toFixed(1)} s (time-boxed)`,
    );
    const accepted = Number(bigRun.summary.accepted ?? 0) + Number(bigRun.summary.duplicate ?? 0);
    const rows: BenchRow[] = [
      naiveRow,
      compared(
        `oncekit import, ${ROWS.toLocaleString('en-US')} rows (outbox in SQLite, batches of 100, 4 in flight)`,
        ROWS / bigRun.seconds,
        'rows/s',
        naiveRow,
        `${bigRun.seconds.toFixed(1)} s including process start; ${accepted.toLocaleString('en-US')} delivered`,
      ),
    ];
    if (smallRun.peakRssBytes !== null && bigRun.peakRssBytes !== null) {
      const smallRss = compared(`oncekit import peak RSS, ${small.toLocaleString('en-US')} rows`, smallRun.peakRssBytes / MB, 'MB');
      rows.push(smallRss);
      rows.push(
        compared(
          `oncekit import peak RSS, ${ROWS.toLocaleString('en-US')} rows`,
          bigRun.peakRssBytes / MB,
          'MB',
          smallRss,
          'ten times the rows: a ratio near 1 means memory stays flat',
        ),
      );
    }
    return rows;
  } finally {
    await sandbox.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
