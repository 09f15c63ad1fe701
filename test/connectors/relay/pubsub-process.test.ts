import '../../fakes/no-proxy.js';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ONCEKIT_BIN } from '../../../cli/spawn-self.js';
import { DEFAULT_PLATFORM_EVENT_CHANNEL } from '../../../connectors/salesforce/platform-event-mapping.js';
import type { FakeOrg, FakePubSub, PubSubPublished } from '../../../sandbox/salesforce-org/index.js';
import { startSandbox } from '../../../sandbox/target/index.js';
import type { Sandbox } from '../../../sandbox/target/server.js';
import { SqliteOutboxStore } from '../../../shared/outbox/index.js';
import { clientCredentialsEnv, startTestOrg } from '../salesforce/helpers.js';
import { RELAY_SECRET, tempDir, waitFor } from './helpers.js';

/**
 * `oncekit relay` (the built CLI, run `npm run build` first) in its own process, subscribed over the Pub/Sub API to the
 * fake org in this process: killed with SIGKILL mid-stream and restarted; and held back by a slow target while 20,000
 * events wait at the server, its memory read from /proc.
 */

const CHANNEL = DEFAULT_PLATFORM_EVENT_CHANNEL;
const API_KEY = 'ps-process-key-Zx8Cv6Bn4M';

let org: FakeOrg;
let pubsub: FakePubSub;
let target: Sandbox;
let dir: ReturnType<typeof tempDir>;
const children: ChildProcess[] = [];
const logs = new Map<ChildProcess, () => string>();

beforeAll(async () => {
  // Keepalives every 5 ms: one crossing the subscriber's next request once moved its checkpoint past events it had
  // not taken, and the restarted relay lost them (only under load, with the 500 ms this test had).
  org = await startTestOrg({ pubsub: { keepaliveMs: 5 } });
  pubsub = org.pubsub as FakePubSub;
  target = await startSandbox({ port: 0, apiKey: API_KEY });
  dir = tempDir('oncekit-pubsub-process-');
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  }
  target.faults.clear();
});
afterAll(async () => {
  await org.close();
  await target.close();
  dir.remove();
});

function spawnRelay(tenant: string, store: string, extra: Record<string, string> = {}): ChildProcess {
  const env = {
    PATH: process.env.PATH,
    ...clientCredentialsEnv(org),
    ONCEKIT_TARGET_URL: target.url,
    ONCEKIT_TENANT: tenant,
    ONCEKIT_API_KEY: API_KEY,
    ONCEKIT_RELAY_SECRET: RELAY_SECRET,
    ONCEKIT_STORE: store,
    ONCEKIT_LOG_LEVEL: 'warn',
    // The outbox bound the flow-control test expects (the default is higher).
    ONCEKIT_MAX_BACKLOG: '1000',
    ...extra,
  };
  const child = spawn(process.execPath, [ONCEKIT_BIN, 'relay', '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  // The last of its log, for a failure to say what the relay was doing.
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-4000);
  });
  logs.set(child, () => log);
  return child;
}

function payload(tag: string, n: number): Record<string, unknown> {
  return { User_Id__c: `${tag}-${n}@example.com`, Event_Key__c: 'purchase', Fields__c: JSON.stringify({ n }) };
}

const subscribedStreams = () => pubsub.subscriptions().filter((subscription) => subscription.topic === CHANNEL);

/** VmRSS and VmHWM (peak RSS) of a process, in MB; null where /proc is not there. */
function memoryOf(pid: number): { rssMb: number; peakRssMb: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rssMb: Math.round(kb('VmRSS') / 1024), peakRssMb: Math.round(kb('VmHWM') / 1024) };
  } catch {
    return null;
  }
}

