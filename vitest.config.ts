import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Asks once whether Redis and PostgreSQL answer; their tests read the answers through inject('redis'/'postgres').
    globalSetup: ['test/setup/redis.ts', 'test/setup/postgres.ts'],
    // Tests bind loopback ports and some start child processes; two cores, so keep the pool small.
    pool: 'forks',
    maxWorkers: 2,
  },
});
