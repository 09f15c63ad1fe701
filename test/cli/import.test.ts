import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ONCEKIT_BIN } from '../../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import { decideKey, fieldsCandidate } from '../../shared/keys/index.js';
import { type CliRun, runCli } from './run-cli.js';

let sandbox: Sandbox;
let strict: Sandbox;
let dir: string;
let tenant: string;
let tenantCount = 0;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  strict = await startSandbox({ port: 0, strictUsers: true });
});
afterAll(async () => {
  await sandbox.close();
  await strict.close();
});
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-import-'));
  tenantCount += 1;
  tenant = `import_${process.pid}_${tenantCount}`;
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

const env = (target: Sandbox = sandbox): Record<string, string> => ({
  ONCEKIT_TARGET_URL: target.url,
  ONCEKIT_TENANT: tenant,
  ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
  ONCEKIT_STORE: `sqlite:${join(dir, 'store.db')}`,
});

const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const line = (value: unknown): string => `${JSON.stringify(value)}\n`;
const purchase = (n: number, extra: Record<string, unknown> = {}) => ({
  userId: `u${n}`,
  accountId: `a${n}`,
  event: { key: 'purchase', dateTriggered: 1_700_000_000_000 + n, fields: { order_id: `o-${n}`, revenue: n } },
  ...extra,
});

/** The summary printed by --json: the last line of stdout. */
function summaryOf(run: CliRun): Record<string, unknown> {
  const lines = run.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
}

const recorded = (target: Sandbox = sandbox) => target.inspect(tenant).events;

/** The errors file of a JSONL import, line by line. */
const errorLines = (path: string): Record<string, unknown>[] =>
  readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((text) => JSON.parse(text) as Record<string, unknown>);

const jsonError = (text: string): string => {
  try {
    JSON.parse(text);
    return '';
  } catch (error) {
    return (error as Error).message;
  }
};

