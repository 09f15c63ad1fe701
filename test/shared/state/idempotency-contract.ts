import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ManualClock, manualClock } from '../../../shared/clock.js';
import { InvalidInputError } from '../../../shared/errors.js';
import {
  ABANDONED_LEASE_RETENTION_MS,
  type ClaimOutcome,
  type Clock,
  type IdempotencyRef,
  type IdempotencyStore,
} from '../../../shared/state/idempotency.js';

/** One store under test: handles opened on it share its records, as connections to one database do. */
export interface StoreUnderTest {
  /** Opens another handle (for SQLite and Redis: another connection) on the same records, reading `clock`. */
  open(clock: Clock): Promise<IdempotencyStore>;
  /** Removes what the test left behind (files, key prefixes). Handles are closed before this runs. */
  dispose(): Promise<void>;
}

const HOUR = 60 * 60 * 1000;
const LEASE = 30_000;
const REF: IdempotencyRef = { tenant: 'tenant-a', key: 'delivery-1' };

/**
 * Registers the idempotency-store contract for one kind of store. Every store must pass it unchanged; the clock is a
 * manual one shared by all handles, so no test sleeps.
 */
export interface ContractOptions {
  /** The store offers claimCompleted (claim and complete in one step); its part of the contract runs. */
  readonly claimCompleted?: boolean;
}

