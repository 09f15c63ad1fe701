import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { runImport } from '../../../shared/import/index.js';
import { MemoryOutboxStore } from '../../../shared/outbox/index.js';
import { fetchTransport } from '../../../shared/target/transport-fetch.js';

/**
 * The identities rows had before csv-parse replaced the hand-written CSV reader, recorded with that reader. Every
 * store that ever ran an import holds these dedupKeys: if one changed, re-running that import would send its row again.
 */
const CSV_TEXT = [
  '\uFEFFaccountId,userId,event.key,event.dateTriggered,event.fields.note,event.fields.n,event.fields.a.b,idempotencyKey\r\n',
  'a1,u1,purchase,1700000000000,"x, y",1,,\r\n',
  'a1,u1,purchase,1700000000000,"x, y",1,,\r\n',
  '\r\n',
  'a2,u2,purchase,2024-03-01T12:00:00Z,"say ""hi""",2.50,deep,\r\n',
  'a3,u3,purchase,,"multi\r\nline\nand LF",007,true,csv-key-0003\r\n',
  'a4,u4,purchase,,"",,,\n',
  'a5,u5,purchase,,héllo 🎉,-7,false,\r',
  'a6,u6,purchase\r\n',
  'a7,,purchase,,,,,\r\n',
  '"a8",u8,"purchase",,trailing,12345678901234567890,,',
].join('');

const CSV_GOLDEN: readonly (readonly [number, string])[] = [
  [1, 'row:pHuL7xq0U4CcdpIEClQG6QTS7PYuPnk8e9WgvQmHp8w#0'],
  [2, 'row:pHuL7xq0U4CcdpIEClQG6QTS7PYuPnk8e9WgvQmHp8w#1'],
  [3, 'row:FhKY470UvWABUqCMmgn4VTpha4Cokj-5n-mZ28KsKzM#0'],
  [4, 'key:csv-key-0003'],
  [5, 'row:0kIr-e6rMdqsJCJY_dsUHk2CaUdDkXUvc0EANKLPz3E#0'],
  [6, 'row:1CaAsUvo0L28ov09mnj-FU1CVlIcWkC_dccykQUE35Q#0'],
  [7, 'raw:Yw8YV95uQzRJC8PXjZvU8_5leDZ0bjTl8QaxXSB5iis#0'],
  [8, 'raw:YyjklRRS1U8Nr4C0cXM1ptlV9SthlooWLmojAhAGkTU#0'],
  [9, 'row:UaOXvt-sy62dY9DKFfcGuFHBAZ5tUVrl4Ld8xrdNKZM#0'],
];

const JSONL_TEXT = [
  `\uFEFF${JSON.stringify({ userId: 'u1', accountId: 'a1', event: { key: 'purchase', fields: { n: 1 } } })}\r\n`,
  `${JSON.stringify({ userId: 'u1', accountId: 'a1', event: { key: 'purchase', fields: { n: 1 } } })}\n`,
  '\n',
  `${JSON.stringify({ event: { fields: { b: 'é 🎉', a: [1, 2] }, key: 'purchase' }, accountId: 'a2', userId: 'u2' })}\n`,
  `${JSON.stringify({ userId: 'u3', accountId: 'a3', idempotencyKey: 'jsonl-key-0003', event: { key: 'purchase' } })}\n`,
  'not json\n',
  `${JSON.stringify({ userId: '', accountId: 'a5', event: { key: 'purchase' } })}\n`,
  `${JSON.stringify({ userId: 'u6', accountId: 'a6', event: { key: 'purchase', dateTriggered: '2024-03-01T12:00:00Z' } })}`,
].join('');

const KEY_FROM_GOLDEN: readonly (readonly [number, string])[] = [
  [1, 'key:oncekit-sha256-VE-8RALgZHk-aRfKEIYMbJ236yLbbfqiGvLWzXHmB0s'],
  [3, 'key:oncekit-sha256-ugpx02in8aVUYaSDD8VybvI9k51Fye_wROFl5xhkUOo'],
  [4, 'key:csv-key-0003'],
  [5, 'row:0kIr-e6rMdqsJCJY_dsUHk2CaUdDkXUvc0EANKLPz3E#0'],
  [6, 'key:oncekit-sha256-FBJcQPlvSP-cjGMonKM4aii7t6Gtz0PZ5EqaJF2usyg'],
  [7, 'raw:Yw8YV95uQzRJC8PXjZvU8_5leDZ0bjTl8QaxXSB5iis#0'],
  [8, 'raw:YyjklRRS1U8Nr4C0cXM1ptlV9SthlooWLmojAhAGkTU#0'],
  [9, 'key:oncekit-sha256-NHID07Onxsv0Qhf9YcIDoZIcipDTLDQTVAyHXZP4FJ4'],
];

