import '../fakes/no-proxy.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ONCEKIT_BIN } from '../../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import type { AttemptRecord } from '../../shared/outbox/types.js';
import { openState } from '../../shared/state/open-state.js';
import { targetId } from '../../shared/target/target-id.js';
import { runCli } from './run-cli.js';

/**
 * The tenant and target default the same way in every command: the option, else ONCEKIT_TENANT / ONCEKIT_TARGET_URL,
 * else, for a command that reads a store, the only tenant (and target) the store holds; an empty variable is an error.
 */

let sandbox: Sandbox;
let dir: string;
let store: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-defaults-'));
  store = join(dir, 'store.db');
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

let sequence = 0;

/** Stores one event of `tenant` for `target` in the SQLite store, as a dead letter when asked; returns its key. */
async function stored(tenant: string, target: string, options: { dead?: boolean } = {}): Promise<string> {
  sequence += 1;
  const key = `defaults-${process.pid}-${sequence}`;
  const state = await openState({ kind: 'sqlite', path: store });
  try {
    const [created] = await state.outbox.enqueue([
      {
        tenant,
        target: targetId(target),
        source: 'import',
        sourceId: `events.jsonl:${sequence}`,
        dedupKey: `key:${key}`,
        input: { userId: 'ann', accountId: 'ann', idempotencyKey: key, events: [{ key: 'purchase' }] },
        keyDecision: null,
      },
    ]);
    if (options.dead) {
      await state.outbox.lease({ tenant, target: targetId(target), owner: 'old-worker', limit: 1, leaseMs: 60_000 });
      const now = Date.now();
      const attempt: AttemptRecord = {
        number: 1,
        startedAt: now - 1000,
        finishedAt: now,
        outcome: 'rejected',
        status: 400,
        message: 'bad event',
        apiErrorCode: null,
        rsCode: null,
        requests: 1,
        uncertainRequests: 0,
        eventIds: [],
      };
      await state.outbox.settle([{ id: created?.id ?? '', owner: 'old-worker', attempt, to: 'dead', reason: 'rejected' }]);
    }
    return key;
  } finally {
    await state.close();
  }
}

const withStore = (extra: Record<string, string> = {}): Record<string, string> => ({ ONCEKIT_STORE: `sqlite:${store}`, ...extra });

describe('the tenant a command reads a store for', () => {
  it('is the relay’s built-in-sandbox tenant for `ledger show KEY` run in the same folder with no options', async () => {
    const secret = 'defaults-relay-secret-0123456789';
    const relay = spawn(process.execPath, [ONCEKIT_BIN, 'relay', '--port', '0'], {
      cwd: dir,
      env: { PATH: process.env.PATH, ONCEKIT_RELAY_SECRET: secret },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(relay);
    let output = '';
    const url = await new Promise<string>((resolve, reject) => {
      relay.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString('utf8');
        const found = /listening on (http:\/\/\S+)/.exec(output)?.[1];
        if (found && output.includes('store:')) resolve(found);
      });
      relay.once('exit', (code) => reject(new Error(`the relay exited with ${code}: ${output}`)));
    });
    expect(output).toContain('tenant "demo"');
    const key = `sandbox-default-${process.pid}`;
    const sent = await fetch(`${url}/salesforce/track-event/by-id`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        usersEvents: [{ userId: 'ann@example.com', accountId: 'ann@example.com', key: 'purchase', idempotencyKey: key }],
      }),
    });
    expect(sent.status).toBe(200);
    const exited = once(relay, 'exit');
    relay.kill('SIGTERM');
    await exited;

    const show = await runCli(['ledger', 'show', key, '--json'], { cwd: dir });
    expect(show.stderr).toBe('');
    expect(show.code).toBe(0);
    const { entries } = JSON.parse(show.stdout) as { entries: { tenant: string; key: string }[] };
    expect(entries.map((entry) => [entry.tenant, entry.key])).toEqual([['demo', key]]);
  });

  it('is the only tenant the store holds, for ledger show and dead-letters list', async () => {
    const key = await stored('solo', sandbox.url, { dead: true });
    const show = await runCli(['ledger', 'show', key], { env: withStore() });
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(key);
    const list = await runCli(['dead-letters', 'list', '--json'], { env: withStore() });
    expect(list.code).toBe(0);
    expect((JSON.parse(list.stdout) as { deadLetters: { key: string }[] }).deadLetters.map((entry) => entry.key)).toEqual([key]);
  });

  it('is the option, else ONCEKIT_TENANT, over what the store holds', async () => {
    const key = await stored('solo', sandbox.url);
    const fromEnv = await runCli(['ledger', 'show', key], { env: withStore({ ONCEKIT_TENANT: 'other' }) });
    expect(fromEnv.code).toBe(1);
    expect(fromEnv.stderr).toContain('the ledger of tenant other has no event');
    const fromOption = await runCli(['ledger', 'show', key, '--tenant', 'solo'], { env: withStore({ ONCEKIT_TENANT: 'other' }) });
    expect(fromOption.code).toBe(0);
  });

  it('with several tenants in the store, is a usage error that lists them and names the option', async () => {
    const key = await stored('acme', sandbox.url);
    await stored('globex', 'https://other.target.test');
    for (const args of [
      ['ledger', 'show', key],
      ['dead-letters', 'list'],
      ['dead-letters', 'retry', '--all'],
    ]) {
      const run = await runCli(args, { env: withStore({ ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY }) });
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stderr).toContain(
        `oncekit: --tenant (or ONCEKIT_TENANT): required: the store sqlite:${store} holds events of several tenants (acme, globex); give one`,
      );
    }
    // A given target narrows it down to the tenant that has events for it.
    const narrowed = await runCli(['dead-letters', 'retry', '--all', '--target-url', sandbox.url], {
      env: withStore({ ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY }),
    });
    expect(narrowed.stderr).not.toContain('--tenant');
    expect(narrowed.code).toBe(0);
  });

  it('with no events in the store, is a usage error that says so', async () => {
    const state = await openState({ kind: 'sqlite', path: store });
    await state.close();
    const run = await runCli(['ledger', 'show', 'some-key-123'], { env: withStore() });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `--tenant (or ONCEKIT_TENANT): required: the store sqlite:${store} holds no events to take the tenant from`,
    );
  });
});

