import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ManualClock, manualClock } from '../../../shared/clock.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { DEFAULT_DONE_TTL_MS, DEFAULT_LEASE_MS, Inbox, inboxHttpAnswer, inboxKey } from '../../../shared/inbox/index.js';
import { memoryLogger } from '../../../shared/log.js';
import type { Clock, IdempotencyStore } from '../../../shared/state/idempotency.js';
import { MemoryIdempotencyStore } from '../../../shared/state/memory/idempotency.js';
import { RedisIdempotencyStore } from '../../../shared/state/redis/idempotency.js';
import { SqliteIdempotencyStore } from '../../../shared/state/sqlite/idempotency.js';
import { connectTestRedis, deleteRedisKeys, skipRedisTests, uniqueRedisPrefix } from '../state/redis/test-env.js';
import { tempDir } from '../state/temp-dir.js';

const HOUR = 60 * 60 * 1000;
const KEYGEN = { source: 'keygen', tenant: 'acme', token: 'idem-token-1' };

interface StoreCase {
  readonly name: string;
  readonly skip: boolean;
  open(clock: Clock): Promise<{ store: IdempotencyStore; dispose(): Promise<void> }>;
}

const storeCases: StoreCase[] = [
  { name: 'memory', skip: false, open: async (clock) => ({ store: new MemoryIdempotencyStore({ clock }), dispose: async () => {} }) },
  {
    name: 'sqlite',
    skip: false,
    open: async (clock) => {
      const dir = tempDir();
      return { store: SqliteIdempotencyStore.open(join(dir.path, 'inbox.db'), { clock }), dispose: async () => dir.remove() };
    },
  },
  {
    name: 'redis',
    skip: skipRedisTests,
    open: async (clock) => {
      const client: Redis = await connectTestRedis();
      const keyPrefix = uniqueRedisPrefix('inbox');
      return {
        store: new RedisIdempotencyStore({ client, keyPrefix, clock }),
        dispose: async () => {
          await deleteRedisKeys(client, keyPrefix);
          await client.quit();
        },
      };
    },
  },
];

