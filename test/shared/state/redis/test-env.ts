import type { Redis } from 'ioredis';
import { inject } from 'vitest';
import { connectRedis } from '../../../../shared/state/redis/connection.js';

/** What test/setup/redis.ts found when the run started. */
export const redisEnv = inject('redis');
/** Skip Redis tests only when no Redis answers and none is required (ONCEKIT_REQUIRE_REDIS=1 turns this off). */
export const skipRedisTests = !redisEnv.answers && !redisEnv.required;

const runId = `${process.pid}-${Date.now().toString(36)}`;
let prefixes = 0;

/** A key prefix no other test or run uses, so tests can share one Redis and clean up after themselves. */
export function uniqueRedisPrefix(label: string): string {
  prefixes += 1;
  return `oncekit-test:${runId}:${label}:${prefixes}:`;
}

export function connectTestRedis(): Promise<Redis> {
  return connectRedis(redisEnv.url, 2000);
}

/** Deletes every key under `prefix`. */
export async function deleteRedisKeys(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    if (keys.length > 0) await client.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
}
