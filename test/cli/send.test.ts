import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import { runCli } from './run-cli.js';

let sandbox: Sandbox;
let env: Record<string, string>;
let n = 0;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  env = { ONCEKIT_TARGET_URL: sandbox.url, ONCEKIT_TENANT: 'cli', ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY };
});
afterAll(async () => {
  await sandbox.close();
});

const base = (): string[] => ['send', '--user-id', 'ann', '--account-id', 'ann', '--event', 'purchase'];
const uniqueKey = (): string => `cli-send-${process.pid}-${++n}`;

describe('oncekit send', () => {
  it('logs the event, prints the outcome and exits 0; a resend is a duplicate and also exits 0', async () => {
    const key = uniqueKey();
    const args = [...base(), '--fields', '{"revenue":1000,"currency":"USD"}', '--date', '2024-03-01T12:00:00Z', '--idempotency-key', key];
    const first = await runCli(args, { env });
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({
      outcome: 'accepted',
      status: 200,
      attempts: 1,
      key,
      decision: { source: 'raw', candidate: key, key, decision: 'kept', reason: null, detail: null },
      eventIds: [expect.any(String)],
    });
    const again = await runCli(args, { env });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ outcome: 'duplicate', status: 409, key, message: expect.any(String) });
    const events = sandbox.inspect('cli').events.filter((event) => event.idempotencyKey === key);
    expect(events).toEqual([
      expect.objectContaining({ fields: { revenue: 1000, currency: 'USD' }, dateTriggered: Date.UTC(2024, 2, 1, 12) }),
    ]);
  });

  it('sends over GraphQL with --transport graphql', async () => {
    const run = await runCli([...base(), '--transport', 'graphql', '--idempotency-key', uniqueKey()], { env });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ outcome: 'accepted' });
  });

  it('drops an invalid key by default, logs one warning on stderr, and still sends the event', async () => {
    const run = await runCli([...base(), '--idempotency-key', 'order:1234'], { env });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      outcome: 'accepted',
      key: null,
      decision: { decision: 'dropped', reason: 'bad_characters' },
    });
    const warning = JSON.parse(run.stderr.trim().split('\n')[0] ?? '{}') as Record<string, unknown>;
    expect(warning).toMatchObject({
      level: 'warn',
      event: 'idempotency_key_dropped',
      source: 'raw',
      reason: 'bad_characters',
      candidateLength: 10,
    });
  });

  it('refuses to send with --policy reject and an invalid key (exit 1)', async () => {
    const before = sandbox.inspect('cli').events.length;
    const run = await runCli([...base(), '--idempotency-key', 'abc', '--policy', 'reject'], { env });
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ outcome: 'rejected', decision: { decision: 'rejected', reason: 'too_short' } });
    expect(sandbox.inspect('cli').events.length).toBe(before);
  });

  it('exits 1 for a wrong API key and never prints it', async () => {
    const secret = 'sk_wrong_but_secret_42';
    const run = await runCli([...base(), '--idempotency-key', uniqueKey()], { env: { ...env, ONCEKIT_API_KEY: secret } });
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ outcome: 'rejected', status: 401 });
    expect(run.stdout + run.stderr).not.toContain(secret);
  });

  it('exits 1 with outcome failed when the target keeps failing', async () => {
    sandbox.faults.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const run = await runCli([...base(), '--idempotency-key', uniqueKey(), '--max-attempts', '2'], { env });
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ outcome: 'failed', status: 503, attempts: 2 });
  });

  it.each([
    [['--fields', '{not json'], { ...{} }, '--fields: not valid JSON'],
    [['--fields', '[1,2]'], {}, '--fields: must be a JSON object'],
    [['--date', 'yesterday'], {}, '--date: expected an ISO-8601 date or epoch milliseconds'],
    [[], { ONCEKIT_TENANT: undefined }, '--tenant (or ONCEKIT_TENANT): required'],
    [[], { ONCEKIT_TENANT: '' }, 'ONCEKIT_TENANT: is set but empty'],
    [['--tenant', ''], {}, '--tenant: must not be empty'],
    [[], { ONCEKIT_TARGET_URL: '' }, 'ONCEKIT_TARGET_URL: is set but empty'],
    [[], { ONCEKIT_API_KEY: '' }, 'ONCEKIT_API_KEY: required'],
    [['--target-url', 'not a url'], {}, '--target-url (or ONCEKIT_TARGET_URL): must be an http(s) URL'],
  ])('exits 2 for bad usage %j, naming the option', async (extra, envOverride, message) => {
    const run = await runCli([...base(), ...extra], { env: { ...env, ...envOverride } });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stdout).toBe('');
  });

  it('exits 2 when a required option is missing', async () => {
    const run = await runCli(['send', '--user-id', 'ann'], { env });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("required option '--account-id <id>' not specified");
  });
});
