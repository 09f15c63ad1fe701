import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openState } from '../../shared/state/open-state.js';
import { DEFAULT_REDIS_LISTING_SCAN } from '../../shared/state/redis/outbox.js';
import { enqueueImportBehindScanLimit } from '../shared/state/redis/listing-fixture.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from '../shared/state/redis/test-env.js';
import { runCli } from './run-cli.js';

const TENANT = 'ledger_list';
let dir: string;
let store: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-ledger-list-'));
  store = `sqlite:${join(dir, 'o.db')}`;
  const state = await openState({ kind: 'sqlite', path: join(dir, 'o.db') });
  try {
    const event = (n: number, source: string) => ({
      tenant: TENANT,
      target: 'https://t.test',
      source,
      sourceId: `events.csv:${n}`,
      dedupKey: `key:k-${n}-abcdef`,
      input: { userId: 'ann', accountId: 'ann', idempotencyKey: `k-${n}-abcdef`, events: [{ key: 'purchase' }] },
      keyDecision: null,
    });
    await state.outbox.enqueue([event(1, 'import'), event(2, 'segment'), event(3, 'import')]);
    await state.outbox.recordUnmappable([
      {
        tenant: TENANT,
        target: 'https://t.test',
        source: 'webhook',
        sourceId: 'w-1',
        dedupKey: 'webhook:w-1',
        reason: 'could not be mapped: no user',
        raw: { text: '{}', bytes: 2, truncated: false },
      },
    ]);
  } finally {
    await state.close();
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('oncekit ledger list', () => {
  const list = (...args: string[]) => runCli(['ledger', 'list', '--store', store, '--tenant', TENANT, ...args]);

  it('lists every event newest first, and filters by state, source, key and source id', async () => {
    const all = await list('--json');
    expect(all.code).toBe(0);
    const parsed = JSON.parse(all.stdout) as { entries: { sourceId: string; state: string }[]; hasMore: boolean };
    expect(parsed.entries.map((entry) => entry.sourceId)).toEqual(['w-1', 'events.csv:3', 'events.csv:2', 'events.csv:1']);
    expect(parsed.hasMore).toBe(false);
    const dead = await list('--state', 'dead');
    expect(dead.stdout).toContain('w-1');
    expect(dead.stdout).toContain('could not be mapped: no user');
    expect(dead.stdout).not.toContain('events.csv');
    expect((await list('--source', 'segment')).stdout).toMatch(/events\.csv:2[^\n]*\n$/);
    expect((await list('--key', 'k-3-abcdef')).stdout.trim().split('\n')).toHaveLength(1);
    expect((await list('--source-id', 'events.csv:1')).stdout).toContain('k-1-abcdef');
    const paged = await list('--limit', '2');
    expect(paged.stdout).toContain('… more: --offset 2');
    expect((await list('--since', '1h', '--json')).stdout).toContain('events.csv:1');
    expect((await list('--since', '2999-01-01T00:00:00Z')).stdout).toContain('no events');
    expect((await list('--until', '2000-01-01T00:00:00Z')).stdout).toContain('no events');
    expect((await list('--until', '2999-01-01T00:00:00Z', '--source', 'segment')).stdout).toContain('events.csv:2');
  });

  it('refuses bad filters naming the option', async () => {
    const state = await list('--state', 'lost');
    expect(state.code).toBe(2);
    expect(state.stderr).toContain('--state');
    const since = await list('--since', 'yesterday-ish');
    expect(since.code).toBe(2);
    expect(since.stderr).toContain('--since');
    const until = await list('--until', 'later');
    expect(until.code).toBe(2);
    expect(until.stderr).toContain('--until');
    const limit = await list('--limit', '500');
    expect(limit.code).toBe(2);
    expect(limit.stderr).toContain('--limit');
  });
});

describe.skipIf(skipRedisTests)('oncekit ledger list on Redis, past the newest 20,000 events', () => {
  const keyPrefix = uniqueRedisPrefix('ledger-list');
  const env = { ONCEKIT_REDIS_PREFIX: keyPrefix, ONCEKIT_REDIS_ALLOW_VOLATILE: '1' };
  const list = (...args: string[]) =>
    runCli(['ledger', 'list', '--store', redisEnv.url, '--tenant', TENANT, '--source', 'import', ...args], { env });
  let client: Redis;
  beforeAll(async () => {
    client = await connectTestRedis();
    await enqueueImportBehindScanLimit(client, keyPrefix, TENANT, 'https://t.test');
  }, 60_000);
  afterAll(async () => {
    await deleteRedisKeys(client, keyPrefix);
    await client.quit();
  });

  it('says it searched only the newest, and --until from there finds the older event', async () => {
    const first = await list();
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('no events in the ledger of tenant ledger_list match among those searched');
    const hint = /searched the newest 20000 events only; older ones: --until (\S+) --offset 0/.exec(first.stdout);
    expect(hint, first.stdout).not.toBeNull();
    const json = JSON.parse((await list('--json')).stdout) as { searchStopped?: { searched: number; resumeUntil: number } };
    expect(json.searchStopped?.searched).toBe(DEFAULT_REDIS_LISTING_SCAN);
    expect(new Date(json.searchStopped?.resumeUntil ?? 0).toISOString()).toBe(hint?.[1]);
    const older = await list('--until', hint?.[1] ?? '');
    expect(older.stdout).toMatch(/ import {2}s-0 /);
    expect(older.stdout).not.toContain('searched the newest');
  });
});