describe('oncekit import (JSONL)', () => {
  it('imports valid lines, writes bad ones as they were to a JSONL errors file with why, and goes on', async () => {
    const lines = [
      line(purchase(1, { idempotencyKey: 'order-0000001' })),
      line(purchase(2)),
      'not json\n',
      '\n',
      line({ userId: '', accountId: 'a4', event: { key: 'x' } }),
      line({ ...purchase(6), extra: true }),
      line({ userId: 'u7', accountId: 'a7', event: { key: 'purchase', dateTriggered: 'yesterday' } }),
      line({ userId: 'u8', accountId: 'a8', event: { key: 'purchase', fields: { note: 'x'.repeat(1501) } } }),
      line(purchase(9, { idempotencyKey: 'order-0000009' })),
    ];
    const path = file('events.jsonl', lines.join(''));
    const run = await runCli(['import', path, '--json'], { env: env() });
    expect(run.code).toBe(1);
    expect(summaryOf(run)).toEqual({
      file: path,
      format: 'jsonl',
      dryRun: false,
      tenant,
      rows: 8,
      valid: 3,
      invalid: 5,
      enqueued: 3,
      skipped: 0,
      accepted: 3,
      duplicate: 0,
      rejected: 0,
      deadLetters: 0,
      possibleDuplicates: 0,
      keysKept: 2,
      keysHashed: 0,
      keysDropped: 1,
      pending: 0,
      interrupted: false,
      errorsFile: `${path}.errors.jsonl`,
      elapsedMs: expect.any(Number),
    });
    // Each line as written (its members' text untouched), after its record number and why.
    const kept = (index: number, error: string) =>
      `{"recordNumber":${index + 1},"error":${JSON.stringify(error)},${lines[index]?.slice(1)}`;
    expect(readFileSync(`${path}.errors.jsonl`, 'utf8')).toBe(
      [
        `{"recordNumber":3,"error":${JSON.stringify(`not valid JSON: ${jsonError('not json')}`)},"line":"not json"}\n`,
        kept(4, 'userId: must not be empty'),
        kept(5, 'extra: not part of the import line (userId, accountId, idempotencyKey, event)'),
        kept(6, 'event.dateTriggered: expected an ISO-8601 date or epoch milliseconds, got "yesterday"'),
        kept(7, 'event.fields.note: string is 1501 UTF-8 bytes; the target accepts at most 1500'),
      ].join(''),
    );
    expect(existsSync(`${path}.errors.csv`)).toBe(false);
    expect(recorded().map((event) => [event.userId, event.idempotencyKey, event.fields, event.dateTriggered])).toEqual([
      ['u1', 'order-0000001', { order_id: 'o-1', revenue: 1 }, 1_700_000_000_001],
      ['u2', null, { order_id: 'o-2', revenue: 2 }, 1_700_000_000_002],
      ['u9', 'order-0000009', { order_id: 'o-9', revenue: 9 }, 1_700_000_000_009],
    ]);
  });

  it('exits 0 with no errors file when every row is delivered; prints a human summary without --json', async () => {
    const path = file('ok.jsonl', line(purchase(1, { idempotencyKey: 'order-0000001' })));
    const run = await runCli(['import', path], { env: env() });
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`imported ${path} (jsonl) into tenant ${tenant}`);
    expect(run.stdout).toContain('1 accepted, 0 duplicate, 0 rejected, 0 dead letters');
    expect(existsSync(`${path}.errors.jsonl`)).toBe(false);
  });

  it('resumes: a re-run skips what the ledger has, sends nothing twice, and picks up rows appended since', async () => {
    const path = file(
      'resume.jsonl',
      [1, 2, 3].map((n) => line(purchase(n, n === 2 ? {} : { idempotencyKey: `resume-key-${n}` }))).join(''),
    );
    const first = await runCli(['import', path, '--json'], { env: env() });
    expect(summaryOf(first)).toMatchObject({ enqueued: 3, skipped: 0, accepted: 3 });
    const requestsAfterFirst = sandbox.inspect(tenant).requests.total;

    const again = await runCli(['import', path, '--json'], { env: env() });
    expect(again.code).toBe(0);
    expect(summaryOf(again)).toMatchObject({ rows: 3, enqueued: 0, skipped: 3, accepted: 3 });
    expect(sandbox.inspect(tenant).requests.total).toBe(requestsAfterFirst);

    // Appended rows are new, including a keyless one: earlier keyless rows keep their identity.
    appendFileSync(path, line(purchase(4)) + line(purchase(5, { idempotencyKey: 'resume-key-5' })));
    const appended = await runCli(['import', path, '--json'], { env: env() });
    expect(summaryOf(appended)).toMatchObject({ rows: 5, enqueued: 2, skipped: 3, accepted: 5 });
    expect(recorded().map((event) => event.userId)).toEqual(['u1', 'u2', 'u3', 'u4', 'u5']);
  });

  it('resends only an edited keyless row: later keyless rows keep their identity, and identical rows are two events', async () => {
    const rows = [1, 2, 3, 4, 5].map((n) => purchase(n));
    const path = file('keyless.jsonl', [...rows, rows[4]].map(line).join(''));
    const first = await runCli(['import', path, '--json'], { env: env() });
    expect(summaryOf(first)).toMatchObject({ rows: 6, enqueued: 6, skipped: 0, accepted: 6 });
    expect(recorded()).toHaveLength(6);

    writeFileSync(path, [rows[0], purchase(2, { userId: 'u2-edited' }), ...rows.slice(2), rows[4]].map(line).join(''));
    const edited = await runCli(['import', path, '--json'], { env: env() });
    expect(summaryOf(edited)).toMatchObject({ rows: 6, enqueued: 1, skipped: 5 });
    expect(recorded().map((event) => event.userId)).toEqual(['u1', 'u2', 'u3', 'u4', 'u5', 'u5', 'u2-edited']);
  });

  it('--dry-run validates and decides keys, writes the errors file, and stores and sends nothing', async () => {
    const path = file('dry.jsonl', line(purchase(1, { idempotencyKey: 'bad key!' })) + line(purchase(2)) + line({ userId: 'u3' }));
    const run = await runCli(['import', path, '--dry-run', '--json', '--policy', 'hash'], { env: env() });
    expect(run.code).toBe(1);
    expect(summaryOf(run)).toMatchObject({
      dryRun: true,
      tenant: null,
      rows: 3,
      valid: 2,
      invalid: 1,
      enqueued: 0,
      keysHashed: 1,
      keysDropped: 1,
    });
    expect(readFileSync(`${path}.errors.jsonl`, 'utf8')).toBe(
      '{"recordNumber":3,"error":"accountId: required, a string; event: required, an object {key, dateTriggered?, fields?}","userId":"u3"}\n',
    );
    expect(existsSync(join(dir, 'store.db'))).toBe(false);
    expect(recorded()).toEqual([]);
  });

  it('--policy reject refuses rows whose key is invalid; --policy hash sends a derived key instead', async () => {
    const rows = line(purchase(1, { idempotencyKey: 'order:1' })) + line(purchase(2, { idempotencyKey: 'valid-key-0002' }));
    const path = file('policy.jsonl', rows);
    const rejected = await runCli(['import', path, '--policy', 'reject', '--json'], { env: env() });
    expect(summaryOf(rejected)).toMatchObject({ invalid: 1, accepted: 1, keysKept: 1 });
    expect(errorLines(`${path}.errors.jsonl`)).toEqual([
      {
        recordNumber: 1,
        error:
          'idempotencyKey: refused under --policy reject (bad_characters): it contains characters outside 8 to 64 characters of A-Z a-z 0-9 - _ .',
        ...purchase(1, { idempotencyKey: 'order:1' }),
      },
    ]);
    const hashed = await runCli(['import', path, '--policy', 'hash', '--json'], { env: env() });
    expect(summaryOf(hashed)).toMatchObject({ invalid: 0, enqueued: 1, skipped: 1, keysHashed: 1 });
    expect(existsSync(`${path}.errors.jsonl`)).toBe(false);
    expect(recorded().find((event) => event.userId === 'u1')?.idempotencyKey).toMatch(/^oncekit-sha256-[A-Za-z0-9_-]{43}$/);
  });
});

