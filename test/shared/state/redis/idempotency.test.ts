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
