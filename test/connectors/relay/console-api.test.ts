import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayWithSandbox, startRelayOrSandbox } from '../../../cli/built-in-sandbox.js';
import { readRelayConfig } from '../../../connectors/relay/config.js';
import { openState } from '../../../shared/state/open-state.js';
import { FAST_OUTBOX, postJson, RELAY_SECRET, request, waitFor } from './helpers.js';

/** The console's JSON API over real HTTP: auth, validation naming the parameter, cross-site writes refused, secrets kept out. */
let running: RelayWithSandbox;
let url: string;
const auth = { authorization: `Bearer ${RELAY_SECRET}` };

beforeAll(async () => {
  running = await startRelayOrSandbox(
    readRelayConfig({ port: 0, store: 'memory' }, { ONCEKIT_RELAY_SECRET: RELAY_SECRET, ONCEKIT_LOG_LEVEL: 'silent' }),
    { outbox: FAST_OUTBOX },
  );
  url = running.url;
});
afterAll(async () => {
  await running.stop();
});

async function send(idempotencyKey: string, fields?: Record<string, unknown>): Promise<void> {
  const answer = await postJson(`${url}/salesforce/track-event/by-id`, {
    usersEvents: [
      { userId: 'ann@example.com', accountId: 'ann@example.com', key: 'purchase', idempotencyKey, ...(fields ? { fields } : {}) },
    ],
  });
  expect(answer.status, answer.text).toBe(200);
}

async function sessionCookie(): Promise<string> {
  const response = await fetch(`${url}/?token=${encodeURIComponent(RELAY_SECRET)}`, { redirect: 'manual' });
  expect(response.status).toBe(303);
  const cookie = response.headers.get('set-cookie') ?? '';
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Strict/);
  return cookie.split(';')[0] ?? '';
}