export function describeIdempotencyStoreContract(name: string, create: () => Promise<StoreUnderTest>, options: ContractOptions = {}): void {
  describe(`IdempotencyStore contract: ${name}`, () => {
    let sut: StoreUnderTest;
    let clock: ManualClock;
    let handles: IdempotencyStore[];
    let store: IdempotencyStore;

    const open = async (): Promise<IdempotencyStore> => {
      const handle = await sut.open(clock);
      handles.push(handle);
      return handle;
    };

    beforeEach(async () => {
      sut = await create();
      clock = manualClock();
      handles = [];
      store = await open();
    });
    afterEach(async () => {
      for (const handle of handles) await handle.close();
      await sut.dispose();
    });

    describe('claim', () => {
      it('claims a fresh key with a lease on the injected clock, keeping the fingerprint', async () => {
        const outcome = await store.claim(REF, { owner: 'w1', leaseMs: LEASE, fingerprint: 'fp-1' });
        expect(outcome).toEqual({
          status: 'claimed',
          record: {
            state: 'in_progress',
            ...REF,
            owner: 'w1',
            fingerprint: 'fp-1',
            createdAt: clock.now(),
            leaseExpiresAt: clock.now() + LEASE,
          },
        });
        expect(await store.get(REF)).toEqual(outcome.record);
      });

      it('reports the holder to a second claimer and does not steal a live lease', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        clock.advance(LEASE - 1);
        const second = await store.claim(REF, { owner: 'w2', leaseMs: LEASE });
        expect(second).toMatchObject({ status: 'in_progress', owner: 'w1', leaseExpiresAt: clock.now() + 1, leaseExpired: false });
        expect(await store.takeOver(REF, { owner: 'w2', leaseMs: LEASE })).toMatchObject({ status: 'in_progress', owner: 'w1' });
        expect(await store.get(REF)).toMatchObject({ owner: 'w1' });
      });

      it('lets exactly one of 100 concurrent claimers on 4 connections win', async () => {
        const connections = [store, await open(), await open(), await open()];
        const outcomes = await Promise.all(
          Array.from({ length: 100 }, (_, i) => connections[i % connections.length]?.claim(REF, { owner: `w${i}`, leaseMs: LEASE })),
        );
        const winners = outcomes.filter((outcome) => outcome?.status === 'claimed');
        expect(winners).toHaveLength(1);
        const winner = winners[0]?.record.owner;
        expect(outcomes.filter((outcome) => outcome?.status === 'in_progress' && outcome.owner === winner)).toHaveLength(99);
        expect(await store.get(REF)).toMatchObject({ state: 'in_progress', owner: winner });
      });

      it('rejects bad arguments with InvalidInputError', async () => {
        await expect(store.claim({ tenant: '', key: 'k' }, { owner: 'w1', leaseMs: LEASE })).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.claim(REF, { owner: 'w1', leaseMs: 0 })).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.claim(REF, { owner: '', leaseMs: LEASE })).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.complete(REF, 'w1', { result: 'x', ttlMs: 1.5 })).rejects.toBeInstanceOf(InvalidInputError);
        expect(await store.get(REF)).toBeUndefined();
      });
    });

    describe('complete', () => {
      it('stores the result for the TTL; later claims get the completed record', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE, fingerprint: 'fp-1' });
        clock.advance(1000);
        const result = JSON.stringify({ status: 201, body: 'ünïcødé ✓', big: 'x'.repeat(100_000) });
        expect(await store.complete(REF, 'w1', { result, ttlMs: 24 * HOUR })).toBe(true);
        const expected = {
          state: 'completed',
          ...REF,
          fingerprint: 'fp-1',
          createdAt: clock.now() - 1000,
          result,
          completedAt: clock.now(),
          expiresAt: clock.now() + 24 * HOUR,
        };
        expect(await store.get(REF)).toEqual(expected);
        expect(await store.claim(REF, { owner: 'w2', leaseMs: LEASE })).toEqual({ status: 'completed', record: expected });
        expect(await store.takeOver(REF, { owner: 'w2', leaseMs: LEASE })).toEqual({ status: 'completed', record: expected });
      });

      it('only the holder may complete', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        expect(await store.complete(REF, 'intruder', { result: 'bad', ttlMs: HOUR })).toBe(false);
        expect(await store.get(REF)).toMatchObject({ state: 'in_progress', owner: 'w1' });
        expect(await store.complete({ tenant: 'tenant-a', key: 'never-claimed' }, 'w1', { result: 'bad', ttlMs: HOUR })).toBe(false);
        expect(await store.get({ tenant: 'tenant-a', key: 'never-claimed' })).toBeUndefined();
      });

      it('cannot complete twice or overwrite a stored result', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        expect(await store.complete(REF, 'w1', { result: 'first', ttlMs: HOUR })).toBe(true);
        expect(await store.complete(REF, 'w1', { result: 'second', ttlMs: HOUR })).toBe(false);
        expect(await store.get(REF)).toMatchObject({ result: 'first' });
      });
    });

    // Registered only for stores that offer it, so no test stands skipped in a run.
    (options.claimCompleted ? describe : () => {})('claimCompleted', () => {
      const claimCompleted = (handle: IdempotencyStore, result: string, ttlMs = HOUR) => {
        if (!handle.claimCompleted) throw new Error('this store offers no claimCompleted');
        return handle.claimCompleted(REF, { result, ttlMs });
      };

      it('writes a completed record on a fresh key; a second call gets it and changes nothing', async () => {
        const expected = {
          state: 'completed',
          ...REF,
          createdAt: clock.now(),
          completedAt: clock.now(),
          expiresAt: clock.now() + HOUR,
          result: 'first',
        };
        expect(await claimCompleted(store, 'first')).toEqual({ status: 'claimed', record: expected });
        expect(await store.get(REF)).toEqual(expected);
        clock.advance(1000);
        expect(await claimCompleted(store, 'second')).toEqual({ status: 'completed', record: expected });
        expect(await store.claim(REF, { owner: 'w1', leaseMs: LEASE })).toEqual({ status: 'completed', record: expected });
      });

      it('does not take a live lease; its holder still completes', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        clock.advance(LEASE - 1);
        expect(await claimCompleted(store, 'intruder')).toMatchObject({ status: 'in_progress', owner: 'w1', leaseExpired: false });
        expect(await store.complete(REF, 'w1', { result: 'holder', ttlMs: HOUR })).toBe(true);
        expect(await store.get(REF)).toMatchObject({ state: 'completed', result: 'holder' });
      });

      it('takes over an expired lease; the crashed holder can then neither complete nor release', async () => {
        await store.claim(REF, { owner: 'crashed', leaseMs: LEASE });
        clock.advance(LEASE);
        expect(await claimCompleted(store, 'recovered')).toMatchObject({
          status: 'claimed',
          takenOverFrom: 'crashed',
          record: { state: 'completed', result: 'recovered' },
        });
        expect(await store.complete(REF, 'crashed', { result: 'late', ttlMs: HOUR })).toBe(false);
        expect(await store.release(REF, 'crashed')).toBe(false);
        expect(await store.get(REF)).toMatchObject({ state: 'completed', result: 'recovered' });
      });

      it('lets exactly one of 60 concurrent callers on 3 connections record its result', async () => {
        const connections = [store, await open(), await open()];
        const outcomes = await Promise.all(
          Array.from({ length: 60 }, (_, i) => claimCompleted(connections[i % connections.length] ?? store, `r${i}`)),
        );
        const winners = outcomes.filter((outcome) => outcome.status === 'claimed');
        expect(winners).toHaveLength(1);
        const stored = await store.get(REF);
        expect(stored).toEqual(winners[0]?.record);
        const storedResult = stored?.state === 'completed' ? stored.result : 'none';
        expect(outcomes.filter((outcome) => outcome.status === 'completed' && outcome.record.result === storedResult)).toHaveLength(59);
      });

      it('lives its TTL, then the key is recorded afresh; bad arguments are InvalidInputError', async () => {
        await claimCompleted(store, 'first', 5_000);
        clock.advance(5_000);
        expect(await claimCompleted(store, 'again')).toMatchObject({ status: 'claimed', record: { result: 'again' } });
        await expect(claimCompleted(store, 'x', 0)).rejects.toBeInstanceOf(InvalidInputError);
        await expect(store.claimCompleted?.({ tenant: '', key: 'k' }, { result: 'x', ttlMs: HOUR })).rejects.toBeInstanceOf(
          InvalidInputError,
        );
      });
    });

    describe('release', () => {
      it('a non-holder release has no effect; the holder release frees the key', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        expect(await store.release(REF, 'w2')).toBe(false);
        expect(await store.get(REF)).toMatchObject({ state: 'in_progress', owner: 'w1' });
        expect(await store.release(REF, 'w1')).toBe(true);
        expect(await store.get(REF)).toBeUndefined();
        expect(await store.claim(REF, { owner: 'w2', leaseMs: LEASE })).toMatchObject({ status: 'claimed', record: { owner: 'w2' } });
      });

      it('never removes a completed record', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        await store.complete(REF, 'w1', { result: 'done', ttlMs: HOUR });
        expect(await store.release(REF, 'w1')).toBe(false);
        expect(await store.get(REF)).toMatchObject({ state: 'completed', result: 'done' });
      });

      it('a stale holder cannot release the lease of whoever took it over', async () => {
        await store.claim(REF, { owner: 'stale', leaseMs: LEASE });
        clock.advance(LEASE);
        await store.takeOver(REF, { owner: 'fresh', leaseMs: LEASE });
        expect(await store.release(REF, 'stale')).toBe(false);
        expect(await store.get(REF)).toMatchObject({ owner: 'fresh' });
      });
    });

    describe('lease expiry and takeover', () => {
      it('reports an expired lease and lets exactly one of many racers take it over', async () => {
        await store.claim(REF, { owner: 'crashed', leaseMs: LEASE });
        clock.advance(LEASE);
        expect(await store.claim(REF, { owner: 'w1', leaseMs: LEASE })).toMatchObject({
          status: 'in_progress',
          owner: 'crashed',
          leaseExpired: true,
        });
        const connections = [store, await open(), await open()];
        const outcomes = await Promise.all(
          Array.from({ length: 30 }, (_, i) => connections[i % connections.length]?.takeOver(REF, { owner: `r${i}`, leaseMs: LEASE })),
        );
        const winners = outcomes.filter((outcome): outcome is ClaimOutcome & { status: 'claimed' } => outcome?.status === 'claimed');
        expect(winners).toHaveLength(1);
        expect(winners[0]?.takenOverFrom).toBe('crashed');
        expect(winners[0]?.record.leaseExpiresAt).toBe(clock.now() + LEASE);
        const winner = winners[0]?.record.owner;
        expect(
          outcomes.filter((outcome) => outcome?.status === 'in_progress' && outcome.owner === winner && !outcome.leaseExpired),
        ).toHaveLength(29);
        // The crashed holder wakes up: it can neither complete nor release.
        expect(await store.complete(REF, 'crashed', { result: 'late', ttlMs: HOUR })).toBe(false);
        expect(await store.release(REF, 'crashed')).toBe(false);
        expect(await store.complete(REF, winner ?? '', { result: 'ok', ttlMs: HOUR })).toBe(true);
      });

      it('takeOver of a free key is a plain claim', async () => {
        expect(await store.takeOver(REF, { owner: 'w1', leaseMs: LEASE })).toEqual({
          status: 'claimed',
          record: { state: 'in_progress', ...REF, owner: 'w1', createdAt: clock.now(), leaseExpiresAt: clock.now() + LEASE },
        });
      });

      it('a late holder may still complete when nobody took over', async () => {
        await store.claim(REF, { owner: 'slow', leaseMs: LEASE });
        clock.advance(LEASE * 2);
        expect(await store.complete(REF, 'slow', { result: 'ok', ttlMs: HOUR })).toBe(true);
        expect(await store.get(REF)).toMatchObject({ state: 'completed', result: 'ok' });
      });

      it('renewing keeps the lease from expiring; only the holder may renew', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        clock.advance(LEASE - 1000);
        expect(await store.renewLease(REF, 'w2', LEASE)).toBe(false);
        expect(await store.renewLease(REF, 'w1', LEASE)).toBe(true);
        clock.advance(LEASE - 1000);
        expect(await store.takeOver(REF, { owner: 'w2', leaseMs: LEASE })).toMatchObject({
          status: 'in_progress',
          owner: 'w1',
          leaseExpired: false,
        });
        clock.advance(1000);
        expect(await store.takeOver(REF, { owner: 'w2', leaseMs: LEASE })).toMatchObject({ status: 'claimed', takenOverFrom: 'w1' });
        expect(await store.renewLease(REF, 'w1', LEASE)).toBe(false);
      });

      it('an abandoned lease is gone after the retention period', async () => {
        await store.claim(REF, { owner: 'crashed', leaseMs: LEASE });
        clock.advance(LEASE + ABANDONED_LEASE_RETENTION_MS - 1);
        expect(await store.get(REF)).toMatchObject({ owner: 'crashed' });
        clock.advance(1);
        expect(await store.get(REF)).toBeUndefined();
        expect(await store.claim(REF, { owner: 'w1', leaseMs: LEASE })).toMatchObject({ status: 'claimed' });
      });
    });

    describe('TTL expiry on the injected clock', () => {
      it('a completed record lives exactly its TTL, then the key can be claimed afresh', async () => {
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        await store.complete(REF, 'w1', { result: 'done', ttlMs: 72 * HOUR });
        clock.advance(72 * HOUR - 1);
        expect(await store.get(REF)).toMatchObject({ state: 'completed' });
        expect(await store.claim(REF, { owner: 'w2', leaseMs: LEASE })).toMatchObject({ status: 'completed' });
        clock.advance(1);
        expect(await store.get(REF)).toBeUndefined();
        expect(await store.complete(REF, 'w1', { result: 'again', ttlMs: HOUR })).toBe(false);
        const fresh = await store.claim(REF, { owner: 'w2', leaseMs: LEASE });
        expect(fresh).toEqual({
          status: 'claimed',
          record: { state: 'in_progress', ...REF, owner: 'w2', createdAt: clock.now(), leaseExpiresAt: clock.now() + LEASE },
        });
      });

      it('purgeExpired deletes gone records (Redis evicts by itself) and keeps live ones', async () => {
        const live = { tenant: 'tenant-a', key: 'live' };
        await store.claim(REF, { owner: 'w1', leaseMs: LEASE });
        await store.complete(REF, 'w1', { result: 'done', ttlMs: HOUR });
        await store.claim({ tenant: 'tenant-a', key: 'abandoned' }, { owner: 'w1', leaseMs: LEASE });
        clock.advance(HOUR);
        await store.claim(live, { owner: 'w1', leaseMs: LEASE });
        clock.advance(ABANDONED_LEASE_RETENTION_MS);
        await store.renewLease(live, 'w1', LEASE);
        expect(await store.purgeExpired()).toBe(store.kind === 'redis' ? 0 : 2);
        expect(await store.get(REF)).toBeUndefined();
        expect(await store.get(live)).toMatchObject({ owner: 'w1' });
      });
    });

    describe('tenant isolation', () => {
      it('the same key in two tenants is two records', async () => {
        const a = { tenant: 'tenant-a', key: 'shared-key' };
        const b = { tenant: 'tenant-b', key: 'shared-key' };
        expect(await store.claim(a, { owner: 'wa', leaseMs: LEASE })).toMatchObject({ status: 'claimed' });
        expect(await store.claim(b, { owner: 'wb', leaseMs: LEASE })).toMatchObject({ status: 'claimed' });
        expect(await store.release(b, 'wa')).toBe(false);
        expect(await store.complete(b, 'wa', { result: 'a', ttlMs: HOUR })).toBe(false);
        expect(await store.complete(a, 'wa', { result: 'a', ttlMs: HOUR })).toBe(true);
        expect(await store.get(b)).toMatchObject({ state: 'in_progress', owner: 'wb', tenant: 'tenant-b' });
        expect(await store.get(a)).toMatchObject({ state: 'completed', result: 'a', tenant: 'tenant-a' });
      });

      it('separators in tenant names cannot make two refs collide', async () => {
        const first = { tenant: 'a:b', key: 'c' };
        const second = { tenant: 'a', key: 'b:c' };
        await store.claim(first, { owner: 'w1', leaseMs: LEASE });
        expect(await store.claim(second, { owner: 'w2', leaseMs: LEASE })).toMatchObject({ status: 'claimed' });
        expect(await store.get(first)).toMatchObject({ owner: 'w1', tenant: 'a:b', key: 'c' });
      });
    });
  });
}
