import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../../shared/log.js';
import { openState } from '../../../../shared/state/open-state.js';
import { describeCheckpointContract } from '../checkpoints-contract.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from './test-env.js';

describe.skipIf(skipRedisTests)(`on Redis at ${redisEnv.url}`, () => {
  describeCheckpointContract('redis', { durable: true }, async () => {
    const redisKeyPrefix = uniqueRedisPrefix('checkpoints');
    return {
      location: { kind: 'redis', url: redisEnv.url },
      // The test Redis keeps nothing on disk; these tests are about the contract, not persistence.
      options: { redisKeyPrefix, allowVolatile: true, logger: silentLogger },
      dispose: async () => {
        const client = await connectTestRedis();
        await deleteRedisKeys(client, redisKeyPrefix);
        await client.quit();
      },
    };
  });

  it('lists a position saved before save times were kept (an older version) with no age', async () => {
    const redisKeyPrefix = uniqueRedisPrefix('checkpoints-legacy');
    const client = await connectTestRedis();
    const state = await openState({ kind: 'redis', url: redisEnv.url }, { redisKeyPrefix, allowVolatile: true, logger: silentLogger });
    try {
      await state.checkpoints.save('acme', '/event/A__e', '42');
      await state.checkpoints.save('acme', '/event/B__e', '9');
      // What an older version left: the position and the set of streams, no save time for A.
      await client.hdel(`${redisKeyPrefix}checkpoint-saved:acme`, '/event/A__e');
      const listed = await state.checkpoints.list('acme');
      expect(listed.map(({ stream, savedAgoMs }) => [stream, savedAgoMs === null])).toEqual([
        ['/event/A__e', true],
        ['/event/B__e', false],
      ]);
    } finally {
      await state.close();
      await deleteRedisKeys(client, redisKeyPrefix);
      await client.quit();
    }
  });
});
