import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { manualClock } from '../../../shared/clock.js';
import { InvalidInputError } from '../../../shared/errors.js';
import type { UserEventInput } from '../../../shared/events/index.js';
import {
  createOutboxWorker,
  MemoryOutboxStore,
  type NewOutboxEvent,
  type OutboxDeliveryConfig,
  type OutboxStore,
  outboxDeliveryConfig,
  type SettledEvent,
} from '../../../shared/outbox/index.js';
import { createTargetClient } from '../../../shared/target/index.js';
import type { HttpTransport } from '../../../shared/target/transport.js';
import { type ClosableTransport, undiciTransport } from '../../../shared/target/transport-undici.js';

const TENANT = 'outbox_worker';
const HOUR = 3_600_000;
let sandbox: Sandbox;
let strictSandbox: Sandbox;
let transport: ClosableTransport;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  strictSandbox = await startSandbox({ port: 0, strictUsers: true });
  transport = undiciTransport();
});
afterAll(async () => {
  await transport.close();
  await sandbox.close();
  await strictSandbox.close();
});
afterEach(() => {
  sandbox.reset();
  strictSandbox.reset();
});

const TARGET_ID = 'https://worker-test.target.test';
let sequence = 0;
function event(overrides: { key?: string | null; userId?: string } = {}): NewOutboxEvent {
  sequence += 1;
  const key = overrides.key === undefined ? `worker-key-${process.pid}-${sequence}` : overrides.key;
  const input: UserEventInput = {
    userId: overrides.userId ?? 'ann',
    accountId: overrides.userId ?? 'ann',
    ...(key === null ? {} : { idempotencyKey: key }),
    events: [{ key: 'purchase', fields: { n: sequence } }],
  };
  return {
    tenant: TENANT,
    target: TARGET_ID,
    source: 'test',
    sourceId: `row:${sequence}`,
    dedupKey: `d:${sequence}`,
    input,
    keyDecision: null,
  };
}

interface SetupOptions {
  readonly target?: Sandbox;
  readonly config?: Partial<OutboxDeliveryConfig>;
  readonly send?: HttpTransport;
  readonly apiKey?: string;
  readonly realTime?: boolean;
  /** How far the worker's (host's) clock runs behind the store's; negative: ahead. */
  readonly hostBehindMs?: number;
  /** The worker's random draws; default always 0.5. */
  readonly random?: () => number;
}

/** A memory outbox, a manual clock (unless realTime) and a worker for the sandbox; waits are recorded, not slept. */
function setup(options: SetupOptions = {}) {
  const clock = manualClock();
  const store = new MemoryOutboxStore(options.realTime ? {} : { clock });
  const settled: SettledEvent[] = [];
  const sleeps: number[] = [];
  const worker = createOutboxWorker({
    store,
    target: {
      baseUrl: (options.target ?? sandbox).url,
      // Either sandbox stands in for the one target these events are for.
      id: TARGET_ID,
      tenant: TENANT,
      apiKey: options.apiKey ?? DEFAULT_SANDBOX_API_KEY,
      transport: options.send ?? transport.send,
    },
    config: { batchSize: 100, concurrency: 1, backoffBaseMs: 1000, backoffMaxMs: 60_000, ...options.config },
    onSettled: (item) => settled.push(item),
    ...(options.realTime
      ? {}
      : {
          clock: options.hostBehindMs === undefined ? clock : { now: () => clock.now() - (options.hostBehindMs ?? 0) },
          random: options.random ?? (() => 0.5),
          sleep: async (ms: number) => {
            sleeps.push(ms);
          },
        }),
  });
  return { clock, store, worker, settled, sleeps };
}

const requestsTo = (target: Sandbox = sandbox) => target.inspect(TENANT).requests.total;

