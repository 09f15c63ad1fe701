import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ONCEKIT_BIN, type RunningCommand, startOncekit } from '../../../cli/spawn-self.js';
import { startSandbox } from '../../../sandbox/target/index.js';
import { SqliteOutboxStore } from '../../../shared/outbox/index.js';
import { request, tempDir, waitFor } from './helpers.js';

/** `oncekit relay` as deployed: the built CLI in its own process (run `npx tsc -p tsconfig.build.json` first). */

let dir: ReturnType<typeof tempDir>;
const children: ChildProcess[] = [];
const commands: RunningCommand[] = [];

beforeAll(() => {
  dir = tempDir('oncekit-cli-relay-');
});
afterEach(async () => {
  await Promise.all(commands.splice(0).map((command) => command.stop()));
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
});
afterAll(() => dir.remove());

function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, ...extra };
}

interface Spawned {
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
}

/** Spawns `oncekit relay` and collects all its output (startOncekit keeps only the first line). */
function spawnRelay(args: readonly string[], env: NodeJS.ProcessEnv): Spawned {
  const child = spawn(process.execPath, [ONCEKIT_BIN, 'relay', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const spawned: Spawned = { child, stdout: '', stderr: '' };
  child.stdout?.on('data', (chunk: Buffer) => {
    spawned.stdout += chunk.toString('utf8');
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    spawned.stderr += chunk.toString('utf8');
  });
  return spawned;
}

describe('oncekit relay', () => {
  it('prints the listening line first (startOncekit), serves /healthz, and exits 0 on SIGTERM', async () => {
    const command = await startOncekit(['relay', '--port', '0'], baseEnv({ ONCEKIT_STORE: `sqlite:${dir.dir}/first-line.db` }));
    commands.push(command);
    expect(command.firstLine).toMatch(/^oncekit relay listening on http:\/\/127\.0\.0\.1:\d+$/);
    expect(command.url).not.toBeNull();
    const health = await request(`${command.url}/healthz`);
    expect(health.json).toEqual({ status: 'ok' });
    expect(await command.stop('SIGTERM')).toBe(0);
  });

  it('without a target: a loud sandbox warning, the generated secret printed once, and it works as the secret', async () => {
    const store = `${dir.dir}/generated.db`;
    const relay = spawnRelay(['--port', '0', '--store', `sqlite:${store}`], baseEnv());
    await waitFor('the start-up lines', () => relay.stdout.includes('store: '), 15_000);
    const lines = relay.stdout.split('\n');
    expect(lines[0]).toMatch(/^oncekit relay listening on http:\/\/127\.0\.0\.1:\d+$/);
    const url = /(http:\/\/\S+)/.exec(lines[0] ?? '')?.[1] ?? '';
    expect(lines.some((line) => /^!! .*BUILT-IN SANDBOX/.test(line))).toBe(true);

    const secretLines = lines.filter((line) => line.startsWith('relay secret'));
    expect(secretLines).toHaveLength(1);
    const secret = /: (\S+)$/.exec(secretLines[0] ?? '')?.[1] ?? '';
    expect(secret.length).toBeGreaterThanOrEqual(16);

    // The secret opens the relay: metrics with it, 401 without; an event goes through to the sandbox.
    expect((await request(`${url}/metrics`)).status).toBe(401);
    expect((await request(`${url}/metrics`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(200);
    const sent = await request(`${url}/salesforce/track-event/by-id`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        usersEvents: [{ userId: 'cli@example.com', accountId: 'cli@example.com', key: 'purchase', idempotencyKey: 'cli-0001' }],
      }),
    });
    expect(sent.status).toBe(200);
    expect(sent.json).toMatchObject({ results: [{ ok: true, queued: true }] });

    const exited = once(relay.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    relay.child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
    expect(relay.stdout).toContain('stopping');
    // Printed in the start-up lines only (the line and the status page link), never in the JSON logs.
    expect(relay.stdout.split(secret).length - 1).toBe(2);
    expect(relay.stderr).not.toContain(secret);

    // The accepted event is durable in the store the relay was given.
    const outbox = new SqliteOutboxStore({ path: store });
    try {
      expect((await outbox.findByKey('demo', 'cli-0001')).length).toBe(1);
    } finally {
      await outbox.close();
    }
  });

  it('with ONCEKIT_RELAY_SECRET set, the secret is never printed', async () => {
    const secret = 'configured-secret-Gh6Jk2Lm8Np4';
    const relay = spawnRelay(['--port', '0'], baseEnv({ ONCEKIT_RELAY_SECRET: secret, ONCEKIT_STORE: 'memory' }));
    await waitFor('the start-up lines', () => relay.stdout.includes('store: '), 15_000);
    expect(relay.stdout).not.toContain(secret);
    expect(relay.stdout).toContain('?token=<ONCEKIT_RELAY_SECRET>');
    const exited = once(relay.child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    relay.child.kill('SIGTERM');
    // Exit code and signal together: a failure says which signal ended it, if one did.
    expect(await exited).toEqual([0, null]);
    expect(relay.stderr).not.toContain(secret);
  });

  it('a bad configuration exits non-zero naming the variable, without echoing the secret', async () => {
    const relay = spawnRelay(['--port', '0'], baseEnv({ ONCEKIT_RELAY_SECRET: 'short-Qp4', ONCEKIT_STORE: 'memory' }));
    const [code] = (await once(relay.child, 'exit')) as [number | null];
    expect(code).not.toBe(0);
    expect(relay.stdout + relay.stderr).toContain('ONCEKIT_RELAY_SECRET');
    expect(relay.stdout + relay.stderr).not.toContain('short-Qp4');
    expect(relay.stdout).not.toMatch(/listening/);
  });

  it('a target that refuses the API key stops the relay with exit 78 and a line naming ONCEKIT_API_KEY, never the key', async () => {
    const target = await startSandbox({ port: 0, apiKey: 'the-right-key-Tz4Wq8' });
    try {
      const wrongKey = 'the-wrong-key-Mb7Xc2';
      const relay = spawnRelay(
        ['--port', '0'],
        baseEnv({ ONCEKIT_STORE: 'memory', ONCEKIT_TARGET_URL: target.url, ONCEKIT_TENANT: 't1', ONCEKIT_API_KEY: wrongKey }),
      );
      const [code] = (await once(relay.child, 'exit')) as [number | null];
      expect(code).toBe(78);
      expect(relay.stderr).toMatch(/^oncekit: the target at .* refused the API key in ONCEKIT_API_KEY for tenant "t1" \(HTTP 401/m);
      expect(relay.stdout + relay.stderr).not.toContain(wrongKey);
      expect(relay.stderr).not.toMatch(/\n\s+at /);
      expect(relay.stdout).not.toMatch(/listening/);
    } finally {
      await target.close();
    }
  });

  it('a port in use is one line naming the port and --port, exit 1, no stack trace', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as AddressInfo;
    try {
      const relay = spawnRelay(['--port', String(port)], baseEnv({ ONCEKIT_STORE: 'memory', ONCEKIT_LOG_LEVEL: 'silent' }));
      const [code] = (await once(relay.child, 'exit')) as [number | null];
      expect(code).toBe(1);
      expect(relay.stderr.trim()).toBe(
        `oncekit: cannot listen on 127.0.0.1:${port}: the port is already in use; stop what listens there or choose another with --port (or ONCEKIT_PORT)`,
      );
    } finally {
      taken.close();
    }
  });
});
