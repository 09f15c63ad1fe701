import './helpers.js';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from '../../shared/state/redis/test-env.js';
import { request, SEGMENT_SECRET, segmentSignature, startTestRelay, type TestRelay, waitForSettled } from './helpers.js';

// The test Redis keeps nothing on disk (as in CI), so the relay is told that this is development.
describe.skipIf(skipRedisTests)('relay on Redis whose data is lost', () => {
  const keyPrefix = uniqueRedisPrefix('relay-lost');
  let client: Redis;
  let harness: TestRelay;

  beforeAll(async () => {
    client = await connectTestRedis();
    harness = await startTestRelay(
      { ONCEKIT_REDIS_ALLOW_VOLATILE: '1', ONCEKIT_REDIS_PREFIX: keyPrefix, ONCEKIT_SEGMENT_SHARED_SECRET: SEGMENT_SECRET },
      redisEnv.url,
    );
  });
  afterAll(async () => {
    await harness?.relay.stop();
    await deleteRedisKeys(client, keyPrefix);
    await client.quit();
  });

  function sendSegment(messageId: string) {
    const body = JSON.stringify({ type: 'track', event: 'Order Completed', userId: 'segment-user-1', messageId });
    return request(`${harness.relay.url}/segment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signature': segmentSignature(body) },
      body,
    });
  }

  const lostLines = () => harness.logs.lines().filter((line) => line.event === 'state_lost');

  it('warns at start that the Redis keeps nothing on disk', () => {
    const warnings = harness.logs.lines().filter((line) => line.event === 'redis_volatile');
    expect(warnings.length).toBeGreaterThan(0);
    expect(String(warnings[0]?.msg)).toMatch(/keeps nothing on disk.*ONCEKIT_REDIS_ALLOW_VOLATILE=1/);
  });

  it('works while the state is there', async () => {
    expect((await sendSegment('ajs-before-loss')).status).toBe(200);
    await waitForSettled(harness.relay, 1);
    expect((await request(`${harness.relay.url}/readyz`)).status).toBe(200);
    expect(await client.exists(`${keyPrefix}marker`)).toBe(1);
  });

  it('after a wipe: /readyz says data was lost, event routes answer 503, and the loss is logged once', async () => {
    // What a restart without persistence, a FLUSHALL or a failover to an empty replica leaves: nothing.
    await deleteRedisKeys(client, keyPrefix);

    const ready = await request(`${harness.relay.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ status: 'not_ready', checks: { store: expect.stringMatching(/data was lost/) } });

    const answer = await sendSegment('ajs-after-loss');
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('60');
    expect(answer.json).toMatchObject({ error: 'state_lost', message: expect.stringMatching(/lost its data/) });
    expect((await sendSegment('ajs-after-loss-2')).status).toBe(503);
    expect((await request(`${harness.relay.url}/readyz`)).status).toBe(503);

    expect(lostLines()).toHaveLength(1);
    expect(lostLines()[0]).toMatchObject({ level: 50, msg: expect.stringMatching(/DATA LOST/) });
    // Nothing was written on the empty state.
    expect(await client.exists(`${keyPrefix}marker`)).toBe(0);
  });
});
