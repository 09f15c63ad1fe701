import './helpers.js';
import { afterEach, describe, expect, it } from 'vitest';
import { type RelayWithSandbox, startRelayOrSandbox } from '../../../cli/built-in-sandbox.js';
import { createBackpressure } from '../../../connectors/relay/backpressure.js';
import { readRelayConfig } from '../../../connectors/relay/config.js';
import { FAST_OUTBOX, LogCapture, postJson, RELAY_SECRET, request, SEGMENT_SECRET, waitFor, waitForSettled } from './helpers.js';

let relay: RelayWithSandbox | null = null;
afterEach(async () => {
  await relay?.stop();
  relay = null;
});

/** A relay on its built-in sandbox whose event routes push back above `maxBacklog` undelivered events. */
async function startRelay(maxBacklog: string): Promise<RelayWithSandbox> {
  const config = readRelayConfig(
    { port: 0, store: 'memory' },
    { ONCEKIT_RELAY_SECRET: RELAY_SECRET, ONCEKIT_SEGMENT_SHARED_SECRET: SEGMENT_SECRET, ONCEKIT_MAX_BACKLOG: maxBacklog },
  );
  // A reading of the backlog serves no later request, so the test sees each change at once.
  return startRelayOrSandbox(config, { outbox: FAST_OUTBOX, logStream: new LogCapture(), backpressureCacheMs: 0 });
}

let sequence = 0;
const byId = (url: string, count: number) =>
  postJson(`${url}/salesforce/track-event/by-id`, {
    usersEvents: Array.from({ length: count }, () => {
      sequence += 1;
      return { userId: 'ann@example.com', accountId: 'ann@example.com', key: 'purchase', idempotencyKey: `backpressure-${sequence}-key` };
    }),
  });

const backlogOf = async (running: RelayWithSandbox): Promise<number> => {
  const counts = await running.outbox.counts(running.target.tenant);
  return counts.pending + counts.leased;
};

describe('backpressure (ONCEKIT_MAX_BACKLOG)', () => {
  it('answers 503 with Retry-After on every event route above the backlog, says why on /readyz, and accepts again below', async () => {
    relay = await startRelay('2');
    const sandboxUrl = relay.target.url;
    // The target answers 503 to everything: the events stay undelivered.
    expect((await postJson(`${sandboxUrl}/__sandbox/faults`, { status503: 1 }, {})).status).toBe(200);

    const first = await byId(relay.url, 3);
    expect(first.status).toBe(200);
    const running = relay;
    await waitFor('three undelivered events', async () => (await backlogOf(running)) === 3);

    for (const path of ['/salesforce/track-event/by-id', '/segment', '/webhooks/keygen']) {
      const answer = await postJson(`${relay.url}${path}`, { usersEvents: [] });
      expect(answer.status, path).toBe(503);
      expect(answer.headers.get('retry-after'), path).toBe('5');
      expect(answer.json, path).toMatchObject({ error: 'backpressure', message: expect.stringContaining('ONCEKIT_MAX_BACKLOG (2)') });
    }
    const ready = await request(`${relay.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({
      status: 'not_ready',
      checks: { store: 'ok', backlog: expect.stringMatching(/^3 undelivered events in the outbox, above ONCEKIT_MAX_BACKLOG \(2\)/) },
    });
    // Operations routes still answer.
    expect((await request(`${relay.url}/healthz`)).status).toBe(200);

    // The target recovers, the backlog drains: events are accepted again and the relay is ready.
    expect((await request(`${sandboxUrl}/__sandbox/faults`, { method: 'DELETE' })).status).toBe(200);
    await waitForSettled(relay, 3);
    const again = await byId(relay.url, 1);
    expect(again.status).toBe(200);
    await waitForSettled(relay, 4);
    const readyAgain = await request(`${relay.url}/readyz`);
    expect(readyAgain.status).toBe(200);
    expect(readyAgain.json).toMatchObject({ checks: { backlog: 'ok' } });
  });

  it('ONCEKIT_MAX_BACKLOG=off never pushes back', async () => {
    relay = await startRelay('off');
    expect((await postJson(`${relay.target.url}/__sandbox/faults`, { status503: 1 }, {})).status).toBe(200);
    expect((await byId(relay.url, 5)).status).toBe(200);
    const running = relay;
    await waitFor('five undelivered events', async () => (await backlogOf(running)) === 5);
    expect((await byId(relay.url, 1)).status).toBe(200);
    expect((await request(`${relay.url}/readyz`)).json).toMatchObject({ checks: { backlog: 'ok' } });
  });
});

describe('createBackpressure', () => {
  const names = { maxBacklog: 'MAX_BACKLOG', maxDeliveryLag: 'MAX_LAG' };

  it('pushes back on delivery lag, and one reading serves every call within the cache time', async () => {
    let now = 1_000_000;
    let lagMs = 0;
    let readings = 0;
    const backpressure = createBackpressure({
      backlog: async () => 0,
      deliveryLagMs: async () => {
        readings += 1;
        return lagMs;
      },
      maxBacklog: 100,
      maxDeliveryLagMs: 60_000,
      settingNames: names,
      cacheMs: 1000,
      now: () => now,
    });
    expect(await backpressure.reason()).toBeNull();
    lagMs = 61_000;
    expect(await backpressure.reason()).toBeNull(); // still the cached reading
    expect(readings).toBe(1);
    now += 1000;
    expect(await backpressure.reason()).toMatch(/waited 61 s, above MAX_LAG \(1 min\)/);
    await expect(backpressure.check()).rejects.toThrow(/MAX_LAG/);
    lagMs = 0;
    now += 1000;
    expect(await backpressure.reason()).toBeNull();
  });

  it('adds its own enqueues to the last reading, so a burst is refused at the limit, not a cache period past it', async () => {
    let now = 1_000_000;
    let stored = 900;
    let readings = 0;
    const backpressure = createBackpressure({
      backlog: async () => {
        readings += 1;
        return stored;
      },
      deliveryLagMs: async () => 0,
      maxBacklog: 1000,
      maxDeliveryLagMs: null,
      settingNames: names,
      cacheMs: 1000,
      now: () => now,
    });
    expect(await backpressure.reason()).toBeNull();
    backpressure.noteEnqueued(100);
    expect(await backpressure.reason()).toBeNull(); // 1,000: at the limit, not above it
    backpressure.noteEnqueued(1);
    expect(await backpressure.reason()).toMatch(/^1001 undelivered events in the outbox, above MAX_BACKLOG \(1000\)/);
    expect(readings).toBe(1);
    // The next reading has them (and what was delivered meanwhile): the estimate starts again from it.
    stored = 400;
    now += 1000;
    expect(await backpressure.reason()).toBeNull();
    expect(readings).toBe(2);
    backpressure.noteEnqueued(600);
    expect(await backpressure.reason()).toBeNull();
    backpressure.noteEnqueued(1);
    expect(await backpressure.reason()).toMatch(/^1001 undelivered/);
  });

  it('with neither limit, never reads the store', async () => {
    const backpressure = createBackpressure({
      backlog: () => Promise.reject(new Error('not read')),
      deliveryLagMs: () => Promise.reject(new Error('not read')),
      maxBacklog: null,
      maxDeliveryLagMs: null,
      settingNames: names,
    });
    expect(await backpressure.reason()).toBeNull();
    await expect(backpressure.check()).resolves.toBeUndefined();
  });
});
