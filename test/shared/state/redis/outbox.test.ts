import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { manualClock } from '../../../../shared/clock.js';
import { RedisOutboxStore, retryDeadLetters } from '../../../../shared/outbox/index.js';
import { describeOutboxStoreContract } from '../outbox-contract.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from './test-env.js';

// Whether Redis answers is asked once per run (test/setup/redis.ts), which also prints the one line saying it is skipped.
describe.skipIf(skipRedisTests)(`outbox on Redis at ${redisEnv.url}`, () => {
  it('answers (ONCEKIT_REQUIRE_REDIS=1 makes a missing Redis fail here)', () => {
    expect(redisEnv.answers, `no Redis answered at ${redisEnv.url}`).toBe(true);
  });

  describeOutboxStoreContract('redis', { durable: true }, async () => {
    const keyPrefix = uniqueRedisPrefix('outbox-contract');
    const clients: Redis[] = [];
    return {
      // Each handle is its own connection onto the same keys.
      open: async (clock) => {
        const client = await connectTestRedis();
        clients.push(client);
        return new RedisOutboxStore({ client, keyPrefix, clock });
      },
      dispose: async () => {
        const [first] = clients;
        if (first) await deleteRedisKeys(first, keyPrefix);
        await Promise.all(clients.map((client) => client.quit()));
      },
    };
  });

  describe('targets in the key layout', () => {
    const A = 'https://a.target.test';
    const B = 'https://b.target.test:8443/x';
    const input = { userId: 'u', accountId: 'a', events: [{ key: 'signup' }] };
    const event = (target: string, source: string, dedupKey: string) =>
      ({
        tenant: 't:1',
        target,
        source,
        sourceId: dedupKey,
        dedupKey,
        input: { ...input, idempotencyKey: dedupKey },
        keyDecision: null,
      }) as const;
    let client: Redis;
    let keyPrefix: string;
    let store: RedisOutboxStore;
    beforeEach(async () => {
      client = await connectTestRedis();
      keyPrefix = uniqueRedisPrefix('outbox-targets');
      store = new RedisOutboxStore({ client, keyPrefix });
    });
    afterEach(async () => {
      await deleteRedisKeys(client, keyPrefix);
      await client.quit();
    });

    it('lists events enqueued before the listing index existed, once a store opens on them', async () => {
      const [a, b] = await store.enqueue([event(A, 'import', 'old-1'), event(B, 'segment', 'old-2')]);
      const P = `${keyPrefix}outbox:`;
      // As a version without the index left them: no ev/tg keys, no ev-indexed flag.
      await client.del(`${P}ev:t%3A1`, `${P}tg:t%3A1`, `${P}ev-indexed`);
      expect((await store.listEvents('t:1')).entries).toEqual([]);
      const reopened = new RedisOutboxStore({ client, keyPrefix });
      await reopened.ready();
      expect((await reopened.listEvents('t:1')).entries.map((entry) => entry.id).sort()).toEqual([a?.id, b?.id].sort());
      expect(await client.smembers(`${P}tg:t%3A1`)).toHaveLength(2);
      expect(await client.get(`${P}ev-indexed`)).toBe('1');
    });

    it("keeps each target in keys of its own, its ':' encoded, and counts by source and target with one hash", async () => {
      await store.enqueue([event(A, 'import', 'd1'), event(B, 'import', 'd1'), event(B, 'segment', 'd2')]);
      const P = `${keyPrefix}outbox:`;
      const t = encodeURIComponent('t:1');
      expect(await client.zcard(`${P}due:${t}:${encodeURIComponent(A)}`)).toBe(1);
      expect(await client.zcard(`${P}due:${t}:${encodeURIComponent(B)}`)).toBe(2);
      expect(await client.hlen(`${P}dedup:${t}:${encodeURIComponent(B)}`)).toBe(2);
      expect(await store.counts('t:1', { target: B, source: 'segment' })).toMatchObject({ pending: 1 });
      expect(await store.counts('t:1', { target: A, source: 'segment' })).toMatchObject({ pending: 0 });
      expect(await store.counts('t:1', { source: 'import' })).toMatchObject({ pending: 2 });
      expect(await store.counts('t:1', { target: 'https://a.target.test:8443/x' })).toMatchObject({ pending: 0 });
    });

    it('requeues listed ids only of the target named, and revives a dead letter out of both dead sets', async () => {
      const [a, b] = await store.enqueue([event(A, 'import', 'd1'), event(B, 'import', 'd1')]);
      for (const target of [A, B]) {
        const [held] = await store.lease({ tenant: 't:1', target, owner: 'w', limit: 1, leaseMs: 1000 });
        await store.settle([{ id: held?.id ?? '', owner: 'w', attempt: null, to: 'dead', reason: 'rejected' }]);
      }
      expect((await store.listDead('t:1')).map((entry) => [entry.id, entry.target])).toEqual([
        [a?.id, A],
        [b?.id, B],
      ]);
      expect(await store.requeueDead({ tenant: 't:1', target: B, ids: [a?.id ?? '', b?.id ?? ''] })).toEqual([b?.id]);
      expect(await store.counts('t:1', { target: A })).toMatchObject({ dead: 1, pending: 0 });
      expect(await store.counts('t:1', { target: B })).toMatchObject({ dead: 0, pending: 1 });
      expect(await store.counts('t:1')).toMatchObject({ dead: 1, pending: 1 });
      expect(await store.nextDueAt('t:1', A)).toBeNull();
      expect(await store.nextDueAt('t:1', B)).not.toBeNull();
    });

    it('reads an attempt stored before requests were counted by its final answer: a 503 may have landed, a 429 not', async () => {
      const P = `${keyPrefix}outbox:`;
      const [busy, throttled] = await store.enqueue([event(A, 'import', 'd1'), event(A, 'import', 'd2')]);
      await store.lease({ tenant: 't:1', target: A, owner: 'w', limit: 2, leaseMs: 1000 });
      const old = { startedAt: 0, finishedAt: 0, message: null, apiErrorCode: null, rsCode: null, requests: 1, eventIds: [] };
      // As an earlier version wrote them: no uncertainRequests.
      for (const [id, status] of [
        [busy?.id, 503],
        [throttled?.id, 429],
      ] as const) {
        await client.rpush(`${P}a:${id}`, JSON.stringify({ ...old, outcome: 'failed', status }));
      }
      expect((await store.get('t:1', busy?.id ?? ''))?.attempts).toEqual([expect.objectContaining({ number: 1, uncertainRequests: 1 })]);
      expect((await store.get('t:1', throttled?.id ?? ''))?.attempts).toEqual([expect.objectContaining({ uncertainRequests: 0 })]);
    });

    it('gives events marked before lsn was kept the earliest start of their attempts that may have landed, once a store opens', async () => {
      const P = `${keyPrefix}outbox:`;
      const [marked, certain] = await store.enqueue([event(A, 'import', 'd1'), event(A, 'import', 'd2')]);
      await store.lease({ tenant: 't:1', target: A, owner: 'w', limit: 2, leaseMs: 1000 });
      const old = { finishedAt: 0, message: null, apiErrorCode: null, rsCode: null, requests: 1, eventIds: [], outcome: 'failed' };
      // As an earlier version left them: attempts and the mark, no lsn, no lsn-set flag.
      await client.rpush(`${P}a:${marked?.id}`, JSON.stringify({ ...old, startedAt: 9000, status: 429, uncertainRequests: 0 }));
      await client.rpush(`${P}a:${marked?.id}`, JSON.stringify({ ...old, startedAt: 7000, status: 503, uncertainRequests: 1 }));
      await client.rpush(`${P}a:${marked?.id}`, JSON.stringify({ abandoned: true, startedAt: 8000, finishedAt: 0, owner: 'w' }));
      await client.hset(`${P}e:${marked?.id}`, 'mhl', '1');
      await client.rpush(`${P}a:${certain?.id}`, JSON.stringify({ ...old, startedAt: 6000, status: 429, uncertainRequests: 0 }));
      await client.del(`${P}lsn-set`);
      const reopened = new RedisOutboxStore({ client, keyPrefix });
      await reopened.ready();
      expect((await reopened.get('t:1', marked?.id ?? ''))?.landedSince).toBe(7000);
      expect((await reopened.get('t:1', certain?.id ?? ''))?.landedSince).toBeNull();
      expect(await client.get(`${P}lsn-set`)).toBe('1');
    });

    it('keeps the settled zset to settled events only, and pruning leaves no key, index entry or count behind', async () => {
      const P = `${keyPrefix}outbox:`;
      const settled = `${P}settled`;
      const rejected = {
        number: 1,
        startedAt: 0,
        finishedAt: 0,
        outcome: 'rejected',
        status: 400,
        message: 'bad event',
        apiErrorCode: null,
        rsCode: null,
        requests: 1,
        uncertainRequests: 0,
        eventIds: [],
      } as const;
      const [a, b] = await store.enqueue([event(A, 'import', 'd1'), event(B, 'segment', 'd2')]);
      for (const target of [A, B]) {
        const [held] = await store.lease({ tenant: 't:1', target, owner: 'w', limit: 1, leaseMs: 1000 });
        await store.settle([{ id: held?.id ?? '', owner: 'w', attempt: rejected, to: 'dead', reason: 'rejected' }]);
      }
      expect(await client.zrange(settled, 0, '-1')).toEqual([a?.id, b?.id]);
      // Requeued, and revived by a changed payload: both leave the set; settled again, back in it.
      await store.requeueDead({ tenant: 't:1', ids: [a?.id ?? ''] });
      const changed = { ...event(B, 'segment', 'd2'), input: { ...input, idempotencyKey: 'd2', userId: 'v' } };
      expect((await store.enqueue([changed]))[0]?.outcome).toBe('revived');
      expect(await client.zcard(settled)).toBe(0);
      for (const target of [A, B]) {
        const [held] = await store.lease({ tenant: 't:1', target, owner: 'w', limit: 1, leaseMs: 1000 });
        await store.settle([
          { id: held?.id ?? '', owner: 'w', attempt: null, to: target === A ? 'delivered' : 'dead', reason: 'rejected' },
        ]);
      }
      expect(await client.zcard(settled)).toBe(2);
      // The server's clock: "older than 0 ms" needs a millisecond to pass since the settlements.
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(await store.pruneSettled(0)).toBe(2);
      // What is left: the marker, the tenant's set of targets, and the count hashes, whose fields other transitions left at 0.
      const keys = (await client.keys(`${keyPrefix}*`)).sort();
      const counts = keys.filter((key) => key.startsWith(`${P}n:`));
      expect(keys.filter((key) => !counts.includes(key))).toEqual([`${keyPrefix}marker`, `${P}tg:t%3A1`]);
      for (const key of counts) expect(new Set(Object.values(await client.hgetall(key)))).toEqual(new Set(['0']));
    });
  });

  describe('a listing past its scan limit', () => {
    const T = 'https://t.target.test';
    const SCAN = 5;
    let client: Redis;
    let keyPrefix: string;
    let store: RedisOutboxStore;
    const clock = manualClock();
    // Event n (1 to 12) is enqueued at ms n; 1 and 2 come from an import, the rest from segment.
    const enqueueTwelve = async () => {
      const ids: string[] = [];
      for (let n = 1; n <= 12; n += 1) {
        clock.set(n);
        const source = n <= 2 ? 'import' : 'segment';
        const input = { userId: 'u', accountId: 'a', events: [{ key: 'signup' }], idempotencyKey: `key-000${n}` };
        const [result] = await store.enqueue([
          { tenant: 't', target: T, source, sourceId: `s${n}`, dedupKey: `d${n}`, input, keyDecision: null },
        ]);
        ids.push(result?.id ?? '');
      }
      return ids;
    };
    const kill = async (count: number) => {
      const held = await store.lease({ tenant: 't', target: T, owner: 'w', limit: count, leaseMs: 1000 });
      await store.settle(held.map((event) => ({ id: event.id, owner: 'w', attempt: null, to: 'dead', reason: 'rejected' }) as const));
      return held.map((event) => event.id);
    };
    beforeEach(async () => {
      client = await connectTestRedis();
      keyPrefix = uniqueRedisPrefix('outbox-listing');
      store = new RedisOutboxStore({ client, keyPrefix, clock, listingScanLimit: SCAN });
    });
    afterEach(async () => {
      await deleteRedisKeys(client, keyPrefix);
      await client.quit();
    });

    it('says where it stopped, and resuming from there finds the older events without skipping any', async () => {
      const ids = await enqueueTwelve();
      const first = await store.listEvents('t', { source: 'import' });
      expect(first).toEqual({ entries: [], hasMore: false, searchStopped: { searched: SCAN, resumeUntil: 9 } });
      const second = await store.listEvents('t', { source: 'import', until: 9 });
      expect(second).toEqual({ entries: [], hasMore: false, searchStopped: { searched: SCAN, resumeUntil: 5 } });
      const third = await store.listEvents('t', { source: 'import', until: 5 });
      expect(third.entries.map((entry) => entry.id)).toEqual([ids[1], ids[0]]);
      expect(third.searchStopped).toBeUndefined();
      // A page filled within the limit is complete.
      expect(await store.listEvents('t', { limit: 3 })).toMatchObject({ hasMore: true });
      expect((await store.listEvents('t', { limit: 3 })).searchStopped).toBeUndefined();
    });

    it('goes past the limit rather than stop inside the millisecond it resumed at', async () => {
      clock.set(100);
      const events = Array.from({ length: 8 }, (_, n) => ({
        tenant: 't',
        target: T,
        source: n === 0 ? 'import' : 'segment',
        sourceId: `s${n}`,
        dedupKey: `d${n}`,
        input: { userId: 'u', accountId: 'a', events: [{ key: 'signup' }] },
        keyDecision: null,
      }));
      const [oldest] = await store.enqueue(events);
      const page = await store.listEvents('t', { source: 'import', until: 101 });
      expect(page.entries.map((entry) => entry.id)).toEqual([oldest?.id]);
      expect(page.searchStopped).toBeUndefined();
    });

    it('lists dead letters from the dead set, however many newer events there are, and the walk once they outnumber the limit', async () => {
      await enqueueTwelve();
      const dead = await kill(2);
      const page = await store.listEvents('t', { state: 'dead' });
      expect(page.entries.map((entry) => entry.id).sort()).toEqual([...dead].sort());
      expect(page.searchStopped).toBeUndefined();
      await kill(5);
      const walked = await store.listEvents('t', { state: 'dead' });
      expect(walked.searchStopped).toEqual({ searched: SCAN, resumeUntil: 9 });
    });

    it('retries every dead letter matching, following the listing past each stop', async () => {
      await enqueueTwelve();
      const dead = await kill(9);
      const result = await retryDeadLetters(store, { tenant: 't', select: { matching: {} }, keyWindowMs: 86_400_000, now: clock.now() });
      expect([...result.requeued].sort()).toEqual([...dead].sort());
      expect(result.moreMatching).toBe(false);
      expect(await store.counts('t')).toMatchObject({ dead: 0, pending: 12 });
    });
  });
});
