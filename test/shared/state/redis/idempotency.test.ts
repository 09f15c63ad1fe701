import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manualClock } from '../../../../shared/clock.js';
import { silentLogger } from '../../../../shared/log.js';
import { ABANDONED_LEASE_RETENTION_MS, StoreUnavailableError } from '../../../../shared/state/idempotency.js';
import { RedisIdempotencyStore } from '../../../../shared/state/redis/idempotency.js';
import { describeIdempotencyStoreContract } from '../idempotency-contract.js';
import { openIdempotencyStore } from '../open-one.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from './test-env.js';

describe.skipIf(skipRedisTests)(`Redis at ${redisEnv.url}`, () => {
  it('answers (ONCEKIT_REQUIRE_REDIS=1 makes a missing Redis fail here)', () => {
    expect(redisEnv.answers, `no Redis answered at ${redisEnv.url}`).toBe(true);
  });

  describeIdempotencyStoreContract(
    'redis',
    async () => {
      const keyPrefix = uniqueRedisPrefix('contract');
      const clients: Redis[] = [];
      return {
        // Each handle is its own connection.
        open: async (clock) => {
          const client = await connectTestRedis();
          clients.push(client);
          return new RedisIdempotencyStore({ client, keyPrefix, clock });
        },
        dispose: async () => {
          const [first] = clients;
          if (first) await deleteRedisKeys(first, keyPrefix);
          await Promise.all(clients.map((client) => client.quit()));
        },
      };
    },
    { claimCompleted: true },
  );

  describe('Redis store specifics', () => {
    let client: Redis;
    const keyPrefix = uniqueRedisPrefix('specifics');
    beforeAll(async () => {
      client = await connectTestRedis();
    });
    afterAll(async () => {
      await deleteRedisKeys(client, keyPrefix);
      await client.quit();
    });

    it('sets PX as a backstop: Redis evicts a record when it is gone by the stored times', async () => {
      const store = new RedisIdempotencyStore({ client, keyPrefix, clock: manualClock() });
      await store.claim({ tenant: 't', key: 'lease' }, { owner: 'w', leaseMs: 30_000 });
      const leaseTtl = await client.pttl(`${keyPrefix}idem:t:lease`);
      expect(leaseTtl).toBeGreaterThan(ABANDONED_LEASE_RETENTION_MS + 29_000);
      expect(leaseTtl).toBeLessThanOrEqual(ABANDONED_LEASE_RETENTION_MS + 30_000);
      await store.complete({ tenant: 't', key: 'lease' }, 'w', { result: 'r', ttlMs: 5_000 });
      const doneTtl = await client.pttl(`${keyPrefix}idem:t:lease`);
      expect(doneTtl).toBeGreaterThan(4_000);
      expect(doneTtl).toBeLessThanOrEqual(5_000);
    });

    it('stores a record as one JSON string', async () => {
      const clock = manualClock();
      const store = new RedisIdempotencyStore({ client, keyPrefix, clock });
      await store.claimCompleted({ tenant: 't', key: 'json' }, { result: 'r|"x"', ttlMs: 5_000 });
      expect(await client.type(`${keyPrefix}idem:t:json`)).toBe('string');
      expect(JSON.parse((await client.get(`${keyPrefix}idem:t:json`)) ?? '')).toEqual({
        state: 'completed',
        createdAt: clock.now(),
        completedAt: clock.now(),
        expiresAt: clock.now() + 5_000,
        result: 'r|"x"',
      });
    });

    describe('a record an earlier version kept as a hash', () => {
      const legacyKey = (key: string) => `${keyPrefix}idem:t:${key}`;
      const setup = async () => {
        const clock = manualClock();
        const store = new RedisIdempotencyStore({ client, keyPrefix, clock });
        await store.ready();
        return { clock, store, now: clock.now() };
      };
      const writeInProgress = (key: string, now: number, owner: string) =>
        client.hset(legacyKey(key), {
          state: 'in_progress',
          owner,
          createdAt: String(now),
          leaseExpiresAt: String(now + 30_000),
          fingerprint: 'fp-1',
        });

      it('is honoured: a completed one stays a duplicate for claim, claimCompleted and get', async () => {
        const { store, now } = await setup();
        await client.hset(legacyKey('done'), {
          state: 'completed',
          createdAt: String(now - 10),
          completedAt: String(now - 5),
          expiresAt: String(now + 60_000),
          result: 'earlier',
        });
        const record = {
          state: 'completed',
          tenant: 't',
          key: 'done',
          createdAt: now - 10,
          completedAt: now - 5,
          expiresAt: now + 60_000,
          result: 'earlier',
        };
        expect(await store.claim({ tenant: 't', key: 'done' }, { owner: 'w2', leaseMs: 1000 })).toEqual({ status: 'completed', record });
        expect(await store.claimCompleted({ tenant: 't', key: 'done' }, { result: 'again', ttlMs: 1000 })).toEqual({
          status: 'completed',
          record,
        });
        expect(await store.get({ tenant: 't', key: 'done' })).toEqual(record);
        expect(await client.type(legacyKey('done'))).toBe('hash');
      });

      it('is held by its owner: another claim is refused; renewal and the done mark rewrite it as JSON, keeping its fields', async () => {
        const { clock, store, now } = await setup();
        await writeInProgress('held', now, 'w1');
        expect(await store.claim({ tenant: 't', key: 'held' }, { owner: 'w2', leaseMs: 1000 })).toMatchObject({
          status: 'in_progress',
          owner: 'w1',
          leaseExpiresAt: now + 30_000,
          leaseExpired: false,
        });
        expect(await store.renewLease({ tenant: 't', key: 'held' }, 'w2', 30_000)).toBe(false);
        clock.advance(1000);
        expect(await store.renewLease({ tenant: 't', key: 'held' }, 'w1', 30_000)).toBe(true);
        expect(await client.type(legacyKey('held'))).toBe('string');
        expect(await store.get({ tenant: 't', key: 'held' })).toEqual({
          state: 'in_progress',
          tenant: 't',
          key: 'held',
          owner: 'w1',
          createdAt: now,
          leaseExpiresAt: now + 31_000,
          fingerprint: 'fp-1',
        });
        await writeInProgress('completed', now, 'w1');
        expect(await store.complete({ tenant: 't', key: 'completed' }, 'w1', { result: 'done', ttlMs: 5_000 })).toBe(true);
        expect(await store.get({ tenant: 't', key: 'completed' })).toEqual({
          state: 'completed',
          tenant: 't',
          key: 'completed',
          createdAt: now,
          completedAt: now + 1000,
          expiresAt: now + 6_000,
          result: 'done',
          fingerprint: 'fp-1',
        });
      });

      it('is released by its owner only, and taken over once its lease has expired', async () => {
        const { clock, store, now } = await setup();
        await writeInProgress('release', now, 'w1');
        expect(await store.release({ tenant: 't', key: 'release' }, 'w2')).toBe(false);
        expect(await store.release({ tenant: 't', key: 'release' }, 'w1')).toBe(true);
        expect(await client.exists(legacyKey('release'))).toBe(0);

        await writeInProgress('expired', now, 'w1');
        clock.advance(30_000);
        expect(await store.takeOver({ tenant: 't', key: 'expired' }, { owner: 'w2', leaseMs: 1000 })).toMatchObject({
          status: 'claimed',
          takenOverFrom: 'w1',
        });
        expect(await client.type(legacyKey('expired'))).toBe('string');
        await writeInProgress('accept', now, 'w1');
        expect(await store.claimCompleted({ tenant: 't', key: 'accept' }, { result: 'once', ttlMs: 1000 })).toMatchObject({
          status: 'claimed',
          takenOverFrom: 'w1',
        });
        expect(await store.get({ tenant: 't', key: 'accept' })).toMatchObject({ state: 'completed', result: 'once' });
      });
    });

    it('keeps every key under its prefix', async () => {
      const otherPrefix = uniqueRedisPrefix('other');
      const a = new RedisIdempotencyStore({ client, keyPrefix });
      const b = new RedisIdempotencyStore({ client, keyPrefix: otherPrefix });
      await a.claim({ tenant: 't', key: 'same' }, { owner: 'wa', leaseMs: 30_000 });
      expect(await b.claim({ tenant: 't', key: 'same' }, { owner: 'wb', leaseMs: 30_000 })).toMatchObject({ status: 'claimed' });
      await deleteRedisKeys(client, otherPrefix);
    });

    it('opens from a StoreLocation and closes the connection it opened', async () => {
      const store = await openIdempotencyStore(
        { kind: 'redis', url: redisEnv.url },
        { redisKeyPrefix: keyPrefix, allowVolatile: true, logger: silentLogger },
      );
      expect(store.kind).toBe('redis');
      expect(await store.claim({ tenant: 't', key: 'factory' }, { owner: 'w', leaseMs: 1000 })).toMatchObject({ status: 'claimed' });
      await store.close();
      await expect(store.get({ tenant: 't', key: 'factory' })).rejects.toBeInstanceOf(StoreUnavailableError);
    });
  });
});

describe('Redis store without a Redis', () => {
  it('fails to open with StoreUnavailableError, quickly', async () => {
    // Port 1 on loopback: nothing listens there.
    await expect(openIdempotencyStore({ kind: 'redis', url: 'redis://127.0.0.1:1' }, { redisTimeoutMs: 500 })).rejects.toBeInstanceOf(
      StoreUnavailableError,
    );
  });
});