describe('oncekit import (CSV)', () => {
  const header =
    'accountId,userId,event.key,event.dateTriggered,event.fields.order_id,event.fields.note,event.fields.revenue,idempotencyKey';

  it('parses quotes, escaped quotes and CRLF, types plain numbers, and reports bad rows exactly', async () => {
    const path = file(
      'events.csv',
      [
        header,
        'a1,u1,purchase,1700000000000,007,"two\r\nlines, ""quoted""",19.90,csv-key-0001',
        'a2,u2,purchase,2024-03-01T12:00:00Z,8,,5,',
        'a3,u3,purchase',
        'a4,,purchase,,9,,,',
        'a5,u5,purchase,soon,10,,,',
        'a6,u6,purchase,,11,,,"csv-key-0006"',
        '',
      ].join('\r\n'),
    );
    const run = await runCli(['import', path, '--json'], { env: env() });
    expect(run.code).toBe(1);
    expect(summaryOf(run)).toMatchObject({ format: 'csv', rows: 6, valid: 3, invalid: 3, accepted: 3, keysKept: 2, keysDropped: 1 });
    // Each bad row as it was, after its record number and why: a short row stays short.
    expect(readFileSync(`${path}.errors.csv`, 'utf8')).toBe(
      [
        `recordNumber,error,${header}`,
        '3,"expected 8 columns as in the header, got 3",a3,u3,purchase',
        '4,userId: must not be empty,a4,,purchase,,9,,,',
        '5,"event.dateTriggered: expected an ISO-8601 date or epoch milliseconds, got ""soon""",a5,u5,purchase,soon,10,,,',
        '',
      ].join('\n'),
    );
    expect(recorded().map((event) => [event.userId, event.idempotencyKey, event.fields, event.dateTriggered])).toEqual([
      ['u1', 'csv-key-0001', { order_id: '007', note: 'two\r\nlines, "quoted"', revenue: 19.9 }, 1_700_000_000_000],
      ['u2', null, { order_id: 8, revenue: 5 }, Date.UTC(2024, 2, 1, 12)],
      ['u6', 'csv-key-0006', { order_id: 11 }, expect.any(Number)],
    ]);
  });

  it('--key-from derives the same deterministic key for a row without one, and explains a row whose chosen column is empty', async () => {
    const path = file(
      'keyfrom.csv',
      [header, 'a1,u1,purchase,,1001,,,', 'a2,u2,purchase,,,,,', 'a3,u3,purchase,,1003,,,given-key-0003', ''].join('\n'),
    );
    const run = await runCli(['import', path, '--key-from', 'event.fields.order_id,userId', '--json'], { env: env() });
    expect(summaryOf(run)).toMatchObject({ valid: 3, keysKept: 1, keysHashed: 1, keysDropped: 1, accepted: 3 });
    const expected = decideKey(
      fieldsCandidate('import', { userId: 'u1', 'event.fields.order_id': 1001 }, ['userId', 'event.fields.order_id']),
    ).key;
    expect(recorded().map((event) => event.idempotencyKey)).toEqual([expected, null, 'given-key-0003']);

    const why = await runCli(['ledger', 'show', '--source-id', 'keyfrom.csv:2'], { env: env() });
    expect(why.code).toBe(0);
    expect(why.stdout).toContain(
      'key:        none: sent without a key because the field chosen for the key "event.fields.order_id" is empty (missing)',
    );
  });

  it('refuses a file whose header is wrong, or a --key-from column it does not have (exit 2)', async () => {
    const bad = file('bad.csv', 'accountId,userId,event.key,colour\na,u,k,red\n');
    const run = await runCli(['import', bad], { env: env() });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      'header: unknown column "colour"; expected accountId, userId, event.key, event.dateTriggered, event.fields.NAME, idempotencyKey',
    );
    const good = file('good.csv', `${header}\n`);
    const keyFrom = await runCli(['import', good, '--key-from', 'event.fields.sku'], { env: env() });
    expect(keyFrom.code).toBe(2);
    expect(keyFrom.stderr).toContain('--key-from: "event.fields.sku" is not a column of this file');
  });
});

describe('oncekit import: columns that name a prototype', () => {
  it.each(['event.fields.__proto__.polluted', 'event.fields.constructor.prototype.polluted', 'event.fields.a.prototype'])(
    'refuses the column %s before any row is sent (exit 2), and pollutes nothing',
    async (column) => {
      const path = file('proto.csv', `accountId,userId,event.key,${column}\na,u,purchase,yes\n`);
      const run = await runCli(['import', path, '--json'], { env: env() });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain(`header: the column "${column}" contains`);
      expect(recorded()).toHaveLength(0);
    },
  );

  it('refuses a --key-from name that contains __proto__ (exit 2)', async () => {
    const path = file('key-from.jsonl', line(purchase(1)));
    const run = await runCli(['import', path, '--key-from', 'event.fields.__proto__'], { env: env() });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--key-from: "event.fields.__proto__" contains "__proto__"');
    expect(recorded()).toHaveLength(0);
  });
});

