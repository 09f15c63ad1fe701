import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ONCEKIT_BIN } from '../../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import { runCli } from './run-cli.js';

const API_KEY = 'api-key-Zq8Rw3Tn5Vb1'; // distinctive, so a leak cannot hide
let sandbox: Sandbox;
let dir: string;
let file: string;
let tenant: string;
let count = 0;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});
beforeEach(() => {
  count += 1;
  tenant = `unreachable_${process.pid}_${count}`;
  dir = mkdtempSync(join(tmpdir(), 'oncekit-import-unreachable-'));
  file = join(dir, 'events.jsonl');
  writeFileSync(
    file,
    `${JSON.stringify({ userId: 'u1', accountId: 'a1', idempotencyKey: 'unreachable-key-1', event: { key: 'purchase' } })}\n`,
  );
});
afterEach(() => {
  sandbox.faults.clear();
  rmSync(dir, { recursive: true, force: true });
});

/** `oncekit import` in its own process, with stderr collected as it comes; fast backoff so retries come quickly. */
function startImport(targetUrl: string, apiKey = API_KEY): { child: ChildProcess; stderr: () => string; stdout: () => string } {
  const child = spawn(
    process.execPath,
    [
      ONCEKIT_BIN,
      'import',
      file,
      '--json',
      '--store',
      `sqlite:${join(dir, 'store.db')}`,
      '--backoff-base',
      '50ms',
      '--backoff-max',
      '200ms',
    ],
    {
      env: { PATH: process.env.PATH, ONCEKIT_TARGET_URL: targetUrl, ONCEKIT_TENANT: tenant, ONCEKIT_API_KEY: apiKey },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  let stdout = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString('utf8');
  });
  return { child, stderr: () => stderr, stdout: () => stdout };
}

/** The JSON log lines about retried deliveries. */
const retryLines = (stderr: string): Record<string, unknown>[] =>
  stderr
    .split('\n')
    .filter((line) => line.includes('"outbox_delivery_retry"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

async function waitFor(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('oncekit import never spins silently', () => {
  it('an empty ONCEKIT_TARGET_URL is an error (exit 2) naming it, not a fallback to production', async () => {
    for (const empty of ['', '   ']) {
      const run = await runCli(['import', file, '--store', `sqlite:${join(dir, 'store.db')}`], {
        env: { ONCEKIT_TARGET_URL: empty, ONCEKIT_TENANT: tenant, ONCEKIT_API_KEY: API_KEY },
      });
      expect(run.code, JSON.stringify(empty)).toBe(2);
      expect(run.stderr).toMatch(/ONCEKIT_TARGET_URL\)?: is (set but )?empty/);
      expect(run.stderr).not.toContain(API_KEY);
    }
  });

  it('a target that cannot be resolved is logged on stderr with each retry, with the reason; Ctrl-C leaves the row pending', async () => {
    const run = startImport('http://oncekit-unresolvable.invalid');
    await waitFor('two reported retries', () => retryLines(run.stderr()).length >= 2);
    const exited = once(run.child, 'exit');
    run.child.kill('SIGINT');
    const [code] = (await exited) as [number | null];
    expect(code).toBe(1);
    const retries = retryLines(run.stderr());
    expect(retries.slice(0, 2).map((line) => line.attempt)).toEqual([1, 2]);
    for (const line of retries) {
      expect(line).toMatchObject({ target: 'http://oncekit-unresolvable.invalid', events: 1, status: null });
      expect(line.reason).toMatch(/^no answer: .*(ENOTFOUND|EAI_AGAIN)/);
      expect(line.msg).toMatch(/^delivery to http:\/\/oncekit-unresolvable\.invalid failed \(no answer: .*\); 1 event retry in /);
    }
    expect(JSON.parse(run.stdout().trim().split('\n').at(-1) ?? '{}')).toMatchObject({ pending: 1, accepted: 0 });
    expect(run.stderr()).not.toContain(API_KEY);
  });

  it('a target that refuses the connection, then one that fails and recovers: each retry is reported, then the row is delivered', async () => {
    const refused = startImport('http://127.0.0.1:1');
    await waitFor('a reported retry', () => retryLines(refused.stderr()).length >= 1);
    const exited = once(refused.child, 'exit');
    refused.child.kill('SIGINT');
    await exited;
    expect(retryLines(refused.stderr())[0]).toMatchObject({ target: 'http://127.0.0.1:1', reason: expect.stringMatching(/ECONNREFUSED/) });

    // The same store and file: the sandbox answers 503 until it recovers.
    sandbox.faults.set({ status503: 1 });
    const failing = startImport(sandbox.url, DEFAULT_SANDBOX_API_KEY);
    await waitFor('a reported 503', () => retryLines(failing.stderr()).some((line) => line.status === 503));
    sandbox.faults.clear();
    const [code] = (await once(failing.child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(retryLines(failing.stderr()).find((line) => line.status === 503)?.reason).toMatch(/^HTTP 503/);
    expect(JSON.parse(failing.stdout().trim().split('\n').at(-1) ?? '{}')).toMatchObject({ accepted: 1, pending: 0 });
    expect(sandbox.inspect(tenant).events).toHaveLength(1);
  });
});
