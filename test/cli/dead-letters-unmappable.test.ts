import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import { capRawPayload } from '../../shared/outbox/unmappable.js';
import { openState } from '../../shared/state/open-state.js';
import { targetId } from '../../shared/target/target-id.js';
import { runCli } from './run-cli.js';

const TENANT = `unmappable_${process.pid}`;

let sandbox: Sandbox;
let dir: string;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'oncekit-unmappable-'));
});
afterAll(async () => {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An unmappable dead letter (a 20 KiB payload, so it is kept truncated) and a dead letter the target rejected. */
async function seed(store: string): Promise<{ readonly unmappable: string; readonly rejected: string }> {
  const state = await openState({ kind: 'sqlite', path: store.slice('sqlite:'.length) });
  try {
    const target = targetId(sandbox.url);
    const raw = JSON.stringify({ type: 'track', event: 'Broken', note: 'x'.repeat(20 * 1024) });
    const [poison] = await state.outbox.recordUnmappable([
      {
        tenant: TENANT,
        target,
        source: 'segment',
        sourceId: 'm-broken-1',
        dedupKey: 'segment:m-broken-1',
        reason: 'could not be mapped: TypeError: mapping bug',
        raw: capRawPayload(raw),
      },
    ]);
    const key = `rejected-key-${process.pid}`;
    const [created] = await state.outbox.enqueue([
      {
        tenant: TENANT,
        target,
        source: 'import',
        sourceId: 'file:1',
        dedupKey: `key:${key}`,
        input: { userId: 'ann', accountId: 'ann', idempotencyKey: key, events: [{ key: 'purchase' }] },
        keyDecision: null,
      },
    ]);
    await state.outbox.lease({ tenant: TENANT, target, owner: 'old-worker', limit: 1, leaseMs: 60_000 });
    const attempt = {
      number: 1,
      startedAt: Date.now() - 1000,
      finishedAt: Date.now(),
      outcome: 'rejected' as const,
      status: 400,
      message: 'bad event',
      apiErrorCode: null,
      rsCode: null,
      requests: 1,
      uncertainRequests: 0,
      eventIds: [],
    };
    await state.outbox.settle([{ id: created?.id ?? '', owner: 'old-worker', attempt, to: 'dead', reason: 'rejected by the target' }]);
    return { unmappable: poison?.id ?? '', rejected: created?.id ?? '' };
  } finally {
    await state.close();
  }
}

describe('unmappable dead letters in the CLI', () => {
  it('lists and shows them with their reason and capped raw payload, and never retries them, saying why and what to do', async () => {
    const store = `sqlite:${join(dir, 'a.db')}`;
    const env = { ONCEKIT_TARGET_URL: sandbox.url, ONCEKIT_TENANT: TENANT, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY, ONCEKIT_STORE: store };
    const { unmappable, rejected } = await seed(store);

    const list = await runCli(['dead-letters', 'list'], { env });
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(`${unmappable}  m-broken-1  key (none)`);
    expect(list.stdout).toContain('[unmappable]');
    expect(list.stdout).toContain('reason: could not be mapped: TypeError: mapping bug');
    expect(list.stdout).toMatch(/raw: {4}\{"type":"track","event":"Broken","note":"x+ … \(first 16384 of 20\d\d\d bytes\)/);
    const listed = JSON.parse((await runCli(['dead-letters', 'list', '--json'], { env })).stdout) as {
      deadLetters: { id: string; input: unknown; unmappable: { text: string; bytes: number; truncated: boolean } | null }[];
    };
    const poison = listed.deadLetters.find((entry) => entry.id === unmappable);
    expect(poison).toMatchObject({ input: null, unmappable: { truncated: true } });
    expect(Buffer.byteLength(poison?.unmappable?.text ?? '')).toBe(16 * 1024);

    const show = await runCli(['ledger', 'show', '--source-id', 'm-broken-1'], { env });
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('state:      dead letter: could not be mapped: TypeError: mapping bug');
    expect(show.stdout).toContain('unmappable: it could not be mapped, so it cannot be sent as it is');
    expect(show.stdout).toContain('raw:        {"type":"track"');

    // Named: not retried, exit 1, and the output says why and what to do.
    const named = await runCli(['dead-letters', 'retry', unmappable], { env });
    expect(named.code).toBe(1);
    expect(named.stdout).toContain('requeued 0 dead letters');
    expect(named.stdout).toContain('not retried: 1 unmappable dead letter: it could not be mapped, so it cannot be sent as it is');
    expect(named.stdout).toContain('oncekit send');
    expect(named.stdout).toContain(`${unmappable}  segment m-broken-1: could not be mapped: TypeError: mapping bug`);

    // --all: the others are retried; the unmappable one is counted apart.
    const all = await runCli(['dead-letters', 'retry', '--all', '--json'], { env });
    expect(all.code).toBe(0);
    const summary = JSON.parse(all.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
    expect(summary).toMatchObject({
      requeued: 1,
      unmappable: 1,
      unmappableEvents: [
        { id: unmappable, source: 'segment', sourceId: 'm-broken-1', deadReason: 'could not be mapped: TypeError: mapping bug' },
      ],
      events: [{ id: rejected, state: 'delivered' }],
    });
    expect(String((summary.unmappableEvents as { notRetried: string }[])[0]?.notRetried)).toContain('fix the mapping');
    const after = JSON.parse((await runCli(['dead-letters', 'list', '--json'], { env })).stdout) as { deadLetters: { id: string }[] };
    expect(after.deadLetters.map((entry) => entry.id)).toEqual([unmappable]);
  });
});
