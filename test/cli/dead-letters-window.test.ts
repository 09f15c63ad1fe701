import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import type { AttemptRecord } from '../../shared/outbox/types.js';
import { openState } from '../../shared/state/open-state.js';
import { targetId } from '../../shared/target/target-id.js';
import { runCli } from './run-cli.js';

const TENANT = `window_${process.pid}`;
const HOUR = 3_600_000;

let sandbox: Sandbox;
let dir: string;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'oncekit-window-'));
});
afterAll(async () => {
  await sandbox.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A dead letter whose only attempt got no answer (it may have landed), started `hoursAgo` ago. */
async function deadLetter(store: string, key: string, hoursAgo: number): Promise<string> {
  // The store's clock decides when the attempt was leased, which is what the key window counts from.
  const then = { now: () => Date.now() - hoursAgo * HOUR };
  const state = await openState({ kind: 'sqlite', path: store.slice('sqlite:'.length) }, { clock: then });
  try {
    const target = targetId(sandbox.url);
    const [created] = await state.outbox.enqueue([
      {
        tenant: TENANT,
        target,
        source: 'import',
        sourceId: `file:${key}`,
        dedupKey: `key:${key}`,
        input: { userId: 'ann', accountId: 'ann', idempotencyKey: key, events: [{ key: 'purchase' }] },
        keyDecision: null,
      },
    ]);
    await state.outbox.lease({ tenant: TENANT, target, owner: 'old-worker', limit: 1, leaseMs: 60_000 });
    const startedAt = then.now();
    const attempt: AttemptRecord = {
      number: 1,
      startedAt,
      finishedAt: startedAt + 10_000,
      outcome: 'failed',
      status: null,
      message: 'timeout',
      apiErrorCode: null,
      rsCode: null,
      requests: 3,
      uncertainRequests: 3,
      eventIds: [],
    };
    await state.outbox.settle([{ id: created?.id ?? '', owner: 'old-worker', attempt, to: 'dead', reason: 'gave up' }]);
    return created?.id ?? '';
  } finally {
    await state.close();
  }
}

describe('dead-letters retry and the 24 h key window', () => {
  it('refuses, before sending, a dead letter that may have landed longer ago than the key window, and says why', async () => {
    const store = `sqlite:${join(dir, 'a.db')}`;
    const env = { ONCEKIT_TARGET_URL: sandbox.url, ONCEKIT_TENANT: TENANT, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY, ONCEKIT_STORE: store };
    const old = await deadLetter(store, `old-event-${process.pid}`, 23.5);
    const recent = await deadLetter(store, `recent-event-${process.pid}`, 2);

    // The list says, for each, until when a resend is safe.
    const list = await runCli(['dead-letters', 'list'], { env });
    expect(list.code).toBe(0);
    const block = (id: string) => {
      const at = list.stdout.indexOf(id);
      const next = list.stdout.indexOf('\nob_', at);
      return list.stdout.slice(at, next === -1 ? undefined : next);
    };
    expect(block(old)).toMatch(
      /window: the target's key window closed at .*: a resend could record it twice, so a retry refuses it unless --force-past-window/,
    );
    expect(block(recent)).toMatch(/window: a resend is safe until \d{4}-/);
    const listed = await runCli(['dead-letters', 'list', '--json'], { env });
    const letters = (JSON.parse(listed.stdout) as { deadLetters: { id: string; landedSince: number; resendSafeUntil: number }[] })
      .deadLetters;
    for (const letter of letters) expect(letter.resendSafeUntil).toBe(letter.landedSince + 23 * HOUR);
    expect(letters.map((letter) => letter.resendSafeUntil > Date.now())).toEqual([false, true]);

    const run = await runCli(['dead-letters', 'retry', '--all', '--json'], { env });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`not resent: ${old}`);
    expect(run.stderr).toContain('--force-past-window');
    const summary = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as { events: { id: string; state: string }[] };
    expect(summary.events.map((event) => [event.id, event.state])).toEqual([[recent, 'delivered']]);
    expect(sandbox.inspect(TENANT).events.map((event) => event.idempotencyKey)).toEqual([`recent-event-${process.pid}`]);

    // The ledger says since when the event may have landed (the store's time of that lease).
    const show = await runCli(['ledger', 'show', `old-event-${process.pid}`], { env });
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/landed\?: +maybe: an attempt that started at \d{4}-\d\d-\d\dT[\d:.]+Z got no definite answer/);

    const forced = await runCli(['dead-letters', 'retry', old, '--force-past-window'], { env });
    expect(forced.code).toBe(0);
    expect(forced.stderr).toContain('warning: resending anyway (--force-past-window)');
    expect(sandbox.inspect(TENANT).events).toHaveLength(2);
  });
});
