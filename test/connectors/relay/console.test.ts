import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RelayWithSandbox, SANDBOX_TENANT, startRelayOrSandbox } from '../../../cli/built-in-sandbox.js';
import { readRelayConfig } from '../../../connectors/relay/config.js';
import { enqueueImportBehindScanLimit } from '../../shared/state/redis/listing-fixture.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from '../../shared/state/redis/test-env.js';

/**
 * The operator console in a real browser: Debian's chromium driven by playwright-core (never a downloaded browser).
 * Without chromium the tests fail under CI (where .ci/run installs it) and are skipped, with one line, elsewhere.
 * The tests run in order on one SQLite store, as an operator's day would: events, a dead letter retried, a restart.
 */
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const required = Boolean(process.env.CI);
if (!haveChromium && !required) {
  console.warn(`console browser tests skipped: ${CHROMIUM} is missing (apt-get install chromium to run them)`);
}

const SECRET = 'console-secret-Kq7Xw2Lr9Tz4';
const WAIT = { timeout: 15_000 };

let browser: Browser | null = null;
let relay: RelayWithSandbox;
let context: BrowserContext;
let page: Page;
let dir: string;
let shots: string;

/** The little of the DOM the in-page functions use: the project compiles without the DOM library. */
interface PageElement {
  readonly textContent: string | null;
  readonly tagName: string;
  readonly parentElement: PageElement | null;
  readonly childNodes: Iterable<{ readonly nodeType: number; readonly textContent: string | null }>;
  getBoundingClientRect(): { width: number; height: number };
  closest(selector: string): PageElement | null;
}
interface PageGlobals {
  readonly document: {
    readonly activeElement: PageElement | null;
    readonly documentElement: PageElement & { scrollWidth: number; clientWidth: number };
    querySelectorAll(selector: string): Iterable<PageElement>;
  };
  getComputedStyle(element: PageElement): { color: string; backgroundColor: string; visibility: string; display: string; fontSize: string };
}

function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

function startTheRelay(): Promise<RelayWithSandbox> {
  return startRelayOrSandbox(
    readRelayConfig(
      { port: 0, store: `sqlite:${join(dir, 'oncekit.db')}` },
      // A short retry horizon: an event the sandbox keeps failing becomes a dead letter within the test.
      { ONCEKIT_RELAY_SECRET: SECRET, ONCEKIT_LOG_LEVEL: 'silent', ONCEKIT_HORIZON: '400ms' },
    ),
    { outbox: { pollMs: 20, backoffBaseMs: 10, backoffMaxMs: 50 } },
  );
}

