import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type RunningCommand, startOncekit } from '../../../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY, startSandbox, type TenantSnapshot } from '../../../sandbox/target/index.js';
import { dropTestSchema, postgresEnv, skipPostgresTests, testPostgresUrl, uniqueTestSchema } from '../../shared/state/postgres/test-env.js';
import { startRedisServer } from '../../shared/state/redis/server.js';
import { skipRedisTests } from '../../shared/state/redis/test-env.js';
import { RELAY_SECRET } from './helpers.js';

const TENANT = `many_${process.pid}`;
const REQUESTS = 90;
const EVENTS_PER_REQUEST = 5;
const SENDERS = 3;
// Every kind of fault the sandbox has, including answers lost after the event was recorded.
const FAULTS = '500=0.1,503=0.05,record-then-fail=0.05,drop=0.03,retry-after=0,seed=11';

let sandbox: RunningCommand | null = null;
const running: RunningCommand[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((relay) => relay.stop('SIGKILL')));
});
afterAll(async () => {
  await sandbox?.stop();
});

async function sandboxSnapshot(url: string): Promise<TenantSnapshot> {
  return (await (await fetch(`${url}/__sandbox/tenants/${TENANT}`)).json()) as TenantSnapshot;
}

function startRelayProcess(store: string, targetUrl: string): Promise<RunningCommand> {
  const args = ['relay', '--port', '0', '--store', store, '--target-url', targetUrl, '--tenant', TENANT];
  // A short lease: a killed instance's events are back within two seconds.
  args.push('--lease', '2s', '--backoff-base', '50ms', '--backoff-max', '500ms');
  return startOncekit(args, {
    PATH: process.env.PATH,
    ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
    ONCEKIT_RELAY_SECRET: RELAY_SECRET,
    ONCEKIT_LOG_LEVEL: 'warn',
  });
}

