import { spawnSync } from 'node:child_process';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { StateLostError } from '../../../../shared/errors.js';
import { memoryLogger } from '../../../../shared/log.js';
import { openState } from '../../../../shared/state/open-state.js';
import { connectRedis, RedisNotPersistentError, readRedisPersistence } from '../../../../shared/state/redis/connection.js';
import { RedisIdempotencyStore } from '../../../../shared/state/redis/idempotency.js';
import { RedisOutboxStore } from '../../../../shared/state/redis/outbox.js';
import { openIdempotencyStore, openOutboxStore } from '../open-one.js';
import { startRedisServer } from './server.js';
import { connectTestRedis, deleteRedisKeys, redisEnv, skipRedisTests, uniqueRedisPrefix } from './test-env.js';

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

describe.skipIf(skipRedisTests)('Redis only when it persists', () => {
  let client: Redis;
  const prefixes: string[] = [];
  const prefix = (label: string): string => {
    const made = uniqueRedisPrefix(label);
    prefixes.push(made);
    return made;
  };
  beforeAll(async () => {
    client = await connectTestRedis();
  });
  afterAll(async () => {
    for (const made of prefixes) await deleteRedisKeys(client, made);
    await client.quit();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  describe('the openers check persistence', () => {
    it('refuse the volatile test Redis, saying how to turn persistence on', async (context) => {
      const persistence = await readRedisPersistence(client);
      if (persistence.aof || persistence.rdb) context.skip('the test Redis persists; CI runs one that does not');
      const location = { kind: 'redis', url: redisEnv.url } as const;
      const expectRefusal = async (opening: Promise<unknown>): Promise<void> => {
        const error = await opening.then(
          () => new Error('opened'),
          (reason: unknown) => reason,
        );
        expect(error).toBeInstanceOf(RedisNotPersistentError);
        expect((error as Error).message).toMatch(/keeps nothing on disk/);
        expect((error as Error).message).toContain('appendonly yes');
        expect((error as Error).message).toContain('save 60 1000');
        expect((error as Error).message).toContain('CONFIG SET');
        expect((error as Error).message).toContain('ONCEKIT_REDIS_ALLOW_VOLATILE=1');
      };
      await expectRefusal(openIdempotencyStore(location, { redisKeyPrefix: prefix('refuse') }));
      await expectRefusal(openOutboxStore(location, { redisKeyPrefix: prefix('refuse') }));
      await expectRefusal(openState(location, { redisKeyPrefix: prefix('refuse') }));
    });

    it('open it with allowVolatile, and say so loudly through the logger', async () => {
      const logger = memoryLogger();
      const store = await openOutboxStore(
        { kind: 'redis', url: redisEnv.url },
        { redisKeyPrefix: prefix('volatile'), allowVolatile: true, logger },
      );
      await store.close();
      const persistence = await readRedisPersistence(client);
      if (persistence.aof || persistence.rdb) return;
      expect(logger.lines).toEqual([
        expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ event: 'redis_volatile' }) }),
      ]);
      expect(logger.lines[0]?.message).toMatch(/WARNING: .*keeps nothing on disk.*ONCEKIT_REDIS_ALLOW_VOLATILE=1/);
    });

    describe.skipIf(!hasRedisServer)('on a Redis of the test’s own', () => {
      it('open one with AOF on, and one with only RDB snapshots, without a warning', async () => {
        const server = await startRedisServer(['--save', '', '--appendonly', 'yes']);
        try {
          const logger = memoryLogger();
          const location = { kind: 'redis', url: server.url } as const;
          const idem = await openIdempotencyStore(location, { logger });
          expect(await idem.claim({ tenant: 't', key: 'k' }, { owner: 'w', leaseMs: 1000 })).toMatchObject({ status: 'claimed' });
          await idem.close();
          const admin = await connectRedis(server.url, 1000);
          await admin.call('CONFIG', 'SET', 'appendonly', 'no');
          await admin.call('CONFIG', 'SET', 'save', '60 1000');
          const outbox = await openOutboxStore(location, { logger });
          expect(outbox.kind).toBe('redis');
          await outbox.close();
          await admin.call('CONFIG', 'SET', 'save', '');
          await expect(openOutboxStore(location, { logger })).rejects.toBeInstanceOf(RedisNotPersistentError);
          admin.disconnect();
          expect(logger.lines).toEqual([]);
        } finally {
          await server.stop();
        }
      });

      it('fall back to INFO persistence when CONFIG is renamed away', async () => {
        const server = await startRedisServer(['--save', '', '--appendonly', 'yes', '--rename-command', 'CONFIG', '']);
        try {
          const admin = await connectRedis(server.url, 1000);
          expect(await readRedisPersistence(admin)).toEqual({ aof: true, rdb: false, source: 'info' });
          admin.disconnect();
          const store = await openIdempotencyStore({ kind: 'redis', url: server.url });
          await store.close();
        } finally {
          await server.stop();
        }
      });
    });
  });

  describe('the marker', () => {
    it('makes every idempotency operation fail with StateLostError once it is deleted', async () => {
      const keyPrefix = prefix('marker-idem');
      const store = new RedisIdempotencyStore({ client, keyPrefix });
      const ref = { tenant: 't', key: 'k' };
      await store.claim(ref, { owner: 'w', leaseMs: 30_000 });
      expect(await client.hget(`${keyPrefix}marker`, 'id')).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number(await client.hget(`${keyPrefix}marker`, 'createdAt'))).toBeGreaterThan(0);
      // A wipe: every key goes, the marker with them.
      await deleteRedisKeys(client, keyPrefix);
      await expect(store.claim(ref, { owner: 'w2', leaseMs: 30_000 })).rejects.toBeInstanceOf(StateLostError);
      await expect(store.takeOver(ref, { owner: 'w2', leaseMs: 30_000 })).rejects.toBeInstanceOf(StateLostError);
      await expect(store.get(ref)).rejects.toBeInstanceOf(StateLostError);
      await expect(store.complete(ref, 'w', { result: 'r', ttlMs: 1000 })).rejects.toThrow(/data was lost/);
      await expect(store.release(ref, 'w')).rejects.toBeInstanceOf(StateLostError);
      await expect(store.renewLease(ref, 'w', 1000)).rejects.toBeInstanceOf(StateLostError);
      await expect(store.claimCompleted(ref, { result: 'r', ttlMs: 1000 })).rejects.toBeInstanceOf(StateLostError);
      expect(await client.exists(`${keyPrefix}idem:t:k`)).toBe(0);
    });

    it('makes the outbox fail, reads included, when it is gone or another process wrote a new one', async () => {
      const keyPrefix = prefix('marker-outbox');
      const store = new RedisOutboxStore({ client, keyPrefix });
      const input = { userId: 'u', accountId: 'a', events: [{ key: 'signup' }] };
      const event = { tenant: 't', target: 'g', source: 's', sourceId: '1', dedupKey: 'd1', input, keyDecision: null } as const;
      await store.enqueue([event]);
      expect((await store.counts('t')).pending).toBe(1);
      await deleteRedisKeys(client, keyPrefix);
      // A process started after the wipe writes a marker of its own: the old handle must not accept it as its state.
      const newcomer = new RedisOutboxStore({ client, keyPrefix });
      await newcomer.ready();
      await expect(store.counts('t')).rejects.toBeInstanceOf(StateLostError);
      await expect(store.enqueue([{ ...event, dedupKey: 'd2' }])).rejects.toBeInstanceOf(StateLostError);
      await expect(store.lease({ tenant: 't', target: 'g', owner: 'w', limit: 10, leaseMs: 1000 })).rejects.toBeInstanceOf(StateLostError);
      await expect(store.findBySourceId('t', '1')).rejects.toBeInstanceOf(StateLostError);
      await expect(store.nextDueAt('t', 'g')).rejects.toBeInstanceOf(StateLostError);
      await expect(store.requeueDead({ tenant: 't' })).rejects.toBeInstanceOf(StateLostError);
      expect((await newcomer.counts('t')).pending).toBe(0);
    });
  });

  describe('time is the server’s', () => {
    it('a caller whose clock runs minutes ahead takes over no live idempotency lease', async () => {
      const keyPrefix = prefix('skew-idem');
      const holder = new RedisIdempotencyStore({ client, keyPrefix });
      const ref = { tenant: 't', key: 'k' };
      const before = Date.now();
      const claimed = await holder.claim(ref, { owner: 'holder', leaseMs: 60_000 });
      expect(claimed.status).toBe('claimed');
      // The other host's clock is 10 minutes ahead: by its clock the lease ran out long ago.
      const other = await connectTestRedis();
      try {
        const ahead = new RedisIdempotencyStore({ client: other, keyPrefix });
        vi.spyOn(Date, 'now').mockImplementation(() => before + 10 * 60_000);
        const outcome = await ahead.takeOver(ref, { owner: 'ahead', leaseMs: 60_000 });
        expect(outcome).toMatchObject({ status: 'in_progress', owner: 'holder', leaseExpired: false });
        expect(await ahead.renewLease(ref, 'holder', 60_000)).toBe(true);
        vi.restoreAllMocks();
        // The record's times are the server's, not the skewed host's.
        const record = await holder.get(ref);
        expect(record?.createdAt).toBeGreaterThanOrEqual(before - 5_000);
        expect(record?.createdAt).toBeLessThan(before + 60_000);
      } finally {
        other.disconnect();
      }
    });

    it('a worker whose clock runs minutes ahead leases no event another worker holds, nor one not yet due', async () => {
      const keyPrefix = prefix('skew-outbox');
      const holder = new RedisOutboxStore({ client, keyPrefix });
      const input = { userId: 'u', accountId: 'a', events: [{ key: 'signup' }] };
      const base = { tenant: 't', target: 'g', source: 's', input, keyDecision: null } as const;
      await holder.enqueue([
        { ...base, sourceId: '1', dedupKey: 'd1' },
        { ...base, sourceId: '2', dedupKey: 'd2' },
      ]);
      const leased = await holder.lease({ tenant: 't', target: 'g', owner: 'holder', limit: 2, leaseMs: 60_000 });
      expect(leased).toHaveLength(2);
      const [first] = leased;
      if (!first) throw new Error('nothing leased');
      // A retry due in 60 s, decided on the holder's clock.
      expect(await holder.settle([{ id: first.id, owner: 'holder', attempt: null, to: 'pending', dueAt: Date.now() + 60_000 }])).toEqual([
        true,
      ]);
      const other = await connectTestRedis();
      try {
        const ahead = new RedisOutboxStore({ client: other, keyPrefix });
        const realNow = Date.now();
        vi.spyOn(Date, 'now').mockImplementation(() => realNow + 10 * 60_000);
        expect(await ahead.lease({ tenant: 't', target: 'g', owner: 'ahead', limit: 10, leaseMs: 60_000 })).toEqual([]);
        // nextDueAt is on the caller's clock: about 60 s from its (skewed) now, not 9 minutes in its past.
        const next = await ahead.nextDueAt('t', 'g');
        expect(next).not.toBeNull();
        expect((next ?? 0) - Date.now()).toBeGreaterThan(50_000);
      } finally {
        other.disconnect();
      }
    });
  });

  describe('checkpoints', () => {
    it('live under the prefix, with scope and stream encoded, behind the marker', async () => {
      const keyPrefix = prefix('checkpoints');
      const location = { kind: 'redis', url: redisEnv.url } as const;
      const logger = memoryLogger();
      const state = await openState(location, { redisKeyPrefix: keyPrefix, allowVolatile: true, logger });
      const checkpoints = state.checkpoints;
      try {
        await checkpoints.save('a:b', '/event/X__e', '41');
        await checkpoints.save('a', 'b:/event/X__e', '7');
        expect(await client.get(`${keyPrefix}checkpoint:a%3Ab:%2Fevent%2FX__e`)).toBe('41');
        expect(await client.get(`${keyPrefix}checkpoint:a:b%3A%2Fevent%2FX__e`)).toBe('7');
        expect(await checkpoints.load('a:b', '/event/X__e')).toBe('41');
        expect(await checkpoints.load('a', 'b:/event/X__e')).toBe('7');
        expect(await checkpoints.load('a:b', '/event/Other__e')).toBeNull();
        await client.del(`${keyPrefix}marker`);
        await expect(checkpoints.save('a:b', '/event/X__e', '42')).rejects.toBeInstanceOf(StateLostError);
        await expect(checkpoints.load('a:b', '/event/X__e')).rejects.toBeInstanceOf(StateLostError);
      } finally {
        await state.close();
      }
    });
  });
});
