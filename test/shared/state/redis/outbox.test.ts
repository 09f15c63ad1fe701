import type { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { RedisOutboxStore } from '../../../../shared/outbox/index.js';
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
});
