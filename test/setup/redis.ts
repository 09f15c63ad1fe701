import { connect } from 'node:net';
import type { TestProject } from 'vitest/node';

export interface RedisTestEnvironment {
  readonly url: string;
  /** A Redis answered PING when the run started. */
  readonly answers: boolean;
  /** ONCEKIT_REQUIRE_REDIS=1: a missing Redis fails the Redis tests instead of skipping them. */
  readonly required: boolean;
}

declare module 'vitest' {
  export interface ProvidedContext {
    redis: RedisTestEnvironment;
  }
}

export const DEFAULT_TEST_REDIS_URL = 'redis://127.0.0.1:6379';

/** Asks once per run whether a Redis answers, and prints the one line that says the Redis tests are skipped. */
export default async function setup(project: TestProject): Promise<void> {
  const url = process.env.ONCEKIT_REDIS_URL || DEFAULT_TEST_REDIS_URL;
  const required = process.env.ONCEKIT_REQUIRE_REDIS === '1';
  const answers = await pingRedis(url);
  if (!answers && !required) {
    console.log(`Redis tests skipped: no Redis answered at ${url} (ONCEKIT_REDIS_URL); ONCEKIT_REQUIRE_REDIS=1 makes this a failure.`);
  }
  project.provide('redis', { url, answers, required });
}

/** PING over a plain socket; any reply (even NOAUTH) means a Redis is there. */
function pingRedis(url: string, timeoutMs = 1000): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname || '127.0.0.1', port: Number(port) || 6379 });
    const finish = (answer: boolean): void => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('error', () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => finish(/^[+-]/.test(data.toString('latin1'))));
  });
}
