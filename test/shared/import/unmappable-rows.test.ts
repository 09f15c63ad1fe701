import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { runImport } from '../../../shared/import/index.js';
import { MemoryOutboxStore } from '../../../shared/outbox/index.js';
import { fetchTransport } from '../../../shared/target/transport-fetch.js';

/** An event key that makes building the user event throw an unexpected error (a bug, not bad input). */
const EXPLODING_KEY = 'explode-the-mapping';

// The real event builder, except that it throws a TypeError for EXPLODING_KEY.
vi.mock('../../../shared/events/user-event.js', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../shared/events/user-event.js')>();
  return {
    ...original,
    buildUserEventInput: (...args: Parameters<typeof original.buildUserEventInput>) => {
      const [draft] = args;
      if (draft.events?.[0]?.key === EXPLODING_KEY) throw new TypeError('mapping bug');
      return original.buildUserEventInput(...args);
    },
  };
});

const TENANT = 'unmappable_rows';
let sandbox: Sandbox;
let dir: string;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-unmappable-rows-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const line = (value: unknown): string => `${JSON.stringify(value)}\n`;

describe('import rows that cannot be mapped', () => {
  it('a row whose mapping throws anything is reported per row, the import goes on, and it is a dead letter in the ledger once across re-runs', async () => {
    const path = join(dir, 'events.jsonl');
    const rows = [
      line({ userId: 'u1', accountId: 'a1', event: { key: 'purchase' } }),
      line({ userId: 'u2', accountId: 'a2', event: { key: EXPLODING_KEY } }),
      line({ userId: 'u3', accountId: 'a3', idempotencyKey: 'order-0000003', event: { key: EXPLODING_KEY } }),
      'not json\n',
      line({ userId: 'u5', accountId: 'a5', event: { key: 'purchase' } }),
    ];
    writeFileSync(path, rows.join(''));
    const store = new MemoryOutboxStore();
    const delivery = {
      store,
      target: { baseUrl: sandbox.url, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: fetchTransport(fetch) },
      config: { pollMs: 20 },
    };
    const run = () => runImport({ file: path, delivery });

    const first = await run();
    expect(first).toMatchObject({ rows: 5, valid: 2, invalid: 3, accepted: 2, deadLetters: 0, pending: 0 });
    expect(sandbox.inspect(TENANT).events.map((event) => event.userId)).toEqual(['u1', 'u5']);
    expect(first.errorsFile).toBe(`${path}.errors.jsonl`);
    expect(
      readFileSync(`${path}.errors.jsonl`, 'utf8')
        .trim()
        .split('\n')
        .map((text) => JSON.parse(text)),
    ).toEqual([
      { recordNumber: 2, error: 'could not be mapped: TypeError: mapping bug', ...JSON.parse(rows[1] ?? '') },
      { recordNumber: 3, error: 'could not be mapped: TypeError: mapping bug', ...JSON.parse(rows[2] ?? '') },
      { recordNumber: 4, error: expect.stringMatching(/^not valid JSON: /), line: 'not json' },
    ]);
    const dead = await store.listDead(TENANT);
    expect(dead.map((entry) => [entry.sourceId, entry.deadReason, entry.unmappable?.text])).toEqual([
      ['events.jsonl:2', 'could not be mapped: TypeError: mapping bug', rows[1]?.trimEnd()],
      ['events.jsonl:3', 'could not be mapped: TypeError: mapping bug', rows[2]?.trimEnd()],
      ['events.jsonl:4', expect.stringMatching(/^not valid JSON: /), 'not json'],
    ]);
    // The identity the row would have had: its key, else its content and how many identical rows came before it.
    expect(dead[1]?.dedupKey).toBe('key:order-0000003');
    expect(dead[0]?.dedupKey).toMatch(/^row:[\w-]+#0$/);
    expect(dead[2]?.dedupKey).toMatch(/^raw:[\w-]+#0$/);

    // A re-run reports the same rows and records nothing new.
    const second = await run();
    expect(second).toMatchObject({ rows: 5, invalid: 3, skipped: 2, accepted: 2 });
    expect((await store.listDead(TENANT)).map((entry) => entry.id)).toEqual(dead.map((entry) => entry.id));
    expect(await store.counts(TENANT)).toMatchObject({ delivered: 2, dead: 3, pending: 0 });
  });
});
