import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { type ImportProgress, runImport } from '../../../shared/import/index.js';
import { MemoryOutboxStore } from '../../../shared/outbox/index.js';
import { fetchTransport } from '../../../shared/target/transport-fetch.js';

const ROWS = 2000;
let sandbox: Sandbox;
let dir: string;
let count = 0;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-import-progress-'));
  count += 1;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Many read chunks of rows of about the same size; every 100th row is not JSON. */
function writeRows(): string {
  const path = join(dir, 'events.jsonl');
  const lines = Array.from({ length: ROWS }, (_, index) =>
    index % 100 === 99
      ? `not json ${'x'.repeat(120)}`
      : JSON.stringify({ userId: `u${index}`, accountId: `a${index}`, event: { key: 'purchase', fields: { note: 'y'.repeat(60) } } }),
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

function checkReports(reports: readonly ImportProgress[]): void {
  let lastDone = 0;
  for (const report of reports) {
    expect(report.done).toBeGreaterThanOrEqual(lastDone);
    expect(report.done).toBeLessThanOrEqual(report.total);
    lastDone = report.done;
  }
  // Before the end of the file the total is an estimate from the bytes read, close to the real count.
  const estimates = reports.filter((report) => !report.totalExact);
  expect(estimates.length).toBeGreaterThan(0);
  for (const report of estimates) {
    expect(report.bytesRead).toBeLessThan(report.totalBytes);
    expect(Math.abs(report.total - ROWS)).toBeLessThan(ROWS * 0.1);
  }
  expect(reports.at(-1)).toMatchObject({ done: ROWS, total: ROWS, totalExact: true, rows: ROWS });
}

describe('import progress', () => {
  it('follows rows done with (settled or invalid), not bytes read: the file is read before delivery ends', async () => {
    const reports: ImportProgress[] = [];
    const summary = await runImport({
      file: writeRows(),
      delivery: {
        store: new MemoryOutboxStore(),
        target: { baseUrl: sandbox.url, tenant: `progress_${count}`, apiKey: DEFAULT_SANDBOX_API_KEY, transport: fetchTransport(fetch) },
        config: { batchSize: 50, concurrency: 2, maxEventsPerSecond: 2000, pollMs: 20 },
      },
      onProgress: (progress) => reports.push(progress),
    });
    expect(summary).toMatchObject({ rows: ROWS, invalid: 20, accepted: ROWS - 20 });
    checkReports(reports);
    for (const report of reports) expect(report.done).toBe(report.settled + report.invalid);
    // The whole file was read while rows were still on their way: a bar on bytes read would have said 100 % here.
    expect(reports.some((report) => report.bytesRead === report.totalBytes && report.done < report.total)).toBe(true);
  });

  it('a dry run counts every row checked', async () => {
    const reports: ImportProgress[] = [];
    await runImport({ file: writeRows(), delivery: null, onProgress: (progress) => reports.push(progress) });
    checkReports(reports);
    for (const report of reports) expect(report.done).toBe(report.rows);
  });
});