describe('the target a command delivers to', () => {
  it('is the only target the store holds for the tenant: dead-letters retry delivers there with no target or tenant given', async () => {
    const tenant = `retry_${process.pid}`;
    const key = await stored(tenant, sandbox.url, { dead: true });
    const run = await runCli(['dead-letters', 'retry', '--all', '--json'], {
      env: withStore({ ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY }),
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(sandbox.inspect(tenant).events.map((event) => event.idempotencyKey)).toEqual([key]);
  });

  it('is the store’s for an import too, when it has one for the tenant', async () => {
    const tenant = `import_${process.pid}`;
    await stored(tenant, sandbox.url);
    const file = join(dir, 'events.jsonl');
    writeFileSync(
      file,
      `${JSON.stringify({ userId: 'u1', accountId: 'a1', idempotencyKey: `import-default-${process.pid}`, event: { key: 'purchase' } })}\n`,
    );
    const run = await runCli(['import', file, '--json'], { env: withStore({ ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY }) });
    expect(run.code).toBe(0);
    expect(sandbox.inspect(tenant).events.map((event) => event.idempotencyKey)).toContain(`import-default-${process.pid}`);
  });

  it('with several targets for the tenant, is a usage error that lists them and names the option', async () => {
    await stored('acme', sandbox.url, { dead: true });
    await stored('acme', 'https://other.target.test/api/', { dead: true });
    const run = await runCli(['dead-letters', 'retry', '--all'], { env: withStore({ ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY }) });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      `oncekit: --target-url (or ONCEKIT_TARGET_URL): required: the store sqlite:${store} holds events of tenant acme for several targets (${targetId(sandbox.url)}, https://other.target.test/api); give one`,
    );
    // Only delivering needs a target.
    expect((await runCli(['dead-letters', 'retry', '--all', '--enqueue-only'], { env: withStore() })).code).toBe(0);
  });
});

describe('an empty variable', () => {
  it.each([
    ['send', ['send', '--user-id', 'u', '--account-id', 'a', '--event', 'purchase']],
    ['import', ['import', 'FILE']],
    ['ledger show', ['ledger', 'show', 'some-key-123']],
    ['dead-letters retry', ['dead-letters', 'retry', '--all']],
    ['relay', ['relay', '--port', '0']],
  ])('ONCEKIT_TARGET_URL set but empty is an error for %s, not production', async (_name, args) => {
    mkdirSync(join(dir, '.oncekit'), { recursive: true });
    await stored('solo', sandbox.url, { dead: true });
    const file = join(dir, 'events.jsonl');
    writeFileSync(file, `${JSON.stringify({ userId: 'u1', accountId: 'a1', event: { key: 'purchase' } })}\n`);
    const env = withStore({ ONCEKIT_TARGET_URL: '', ONCEKIT_TENANT: 'solo', ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY });
    const run = await runCli(
      args.map((arg) => (arg === 'FILE' ? file : arg)),
      { env, cwd: dir },
    );
    // Even a command that does not deliver (ledger show) refuses it: an empty variable is a mistake to point out.
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/ONCEKIT_TARGET_URL\)?: is set but empty/);
    expect(run.stdout).toBe('');
  });

  it('ONCEKIT_TENANT set but empty is an error, not the store’s tenant', async () => {
    const key = await stored('solo', sandbox.url);
    const run = await runCli(['ledger', 'show', key], { env: withStore({ ONCEKIT_TENANT: '' }) });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('ONCEKIT_TENANT: is set but empty');
  });
});
