import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { silentLogger } from '../../../shared/log.js';
import { handOverEnqueue } from '../../../shared/outbox/hand-over.js';
import { createOutboxWorker, MemoryOutboxStore, type NewOutboxEvent, type OutboxWorker } from '../../../shared/outbox/index.js';
import type { HttpTransport } from '../../../shared/target/transport.js';
import { type ClosableTransport, undiciTransport } from '../../../shared/target/transport-undici.js';

const TENANT = 'hand_over';
const TARGET_ID = 'https://hand-over.target.test';
let sandbox: Sandbox;
let transport: ClosableTransport;
let worker: OutboxWorker | null = null;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  transport = undiciTransport();
});
afterAll(async () => {
  await transport.close();
  await sandbox.close();
});
afterEach(async () => {
  await worker?.stop();
  worker = null;
  sandbox.reset();
});

let sequence = 0;
function event(target = TARGET_ID): NewOutboxEvent {
  sequence += 1;
  const key = `hand-over-key-${process.pid}-${sequence}`;
  return {
    tenant: TENANT,
    target,
    source: 'test',
    sourceId: `row:${sequence}`,
    dedupKey: `d:${sequence}`,
    input: { userId: 'ann', accountId: 'ann', idempotencyKey: key, events: [{ key: 'purchase' }] },
    keyDecision: null,
  };
}

/** A transport whose first call waits until `release()`, so a batch stays in flight; `calls()` counts the calls made. */
function firstCallHeld(): { send: HttpTransport; release: () => void; calls: () => number } {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let calls = 0;
  const send: HttpTransport = async (request) => {
    calls += 1;
    if (calls === 1) await held;
    return transport.send(request);
  };
  return { send, release: () => release(), calls: () => calls };
}

/** A memory store that counts the calls a delivery makes, and a started worker with `concurrency` loops on it. */
async function setup(concurrency: number, send: HttpTransport = transport.send, leaseMs?: number) {
  const store = new MemoryOutboxStore();
  const calls = { lease: 0, renewLeases: 0, nextDueAt: 0 };
  const lease = store.lease.bind(store);
  const renewLeases = store.renewLeases.bind(store);
  const nextDueAt = store.nextDueAt.bind(store);
  store.lease = (request) => {
    calls.lease += 1;
    return lease(request);
  };
  store.renewLeases = (owner, ids, leaseMs) => {
    calls.renewLeases += 1;
    return renewLeases(owner, ids, leaseMs);
  };
  store.nextDueAt = (tenant, target) => {
    calls.nextDueAt += 1;
    return nextDueAt(tenant, target);
  };
  const started = createOutboxWorker({
    store,
    target: { baseUrl: sandbox.url, id: TARGET_ID, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: send },
    config: { concurrency, pollMs: 60_000, ...(leaseMs === undefined ? {} : { leaseMs }) },
  });
  worker = started;
  started.start();
  await waitFor(() => started.acceptsHandOver());
  // Every loop has looked once and gone idle (one poll a minute from now).
  await new Promise((resolve) => setTimeout(resolve, 50));
  return { store, worker: started, calls: () => ({ ...calls }) };
}