describe('possible duplicates of keyless rows', () => {
  afterEach(() => sandbox.faults.clear());

  it('counts keyless rows recorded twice after a lost answer as possible duplicates, instead of a silent "accepted"', async () => {
    const path = file('keyless-200.jsonl', Array.from({ length: 200 }, (_, index) => line(purchase(index + 1))).join(''));
    // The first batch requests are recorded, then their answer is lost (503); the client's quick retry records them again.
    sandbox.faults.enqueue(...Array.from({ length: 2 }, () => ({ kind: 'record-then-fail', failWith: 'status' }) as const));
    const run = await runCli(['import', path, '--json'], { env: env() });
    const summary = summaryOf(run);
    expect(summary).toMatchObject({ rows: 200, accepted: 200, keysDropped: 200 });
    const times = new Map<string, number>();
    for (const event of recorded()) times.set(event.userId, (times.get(event.userId) ?? 0) + 1);
    const doubled = [...times.values()].filter((count) => count > 1).length;
    expect(doubled).toBeGreaterThan(0);
    expect(recorded().length).toBeGreaterThan(200);
    // The summary counts exactly the rows the target holds more than once, and says so on stderr too.
    expect(summary.possibleDuplicates).toBe(doubled);
    expect(run.stderr).toContain(`warning: ${doubled} accepted rows were sent without an idempotency key after an answer was lost`);
    expect(run.stderr).toContain('--key-from');

    // The ledger says which event may have been recorded twice, and why.
    const doubledRow = [...times.entries()].find(([, count]) => count === 2)?.[0].slice(1);
    const human = await runCli(['ledger', 'show', '--source-id', `keyless-200.jsonl:${doubledRow}`], { env: env() });
    expect(human.stdout).toContain('accepted (2 requests, 1 without a definite answer): HTTP 200');
    expect(human.stdout).toContain(
      'duplicate?: may have been recorded more than once: it was sent without an idempotency key, and attempt #1 had 1 request without a definite answer',
    );
    const json = await runCli(['ledger', 'show', '--source-id', `keyless-200.jsonl:${doubledRow}`, '--json'], { env: env() });
    expect(JSON.parse(json.stdout)).toMatchObject({
      entries: [{ key: null, state: 'delivered', possibleDuplicate: true, attempts: [{ requests: 2, uncertainRequests: 1 }] }],
    });

    // A re-run reports the same from the ledger, and the human summary suggests a key.
    const again = await runCli(['import', path], { env: env() });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`duplicates? ${doubled} accepted rows were sent without an idempotency key`);
    expect(again.stdout).toContain('--key-from COLUMNS');
    expect(again.stdout).toContain('--policy hash');
  });

  it('counts none when no answer was lost, and none for keyed rows whose resend the target deduplicated', async () => {
    const path = file('mixed.jsonl', [line(purchase(1)), line(purchase(2, { idempotencyKey: 'mixed-key-0002' }))].join(''));
    const clean = await runCli(['import', path, '--json'], { env: env() });
    expect(summaryOf(clean)).toMatchObject({ accepted: 2, possibleDuplicates: 0 });
    expect(clean.stderr).not.toContain('warning:');
    const keyed = file('keyed.jsonl', line(purchase(3, { idempotencyKey: 'keyed-key-0003' })));
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'drop' });
    const run = await runCli(['import', keyed, '--json'], { env: env() });
    expect(summaryOf(run)).toMatchObject({ accepted: 0, duplicate: 1, possibleDuplicates: 0 });
    expect(recorded().filter((event) => event.userId === 'u3')).toHaveLength(1);
  });
});