describe('outbox worker', () => {
  it('delivers in batches: 250 events in three logUserEvents calls, each recorded once with its key', async () => {
    const { store, worker } = setup();
    const events = Array.from({ length: 250 }, () => event());
    const ids = (await store.enqueue(events)).map((result) => result.id);
    expect(await worker.runOnce()).toBe(100);
    expect(await worker.runOnce()).toBe(100);
    expect(await worker.runOnce()).toBe(50);
    expect(await worker.runOnce()).toBe(0);
    expect(requestsTo()).toBe(3);
    const recorded = sandbox.inspect(TENANT).events;
    expect(recorded.map((e) => e.idempotencyKey)).toEqual(events.map((e) => e.input.idempotencyKey));
    expect(recorded.every((e) => e.via === 'graphql')).toBe(true);
    expect(await store.counts(TENANT)).toMatchObject({ delivered: 250, pending: 0, leased: 0 });
    const entry = await store.get(TENANT, ids[0] ?? '');
    expect(entry?.attempts).toEqual([
      expect.objectContaining({ number: 1, outcome: 'accepted', status: 200, requests: 1, eventIds: [recorded[0]?.id] }),
    ]);
  });

  it('keeps at most `concurrency` batches in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const counting: HttpTransport = async (request) => {
      inFlight += 1;
      most = Math.max(most, inFlight);
      try {
        return await transport.send(request);
      } finally {
        inFlight -= 1;
      }
    };
    sandbox.faults.set({ latencyMs: 20 });
    const { store, worker } = setup({ send: counting, realTime: true, config: { batchSize: 5, concurrency: 3, pollMs: 20 } });
    await store.enqueue(Array.from({ length: 60 }, () => event()));
    worker.start();
    await expect.poll(async () => (await store.counts(TENANT)).delivered, { timeout: 10_000 }).toBe(60);
    await worker.stop();
    expect(most).toBe(3);
    expect(requestsTo()).toBe(12);
  });

  it('leases for its loops together: loops that look at once share one store lease, oldest events to the first', async () => {
    const leases: number[] = [];
    class CountingStore extends MemoryOutboxStore {
      override async lease(request: Parameters<MemoryOutboxStore['lease']>[0]) {
        leases.push(request.limit);
        return super.lease(request);
      }
    }
    const store = new CountingStore();
    const worker = createOutboxWorker({
      store,
      target: { baseUrl: sandbox.url, id: TARGET_ID, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send },
      config: { batchSize: 5, concurrency: 3, pollMs: 60_000 },
    });
    await store.enqueue(Array.from({ length: 12 }, () => event()));
    await Promise.all([worker.runOnce(), worker.runOnce(), worker.runOnce()]);
    expect(leases).toEqual([15]);
    expect((await store.counts(TENANT)).delivered).toBe(12);
    await worker.stop();
  });

  it('counts a 409 as delivered: an event the target already has becomes a duplicate, recorded once', async () => {
    const { store, worker } = setup();
    const first = event();
    const direct = createTargetClient({ baseUrl: sandbox.url, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send });
    expect((await direct.logUserEvent(first.input)).outcome).toBe('accepted');
    const [result] = await store.enqueue([first]);
    await worker.runOnce();
    const entry = await store.get(TENANT, result?.id ?? '');
    expect(entry).toMatchObject({ state: 'duplicate', attempts: [{ outcome: 'duplicate', status: 409 }] });
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
  });

  it('absorbs a replay whose first answer was lost: the event is stored, the answer fails, the retry gets 409', async () => {
    const { store, worker } = setup();
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'status' });
    const [result] = await store.enqueue([event()]);
    await worker.runOnce();
    expect(await store.get(TENANT, result?.id ?? '')).toMatchObject({
      state: 'duplicate',
      attempts: [{ outcome: 'duplicate', requests: 2 }],
    });
    expect(sandbox.inspect(TENANT).events).toHaveLength(1);
  });

  it('makes a rejected event a dead letter at once, with the API message, and never retries it', async () => {
    const { store, worker, clock } = setup({ target: strictSandbox });
    const [result] = await store.enqueue([event({ userId: 'nobody' })]);
    await worker.runOnce();
    const entry = await store.get(TENANT, result?.id ?? '');
    expect(entry?.state).toBe('dead');
    expect(entry?.deadReason).toMatch(/^rejected by the target: HTTP 404 RS042: .*nobody/);
    expect(entry?.attempts).toEqual([expect.objectContaining({ outcome: 'rejected', status: 404, rsCode: 'RS042', requests: 1 })]);
    clock.advance(HOUR);
    expect(await worker.runOnce()).toBe(0);
    expect(requestsTo(strictSandbox)).toBe(1);
  });

  it('backs off after a failed attempt: not retried before its due time, then delivered, both attempts in the ledger', async () => {
    const { store, worker, clock, sleeps } = setup();
    // The client makes three quick attempts per delivery attempt; all three fail.
    sandbox.faults.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const [result] = await store.enqueue([event()]);
    await worker.runOnce();
    const failed = await store.get(TENANT, result?.id ?? '');
    // Full jitter with random() = 0.5 on a 1000 ms base: 500 ms.
    expect(failed).toMatchObject({
      state: 'pending',
      dueAt: clock.now() + 500,
      attempts: [{ outcome: 'failed', status: 503, requests: 3 }],
    });
    expect(sleeps).toHaveLength(2);
    clock.advance(499);
    expect(await worker.runOnce()).toBe(0);
    clock.advance(1);
    expect(await worker.runOnce()).toBe(1);
    const delivered = await store.get(TENANT, result?.id ?? '');
    expect(delivered?.state).toBe('delivered');
    expect(delivered?.attempts.map((a) => [a.number, a.outcome])).toEqual([
      [1, 'failed'],
      [2, 'accepted'],
    ]);
  });

  it('backs a failed batch off as one: its events come due together and go out again as one request, not scattered', async () => {
    // Each draw differs: a draw per event would give each of the 20 its own due time.
    let draws = 0;
    const random = (): number => {
      draws += 1;
      return (draws % 10) / 10 + 0.05;
    };
    const { store, worker, clock } = setup({ random });
    sandbox.faults.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    const ids = (await store.enqueue(Array.from({ length: 20 }, () => event()))).map((result) => result.id);
    expect(await worker.runOnce()).toBe(20);
    const entries = await Promise.all(ids.map((id) => store.get(TENANT, id)));
    const dueTimes = new Set(entries.map((entry) => entry?.dueAt));
    expect(dueTimes.size).toBe(1);
    const [dueAt] = dueTimes;
    clock.set(dueAt ?? 0);
    const before = requestsTo();
    expect(await worker.runOnce()).toBe(20);
    expect(requestsTo() - before).toBe(1);
    expect((await Promise.all(ids.map((id) => store.get(TENANT, id)))).every((entry) => entry?.state === 'delivered')).toBe(true);
  });

  it('honours Retry-After as the floor of the backoff', async () => {
    const { store, worker, clock } = setup();
    sandbox.faults.enqueue(...Array.from({ length: 3 }, () => ({ kind: 'throttle' as const, retryAfterSeconds: 30 })));
    const [result] = await store.enqueue([event()]);
    await worker.runOnce();
    expect(await store.get(TENANT, result?.id ?? '')).toMatchObject({ state: 'pending', dueAt: clock.now() + 30_000 });
  });

  it('logs each failed delivery it will retry: the reason, the events, when they come due, and the target without credentials', async () => {
    const warnings: { fields: Record<string, unknown>; message: string }[] = [];
    const clock = manualClock();
    const store = new MemoryOutboxStore({ clock });
    // Nothing listens on port 1: the connection is refused, as for a target that is down or mistyped.
    const worker = createOutboxWorker({
      store,
      target: {
        baseUrl: 'http://user:secret-pw@127.0.0.1:1/api?token=secret-q',
        id: TARGET_ID,
        tenant: TENANT,
        apiKey: 'k',
        transport: transport.send,
      },
      config: { batchSize: 100, concurrency: 1, backoffBaseMs: 1000, backoffMaxMs: 60_000 },
      logger: { info() {}, error() {}, warn: (fields, message) => warnings.push({ fields, message }) },
      clock,
      random: () => 0.5,
      sleep: async () => {},
    });
    await store.enqueue([event(), event()]);
    expect(await worker.runOnce()).toBe(2);
    const retries = warnings.filter((warning) => warning.fields.event === 'outbox_delivery_retry');
    expect(retries).toHaveLength(1);
    expect(retries[0]?.fields).toMatchObject({
      target: 'http://127.0.0.1:1/api',
      events: 2,
      attempt: 1,
      status: null,
      reason: expect.stringMatching(/^no answer: .*ECONNREFUSED/),
      retryInMs: 500,
    });
    expect(retries[0]?.message).toMatch(
      /^delivery to http:\/\/127\.0\.0\.1:1\/api failed \(no answer: .*ECONNREFUSED.*\); 2 events retry in 500 ms \(attempt 1\)$/,
    );
    expect(JSON.stringify(warnings)).not.toMatch(/secret/);
    // Delivered events say nothing.
    warnings.length = 0;
    const ok = setup();
    const logged = createOutboxWorker({
      store: ok.store,
      target: { baseUrl: sandbox.url, id: TARGET_ID, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send },
      logger: { info() {}, error() {}, warn: (fields, message) => warnings.push({ fields, message }) },
      clock: ok.clock,
    });
    await ok.store.enqueue([event()]);
    expect(await logged.runOnce()).toBe(1);
    expect(warnings).toEqual([]);
  });

  it('gives up at the retry horizon: a retry that would fall past it makes a dead letter with the reason', async () => {
    const { store, worker, clock } = setup({ config: { horizonMs: 2 * HOUR, backoffBaseMs: 5 * HOUR, backoffMaxMs: 5 * HOUR } });
    sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    const [result] = await store.enqueue([event()]);
    const firstAttemptAt = clock.now();
    await worker.runOnce();
    const entry = await store.get(TENANT, result?.id ?? '');
    expect(entry?.state).toBe('dead');
    expect(entry?.deadReason).toBe(
      `gave up after 1 attempt: the next retry would fall past the retry horizon (2 h after the first attempt at ${new Date(firstAttemptAt).toISOString()}); ` +
        'last answer: HTTP 500 INTERNAL_SERVER_ERROR: Internal Server Error',
    );
  });

  it('never sends an event whose horizon passed while nothing ran (e.g. its worker died a day ago)', async () => {
    const { store, worker, clock } = setup({ config: { horizonMs: 2 * HOUR, leaseMs: 60_000 } });
    const [result] = await store.enqueue([event()]);
    await store.lease({ tenant: TENANT, target: TARGET_ID, owner: 'died', limit: 1, leaseMs: 60_000 });
    clock.advance(2 * HOUR);
    expect(await worker.runOnce()).toBe(1);
    const entry = await store.get(TENANT, result?.id ?? '');
    expect(entry?.state).toBe('dead');
    expect(entry?.deadReason).toMatch(/^the retry horizon \(2 h after the first attempt at .*\) passed before attempt 2 could start$/);
    expect(entry?.attempts.map((a) => a.outcome)).toEqual(['abandoned']);
    expect(requestsTo()).toBe(0);
  });

  it('never resends a requeued event that may have landed once the target’s key window closed, whatever its fresh horizon', async () => {
    const { store, worker, clock } = setup();
    const fail = () =>
      sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    fail();
    const [result] = await store.enqueue([event()]);
    const id = result?.id ?? '';
    const landedAt = clock.now();
    await worker.runOnce();
    // A 500 may have landed; the horizon (20 h) then passes while the target is down.
    expect(await store.get(TENANT, id)).toMatchObject({ state: 'pending', landedSince: landedAt });
    clock.advance(21 * HOUR);
    await worker.runOnce();
    expect((await store.get(TENANT, id))?.deadReason).toMatch(/^the retry horizon/);
    // Requeued 21 h after the 500: still inside the window, so it is sent, and fails again.
    expect(await store.requeueDead({ tenant: TENANT, ids: [id] })).toEqual([id]);
    fail();
    await worker.runOnce();
    expect(await store.get(TENANT, id)).toMatchObject({ state: 'pending', landedSince: landedAt });
    const sent = requestsTo();
    // 23 h after the first 500 (the 24 h window less its hour): not sent again, a dead letter saying why.
    clock.advance(2 * HOUR);
    expect(await worker.runOnce()).toBe(1);
    const entry = await store.get(TENANT, id);
    expect(entry?.state).toBe('dead');
    expect(entry?.deadReason).toBe(
      `not sent: an attempt that may have reached the target started at ${new Date(landedAt).toISOString()}, and the target's key window ` +
        '(1 d, less 1 h for the send and clock skew) has passed since: the target no longer remembers the key, so a resend could record the ' +
        'event twice; check the target first, `oncekit dead-letters retry --force-past-window` sends it anyway',
    );
    expect(requestsTo()).toBe(sent);
  });

  it('gives up when the next retry of a requeued event that may have landed would fall past the target’s key window', async () => {
    const { store, worker, clock } = setup({ config: { backoffBaseMs: 4 * HOUR, backoffMaxMs: 4 * HOUR } });
    const fail = () =>
      sandbox.faults.enqueue({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
    const [result] = await store.enqueue([event()]);
    const id = result?.id ?? '';
    await store.lease({ tenant: TENANT, target: TARGET_ID, owner: 'died', limit: 1, leaseMs: 60_000 });
    const landedAt = clock.now();
    clock.advance(20 * HOUR);
    await worker.runOnce();
    // The crashed worker's attempt may have landed; the horizon had passed, so the event died unsent.
    expect(await store.get(TENANT, id)).toMatchObject({ state: 'dead', landedSince: landedAt });
    clock.advance(HOUR);
    await store.requeueDead({ tenant: TENANT, ids: [id] });
    fail();
    await worker.runOnce();
    const entry = await store.get(TENANT, id);
    expect(entry?.state).toBe('dead');
    expect(entry?.deadReason).toMatch(
      /^gave up after 2 attempts: the next retry would fall past the target's key window: an attempt that may have reached the target started at .*; last answer: HTTP 500/,
    );
    expect(entry?.attempts.map((a) => a.outcome)).toEqual(['abandoned', 'failed']);
  });

  it('decides the horizon on the store’s clock: a host clock 6 h behind it does not let an event out past the horizon', async () => {
    const { store, worker, clock } = setup({ hostBehindMs: 6 * HOUR, config: { horizonMs: 2 * HOUR, leaseMs: 60_000 } });
    const [result] = await store.enqueue([event()]);
    await store.lease({ tenant: TENANT, target: TARGET_ID, owner: 'died', limit: 1, leaseMs: 60_000 });
    // Past the horizon on the store's clock; 4 h short of it on the host's.
    clock.advance(2 * HOUR);
    expect(await worker.runOnce()).toBe(1);
    const entry = await store.get(TENANT, result?.id ?? '');
    expect(entry?.deadReason).toMatch(/^the retry horizon \(2 h after the first attempt at .*\) passed before attempt 2 could start$/);
    expect(requestsTo()).toBe(0);
  });

  it('decides the horizon on the store’s clock: a host clock 6 h ahead of it still sends a fresh event', async () => {
    const { store, worker } = setup({ hostBehindMs: -6 * HOUR, config: { horizonMs: 2 * HOUR } });
    const [result] = await store.enqueue([event()]);
    expect(await worker.runOnce()).toBe(1);
    expect((await store.get(TENANT, result?.id ?? ''))?.state).toBe('delivered');
    expect(requestsTo()).toBe(1);
  });

  it('resumes a crashed worker’s events once its lease runs out', async () => {
    const { store, worker, clock } = setup({ config: { leaseMs: 60_000 } });
    const [result] = await store.enqueue([event()]);
    await store.lease({ tenant: TENANT, target: TARGET_ID, owner: 'import-crashed', limit: 10, leaseMs: 60_000 });
    expect(await worker.runOnce()).toBe(0);
    clock.advance(60_000);
    expect(await worker.runOnce()).toBe(1);
    expect(await store.get(TENANT, result?.id ?? '')).toMatchObject({
      state: 'delivered',
      attempts: [{ outcome: 'abandoned' }, { outcome: 'accepted' }],
    });
  });

  it('sends submitted events (enqueued leased to it) without leasing them from the store', async () => {
    const { store, worker } = setup();
    let leases = 0;
    const lease = store.lease.bind(store);
    store.lease = async (request) => {
      leases += 1;
      return lease(request);
    };
    const results = await store.enqueue([event(), event()], { lease: { owner: worker.owner, leaseMs: worker.config.leaseMs } });
    await worker.submit(results.flatMap((result) => (result.leased ? [result.leased] : [])));
    expect(await worker.runOnce()).toBe(2);
    expect(leases).toBe(0);
    expect(await store.counts(TENANT)).toMatchObject({ delivered: 2 });
    expect(sandbox.inspect(TENANT).events).toHaveLength(2);
  });

  it('renews a submitted batch before sending it, and sends nothing another worker took over meanwhile', async () => {
    const { store, worker, clock } = setup({ config: { leaseMs: 60_000 } });
    const results = await store.enqueue([event(), event()], { lease: { owner: worker.owner, leaseMs: 60_000 } });
    await worker.submit(results.flatMap((result) => (result.leased ? [result.leased] : [])));
    // Both leases ran out while the batch waited, and another worker took one of them over.
    clock.advance(60_000);
    const [taken] = await store.lease({ tenant: TENANT, target: TARGET_ID, owner: 'other-worker', limit: 1, leaseMs: 60_000 });
    const stillOurs = results.find((result) => result.id !== taken?.id);
    await worker.runOnce();
    expect(await store.get(TENANT, taken?.id ?? '')).toMatchObject({ state: 'leased', attempts: [{ outcome: 'abandoned' }] });
    expect(await store.get(TENANT, stillOurs?.id ?? '')).toMatchObject({ state: 'delivered' });
    expect(requestsTo()).toBe(1);
  });

  it('keeps renewing the leases of a batch whose call outlasts the lease, so no other worker takes it', async () => {
    sandbox.faults.set({ latencyMs: 400 });
    const { store, worker } = setup({ realTime: true, config: { leaseMs: 150 } });
    const [result] = await store.enqueue([event()]);
    const sending = worker.runOnce();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await store.lease({ tenant: TENANT, target: TARGET_ID, owner: 'other-worker', limit: 1, leaseMs: 1000 })).toEqual([]);
    await sending;
    expect(await store.get(TENANT, result?.id ?? '')).toMatchObject({ state: 'delivered', attempts: [{ outcome: 'accepted' }] });
    sandbox.faults.clear();
  });

  it('returns submitted batches it never started to the store when stopped', async () => {
    const { store, worker, clock } = setup();
    const results = await store.enqueue([event(), event()], { lease: { owner: worker.owner, leaseMs: worker.config.leaseMs } });
    await worker.submit(results.flatMap((result) => (result.leased ? [result.leased] : [])));
    await worker.stop();
    expect(await store.counts(TENANT)).toMatchObject({ leased: 0, pending: 2 });
    expect(await store.nextDueAt(TENANT, worker.target)).toBe(clock.now());
    expect(requestsTo()).toBe(0);
  });

  it('stops gracefully: batches in flight finish and settle, the rest stays pending, nothing stays leased', async () => {
    sandbox.faults.set({ latencyMs: 150 });
    const { store, worker } = setup({ realTime: true, config: { batchSize: 10, concurrency: 2, pollMs: 20 } });
    await store.enqueue(Array.from({ length: 100 }, () => event()));
    worker.start();
    await expect.poll(async () => (await store.counts(TENANT)).leased, { timeout: 5000 }).toBe(20);
    await worker.stop();
    const counts = await store.counts(TENANT);
    expect(counts).toMatchObject({ leased: 0, delivered: 20, pending: 80 });
    expect(sandbox.inspect(TENANT).events).toHaveLength(20);
  });

  it('never writes the API key into the ledger, even when the target refuses it', async () => {
    const secret = 'sk_live_do_not_leak_4711';
    const { store, worker } = setup({ apiKey: secret });
    const [result] = await store.enqueue([event()]);
    await worker.runOnce();
    const entry = await store.get(TENANT, result?.id ?? '');
    expect(entry).toMatchObject({ state: 'dead', attempts: [{ status: 401 }] });
    expect(JSON.stringify(entry)).not.toContain(secret);
    expect(JSON.stringify(entry)).not.toContain(Buffer.from(`:${secret}`).toString('base64'));
  });
});