async function waitFor(check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 8000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const delivered = (store: MemoryOutboxStore, count: number) => async () => (await store.counts(TENANT)).delivered === count;

describe('handOverEnqueue', () => {
  it('hands events to an idle loop leased in the same commit: sent without a lease read or a renewal, one loop woken', async () => {
    const { store, worker: running, calls } = await setup(4);
    const before = calls();
    const enqueue = handOverEnqueue(store, running, { logger: silentLogger });
    const results = await enqueue([event(), event(), event()]);
    expect(results.map((result) => result.state)).toEqual(['leased', 'leased', 'leased']);
    await waitFor(delivered(store, 3));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = calls();
    expect(after.renewLeases - before.renewLeases).toBe(0);
    // Only the loop that sent looks for more afterwards, with one read (nothing is due, so no lease); the three others
    // slept on.
    expect(after.lease - before.lease).toBe(0);
    expect(after.nextDueAt - before.nextDueAt).toBe(1);
    expect(sandbox.inspect(TENANT).events).toHaveLength(3);
  });

  it('after a handed batch, events already due in the store are leased at once, not at the next poll', async () => {
    const { store, worker: running } = await setup(1);
    // Due now in the store, and no loop told (as when another process enqueued them); the poll is a minute away, far
    // past waitFor's limit.
    await store.enqueue([event(), event()]);
    const enqueue = handOverEnqueue(store, running, { logger: silentLogger });
    expect((await enqueue([event()]))[0]?.state).toBe('leased');
    await waitFor(delivered(store, 3));
    expect(sandbox.inspect(TENANT).events).toHaveLength(3);
  });

  it('events of another target are enqueued plainly, and notify wakes one loop per batch, not every loop', async () => {
    const { store, worker: running, calls } = await setup(4);
    const enqueue = handOverEnqueue(store, running, { logger: silentLogger });
    const before = calls();
    const [other] = await enqueue([event('https://another.target.test')]);
    expect(other?.state).toBe('pending');
    // Its own target's events, enqueued plainly (as when no loop is idle), then one wake.
    await store.enqueue([event(), event()]);
    running.notify(2);
    await waitFor(delivered(store, 2));
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = calls();
    // Waking every loop would have sent each of the four to look, then to check when to look next.
    expect(after.nextDueAt - before.nextDueAt).toBeLessThanOrEqual(2);
    expect(await store.counts(TENANT, { target: 'https://another.target.test' })).toMatchObject({ pending: 1 });
  });

  it('while a batch is on its way, short batches handed meanwhile wait a few ms and go to the target together', async () => {
    // The first call is held until released, so a batch is in flight while the next ones are handed over.
    const { send, release, calls } = firstCallHeld();
    const { store, worker: running } = await setup(2, send);
    const enqueue = handOverEnqueue(store, running, { logger: silentLogger });
    await enqueue([event()]);
    await waitFor(() => calls() === 1);
    // Four batches of one event, each leased in a commit of its own, handed over while the first call is still out.
    const batches = [];
    for (let n = 0; n < 4; n++) {
      const results = await store.enqueue([event()], { lease: { owner: running.owner, leaseMs: running.config.leaseMs } });
      batches.push(results.flatMap((result) => (result.leased ? [result.leased] : [])));
    }
    const submitted = Promise.all(batches.map((batch) => running.submit(batch, { leaseRequestedAt: performance.now() })));
    await waitFor(() => calls() === 2);
    release();
    await submitted;
    await waitFor(delivered(store, 5));
    // The held call and one for the four; without the wait, each would have been a call of its own.
    expect(calls()).toBe(2);
    expect(sandbox.inspect(TENANT).events).toHaveLength(5);
  });

  it('a batch handed while every loop is busy keeps its lease while it waits, and is sent once; the next go to the store', async () => {
    const { send, release, calls } = firstCallHeld();
    const { store, worker: running } = await setup(1, send, 300);
    const enqueue = handOverEnqueue(store, running, { logger: silentLogger });
    await enqueue([event()]);
    await waitFor(() => calls() === 1);
    // The one loop is busy and nothing waits for it: the next batch is handed over and waits.
    expect(running.acceptsHandOver()).toBe(true);
    const [waiting] = await enqueue([event()]);
    expect(waiting?.state).toBe('leased');
    // As many batches wait as there are loops: the next events wait in the store instead.
    expect(running.acceptsHandOver()).toBe(false);
    const [stored] = await enqueue([event()]);
    expect(stored?.state).toBe('pending');
    // Three leases later its lease still holds: renewed while it waited, so no other worker could take it over.
    await new Promise((resolve) => setTimeout(resolve, 900));
    const entry = await store.get(TENANT, waiting?.id ?? '');
    expect(entry?.state).toBe('leased');
    expect(entry?.leaseExpiresAt).toBeGreaterThan(Date.now());
    release();
    await waitFor(delivered(store, 3));
    expect((await store.get(TENANT, waiting?.id ?? ''))?.attempts).toHaveLength(1);
    expect(sandbox.inspect(TENANT).events).toHaveLength(3);
  });

  it('a worker that gives up stops renewing the batches handed to it: their leases run out for any worker to take', async () => {
    const store = new MemoryOutboxStore();
    const { send, release, calls } = firstCallHeld();
    const settle = store.settle.bind(store);
    store.settle = () => Promise.reject(new Error('the store is down'));
    const failing = createOutboxWorker({
      store,
      target: { baseUrl: sandbox.url, id: TARGET_ID, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: send },
      config: { concurrency: 1, pollMs: 60_000, leaseMs: 300 },
      maxConsecutiveErrors: 1,
    });
    worker = failing;
    failing.start();
    const enqueue = handOverEnqueue(store, failing, { logger: silentLogger });
    await enqueue([event()]);
    await waitFor(() => calls() === 1);
    const [waiting] = await enqueue([event()]);
    expect(waiting?.state).toBe('leased');
    release();
    await waitFor(() => failing.failure !== null);
    store.settle = settle;
    await new Promise((resolve) => setTimeout(resolve, 700));
    const entry = await store.get(TENANT, waiting?.id ?? '');
    expect(entry?.state).toBe('leased');
    expect(entry?.leaseExpiresAt).toBeLessThan(Date.now());
  });

  it('a worker that is not running (not started, or stopped) takes no hand-over: the events wait in the store', async () => {
    const store = new MemoryOutboxStore();
    const idle = createOutboxWorker({
      store,
      target: { baseUrl: sandbox.url, id: TARGET_ID, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send },
      config: { concurrency: 2, pollMs: 60_000 },
    });
    const enqueue = handOverEnqueue(store, idle, { logger: silentLogger });
    expect(idle.acceptsHandOver()).toBe(false);
    expect((await enqueue([event()]))[0]?.state).toBe('pending');
    idle.start();
    expect(idle.acceptsHandOver()).toBe(true);
    await idle.stop();
    expect(idle.acceptsHandOver()).toBe(false);
    expect((await enqueue([event()]))[0]?.state).toBe('pending');
  });

  it('a handed batch whose lease was asked for long ago is renewed before it is sent', async () => {
    const { store, worker: running, calls } = await setup(1);
    const results = await store.enqueue([event()], { lease: { owner: running.owner, leaseMs: running.config.leaseMs } });
    const before = calls();
    await running.submit(
      results.flatMap((result) => (result.leased ? [result.leased] : [])),
      { leaseRequestedAt: performance.now() - running.config.leaseMs },
    );
    await waitFor(delivered(store, 1));
    expect(calls().renewLeases - before.renewLeases).toBe(1);
  });
});