for (const storeCase of storeCases) {
  describe.skipIf(storeCase.skip)(`inbox on the ${storeCase.name} store`, () => {
    let clock: ManualClock;
    let store: IdempotencyStore;
    let dispose: () => Promise<void>;
    let processed: string[];
    const work = (label: string) => async (): Promise<string> => {
      processed.push(label);
      return `done:${label}`;
    };

    beforeEach(async () => {
      clock = manualClock();
      ({ store, dispose } = await storeCase.open(clock));
      processed = [];
    });
    afterEach(async () => {
      await store.close();
      await dispose();
    });

    it('processes a first delivery and marks it done for the default 72 h', async () => {
      const inbox = new Inbox({ store, clock });
      expect(await inbox.deliver(KEYGEN, work('first'))).toEqual({ status: 'processed', value: 'done:first' });
      expect(await store.get({ tenant: 'acme', key: inboxKey('keygen', 'idem-token-1') })).toMatchObject({
        state: 'completed',
        expiresAt: clock.now() + DEFAULT_DONE_TTL_MS,
      });
    });

    it('acknowledges a duplicate delivery without processing it', async () => {
      const inbox = new Inbox({ store, clock });
      await inbox.deliver(KEYGEN, work('first'));
      clock.advance(HOUR);
      const duplicate = await inbox.deliver(KEYGEN, work('duplicate'));
      expect(duplicate).toEqual({ status: 'duplicate', processedAt: clock.now() - HOUR });
      expect(inboxHttpAnswer(duplicate)).toEqual({ statusCode: 200 });
      expect(processed).toEqual(['first']);
    });

    it('on error releases its own lease and rethrows, so the retry is processed', async () => {
      const inbox = new Inbox({ store, clock });
      const failure = new Error('target down');
      await expect(
        inbox.deliver(KEYGEN, async () => {
          processed.push('failed');
          throw failure;
        }),
      ).rejects.toBe(failure);
      expect(await store.get({ tenant: 'acme', key: inboxKey('keygen', 'idem-token-1') })).toBeUndefined();
      expect(await inbox.deliver(KEYGEN, work('retry'))).toMatchObject({ status: 'processed' });
      expect(processed).toEqual(['failed', 'retry']);
    });

    it('reports an in-flight duplicate distinctly, with the time left on the lease', async () => {
      const inbox = new Inbox({ store, clock, leaseMs: 20_000 });
      let finish = (): void => {};
      const first = inbox.deliver(
        KEYGEN,
        () =>
          new Promise<string>((resolve) => {
            finish = () => resolve('slow');
          }),
      );
      await waitUntil(async () => (await store.get({ tenant: 'acme', key: inboxKey('keygen', 'idem-token-1') })) !== undefined);
      clock.advance(5_000);
      const inFlight = await inbox.deliver(KEYGEN, work('concurrent'));
      expect(inFlight).toEqual({ status: 'in_flight', retryAfterMs: 15_000 });
      expect(inboxHttpAnswer(inFlight)).toEqual({ statusCode: 409, retryAfterSeconds: 15 });
      finish();
      expect(await first).toEqual({ status: 'processed', value: 'slow' });
      expect(await inbox.deliver(KEYGEN, work('late'))).toMatchObject({ status: 'duplicate' });
      expect(processed).toEqual([]);
    });

    it('a crash while holding the lease loses nothing: after the lease the next delivery is processed', async () => {
      const logger = memoryLogger();
      const inbox = new Inbox({ store, clock, logger });
      // The crashed worker claimed the token and died: no completion, no release.
      await store.claim(
        { tenant: 'acme', key: inboxKey('keygen', 'idem-token-1') },
        { owner: 'crashed-worker', leaseMs: DEFAULT_LEASE_MS },
      );
      expect(await inbox.deliver(KEYGEN, work('too-early'))).toMatchObject({ status: 'in_flight' });
      clock.advance(DEFAULT_LEASE_MS);
      expect(await inbox.deliver(KEYGEN, work('recovered'))).toEqual({
        status: 'processed',
        value: 'done:recovered',
        recoveredFrom: 'crashed-worker',
      });
      expect(await inbox.deliver(KEYGEN, work('after'))).toMatchObject({ status: 'duplicate' });
      expect(processed).toEqual(['recovered']);
      expect(logger.lines.map((line) => line.message)).toContain('inbox: took over an expired lease; the earlier holder never finished');
    });

    it('remembers a token for its source’s TTL, then processes it again', async () => {
      const inbox = new Inbox({ store, clock, sources: { 'salesforce-outbound': { doneTtlMs: 26 * HOUR } } });
      const salesforce = { source: 'salesforce-outbound', tenant: 'acme', token: 'notification-1' };
      await inbox.deliver(salesforce, work('sf-1'));
      await inbox.deliver(KEYGEN, work('kg-1'));
      clock.advance(26 * HOUR - 1);
      expect(await inbox.deliver(salesforce, work('sf-dup'))).toMatchObject({ status: 'duplicate' });
      clock.advance(1);
      expect(await inbox.deliver(salesforce, work('sf-2'))).toMatchObject({ status: 'processed' });
      clock.advance(72 * HOUR - 26 * HOUR - 1);
      expect(await inbox.deliver(KEYGEN, work('kg-dup'))).toMatchObject({ status: 'duplicate' });
      clock.advance(1);
      expect(await inbox.deliver(KEYGEN, work('kg-2'))).toMatchObject({ status: 'processed' });
      expect(processed).toEqual(['sf-1', 'kg-1', 'sf-2', 'kg-2']);
      expect(inbox.settingsFor('salesforce-outbound')).toEqual({ doneTtlMs: 26 * HOUR, leaseMs: DEFAULT_LEASE_MS });
    });

    describe('acceptOnce (the synchronous fast path)', () => {
      const ref = { tenant: 'acme', key: inboxKey('keygen', 'idem-token-1') };

      it('records the result once; later deliveries of the token are duplicates and run nothing', async () => {
        const inbox = new Inbox({ store, clock });
        expect(await inbox.acceptOnce(KEYGEN, '{"seen":1}')).toEqual({ status: 'processed', value: '{"seen":1}' });
        expect(await store.get(ref)).toMatchObject({
          state: 'completed',
          result: '{"seen":1}',
          expiresAt: clock.now() + DEFAULT_DONE_TTL_MS,
        });
        clock.advance(HOUR);
        expect(await inbox.acceptOnce(KEYGEN, '{"seen":2}')).toEqual({ status: 'duplicate', processedAt: clock.now() - HOUR });
        expect(await inbox.deliver(KEYGEN, work('after'))).toMatchObject({ status: 'duplicate' });
        expect(await store.get(ref)).toMatchObject({ result: '{"seen":1}' });
        expect(processed).toEqual([]);
      });

      it('is in flight while deliver holds the token, and a duplicate once deliver is done', async () => {
        const inbox = new Inbox({ store, clock, leaseMs: 20_000 });
        let finish = (): void => {};
        const first = inbox.deliver(KEYGEN, () => new Promise<string>((resolve) => (finish = () => resolve('slow'))));
        await waitUntil(async () => (await store.get(ref)) !== undefined);
        clock.advance(5_000);
        expect(await inbox.acceptOnce(KEYGEN, 'fast')).toEqual({ status: 'in_flight', retryAfterMs: 15_000 });
        finish();
        expect(await first).toEqual({ status: 'processed', value: 'slow' });
        expect(await inbox.acceptOnce(KEYGEN, 'fast')).toMatchObject({ status: 'duplicate' });
        expect(await store.get(ref)).toMatchObject({ state: 'completed', result: 'processed' });
      });

      it('takes over the lease of a crashed deliver once it runs out, and says so', async () => {
        const logger = memoryLogger();
        const inbox = new Inbox({ store, clock, logger });
        await store.claim(ref, { owner: 'crashed-worker', leaseMs: DEFAULT_LEASE_MS });
        expect(await inbox.acceptOnce(KEYGEN, 'early')).toMatchObject({ status: 'in_flight' });
        clock.advance(DEFAULT_LEASE_MS);
        expect(await inbox.acceptOnce(KEYGEN, 'recovered')).toEqual({
          status: 'processed',
          value: 'recovered',
          recoveredFrom: 'crashed-worker',
        });
        expect(await store.get(ref)).toMatchObject({ state: 'completed', result: 'recovered' });
        expect(logger.lines.map((line) => line.message)).toContain('inbox: took over an expired lease; the earlier holder never finished');
      });

      it('lets exactly one of many concurrent deliveries of a token record it', async () => {
        const inbox = new Inbox({ store, clock });
        const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => inbox.acceptOnce(KEYGEN, `r${i}`)));
        const recorded = outcomes.filter((outcome) => outcome.status === 'processed');
        expect(recorded).toHaveLength(1);
        expect(await store.get(ref)).toMatchObject({ result: recorded[0]?.status === 'processed' ? recorded[0].value : 'none' });
        // The fallback (claim, then done mark) may answer in_flight between its two steps; never processed twice.
        expect(outcomes.every((outcome) => outcome.status !== 'processed' || outcome === recorded[0])).toBe(true);
      });
    });

    it('keeps sources and tenants apart', async () => {
      const inbox = new Inbox({ store, clock });
      await inbox.deliver(KEYGEN, work('keygen'));
      expect(await inbox.deliver({ ...KEYGEN, source: 'svix' }, work('svix'))).toMatchObject({ status: 'processed' });
      expect(await inbox.deliver({ ...KEYGEN, tenant: 'globex' }, work('globex'))).toMatchObject({ status: 'processed' });
      expect(processed).toEqual(['keygen', 'svix', 'globex']);
    });
  });
}