const BIG_GOLDEN = 'gO65pzDiWygj5d69svrYxseM_b6eXcMYNMw4KWON2eI';

const JSONL_GOLDEN: readonly (readonly [number, string])[] = [
  [1, 'row:3iitZvZChBtNIwNlHYBZ8_k59aSNpq_87PnKWkH9FUo#0'],
  [2, 'row:3iitZvZChBtNIwNlHYBZ8_k59aSNpq_87PnKWkH9FUo#1'],
  [4, 'row:EuXYj75lYuxvpe5Fx24DgQ_EF_w1N76KPaVGRldaTU8#0'],
  [5, 'key:jsonl-key-0003'],
  [6, 'raw:fM-h-_OUDm8MA3XYfA-SNaUFFOFMtCe9-vUHeYeybM8#0'],
  [7, 'raw:bnF9hOc3gaT1XtX3a9DOUEf9L4QLjBIqya7CjlHvpD8#0'],
  [8, 'row:fqnbwjcfACv_93nCJjXuCVvYSOi4fh6cRJsBByIEXkk#0'],
];

/** Enough rows to cross many read chunks, with quoted line breaks, quotes and commas falling on chunk edges. */
function bigCsv(): string {
  const rows = ['accountId,userId,event.key,event.fields.note,event.fields.n'];
  for (let n = 0; n < 3000; n += 1) {
    const note = n % 3 === 0 ? `"line ${n}\r\nnext, ""q"" ${'x'.repeat(n % 41)}"` : n % 3 === 1 ? `plain ${n}` : '';
    rows.push(`a${n % 7},u${n % 11},purchase,${note},${n % 5}`);
  }
  return `${rows.join('\r\n')}\r\n`;
}

const TENANT = 'row_identity';
let sandbox: Sandbox;
let dir: string;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-row-identity-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Imports `text` into a fresh store and returns each record's dedupKey, by record number. */
async function identities(name: string, text: string, keyFrom?: readonly string[]): Promise<[number, string][]> {
  const path = join(dir, name);
  writeFileSync(path, text);
  const store = new MemoryOutboxStore();
  const summary = await runImport({
    file: path,
    ...(keyFrom ? { keyFrom } : {}),
    delivery: {
      store,
      target: { baseUrl: sandbox.url, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: fetchTransport(fetch) },
      config: { pollMs: 20 },
    },
  });
  const out: [number, string][] = [];
  for (let recordNumber = 1; recordNumber <= summary.rows + 2; recordNumber += 1) {
    for (const entry of await store.findBySourceId(TENANT, `${name}:${recordNumber}`)) out.push([recordNumber, entry.dedupKey]);
  }
  if (process.env.ONCEKIT_PRINT_GOLDEN) console.log(name, JSON.stringify(out));
  return out;
}

describe('row identities', () => {
  it('CSV rows keep the identities the earlier reader gave them, valid and invalid', async () => {
    expect(await identities('golden.csv', CSV_TEXT)).toEqual(CSV_GOLDEN);
  });

  it('--key-from keys are the same as before', async () => {
    expect(await identities('keyfrom.csv', CSV_TEXT, ['event.fields.n', 'userId'])).toEqual(KEY_FROM_GOLDEN);
  });

  it('rows across many read chunks keep their identities', async () => {
    const all = await identities('big.csv', bigCsv());
    expect(all).toHaveLength(3000);
    const digest = createHash('sha256').update(JSON.stringify(all)).digest('base64url');
    if (process.env.ONCEKIT_PRINT_GOLDEN) console.log('BIG', digest);
    expect(digest).toBe(BIG_GOLDEN);
  });

  it('JSONL rows keep their identities', async () => {
    expect(await identities('golden.jsonl', JSONL_TEXT)).toEqual(JSONL_GOLDEN);
  });
});