describe('outbox delivery config', () => {
  it('wakes on the store’s enqueue notices for its tenant while it runs (PostgreSQL LISTEN/NOTIFY), and unsubscribes on stop', async () => {
    const listeners = new Set<(tenant: string) => void>();
    class NotifyingStore extends MemoryOutboxStore implements OutboxStore {
      onEnqueued(listener: (tenant: string) => void): () => void {
        listeners.add(listener);
        return () => listeners.delete(listener);
      }
    }
    const store = new NotifyingStore();
    const worker = createOutboxWorker({
      store,
      target: { baseUrl: sandbox.url, id: TARGET_ID, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send },
      // A poll so long that only a notice can make the worker look again within the test.
      config: { concurrency: 1, pollMs: 60_000 },
    });
    worker.start();
    expect(listeners.size).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await store.enqueue([event()]);
    for (const listener of listeners) listener('another-tenant');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await store.counts(TENANT)).delivered).toBe(0);
    for (const listener of listeners) listener(TENANT);
    await expect.poll(async () => (await store.counts(TENANT)).delivered, { timeout: 5000 }).toBe(1);
    await worker.stop();
    expect(listeners.size).toBe(0);
  });

  it('defaults to a 20 h horizon inside the 24 h key window', () => {
    expect(outboxDeliveryConfig()).toMatchObject({ horizonMs: 20 * HOUR, keyWindowMs: 24 * HOUR });
  });

  it('refuses a horizon that, with the lease, reaches the target’s key window', () => {
    expect(() => outboxDeliveryConfig({ horizonMs: 24 * HOUR })).toThrow(InvalidInputError);
    expect(() => outboxDeliveryConfig({ horizonMs: 23 * HOUR + 59 * 60_000, leaseMs: 60_000 })).toThrow(
      "horizonMs: the retry horizon (1439 min) plus the lease (1 min) must stay shorter than the target's key window (1 d): a retry after the window could record the event twice",
    );
    expect(outboxDeliveryConfig({ horizonMs: 23 * HOUR, leaseMs: 60_000 }).horizonMs).toBe(23 * HOUR);
  });

  it('refuses the worker itself a bad config', () => {
    expect(() =>
      createOutboxWorker({
        store: new MemoryOutboxStore(),
        target: { baseUrl: sandbox.url, tenant: TENANT, apiKey: 'k', transport: transport.send },
        config: { horizonMs: 30 * HOUR },
      }),
    ).toThrow(/key window/);
  });
});