describe('dead letters and the ledger', () => {
  it('puts a target rejection in the errors file and the dead letters; retry delivers it once the cause is fixed', async () => {
    const path = file(
      'strict.jsonl',
      line(purchase(1, { idempotencyKey: 'strict-key-0001' })) + line(purchase(2, { idempotencyKey: 'strict-key-0002' })),
    );
    // Only u2 exists: u1's event is refused with 404 RS042.
    await fetch(`${strict.url}/api/v1/${tenant}/open/account/a2/user/u2`, {
      method: 'PUT',
      headers: {
        authorization: `Basic ${Buffer.from(`:${DEFAULT_SANDBOX_API_KEY}`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ id: 'u2', accountId: 'a2' }),
    });
    const run = await runCli(['import', path, '--json'], { env: env(strict) });
    expect(run.code).toBe(1);
    expect(summaryOf(run)).toMatchObject({ accepted: 1, rejected: 1, deadLetters: 1 });
    expect(errorLines(`${path}.errors.jsonl`)).toEqual([
      {
        recordNumber: 1,
        error: 'rejected by the target: HTTP 404 RS042: No user found with id "u1" in account "a1"',
        ...purchase(1, { idempotencyKey: 'strict-key-0001' }),
      },
    ]);

    const list = await runCli(['dead-letters', 'list', '--json'], { env: env(strict) });
    expect(list.code).toBe(0);
    const [dead] = (
      JSON.parse(list.stdout) as { deadLetters: { id: string; sourceId: string; deadReason: string; mayHaveLanded: boolean }[] }
    ).deadLetters;
    expect(dead).toMatchObject({ sourceId: 'strict.jsonl:1', key: 'strict-key-0001', mayHaveLanded: false });
    expect(dead?.deadReason).toContain('RS042');
    const human = await runCli(['dead-letters', 'list'], { env: env(strict) });
    expect(human.stdout).toContain(`${dead?.id}  strict.jsonl:1  key strict-key-0001`);
    expect(human.stdout).toContain('reason: rejected by the target: HTTP 404 RS042');

    // A re-run does not resend the dead letter, and still reports it.
    const rerun = await runCli(['import', path, '--json'], { env: env(strict) });
    expect(summaryOf(rerun)).toMatchObject({ skipped: 2, accepted: 1, rejected: 1, deadLetters: 1 });
    expect(readFileSync(`${path}.errors.jsonl`, 'utf8')).toContain('{"recordNumber":1,"error":"rejected by the target: HTTP 404 RS042');

    const stillMissing = await runCli(['dead-letters', 'retry', dead?.id ?? '', '--json'], { env: env(strict) });
    expect(stillMissing.code).toBe(1);
    expect(JSON.parse(stillMissing.stdout)).toMatchObject({ requeued: 1, events: [{ id: dead?.id, state: 'dead' }] });

    await fetch(`${strict.url}/api/v1/${tenant}/open/account/a1/user/u1`, {
      method: 'PUT',
      headers: {
        authorization: `Basic ${Buffer.from(`:${DEFAULT_SANDBOX_API_KEY}`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ id: 'u1', accountId: 'a1' }),
    });
    const retry = await runCli(['dead-letters', 'retry', dead?.id ?? ''], { env: env(strict) });
    expect(retry.code).toBe(0);
    expect(retry.stdout).toContain(`${dead?.id}  strict.jsonl:1  delivered`);
    expect(recorded(strict).map((event) => event.idempotencyKey)).toEqual(['strict-key-0002', 'strict-key-0001']);

    const show = await runCli(['ledger', 'show', 'strict-key-0001'], { env: env(strict) });
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/#1 \S+ rejected: HTTP 404 RS042: No user found/);
    expect(show.stdout).toMatch(/#2 \S+ rejected: HTTP 404 RS042/);
    expect(show.stdout).toMatch(/#3 \S+ accepted: HTTP 200/);
    expect(show.stdout).toContain('state:      delivered: the target accepted it');
    const empty = await runCli(['dead-letters', 'list'], { env: env(strict) });
    expect(empty.stdout).toBe(`no dead letters in tenant ${tenant}\n`);
  });

  it('sends a rejected row again once it was corrected in the file, with the same key and its history in the ledger', async () => {
    const upsert = (user: string, account: string) =>
      fetch(`${strict.url}/api/v1/${tenant}/open/account/${account}/user/${user}`, {
        method: 'PUT',
        headers: {
          authorization: `Basic ${Buffer.from(`:${DEFAULT_SANDBOX_API_KEY}`).toString('base64')}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({ id: user, accountId: account }),
      });
    await upsert('u2', 'a2');
    const path = file('fix.jsonl', line(purchase(1, { idempotencyKey: 'fix-key-0001' })));
    expect(summaryOf(await runCli(['import', path, '--json'], { env: env(strict) }))).toMatchObject({ rejected: 1, deadLetters: 1 });
    // The row named the wrong user; the corrected file names one that exists.
    writeFileSync(path, line({ ...purchase(1, { idempotencyKey: 'fix-key-0001' }), userId: 'u2', accountId: 'a2' }));
    const fixed = await runCli(['import', path, '--json'], { env: env(strict) });
    expect(fixed.code).toBe(0);
    expect(summaryOf(fixed)).toMatchObject({ enqueued: 1, skipped: 0, accepted: 1, deadLetters: 0 });
    expect(recorded(strict).map((event) => [event.userId, event.idempotencyKey])).toEqual([['u2', 'fix-key-0001']]);
    const ledger = JSON.parse((await runCli(['ledger', 'show', 'fix-key-0001', '--json'], { env: env(strict) })).stdout) as {
      entries: { state: string; input: { userId: string }; attempts: { outcome: string }[] }[];
    };
    expect(ledger.entries).toMatchObject([
      { state: 'delivered', input: { userId: 'u2' }, attempts: [{ outcome: 'rejected' }, { outcome: 'accepted' }] },
    ]);
  });

  it('keeps each row it cannot map as a dead letter with its reason and the row as written, once across re-runs; retry leaves them alone', async () => {
    const path = file('broken.jsonl', [line(purchase(1)), line({ ...purchase(2), extra: true }), 'not json\n'].join(''));
    const run = await runCli(['import', path, '--json'], { env: env() });
    expect(summaryOf(run)).toMatchObject({ rows: 3, invalid: 2, accepted: 1, deadLetters: 0 });
    const listed = async () =>
      (
        JSON.parse((await runCli(['dead-letters', 'list', '--json'], { env: env() })).stdout) as {
          deadLetters: { id: string; sourceId: string; deadReason: string; input: unknown; unmappable: { text: string } }[];
        }
      ).deadLetters;
    const dead = await listed();
    expect(dead.map((entry) => [entry.sourceId, entry.input, entry.unmappable.text])).toEqual([
      ['broken.jsonl:2', null, JSON.stringify({ ...purchase(2), extra: true })],
      ['broken.jsonl:3', null, 'not json'],
    ]);
    expect(dead[0]?.deadReason).toMatch(/^extra: not part of the import line/);
    const rerun = await runCli(['import', path, '--json'], { env: env() });
    expect(summaryOf(rerun)).toMatchObject({ invalid: 2, skipped: 1 });
    expect((await listed()).map((entry) => entry.id)).toEqual(dead.map((entry) => entry.id));
    const retry = await runCli(['dead-letters', 'retry', '--all', '--json'], { env: env() });
    expect(JSON.parse(retry.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ requeued: 0, unmappable: 2 });
    expect(recorded()).toHaveLength(1);
  });

  it('ledger show prints JSON with --json, exits 1 when nothing matches and 2 without exactly one selector', async () => {
    const path = file('ledger.jsonl', line(purchase(1, { idempotencyKey: 'ledger-key-001' })));
    await runCli(['import', path], { env: env() });
    const json = await runCli(['ledger', 'show', 'ledger-key-001', '--json'], { env: env() });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      entries: [
        {
          source: 'import',
          sourceId: 'ledger.jsonl:1',
          key: 'ledger-key-001',
          keyDecision: { decision: 'kept' },
          state: 'delivered',
          attempts: [{ number: 1, outcome: 'accepted', status: 200 }],
          mayHaveLanded: false,
        },
      ],
    });
    const missing = await runCli(['ledger', 'show', 'no-such-key-1'], { env: env() });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`the ledger of tenant ${tenant} has no event with key no-such-key-1`);
    expect((await runCli(['ledger', 'show'], { env: env() })).code).toBe(2);
    expect((await runCli(['ledger', 'show', 'k', '--source-id', 'x:1'], { env: env() })).code).toBe(2);
    expect((await runCli(['dead-letters', 'retry'], { env: env() })).code).toBe(2);
  });
});

describe('messages in plain words', () => {
  it('names the field and says what was expected and what came, never the schema’s own text', async () => {
    const path = file(
      'words.jsonl',
      [
        '[1,2]',
        '"text"',
        'null',
        '{"userId":5,"accountId":"a","event":{"key":"k"}}',
        '{"userId":"u","accountId":"a","event":[]}',
        '{"userId":"u","accountId":"a","event":{"key":"k","fields":[1]}}',
        '{"userId":"u","accountId":"a","event":{"key":"k","dateTriggered":true}}',
        '{"userId":"u","accountId":"a","idempotencyKey":7,"event":{"key":""}}',
        '{}',
      ].join('\n'),
    );
    const run = await runCli(['import', path, '--dry-run', '--json'], { env: env() });
    expect(summaryOf(run)).toMatchObject({ rows: 9, invalid: 9 });
    const line = 'expected an object {userId, accountId, idempotencyKey?, event}';
    expect(errorLines(`${path}.errors.jsonl`).map((row) => row.error)).toEqual([
      `the line is a list; ${line}`,
      `the line is text; ${line}`,
      `the line is null; ${line}`,
      'userId: expected a string, got a number',
      'event: expected an object {key, dateTriggered?, fields?}, got a list',
      'event.fields: expected an object of fields, got a list',
      'event.dateTriggered: expected epoch milliseconds or an ISO-8601 date, got true',
      'idempotencyKey: expected a string, got a number; event.key: must not be empty',
      'userId: required, a string; accountId: required, a string; event: required, an object {key, dateTriggered?, fields?}',
    ]);
    expect(readFileSync(`${path}.errors.jsonl`, 'utf8')).not.toMatch(/\(root\)|Invalid input|received/);
  });
});

describe('fixing the errors file and importing it again', () => {
  const upsert = (user: string, account: string) =>
    fetch(`${strict.url}/api/v1/${tenant}/open/account/${account}/user/${user}`, {
      method: 'PUT',
      headers: {
        authorization: `Basic ${Buffer.from(`:${DEFAULT_SANDBOX_API_KEY}`).toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ id: user, accountId: account }),
    });
  const attemptsOf = async (key: string): Promise<number> => {
    const show = await runCli(['ledger', 'show', key, '--json'], { env: env(strict) });
    return (JSON.parse(show.stdout) as { entries: { attempts: unknown[] }[] }).entries[0]?.attempts.length ?? -1;
  };

  it('CSV: the fixed rows are delivered, an unfixed dead row is not resent, and the original file resends nothing', async () => {
    for (const n of [1, 2, 3, 4, 5, 6]) await upsert(`u${n}`, `a${n}`);
    const header = 'accountId,userId,event.key,event.fields.order_id,idempotencyKey';
    const path = file(
      'events.csv',
      [
        header,
        'a1,u1,purchase,o-1,rt-key-0001',
        'a2,u2,purchase,o-2,',
        'a3,,purchase,o-3,',
        'a4,u4,purchase',
        'a9,ghost,purchase,o-5,rt-key-0005',
        'a9,ghost,purchase,o-6,',
        'a9,ghost,purchase,o-7,rt-key-0007',
        '',
      ].join('\n'),
    );
    const first = await runCli(['import', path, '--json'], { env: env(strict) });
    expect(summaryOf(first)).toMatchObject({ rows: 7, invalid: 2, accepted: 2, rejected: 3, deadLetters: 3 });
    const errorsPath = `${path}.errors.csv`;
    const rejected = (row: string, user: string) =>
      `${row},"rejected by the target: HTTP 404 RS042: No user found with id ""${user}"" in account ""a9""",`;
    const [errorsHeader, ...errorRows] = readFileSync(errorsPath, 'utf8').trim().split('\n');
    expect(errorsHeader).toBe(`recordNumber,error,${header}`);
    expect(errorRows.sort()).toEqual([
      '3,userId: must not be empty,a3,,purchase,o-3,',
      '4,"expected 5 columns as in the header, got 3",a4,u4,purchase',
      `${rejected('5', 'ghost')}a9,ghost,purchase,o-5,rt-key-0005`,
      `${rejected('6', 'ghost')}a9,ghost,purchase,o-6,`,
      `${rejected('7', 'ghost')}a9,ghost,purchase,o-7,rt-key-0007`,
    ]);

    // Fixed in place as a user would, the recordNumber and error columns left as they are; row 7 is not fixed.
    writeFileSync(
      errorsPath,
      readFileSync(errorsPath, 'utf8')
        .replace(',a3,,purchase,', ',a3,u3,purchase,')
        .replace(',a4,u4,purchase\n', ',a4,u4,purchase,o-4,\n')
        .replace(',a9,ghost,purchase,o-5,', ',a5,u5,purchase,o-5,')
        .replace(',a9,ghost,purchase,o-6,', ',a6,u6,purchase,o-6,'),
    );
    const requestsBefore = strict.inspect(tenant).requests.total;
    const again = await runCli(['import', errorsPath, '--json'], { env: env(strict) });
    expect(summaryOf(again)).toMatchObject({ rows: 5, valid: 5, invalid: 0, enqueued: 4, skipped: 1, accepted: 4, deadLetters: 1 });
    expect(recorded(strict).map((event) => [event.userId, event.fields?.order_id])).toEqual([
      ['u1', 'o-1'],
      ['u2', 'o-2'],
      ['u3', 'o-3'],
      ['u4', 'o-4'],
      ['u5', 'o-5'],
      ['u6', 'o-6'],
    ]);
    expect(await attemptsOf('rt-key-0007')).toBe(1);
    // Its errors file has the same shape: the unfixed row, once.
    expect(readFileSync(`${errorsPath}.errors.csv`, 'utf8')).toBe(
      `recordNumber,error,${header}\n${rejected('5', 'ghost')}a9,ghost,purchase,o-7,rt-key-0007\n`,
    );

    const requestsAfter = strict.inspect(tenant).requests.total;
    expect(requestsAfter).toBeGreaterThan(requestsBefore);
    const original = await runCli(['import', path, '--json'], { env: env(strict) });
    expect(summaryOf(original)).toMatchObject({ rows: 7, enqueued: 0, skipped: 5, invalid: 2 });
    expect(strict.inspect(tenant).requests.total).toBe(requestsAfter);
  });

  it('JSONL: a line that was not JSON can be replaced, fixed lines are delivered, and nothing else is resent', async () => {
    for (const n of [1, 2, 3, 4]) await upsert(`u${n}`, `a${n}`);
    const rows = [
      line(purchase(1, { idempotencyKey: 'rt-key-0001' })),
      'not json\n',
      line(purchase(3, { userId: '' })),
      line(purchase(4, { userId: 'ghost', idempotencyKey: 'rt-key-0004' })),
      line(purchase(5, { userId: 'ghost' })),
    ];
    const path = file('events.jsonl', rows.join(''));
    const first = await runCli(['import', path, '--json'], { env: env(strict) });
    expect(summaryOf(first)).toMatchObject({ rows: 5, invalid: 2, accepted: 1, deadLetters: 2 });
    const errorsPath = `${path}.errors.jsonl`;
    const errors = errorLines(errorsPath).sort((a, b) => Number(a.recordNumber) - Number(b.recordNumber));
    expect(errors.map((row) => [row.recordNumber, row.line ?? row.userId])).toEqual([
      [2, 'not json'],
      [3, ''],
      [4, 'ghost'],
      [5, 'ghost'],
    ]);
    const fixed = errors.map((row) => {
      if (row.recordNumber === 2) return { recordNumber: 2, error: row.error, ...purchase(2) };
      if (row.recordNumber === 3) return { ...row, userId: 'u3' };
      if (row.recordNumber === 4) return { ...row, userId: 'u4', accountId: 'a4' };
      return row;
    });
    writeFileSync(errorsPath, fixed.map(line).join(''));
    const again = await runCli(['import', errorsPath, '--json'], { env: env(strict) });
    expect(summaryOf(again)).toMatchObject({ rows: 4, invalid: 0, enqueued: 3, skipped: 1, accepted: 3, deadLetters: 1 });
    expect(recorded(strict).map((event) => event.userId)).toEqual(['u1', 'u2', 'u3', 'u4']);
    expect(errorLines(`${errorsPath}.errors.jsonl`)).toEqual([
      { ...purchase(5, { userId: 'ghost' }), recordNumber: 4, error: expect.stringContaining('rejected by the target: HTTP 404') },
    ]);
    const requests = strict.inspect(tenant).requests.total;
    expect(summaryOf(await runCli(['import', path, '--json'], { env: env(strict) }))).toMatchObject({ enqueued: 0, skipped: 3 });
    expect(strict.inspect(tenant).requests.total).toBe(requests);
  });
});

const hasScript = spawnSync('script', ['--version']).status === 0;
const shellQuote = (arg: string): string => `'${arg.replaceAll("'", "'\\''")}'`;

/** Runs the built CLI with stdout and stderr on a terminal (util-linux `script`), as a user at a shell would. */
function runCliOnTerminal(args: readonly string[], runEnv: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, ONCEKIT_BIN, ...args].map(shellQuote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      env: { PATH: process.env.PATH, ...runEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The progress frames drawn: percentage, done, total. */
function framesOf(output: string, unit: string): { percent: number; done: number; total: number }[] {
  const pattern = new RegExp(`(\\d+)% \\| (\\d+)/~?(\\d+) ${unit}`, 'g');
  return [...output.matchAll(pattern)].map((match) => ({ percent: Number(match[1]), done: Number(match[2]), total: Number(match[3]) }));
}

describe.skipIf(!hasScript)('progress on a terminal', () => {
  it('import: the bar follows settled rows (not bytes read) with an ETA in time; none with --json or off a terminal', async () => {
    const path = file('paced.jsonl', Array.from({ length: 300 }, (_, index) => line(purchase(index + 1))).join(''));
    const paced = ['--max-rate', '150', '--batch-size', '10'];
    const run = await runCliOnTerminal(['import', path, ...paced], env());
    expect(run.code).toBe(0);
    const frames = framesOf(run.output, 'rows settled');
    // The whole file is read at once (300 rows fit the window), yet the bar stays below 100 % until rows settle.
    expect(frames.some((frame) => frame.done < 300 && frame.percent < 100)).toBe(true);
    for (const frame of frames) {
      expect(frame.total).toBe(300);
      expect(frame.percent).toBe(Math.floor((frame.done / frame.total) * 100));
    }
    const etas = [...run.output.matchAll(/ETA ([-\dhms]+)/g)].map((match) => match[1]);
    expect(etas.length).toBeGreaterThan(0);
    // Every ETA drawn is a time or `--` (unknown yet), never `LLs`, `NULL` or `INF`.
    expect(run.output.split('ETA ').length - 1).toBe(etas.length);
    for (const eta of etas) expect(eta).toMatch(/^(--|\d+s|\d+m\d\ds|\d+h\d\dm)$/);
    expect(run.output).toContain('300 accepted');

    const json = await runCliOnTerminal(['import', path, '--json'], env());
    expect(json.output).not.toContain('importing [');
    const plain = await runCli(['import', path], { env: env() });
    expect(plain.stderr).not.toContain('importing [');
    expect(plain.stdout).toContain('300 accepted');
  });

  it('dead-letters retry: a bar follows the retried events as they settle; none with --json or off a terminal', async () => {
    const rows = Array.from({ length: 30 }, (_, index) => line(purchase(index + 1, { idempotencyKey: `retry-key-${1000 + index}` })));
    const path = file('retry.jsonl', rows.join(''));
    expect(summaryOf(await runCli(['import', path, '--json'], { env: env(strict) }))).toMatchObject({ deadLetters: 30 });
    const run = await runCliOnTerminal(['dead-letters', 'retry', '--all', '--max-rate', '20', '--batch-size', '5'], env(strict));
    expect(run.code).toBe(1);
    const frames = framesOf(run.output, 'events settled');
    expect(frames.length).toBeGreaterThan(0);
    expect(frames.some((frame) => frame.done < 30)).toBe(true);
    for (const frame of frames) expect(frame).toMatchObject({ total: 30, percent: Math.floor((frame.done / 30) * 100) });
    expect(run.output).toContain('requeued 30 dead letters');

    const json = await runCliOnTerminal(['dead-letters', 'retry', '--all', '--json'], env(strict));
    expect(json.output).not.toContain('retrying [');
    expect(json.output).toContain('"requeued":30');
    const plain = await runCli(['dead-letters', 'retry', '--all'], { env: env(strict) });
    expect(plain.stderr).not.toContain('retrying [');
    expect(plain.stdout).toContain('requeued 30 dead letters');
  });
});

describe('usage', () => {
  it.each([
    [['import', 'x.jsonl', '--horizon', '30h'], '--horizon: the retry horizon (30 h) plus the lease (10 s) must stay shorter'],
    [['import', 'x.jsonl', '--horizon', 'soon'], '--horizon: expected a duration'],
    [['import', 'x.jsonl', '--store', 'mysql://db'], '--store: expected memory, sqlite:PATH, redis://HOST:PORT or postgres://'],
    [['import', 'x.txt'], '--format: cannot tell the format from ".txt"'],
    [['import', 'x.jsonl', '--concurrency', '0'], "option '--concurrency <n>' argument '0' is invalid"],
  ])('%j exits 2 and says why', async (args, message) => {
    writeFileSync(join(dir, 'x.jsonl'), line(purchase(1)));
    const run = await runCli(
      args.map((arg) => (arg.startsWith('x.') ? join(dir, arg) : arg)),
      { env: env() },
    );
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('needs a tenant and an API key from the environment, and never prints the key', async () => {
    const path = file('x.jsonl', line(purchase(1)));
    const { ONCEKIT_TENANT: _, ...noTenant } = env();
    const run = await runCli(['import', path], { env: noTenant });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--tenant (or ONCEKIT_TENANT): required');
    const { ONCEKIT_API_KEY: __, ...noKey } = env();
    expect((await runCli(['import', path], { env: noKey })).stderr).toContain('ONCEKIT_API_KEY: required');
    const secret = 'sk_import_secret_123';
    const wrongKey = await runCli(['import', path, '--json'], { env: { ...env(), ONCEKIT_API_KEY: secret } });
    expect(wrongKey.code).toBe(1);
    expect(summaryOf(wrongKey)).toMatchObject({ rejected: 1, deadLetters: 1 });
    expect(wrongKey.stdout + wrongKey.stderr + readFileSync(`${path}.errors.jsonl`, 'utf8')).not.toContain(secret);
    const ledger = await runCli(['dead-letters', 'list', '--json'], { env: env() });
    expect(ledger.stdout).not.toContain(secret);
  });

  it.each([['import'], ['ledger', 'show'], ['dead-letters', 'list'], ['dead-letters', 'retry']])(
    '%j --help exits 0',
    async (...command) => {
      const run = await runCli([...command, '--help']);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('Usage: oncekit');
    },
  );
});
