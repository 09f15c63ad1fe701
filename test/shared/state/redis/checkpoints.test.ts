import { describe } from 'vitest';
import { describeCheckpointContract } from '../checkpoints-contract.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from './test-env.js';

describe.skipIf(skipRedisTests)(`on Redis at ${redisEnv.url}`, () => {
  describeCheckpointContract('redis', { durable: true }, async () => {
    const redisKeyPrefix = uniqueRedisPrefix('checkpoints');
    return {
      location: { kind: 'redis', url: redisEnv.url },
      // The test Redis keeps nothing on disk; these tests are about the contract, not persistence.
      options: { redisKeyPrefix, allowVolatile: true },
      dispose: async () => {
        const client = await connectTestRedis();
        await deleteRedisKeys(client, redisKeyPrefix);
        await client.quit();
      },
    };
  });
});