describe('console JSON API', () => {
  it('refuses every endpoint without the secret, with a wrong one, or with a forged cookie', async () => {
    for (const path of [
      '/api/overview',
      '/api/activity',
      '/api/events',
      '/api/events/ob_00000000001',
      '/api/dead-letters',
      '/api/instances',
    ]) {
      expect((await request(`${url}${path}`)).status, path).toBe(401);
      expect((await request(`${url}${path}`, { headers: { authorization: `Bearer ${RELAY_SECRET}x` } })).status, path).toBe(401);
      expect((await request(`${url}${path}`, { headers: { cookie: 'oncekit_session_000000000000=forged' } })).status, path).toBe(401);
    }
    const retry = await postJson(`${url}/api/dead-letters/retry`, { ids: ['ob_1'] }, {});
    expect(retry.status).toBe(401);
    expect(retry.json).toMatchObject({ error: 'unauthorized' });
  });

  it('answers a browser without a session with a page saying what to do, and scripts with JSON', async () => {
    const page = await request(`${url}/`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(401);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(page.text).toContain('Sign in to the oncekit relay');
    expect(page.text).toContain('?token=');
    expect(page.text).not.toContain(RELAY_SECRET);
    const script = await request(`${url}/api/overview`, { headers: { accept: 'text/html' } });
    expect(script.json).toMatchObject({ error: 'unauthorized' });
  });

  it('serves the console and its assets from the package, with a CSP that allows nothing from elsewhere', async () => {
    const page = await request(`${url}/`, { headers: auth });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    expect(page.text).not.toMatch(/https?:\/\//);
    for (const asset of ['/console/app.js', '/console/app.css', '/console/uplot.js', '/console/uplot.css', '/favicon.svg']) {
      const answer = await request(`${url}${asset}`);
      expect(answer.status, asset).toBe(200);
      expect(answer.text.length, asset).toBeGreaterThan(100);
    }
  });

  it('lists events from the store newest first with filters and paging, and shows one with secrets left out', async () => {
    await send('console-api-0001');
    await send('console-api-0002', { apiToken: 'tok-SHOULD-NOT-SHOW', amount: 12 });
    await waitFor('both delivered', async () => (await running.outbox.counts('demo')).delivered >= 2);
    const all = await request(`${url}/api/events`, { headers: auth });
    expect(all.status).toBe(200);
    const events = (all.json as { events: { id: string; key: string; state: string }[] }).events;
    expect(events.map((event) => event.key).slice(0, 2)).toEqual(['console-api-0002', 'console-api-0001']);
    const one = await request(`${url}/api/events?key=console-api-0001&state=delivered&limit=1`, { headers: auth });
    expect((one.json as { events: unknown[]; hasMore: boolean }).events).toHaveLength(1);
    const page2 = await request(`${url}/api/events?limit=1&offset=1`, { headers: auth });
    expect((page2.json as { events: { key: string }[] }).events[0]?.key).toBe('console-api-0001');
    const detail = await request(`${url}/api/events/${events[0]?.id}`, { headers: auth });
    expect(detail.status).toBe(200);
    expect(detail.text).not.toContain('tok-SHOULD-NOT-SHOW');
    expect(detail.json).toMatchObject({
      state: 'delivered',
      keyExplanation: expect.stringContaining('console-api-0002'),
      attempts: [{ number: 1, outcome: 'accepted', status: 200 }],
    });
    expect(JSON.stringify((detail.json as { payload: unknown }).payload)).toContain('[redacted]');
    expect((await request(`${url}/api/events/ob_nope`, { headers: auth })).status).toBe(404);
  });

  it('shows an unmappable dead letter with its capped raw payload, secrets left out, and never retries it', async () => {
    const raw = '{"user":"ann","password":"hunter2-SHOULD-NOT-SHOW","n":1}';
    const [dead] = await running.outbox.recordUnmappable([
      {
        tenant: 'demo',
        target: running.target.id,
        source: 'webhook',
        sourceId: 'hook-1',
        dedupKey: 'webhook:hook-1',
        reason: 'could not be mapped: no user id',
        raw: { text: raw, bytes: raw.length, truncated: false },
      },
    ]);
    const detail = await request(`${url}/api/events/${dead?.id}`, { headers: auth });
    expect(detail.text).not.toContain('hunter2');
    expect(detail.json).toMatchObject({ unmappable: true, deadReason: 'could not be mapped: no user id', raw: { bytes: raw.length } });
    const listed = await request(`${url}/api/dead-letters?source=webhook`, { headers: auth });
    expect((listed.json as { events: { id: string }[] }).events.map((event) => event.id)).toEqual([dead?.id]);
    const retry = await postJson(`${url}/api/dead-letters/retry`, { ids: [dead?.id] });
    expect(retry.status).toBe(200);
    expect(retry.json).toMatchObject({ requeued: [], unmappable: [{ id: dead?.id, why: expect.stringContaining('could not be mapped') }] });
    const all = await postJson(`${url}/api/dead-letters/retry`, { matching: {} });
    expect(all.json).toMatchObject({ requeued: [] });
  });

  it('does not resend a dead letter that may have landed longer ago than the key window, and says why', async () => {
    // A relay on an SQLite file, and a second handle onto it whose clock is 30 h back: the store's clock decides when
    // the attempt was leased, which is what the key window counts from.
    const dir = mkdtempSync(join(tmpdir(), 'oncekit-console-window-'));
    const path = join(dir, 'oncekit.db');
    const relay = await startRelayOrSandbox(
      readRelayConfig({ port: 0, store: `sqlite:${path}` }, { ONCEKIT_RELAY_SECRET: RELAY_SECRET, ONCEKIT_LOG_LEVEL: 'silent' }),
      { outbox: FAST_OUTBOX },
    );
    try {
      const then = Date.now() - 30 * 3_600_000;
      const past = await openState({ kind: 'sqlite', path }, { clock: { now: () => then } });
      let held: string | undefined;
      try {
        const [created] = await past.outbox.enqueue(
          [
            {
              tenant: 'demo',
              target: relay.target.id,
              source: 'import',
              sourceId: 'old.csv:1',
              dedupKey: 'key:console-api-old-0001',
              input: { userId: 'ann', accountId: 'ann', idempotencyKey: 'console-api-old-0001', events: [{ key: 'purchase' }] },
              keyDecision: null,
            },
          ],
          // Enqueued already leased to a worker that is not the relay's, so the relay cannot send it meanwhile.
          { lease: { owner: 'old-worker', leaseMs: 60_000 } },
        );
        held = created?.id;
        const attempt = {
          number: 1,
          startedAt: then,
          finishedAt: then + 10_000,
          outcome: 'failed' as const,
          status: null,
          message: 'timeout',
          apiErrorCode: null,
          rsCode: null,
          requests: 1,
          uncertainRequests: 1,
          eventIds: [],
        };
        await past.outbox.settle([{ id: held ?? '', owner: 'old-worker', to: 'dead', reason: 'gave up', attempt }]);
      } finally {
        await past.close();
      }
      const detail = await request(`${relay.url}/api/events/${held}`, { headers: auth });
      expect(detail.json).toMatchObject({ mayHaveLanded: true, landedSince: then, resendSafeUntil: then + 23 * 3_600_000 });
      const retry = await postJson(`${relay.url}/api/dead-letters/retry`, { ids: [held] });
      expect(retry.status).toBe(200);
      expect(retry.json).toMatchObject({ requeued: [], refused: [{ id: held, why: expect.stringContaining('key window') }] });
      expect((await relay.outbox.get('demo', held ?? ''))?.state).toBe('dead');
    } finally {
      await relay.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('answers 400 naming the parameter for a bad query or body', async () => {
    const cases: [string, string][] = [
      ['/api/events?limit=0', 'limit'],
      ['/api/events?limit=201', 'limit'],
      ['/api/events?limit=abc', 'limit'],
      ['/api/events?offset=-1', 'offset'],
      ['/api/events?state=lost', 'state'],
      ['/api/events?since=yesterday', 'since'],
      ['/api/events?source=', 'source'],
      ['/api/events?colour=red', 'colour'],
      ['/api/dead-letters?state=dead', 'state'],
      ['/api/activity?window=7d', 'window'],
    ];
    for (const [path, field] of cases) {
      const answer = await request(`${url}${path}`, { headers: auth });
      expect(answer.status, path).toBe(400);
      expect(
        (answer.json as { issues: { field: string }[] }).issues.map((issue) => issue.field),
        path,
      ).toContain(field);
      expect((answer.json as { message: string }).message, path).toContain(field);
    }
    for (const [body, field] of [
      [{}, 'ids'],
      [{ ids: [] }, 'ids'],
      [{ ids: ['a'], matching: {} }, 'ids'],
      [{ ids: ['a'], force: true }, 'force'],
    ] as const) {
      const answer = await postJson(`${url}/api/dead-letters/retry`, body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.text).toContain(field);
    }
  });

  it('refuses cross-site writes: another origin, a cross-site fetch, or a cookie write without the console header', async () => {
    const cookie = await sessionCookie();
    const body = { ids: ['ob_00000000001'] };
    const evil = await postJson(`${url}/api/dead-letters/retry`, body, {
      cookie,
      'x-oncekit-console': '1',
      origin: 'https://evil.example',
    });
    expect(evil.status).toBe(403);
    expect(evil.json).toMatchObject({ error: 'cross_site_refused' });
    const site = await postJson(`${url}/api/dead-letters/retry`, body, {
      cookie,
      'x-oncekit-console': '1',
      'sec-fetch-site': 'cross-site',
    });
    expect(site.status).toBe(403);
    const withBearer = await postJson(`${url}/api/dead-letters/retry`, body, { ...auth, origin: 'https://evil.example' });
    expect(withBearer.status).toBe(403);
    const noHeader = await postJson(`${url}/api/dead-letters/retry`, body, { cookie });
    expect(noHeader.status).toBe(403);
    expect(noHeader.text).toContain('x-oncekit-console');
    const own = await postJson(`${url}/api/dead-letters/retry`, body, {
      cookie,
      'x-oncekit-console': '1',
      origin: url,
      'sec-fetch-site': 'same-origin',
    });
    expect(own.status, own.text).toBe(200);
  });

  it('reads the overview, the activity series and the instances from the store', async () => {
    const overview = await request(`${url}/api/overview`, { headers: auth });
    expect(overview.json).toMatchObject({ tenant: 'demo', counts: { delivered: 2, dead: 1 }, possibleDuplicates: 0 });
    const activity = await request(`${url}/api/activity?window=1h`, { headers: auth });
    const series = activity.json as { starts: number[]; received: number[]; delivered: number[] };
    expect(series.starts).toHaveLength(60);
    expect(series.received.reduce((a, b) => a + b, 0)).toBe(3);
    expect(series.delivered.reduce((a, b) => a + b, 0)).toBe(2);
    const instances = await request(`${url}/api/instances`, { headers: auth });
    expect(instances.json).toMatchObject({ instances: [{ alive: true, version: expect.any(String), stoppedAt: null }] });
  });
});
