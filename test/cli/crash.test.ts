import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ONCEKIT_BIN, type RunningCommand, startOncekit } from '../../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY, type TenantSnapshot } from '../../sandbox/target/index.js';
import { SqliteOutboxStore } from '../../shared/outbox/index.js';

const ROWS = 2000;
const TENANT = `crash_${process.pid}`;
// Every kind of fault the sandbox has, including answers lost after the event was recorded.
const FAULTS = '500=0.05,503=0.05,429=0.04,retry-after=0,drop=0.02,record-then-fail=0.05,latency=10,seed=7';

let sandbox: RunningCommand;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-crash-'));
  sandbox = await startOncekit(['sandbox', '--port', '0', '--faults', FAULTS], { PATH: process.env.PATH });
});
afterAll(async () => {
  await sandbox?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function snapshot(): Promise<TenantSnapshot> {
  const response = await fetch(`${sandbox.url}/__sandbox/tenants/${TENANT}`);
  return (await response.json()) as TenantSnapshot;
}

function startImport(path: string, store: string): ChildProcess {
  const args = ['import', path, '--json', '--store', `sqlite:${store}`, '--lease', '1s', '--batch-size', '20', '--concurrency', '2'];
  const env = {
    PATH: process.env.PATH,
    ONCEKIT_TARGET_URL: sandbox.url ?? '',
    ONCEKIT_TENANT: TENANT,
    ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
  };
  return spawn(process.execPath, [ONCEKIT_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts an import and kills it with SIGKILL once the sandbox holds at least `events` events. */
async function importKilledAt(path: string, store: string, events: number): Promise<NodeJS.Signals | null> {
  const child = startImport(path, store);
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let done = false;
  void exited.then(() => {
    done = true;
  });
  while (!done && (await snapshot()).events.length < events) await new Promise((resolve) => setTimeout(resolve, 10));
  child.kill('SIGKILL');
  const [, signal] = await exited;
  return signal;
}

async function delivered(store: string): Promise<number> {
  const outbox = new SqliteOutboxStore({ path: store });
  try {
    const counts = await outbox.counts(TENANT, { source: 'import' });
    return counts.delivered + counts.duplicate;
  } finally {
    await outbox.close();
  }
}

describe('crash test: oncekit import killed with SIGKILL twice against a faulty sandbox', () => {
  it('ends with every row recorded exactly once', { timeout: 60_000 }, async () => {
    const keys = Array.from({ length: ROWS }, (_, n) => `crash-${process.pid}-${String(n).padStart(5, '0')}`);
    const path = join(dir, 'events.jsonl');
    writeFileSync(
      path,
      keys
        .map((key, n) =>
          JSON.stringify({ userId: `u${n % 50}`, accountId: `a${n % 50}`, idempotencyKey: key, event: { key: 'purchase', fields: { n } } }),
        )
        .join('\n'),
    );
    const store = join(dir, 'outbox.db');

    // Killed mid-run twice: each time the file was only partly delivered.
    expect(await importKilledAt(path, store, 400)).toBe('SIGKILL');
    expect(await delivered(store)).toBeLessThan(ROWS);
    expect(await importKilledAt(path, store, 1100)).toBe('SIGKILL');
    expect(await delivered(store)).toBeLessThan(ROWS);

    const last = startImport(path, store);
    let stdout = '';
    let stderr = '';
    last.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    last.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const [code] = (await once(last, 'exit')) as [number | null];
    expect(code, stderr).toBe(0);
    const summary = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
    expect(summary).toMatchObject({ rows: ROWS, invalid: 0, deadLetters: 0, pending: 0 });
    expect((summary.accepted ?? 0) + (summary.duplicate ?? 0)).toBe(ROWS);
    expect(summary.skipped).toBeGreaterThan(0);

    const target = await snapshot();
    const recordedKeys = target.events.map((event) => event.idempotencyKey);
    expect(recordedKeys).toHaveLength(ROWS);
    expect(new Set(recordedKeys)).toEqual(new Set(keys));
    // The faults really happened, and replays of recorded events reached the target and were absorbed by its 409
    // (inside logUserEvents answers, as ApiError items).
    expect(Object.keys(target.requests.byStatus).some((status) => Number(status) >= 500)).toBe(true);
    expect(target.keys.filter((key) => key.requests > 1).length).toBeGreaterThan(0);
    expect(target.keys.every((key) => key.eventIds.length === 1)).toBe(true);
  });
});