describe('oncekit relay over the Pub/Sub API, in its own process', () => {
  it('killed with SIGKILL mid-stream and restarted on the same store: every event recorded once', async () => {
    const tenant = 'pubsub_kill';
    const store = `${dir.dir}/kill.db`;
    const total = 600;
    const first = spawnRelay(tenant, `sqlite:${store}`);
    await waitFor('the first relay subscribed', () => subscribedStreams().length === 1, 15_000);

    const published: PubSubPublished[] = [];
    const publishing = (async () => {
      for (let n = 1; n <= total; n++) {
        published.push(pubsub.publish(CHANNEL, payload('kill', n)));
        if (n % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      }
    })();
    await waitFor('some events recorded', () => target.inspect(tenant).events.length >= 250, 15_000);
    const exited = once(first, 'exit');
    first.kill('SIGKILL');
    await exited;
    const recordedAtKill = target.inspect(tenant).events.length;
    await publishing;
    const requestsBefore = pubsub.fetchRequests.length;

    const second = spawnRelay(tenant, `sqlite:${store}`);
    // Generous: under a loaded machine the restart, the lease the killed relay left and the replay take a while.
    await waitFor('every event recorded', () => target.inspect(tenant).events.length >= total, 60_000).catch((error: unknown) => {
      throw new Error(
        `${String(error)}: ${target.inspect(tenant).events.length} of ${total} recorded; restarted relay exit ${second.exitCode} ` +
          `signal ${second.signalCode}; ${subscribedStreams().length} streams subscribed; its log ends:\n${logs.get(second)?.() ?? ''}`,
      );
    });
    const outbox = new SqliteOutboxStore({ path: store });
    try {
      await waitFor(
        'the restarted relay’s outbox settled',
        async () => {
          const counts = await outbox.counts(tenant);
          return counts.pending === 0 && counts.leased === 0;
        },
        30_000,
      );
    } finally {
      await outbox.close();
    }
    const snapshot = target.inspect(tenant);
    const keys = snapshot.events.map((event) => event.idempotencyKey);
    expect(keys).toHaveLength(total);
    expect(new Set(keys).size).toBe(total);
    expect([...keys].sort()).toEqual(published.map((event) => event.eventUuid).sort());
    const resumed = pubsub.fetchRequests.slice(requestsBefore).find((request) => request.replayPreset !== null);
    expect(resumed?.replayPreset).toBe('CUSTOM');
    console.log(
      `kill-and-resume: SIGKILL after ${recordedAtKill}/${total} events recorded; restarted from the checkpoint (CUSTOM replay id ${resumed?.replayFrom}); ` +
        `${snapshot.events.length} recorded, ${new Set(keys).size} distinct keys, 0 lost, 0 doubled; ` +
        `the target answered ${snapshot.requests.byStatus['409'] ?? 0} resends with 409 (already taken)`,
    );
  }, 150_000);

  it('a slow target stops the subscriber asking for events: over 20,000 wait at the server, the relay’s memory stays flat', async () => {
    const tenant = 'pubsub_backpressure';
    const store = `sqlite:${dir.dir}/backpressure.db`;
    // ~50 events a second reach the target: 5 per request, one request at a time, 100 ms each.
    target.faults.set({ latencyMs: 100 });
    const relay = spawnRelay(tenant, store, { ONCEKIT_BATCH_SIZE: '5', ONCEKIT_CONCURRENCY: '1' });
    await waitFor('the relay subscribed', () => subscribedStreams().length === 1, 15_000);
    const atStart = memoryOf(relay.pid as number);

    const total = 25_000;
    for (let n = 1; n <= total; n++) pubsub.publish(CHANNEL, payload('bp', n));

    const samples: { sent: number; recorded: number; waiting: number; rssMb: number; peakRssMb: number }[] = [];
    const sample = () => {
      const stream = subscribedStreams()[0];
      const memory = memoryOf(relay.pid as number);
      samples.push({
        sent: stream?.sent ?? 0,
        recorded: target.inspect(tenant).events.length,
        waiting: stream?.waiting ?? 0,
        rssMb: memory?.rssMb ?? Number.NaN,
        peakRssMb: memory?.peakRssMb ?? Number.NaN,
      });
    };
    // Until the subscriber has stopped asking (the outbox is at its bound), then a while longer.
    await waitFor(
      'the subscriber to stop asking',
      () => {
        sample();
        const last = samples.at(-1);
        return last !== undefined && last.sent >= 1000 && last.sent - last.recorded >= 900;
      },
      30_000,
    );
    for (let round = 0; round < 20; round++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      sample();
    }
    const last = samples.at(-1);
    if (!last) throw new Error('no samples');
    // Taken from the server, never more than the outbox bound (1,000) plus a batch in the outbox and one in hand.
    for (const entry of samples) expect(entry.sent - entry.recorded).toBeLessThanOrEqual(1000 + 100 + 100);
    expect(last.waiting).toBeGreaterThanOrEqual(20_000);
    expect(last.waiting + last.sent).toBe(total);
    const peak = Math.max(atStart?.peakRssMb ?? 0, ...samples.map((entry) => entry.peakRssMb));
    console.log(
      `backpressure: ${last.waiting} events waiting at the server, ${last.sent} taken by the relay, ${last.recorded} delivered; ` +
        `relay RSS ${atStart?.rssMb ?? 'n/a'} MB when subscribed, ${samples[0]?.rssMb} MB once the events were published, ` +
        `${last.rssMb} MB at the end; peak RSS (VmHWM) ${atStart?.peakRssMb ?? 'n/a'} MB by the time it subscribed, ${peak} MB at the end`,
    );
  }, 90_000);
});