async function send(idempotencyKey: string): Promise<void> {
  const response = await fetch(`${relay.url}/salesforce/track-event/by-id`, {
    method: 'POST',
    headers: { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({ usersEvents: [{ userId: 'ann@example.com', accountId: 'ann@example.com', key: 'purchase', idempotencyKey }] }),
  });
  expect(response.status, await response.text()).toBe(200);
}

async function open(hash = ''): Promise<void> {
  const response = await page.goto(`${relay.url}/?token=${encodeURIComponent(SECRET)}`);
  expect(response?.status()).toBe(200);
  expect(page.url()).toBe(`${relay.url}/`);
  if (hash) await page.goto(`${relay.url}/${hash}`);
  await page.locator('#view').filter({ hasNotText: 'loading…' }).waitFor(WAIT);
}

async function tile(state: string): Promise<string> {
  return (await page.locator(`#tiles [data-state="${state}"] b`).textContent()) ?? '';
}

async function waitForTile(state: string, value: number): Promise<void> {
  await page
    .locator(`#tiles [data-state="${state}"] b`)
    .filter({ hasText: new RegExp(`^${value}$`) })
    .waitFor(WAIT);
}

async function shot(name: string, what: string): Promise<void> {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  expect(existsSync(path)).toBe(true);
  console.log(`screenshot ${path}: ${what}`);
}

/** Whether the page scrolls sideways. */
async function scrollsSideways(): Promise<boolean> {
  return page.evaluate(() => {
    const root = (globalThis as unknown as PageGlobals).document.documentElement;
    return root.scrollWidth > root.clientWidth;
  });
}

/** Text whose colour against its background is under 4.5:1 (WCAG AA, normal text), computed from the live styles. */
async function lowContrastText(): Promise<string[]> {
  return page.evaluate(() => {
    const g = globalThis as unknown as PageGlobals;
    const rgb = (text: string): number[] => (text.match(/[\d.]+/g) ?? []).map(Number);
    const luminance = ([r = 0, gg = 0, b = 0]: number[]): number => {
      const channel = (v: number): number => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * channel(r) + 0.7152 * channel(gg) + 0.0722 * channel(b);
    };
    const background = (element: PageElement | null): number[] => {
      for (let at = element; at !== null; at = at.parentElement) {
        const parts = rgb(g.getComputedStyle(at).backgroundColor);
        if (parts.length >= 3 && (parts.length < 4 || (parts[3] ?? 0) > 0.5)) return parts;
      }
      return [255, 255, 255];
    };
    const failures: string[] = [];
    for (const element of g.document.querySelectorAll('body *')) {
      if (element.tagName === 'SCRIPT' || element.tagName === 'STYLE' || element.closest('.sr-only, .skip, .uplot canvas')) continue;
      const own = [...element.childNodes].some((node) => node.nodeType === 3 && (node.textContent ?? '').trim() !== '');
      const box = element.getBoundingClientRect();
      if (!own || box.width === 0 || box.height === 0) continue;
      const style = g.getComputedStyle(element);
      if (style.visibility === 'hidden') continue;
      const fg = luminance(rgb(style.color));
      const bg = luminance(background(element));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      if (ratio < 4.5) failures.push(`${element.tagName} "${(element.textContent ?? '').trim().slice(0, 40)}" ${ratio.toFixed(2)}:1`);
    }
    return failures;
  });
}

/** Presses Tab until focus comes back round; every visible control must have had it. */
async function tabThroughEverything(): Promise<{ reached: number; missed: string[] }> {
  const controls = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), [tabindex]:not([tabindex="-1"])';
  const all = await page.evaluate(
    ({ controls }) =>
      [...(globalThis as unknown as PageGlobals).document.querySelectorAll(controls)]
        .filter((element) => {
          const box = element.getBoundingClientRect();
          return box.width > 0 && box.height > 0;
        })
        .map((element, index) => {
          (element as unknown as { dataset: Record<string, string> }).dataset.tabProbe = String(index);
          return String(index);
        }),
    { controls },
  );
  const seen = new Set<string>();
  await page.locator('body').click({ position: { x: 1, y: 1 } });
  for (let press = 0; press < all.length + 10; press += 1) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(
      () =>
        ((globalThis as unknown as PageGlobals).document.activeElement as unknown as { dataset?: { tabProbe?: string } } | null)?.dataset
          ?.tabProbe ?? '',
    );
    if (id) seen.add(id);
  }
  const missed = all.filter((id) => !seen.has(id));
  const names = await Promise.all(missed.map(async (id) => (await page.locator(`[data-tab-probe="${id}"]`).textContent()) ?? id));
  return { reached: seen.size, missed: names };
}