describe('inbox arguments', () => {
  it('rejects an empty token or source and bad settings with InvalidInputError', async () => {
    const inbox = new Inbox({ store: new MemoryIdempotencyStore() });
    await expect(inbox.deliver({ ...KEYGEN, token: '' }, async () => 1)).rejects.toBeInstanceOf(InvalidInputError);
    await expect(inbox.deliver({ ...KEYGEN, source: '' }, async () => 1)).rejects.toBeInstanceOf(InvalidInputError);
    expect(() => new Inbox({ store: new MemoryIdempotencyStore(), doneTtlMs: -1 })).toThrow(InvalidInputError);
    expect(() => new Inbox({ store: new MemoryIdempotencyStore(), sources: { keygen: { doneTtlMs: 0 } } })).toThrow(InvalidInputError);
  });
});

describe('inbox lease renewal (real time)', () => {
  it('renews the lease while slow processing runs, so a second delivery is not let in', async () => {
    const store = new MemoryIdempotencyStore();
    const inbox = new Inbox({ store, leaseMs: 300 });
    let finish = (): void => {};
    const first = inbox.deliver(KEYGEN, () => new Promise<string>((resolve) => (finish = () => resolve('slow'))));
    // Twice the lease: without renewal the second delivery would take the lease over.
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(await inbox.deliver(KEYGEN, async () => 'second')).toMatchObject({ status: 'in_flight' });
    finish();
    expect(await first).toEqual({ status: 'processed', value: 'slow' });
  });
});

async function waitUntil(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