/** Forwarded events per instance, from its own metrics. */
async function forwardedBy(relay: RunningCommand): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`, { headers: { authorization: `Bearer ${RELAY_SECRET}` } })).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('oncekit_events_settled_total') && /outcome="(forwarded|duplicate)"/.test(line))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

/**
 * Three relay processes on one store, senders spread over them, one instance SIGKILLed twice and restarted, faults at
 * the target: every event a relay acknowledged is recorded once by the target, and more than one instance delivered.
 */
async function runManyInstances(store: string): Promise<void> {
  sandbox ??= await startOncekit(['sandbox', '--port', '0', '--faults', FAULTS], { PATH: process.env.PATH });
  const targetUrl = sandbox.url ?? '';
  const relays: RunningCommand[] = [];
  for (let n = 0; n < 3; n++) relays.push(await startRelayProcess(store, targetUrl));
  running.push(...relays);

  const acked = new Set<string>();
  let next = 0;
  let sent = 0;
  const send = async (request: number): Promise<void> => {
    const body = JSON.stringify({
      usersEvents: Array.from({ length: EVENTS_PER_REQUEST }, (_, item) => ({
        userId: `u${request}`,
        accountId: `a${request}`,
        key: 'purchase',
        idempotencyKey: `${TENANT}-${store.slice(0, 5)}-${request}-${item}`,
      })),
    });
    // As Apex retries: the same call, with the same Idempotency-Key, at whichever instance answers.
    const deadline = Date.now() + 90_000;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      const relay = relays[(request + attempt) % relays.length] as RunningCommand;
      try {
        const answer = await fetch(`${relay.url}/salesforce/track-event/by-id`, {
          method: 'POST',
          headers: { authorization: `Bearer ${RELAY_SECRET}`, 'content-type': 'application/json', 'idempotency-key': `call-${request}` },
          body,
          // Apex callouts time out too; a hung answer is retried like a failed one.
          signal: AbortSignal.timeout(5000),
        });
        if (answer.status === 200) {
          const { results } = (await answer.json()) as { results: { idempotencyKey?: string; outboxId?: string }[] };
          for (const result of results) if (result.outboxId && result.idempotencyKey) acked.add(result.idempotencyKey);
          return;
        }
        await answer.body?.cancel();
      } catch {
        // A killed instance, or no answer in time: try the next one.
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`call ${request} was never acknowledged`);
  };
  const sender = async (): Promise<void> => {
    while (next < REQUESTS) {
      await send(next++);
      sent += 1;
    }
  };
  // One instance is SIGKILLed at a third and at two thirds of the calls, each time restarted on the same store.
  const chaos = async (): Promise<void> => {
    for (const at of [REQUESTS / 3, (2 * REQUESTS) / 3]) {
      while (sent < at) await new Promise((resolve) => setTimeout(resolve, 10));
      await relays[0]?.stop('SIGKILL');
      const restarted = await startRelayProcess(store, targetUrl);
      running.push(restarted);
      relays[0] = restarted;
    }
  };
  await Promise.all([chaos(), ...Array.from({ length: SENDERS }, sender)]);
  expect(acked.size).toBe(REQUESTS * EVENTS_PER_REQUEST);

  const deadline = Date.now() + 60_000;
  let snapshot = await sandboxSnapshot(targetUrl);
  const recordedKeys = (): string[] => snapshot.events.flatMap((event) => (event.idempotencyKey ? [event.idempotencyKey] : []));
  while (recordedKeys().filter((key) => acked.has(key)).length < acked.size && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    snapshot = await sandboxSnapshot(targetUrl);
  }
  const counts = new Map<string, number>();
  for (const key of recordedKeys()) if (acked.has(key)) counts.set(key, (counts.get(key) ?? 0) + 1);
  const lost = [...acked].filter((key) => !counts.has(key));
  const doubled = [...counts].filter(([, count]) => count > 1);
  expect({ lost: lost.length, doubled: doubled.length, recordedOnce: counts.size }).toEqual({
    lost: 0,
    doubled: 0,
    recordedOnce: acked.size,
  });
  const forwarded = await Promise.all(relays.map(forwardedBy));
  console.log(
    `${store.split(':')[0]}: ${acked.size} acked, ${counts.size} recorded once, ${lost.length} lost, ${doubled.length} doubled; ` +
      `settled per live instance: ${forwarded.join(', ')}`,
  );
  expect(forwarded.filter((count) => count > 0).length).toBeGreaterThan(1);
}

describe('many relay instances on one store', () => {
  describe.skipIf(skipPostgresTests)(`PostgreSQL at ${postgresEnv.url}`, () => {
    it('three instances, one killed twice, target faults: every acknowledged event recorded once', async () => {
      const schema = uniqueTestSchema('many');
      try {
        await runManyInstances(testPostgresUrl(schema));
      } finally {
        await Promise.all(running.splice(0).map((relay) => relay.stop('SIGKILL')));
        await dropTestSchema(schema);
      }
    }, 180_000);
  });

  describe.skipIf(skipRedisTests)('Redis with persistence (a server of the test’s own, AOF on)', () => {
    it('three instances, one killed twice, target faults: every acknowledged event recorded once', async () => {
      const redis = await startRedisServer(['--appendonly', 'yes', '--save', '']);
      try {
        await runManyInstances(redis.url);
      } finally {
        await Promise.all(running.splice(0).map((relay) => relay.stop('SIGKILL')));
        await redis.stop();
      }
    }, 180_000);
  });
});

describe('a relay killed mid-delivery', () => {
  it('another instance sends its leased events again within a few leases, and the target records each once', async () => {
    const target = await startSandbox({ port: 0 });
    const dir = mkdtempSync(join(tmpdir(), 'oncekit-kill-'));
    const store = `sqlite:${join(dir, 'oncekit.db')}`;
    try {
      // The target answers slowly, so the first instance is killed while its batch is in flight.
      target.faults.set({ latencyMs: 3000 });
      const first = await startRelayProcess(store, target.url);
      running.push(first);
      const keys = Array.from({ length: 10 }, (_, n) => `killed-mid-delivery-${process.pid}-${n}`);
      const answer = await fetch(`${first.url}/salesforce/track-event/by-id`, {
        method: 'POST',
        headers: { authorization: `Bearer ${RELAY_SECRET}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          usersEvents: keys.map((key) => ({ userId: 'ann', accountId: 'ann', key: 'purchase', idempotencyKey: key })),
        }),
      });
      expect(answer.status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 500));
      await first.stop('SIGKILL');
      target.faults.clear();

      const killedAt = Date.now();
      const second = await startRelayProcess(store, target.url);
      running.push(second);
      // The lease is 2 s and was renewed until the kill; the second instance takes the batch over once it runs out.
      while ((await forwardedBy(second)) < keys.length && Date.now() - killedAt < 30_000) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const recoveredInMs = Date.now() - killedAt;
      const recorded = target.inspect(TENANT).events.filter((event) => keys.includes(event.idempotencyKey ?? ''));
      console.log(`the killed instance's events were settled by another ${recoveredInMs} ms after the kill (lease 2 s)`);
      expect(new Set(recorded.map((event) => event.idempotencyKey)).size).toBe(keys.length);
      expect(recorded).toHaveLength(keys.length);
      expect(recoveredInMs).toBeLessThan(4 * 2000 + 2000);
    } finally {
      await target.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