describe.skipIf(!haveChromium && !required)('operator console (headless chromium)', () => {
  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing and CI is set: .ci/run installs it with apt-get install chromium`);
    dir = mkdtempSync(join(tmpdir(), 'oncekit-console-'));
    shots = mkdtempSync(join(tmpdir(), 'oncekit-console-shots-'));
    console.log(`console screenshots in ${shots}`);
    browser = await launchChromium();
    relay = await startTheRelay();
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT.timeout);
  });

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await relay?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows a friendly page without a token, and trades the start-up token for an HttpOnly cookie', async () => {
    const direct = await page.goto(`${relay.url}/`);
    expect(direct?.status()).toBe(401);
    await page.getByRole('heading', { name: 'Sign in to the oncekit relay' }).waitFor(WAIT);
    await open();
    const cookies = await context.cookies(relay.url);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]?.httpOnly).toBe(true);
    expect(cookies[0]?.sameSite).toBe('Strict');
    expect(await page.content()).not.toContain(SECRET);
    expect(await page.title()).toBe('Overview · oncekit relay');
    expect(await page.locator('main').count()).toBe(1);
    expect(await page.locator('nav[aria-label="Console"]').count()).toBe(1);
    expect(await page.locator('link[rel="icon"]').getAttribute('href')).toBe('/favicon.svg');
    for (const state of ['pending', 'leased', 'delivered', 'duplicate', 'dead', 'possibleDuplicates']) expect(await tile(state)).toBe('0');
    // True empty states: nothing received yet.
    await page.getByRole('link', { name: 'Events', exact: true }).click();
    await page.locator('#empty').filter({ hasText: 'No events yet' }).waitFor(WAIT);
    await page.getByRole('link', { name: 'Dead letters', exact: true }).click();
    await page.locator('#empty').filter({ hasText: 'No dead letters' }).waitFor(WAIT);
  });

  it('sees the tiles and the charts change as events arrive', async () => {
    await open('#/overview');
    const caption = page.locator('[data-caption="throughput"]');
    expect(await caption.textContent()).toContain('0 received');
    expect(await page.locator('.uplot').count()).toBe(3);
    for (const n of [1, 2, 3]) await send(`console-order-${n}-purchase`);
    await waitForTile('delivered', 3);
    await caption.filter({ hasText: '3 received, 3 delivered' }).waitFor(WAIT);
    await page
      .locator('[data-caption="latency"]')
      .filter({ hasText: /p99 \d/ })
      .waitFor(WAIT);
    await shot('overview-light', 'overview after 3 events: tiles (3 delivered) and the three charts (events per minute, latency, backlog)');
  });

  it('opens an event from the list and sees its key decision and attempts', async () => {
    await open('#/events');
    const rows = page.locator('#events-table tbody tr');
    await rows.first().waitFor(WAIT);
    expect(await rows.count()).toBe(3);
    expect(await rows.first().textContent()).toContain('console-order-3-purchase');
    await page.getByLabel('Idempotency key').fill('console-order-2-purchase');
    await page.getByRole('button', { name: 'Search' }).click();
    // The unfiltered list already holds that row: wait for the search's answer to replace the list, not for the row.
    await page.waitForFunction("document.querySelectorAll('#events-table tbody tr').length === 1", undefined, WAIT);
    expect(await page.locator('#events-table tbody tr').first().textContent()).toContain('console-order-2-purchase');
    await page.locator('#events-table tbody tr a').first().click();
    await page.locator('#attempts tbody tr').first().waitFor(WAIT);
    const attempt = (await page.locator('#attempts tbody tr').first().textContent()) ?? '';
    expect(attempt).toContain('accepted');
    expect(attempt).toContain('200');
    expect(await page.locator('#key-explanation').textContent()).toContain('console-order-2-purchase (from salesforce, valid as given)');
    expect(await page.locator('#event-state').textContent()).toBe('delivered');
    expect(await page.locator('#payload').textContent()).toContain('"userId": "ann@example.com"');
    expect(await page.locator('main').textContent()).not.toMatch(/\[object|undefined/);
    expect(await page.locator('dl.facts').textContent()).not.toContain('null');
    expect(await page.locator('#attempts tbody tr').first().textContent()).toMatch(/relay-\d+-[0-9a-f]+/);
    await shot('event-page', 'one event: facts, key decision, its attempt (accepted, 200) and the payload sent');
  });

  it('makes a dead letter while the sandbox fails, retries it from the page, and sees it delivered', async () => {
    const sandbox = relay.sandbox;
    if (!sandbox) throw new Error('expected the built-in sandbox');
    sandbox.faults.enqueue(...Array.from({ length: 2000 }, () => ({ kind: 'status' as const, status: 503 as const })));
    await send('console-order-9-purchase');
    await open('#/overview');
    await waitForTile('dead', 1);
    await page.locator('[data-caption="throughput"]').filter({ hasText: '1 dead' }).waitFor(WAIT);
    sandbox.faults.clear();
    await page.locator('#tiles [data-state="dead"] a').click();
    const row = page.locator('#dead-table tbody tr').filter({ hasText: 'console-order-9-purchase' });
    await row.waitFor(WAIT);
    expect(await row.textContent()).toMatch(/horizon|503/);
    await shot('dead-letters', 'the dead letter the sandbox caused, with its reason, selection boxes and retry buttons');
    await row.getByRole('button', { name: /^Retry / }).click();
    await page.locator('#retry-result').filter({ hasText: '1 dead letter requeued' }).waitFor(WAIT);
    await page
      .locator('#retry-result a')
      .first()
      .click()
      .catch(() => undefined);
    const id =
      (await row
        .locator('a')
        .first()
        .textContent()
        .catch(() => null)) ?? '';
    await page.goto(`${relay.url}/#/events/${id}`);
    for (let tries = 0; tries < 50; tries += 1) {
      await page.locator('#event-state').waitFor(WAIT);
      if ((await page.locator('#event-state').textContent()) === 'delivered') break;
      await page.waitForTimeout(200);
      await page.reload();
    }
    expect(await page.locator('#event-state').textContent()).toBe('delivered');
    const attempts = (await page.locator('#attempts tbody').textContent()) ?? '';
    expect(attempts).toContain('503');
    expect(attempts).toContain('accepted');
    // A 503 may have landed: the page says since when, and until when a resend is safe.
    const facts = (await page.locator('body').textContent()) ?? '';
    expect(facts).toMatch(/may have landed\s*yes: an attempt got no definite answer \(the first such started /);
    expect(facts).toMatch(/resend\s*safe until .*, while the target still remembers the key/);
    await shot('event-retried', 'the retried event: failed attempts (503) then the accepted one after the retry from the page');
  }, 60_000);

  it('keeps the history across a relay restart, and lists both instances', async () => {
    await relay.stop();
    relay = await startTheRelay();
    await open('#/overview');
    await waitForTile('delivered', 4);
    expect(await tile('dead')).toBe('0');
    await page.getByRole('link', { name: 'Events', exact: true }).click();
    await page.locator('#events-table tbody tr').first().waitFor(WAIT);
    expect(await page.locator('#events-table tbody tr').count()).toBe(4);
    await page.getByRole('link', { name: 'Instances', exact: true }).click();
    const rows = page.locator('#instances tbody tr');
    await rows.nth(1).waitFor(WAIT);
    expect(await rows.filter({ hasText: 'alive' }).count()).toBe(1);
    expect(await rows.filter({ hasText: 'stopped' }).count()).toBe(1);
    await shot('instances', 'after a restart: the running relay (alive) and the stopped one, with what each delivered');
  });

  it('retries a selection, then all that match a filter, and leaves the rest dead', async () => {
    const target = relay.target.id;
    const dead = async (source: string, key: string): Promise<string> => {
      const [created] = await relay.outbox.enqueue(
        [
          {
            tenant: 'demo',
            target,
            source,
            sourceId: `${source}:${key}`,
            dedupKey: `key:${key}`,
            input: { userId: 'ann@example.com', accountId: 'ann@example.com', idempotencyKey: key, events: [{ key: 'purchase' }] },
            keyDecision: null,
          },
        ],
        // Held by another worker, so this relay's worker does not send it before it is a dead letter.
        { lease: { owner: 'test-worker', leaseMs: 60_000 } },
      );
      const id = created?.id ?? '';
      await relay.outbox.settle([{ id, owner: 'test-worker', attempt: null, to: 'dead', reason: `rejected in the test (${source})` }]);
      return id;
    };
    const first = await dead('import', 'console-dead-import-1');
    const second = await dead('import', 'console-dead-import-2');
    const third = await dead('segment', 'console-dead-segment-1');
    await open('#/dead-letters');
    const rows = page.locator('#dead-table tbody tr');
    await rows.nth(2).waitFor(WAIT);
    await page.getByLabel(`Select ${first}`).check();
    await page.getByRole('button', { name: 'Retry selected' }).click();
    await page.locator('#retry-result').filter({ hasText: '1 dead letter requeued' }).waitFor(WAIT);
    await page.getByLabel('Source', { exact: true }).fill('import');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('button', { name: 'Retry all matching' }).click();
    await page.locator('#retry-result').filter({ hasText: '1 dead letter requeued' }).waitFor(WAIT);
    for (const id of [first, second]) {
      for (let tries = 0; tries < 100 && (await relay.outbox.get('demo', id))?.state !== 'delivered'; tries += 1)
        await page.waitForTimeout(100);
      expect((await relay.outbox.get('demo', id))?.state).toBe('delivered');
    }
    expect((await relay.outbox.get('demo', third))?.state).toBe('dead');
  });

  it('fits 375 px without sideways scrolling on every view', async () => {
    await page.setViewportSize({ width: 375, height: 800 });
    for (const hash of ['#/overview', '#/events', '#/dead-letters', '#/instances']) {
      await open(hash);
      expect(await scrollsSideways(), hash).toBe(false);
    }
    await page.goto(`${relay.url}/#/events?key=console-order-2-purchase`);
    await page.locator('#events-table tbody tr a').first().click();
    await page.locator('#attempts').waitFor(WAIT);
    expect(await scrollsSideways()).toBe(false);
    await shot('event-375px', 'an event page at 375 px wide: no sideways scroll');
    await open('#/overview');
    await shot('overview-375px', 'the overview at 375 px wide: tiles and charts stacked');
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('meets WCAG AA contrast in light and dark', async () => {
    for (const scheme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const hash of ['#/overview', '#/events', '#/dead-letters', '#/instances']) {
        await open(hash);
        expect(await lowContrastText(), `${scheme} ${hash}`).toEqual([]);
      }
      await page.goto(`${relay.url}/#/events?key=console-order-2-purchase`);
      await page.locator('#events-table tbody tr a').first().click();
      await page.locator('#attempts').waitFor(WAIT);
      expect(await lowContrastText(), `${scheme} event page`).toEqual([]);
    }
    await open('#/overview');
    await shot('overview-dark', 'the overview in dark mode');
    await page.emulateMedia({ colorScheme: 'light' });
  });

  it('reaches every control with the keyboard alone, and follows a link with Enter', async () => {
    for (const hash of ['#/overview', '#/events', '#/dead-letters', '#/instances']) {
      await open(hash);
      const { reached, missed } = await tabThroughEverything();
      expect(missed, hash).toEqual([]);
      expect(reached).toBeGreaterThan(4);
    }
    await open('#/overview');
    await page.locator('body').click({ position: { x: 1, y: 1 } });
    for (let press = 0; press < 10; press += 1) {
      await page.keyboard.press('Tab');
      const text = await page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.textContent ?? '');
      if (text === 'Events') break;
    }
    await page.keyboard.press('Enter');
    await page.locator('#events-table').waitFor(WAIT);
    expect(page.url()).toContain('#/events');
  });
});

describe.skipIf((!haveChromium && !required) || skipRedisTests)('operator console on Redis, past the newest 20,000 events', () => {
  const keyPrefix = uniqueRedisPrefix('console-listing');
  let client: Redis;
  let redisBrowser: Browser;

  beforeAll(async () => {
    if (!haveChromium) throw new Error(`${CHROMIUM} is missing and CI is set: .ci/run installs it with apt-get install chromium`);
    client = await connectTestRedis();
    await enqueueImportBehindScanLimit(client, keyPrefix, SANDBOX_TENANT, 'https://older.target.test');
    relay = await startRelayOrSandbox(
      readRelayConfig(
        { port: 0, store: redisEnv.url },
        { ONCEKIT_RELAY_SECRET: SECRET, ONCEKIT_LOG_LEVEL: 'silent', ONCEKIT_REDIS_PREFIX: keyPrefix, ONCEKIT_REDIS_ALLOW_VOLATILE: '1' },
      ),
    );
    redisBrowser = await launchChromium();
    context = await redisBrowser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT.timeout);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await redisBrowser?.close();
    await relay?.stop();
    await deleteRedisKeys(client, keyPrefix);
    await client.quit();
  });

  it('says the search stopped, and "Search older events" goes on from there to the older event', async () => {
    await open('#/events?source=import');
    const stopped = page.locator('#search-stopped');
    await stopped.filter({ hasText: 'Searched the newest 20,000 events' }).waitFor(WAIT);
    expect(await page.locator('#empty').textContent()).toBe('No events match among those searched.');
    await shot('events-search-stopped', 'a source filter on Redis that stopped after the newest 20,000 events, with "Search older events"');
    await stopped.getByRole('button', { name: 'Search older events' }).click();
    await page.locator('#events-table tbody tr').filter({ hasText: 's-0' }).waitFor(WAIT);
    expect(await page.locator('#search-stopped').count()).toBe(0);
    expect(await page.locator('#until-filter').textContent()).toContain('Enqueued before');
    await page.getByRole('link', { name: 'back to the newest' }).click();
    await page.locator('#search-stopped').waitFor(WAIT);
  });
});
