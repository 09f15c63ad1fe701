import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ManualClock, manualClock } from '../../../shared/clock.js';
import { InvalidInputError } from '../../../shared/errors.js';
import type { UserEventInput } from '../../../shared/events/index.js';
import type { KeyDecision } from '../../../shared/keys/index.js';
import type { AttemptRecord, NewOutboxEvent, OutboxStore, Settlement, UnmappableEvent } from '../../../shared/outbox/index.js';
import { isPossibleDuplicate, mayHaveLanded, OutboxStoreError } from '../../../shared/outbox/index.js';

/** Opens handles onto ONE backing store (separate connections where the store has them), and cleans it up. */
export interface OutboxStoreHarness {
  open(clock: ManualClock): Promise<OutboxStore>;
  dispose(): Promise<void>;
}

const TENANT = 'acme';
const TARGET = 'https://a.target.test';
const LEASE_MS = 30_000;

let sequence = 0;
export function outboxEvent(overrides: Partial<NewOutboxEvent> & { key?: string | null } = {}): NewOutboxEvent {
  sequence += 1;
  const { key = `key-${sequence}-abcdef`, ...rest } = overrides;
  const input: UserEventInput = {
    userId: 'ann',
    accountId: 'acct-1',
    ...(key === null ? {} : { idempotencyKey: key }),
    events: [{ key: 'purchase', fields: { revenue: sequence, currency: 'USD' }, dateTriggered: 1_700_000_000_000 }],
  };
  const keyDecision: KeyDecision | null =
    key === null
      ? { source: 'import', candidate: null, key: null, decision: 'dropped', reason: 'missing', detail: null }
      : { source: 'import', candidate: key, key, decision: 'kept', reason: null, detail: null };
  return {
    tenant: TENANT,
    target: TARGET,
    source: 'import',
    sourceId: `events.csv:${sequence}`,
    dedupKey: key === null ? `row:${sequence}` : `key:${key}`,
    input,
    keyDecision,
    ...rest,
  };
}

export function unmappableEvent(overrides: Partial<UnmappableEvent> = {}): UnmappableEvent {
  sequence += 1;
  const text = `{"Fields__c":"${'['.repeat(40)}","n":${sequence}}`;
  return {
    tenant: TENANT,
    target: TARGET,
    source: 'salesforce-platform-event',
    sourceId: `replay-${sequence}`,
    dedupKey: `salesforce-platform-event:uuid-${sequence}`,
    reason: 'could not be mapped: RangeError: Maximum call stack size exceeded',
    raw: { text, bytes: Buffer.byteLength(text), truncated: false },
    ...overrides,
  };
}

const attempt = (overrides: Partial<AttemptRecord> = {}): AttemptRecord => ({
  number: 1,
  startedAt: 0,
  finishedAt: 0,
  outcome: 'accepted',
  status: 200,
  message: null,
  apiErrorCode: null,
  rsCode: null,
  requests: 1,
  uncertainRequests: 0,
  eventIds: ['evt-1'],
  ...overrides,
});

/** A failed attempt started at `startedAt`: `uncertainRequests` > 0 (a 5xx, no answer) may have landed, 0 (a 429) did not. */
export const failedAttempt = (startedAt: number, status: number, uncertainRequests: number): AttemptRecord =>
  attempt({ startedAt, finishedAt: startedAt + 10, outcome: 'failed', status, uncertainRequests, eventIds: [] });

const rejectedAttempt = (): AttemptRecord =>
  attempt({ outcome: 'rejected', status: 400, message: 'bad event', apiErrorCode: 'VALIDATION_FAILED', eventIds: [] });

/** The one contract every outbox store meets; each store's test file runs it with its own harness. */
export function describeOutboxStoreContract(
  name: string,
  /** durable: a fresh handle sees what an earlier one wrote after that one was closed (not memory). */
  traits: { readonly durable: boolean },
  makeHarness: () => Promise<OutboxStoreHarness>,
): void {
  describe(`OutboxStore contract: ${name}`, () => {
    let harness: OutboxStoreHarness;
    let clock: ManualClock;
    let store: OutboxStore;

    beforeEach(async () => {
      harness = await makeHarness();
      clock = manualClock();
      store = await harness.open(clock);
    });
    afterEach(async () => {
      await store.close();
      await harness.dispose();
    });

    const lease = (limit = 10, owner = 'worker-a', tenant = TENANT, target = TARGET) =>
      store.lease({ tenant, target, owner, limit, leaseMs: LEASE_MS });

    it('persists enqueued events and returns their ids in order; the ledger shows them pending with their key decision', async () => {
      const events = [outboxEvent(), outboxEvent({ key: null })];
      const results = await store.enqueue(events);
      expect(results).toEqual([
        { id: expect.any(String), outcome: 'created', state: 'pending', updatedAt: clock.now(), mayHaveLanded: false },
        { id: expect.any(String), outcome: 'created', state: 'pending', updatedAt: clock.now(), mayHaveLanded: false },
      ]);
      expect(new Set(results.map((result) => result.id)).size).toBe(2);
      const [first, second] = results;
      const entry = await store.get(TENANT, first?.id ?? '');
      expect(entry).toEqual({
        id: first?.id,
        tenant: TENANT,
        target: TARGET,
        source: 'import',
        sourceId: events[0]?.sourceId,
        dedupKey: events[0]?.dedupKey,
        key: events[0]?.input.idempotencyKey,
        keyDecision: events[0]?.keyDecision,
        input: events[0]?.input,
        unmappable: null,
        state: 'pending',
        enqueuedAt: clock.now(),
        updatedAt: clock.now(),
        dueAt: clock.now(),
        leaseExpiresAt: null,
        firstAttemptAt: null,
        landedSince: null,
        deadReason: null,
        deadAt: null,
        attempts: [],
      });
      expect(await store.get(TENANT, second?.id ?? '')).toMatchObject({
        key: null,
        keyDecision: { decision: 'dropped', reason: 'missing' },
      });
      expect(await store.counts(TENANT)).toEqual({ pending: 2, leased: 0, delivered: 0, duplicate: 0, dead: 0 });
    });

    it('adds nothing for a dedupKey the tenant already has, and says which record it is', async () => {
      const event = outboxEvent();
      const [created] = await store.enqueue([event]);
      const enqueuedAt = clock.now();
      clock.advance(5);
      const [again] = await store.enqueue([{ ...event, sourceId: 'other.csv:9' }]);
      expect(again).toEqual({ id: created?.id, outcome: 'existing', state: 'pending', updatedAt: enqueuedAt, mayHaveLanded: false });
      expect((await store.counts(TENANT)).pending).toBe(1);
      // Twice in one call: the second is the first's duplicate.
      const twin = outboxEvent();
      const results = await store.enqueue([twin, twin]);
      expect(results.map((result) => result.outcome)).toEqual(['created', 'existing']);
      expect(results[1]?.id).toBe(results[0]?.id);
    });

    it('enqueues already leased to the caller when asked: ready to send, invisible to others, back when the lease runs out', async () => {
      const first = outboxEvent();
      const second = outboxEvent();
      const results = await store.enqueue([first, second], { lease: { owner: 'producer', leaseMs: LEASE_MS } });
      expect(results.map((result) => [result.outcome, result.state])).toEqual([
        ['created', 'leased'],
        ['created', 'leased'],
      ]);
      expect(results[0]?.leased).toEqual({
        id: results[0]?.id,
        tenant: TENANT,
        target: TARGET,
        source: 'import',
        sourceId: first.sourceId,
        input: first.input,
        firstAttemptAt: clock.now(),
        leasedAt: clock.now(),
        leaseExpiresAt: clock.now() + LEASE_MS,
        owner: 'producer',
        previousAttempts: 0,
        mayHaveLanded: false,
        landedSince: null,
      });
      expect(await store.counts(TENANT)).toMatchObject({ pending: 0, leased: 2 });
      expect(await lease(10, 'someone-else')).toEqual([]);
      expect(await store.nextDueAt(TENANT, TARGET)).toBe(clock.now() + LEASE_MS);
      const [again] = await store.enqueue([first], { lease: { owner: 'producer', leaseMs: LEASE_MS } });
      expect(again).toEqual({ id: results[0]?.id, outcome: 'existing', state: 'leased', updatedAt: clock.now(), mayHaveLanded: false });

      expect(await store.settle([{ id: results[0]?.id ?? '', owner: 'producer', attempt: attempt(), to: 'delivered' }])).toEqual([true]);
      clock.advance(LEASE_MS);
      const [taken] = await lease(10, 'someone-else');
      expect(taken).toMatchObject({ id: results[1]?.id, previousAttempts: 1, owner: 'someone-else', mayHaveLanded: true });
      expect((await store.get(TENANT, results[1]?.id ?? ''))?.attempts.map((a) => a.outcome)).toEqual(['abandoned']);
      await expect(store.enqueue([outboxEvent()], { lease: { owner: '', leaseMs: 1 } })).rejects.toBeInstanceOf(InvalidInputError);
    });

    it('revives a rejected dead letter leased to the caller when asked', async () => {
      const original = outboxEvent();
      const [created] = await store.enqueue([original]);
      await lease(1);
      await store.settle([{ id: created?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' }]);
      const corrected = { ...original, input: { ...original.input, accountId: 'acct-fixed' } };
      const [revived] = await store.enqueue([corrected], { lease: { owner: 'producer', leaseMs: LEASE_MS } });
      expect(revived).toMatchObject({
        id: created?.id,
        outcome: 'revived',
        state: 'leased',
        leased: { previousAttempts: 1, owner: 'producer', input: corrected.input },
      });
      expect(await store.counts(TENANT)).toMatchObject({ dead: 0, leased: 1 });
    });

    // Found by the outbox model test (outbox-model.test.ts): PostgreSQL answered `existing` for the corrected twin.
    it('answers twins in one call as one-by-one enqueues would: a corrected twin after the unchanged one revives the dead letter', async () => {
      const original = outboxEvent();
      const [created] = await store.enqueue([original]);
      await lease(1);
      await store.settle([{ id: created?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' }]);
      const diedAt = clock.now();
      clock.advance(5);
      const corrected = { ...original, input: { ...original.input, accountId: 'acct-fixed' } };
      const again = { ...original, input: { ...original.input, accountId: 'acct-fixed-again' } };
      expect(await store.enqueue([original, corrected, again])).toEqual([
        { id: created?.id, outcome: 'existing', state: 'dead', updatedAt: diedAt, mayHaveLanded: false },
        { id: created?.id, outcome: 'revived', state: 'pending', updatedAt: clock.now(), mayHaveLanded: false },
        { id: created?.id, outcome: 'existing', state: 'pending', updatedAt: clock.now(), mayHaveLanded: false },
      ]);
      expect(await store.get(TENANT, created?.id ?? '')).toMatchObject({ state: 'pending', input: { accountId: 'acct-fixed' } });
      expect(await store.counts(TENANT)).toMatchObject({ dead: 0, pending: 1 });
    });

    // Found by the outbox model test: SQLite, Redis and PostgreSQL leased it under the source of the corrected payload.
    it("revives a dead letter leased to the caller under the record's own source, the one its ledger shows", async () => {
      const original = outboxEvent();
      const [created] = await store.enqueue([original]);
      await lease(1);
      await store.settle([{ id: created?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' }]);
      const fromElsewhere = { ...original, source: 'segment', input: { ...original.input, accountId: 'acct-fixed' } };
      const [revived] = await store.enqueue([fromElsewhere], { lease: { owner: 'producer', leaseMs: LEASE_MS } });
      expect(revived).toMatchObject({ outcome: 'revived', leased: { source: 'import', sourceId: original.sourceId } });
      expect(await store.get(TENANT, created?.id ?? '')).toMatchObject({ source: 'import' });
      expect(await store.counts(TENANT, { source: 'import' })).toMatchObject({ leased: 1 });
    });

    it('keeps tenants apart: the same dedupKey in two tenants is two events, and a lease sees only its tenant', async () => {
      const event = outboxEvent();
      const [a] = await store.enqueue([event]);
      const [b] = await store.enqueue([{ ...event, tenant: 'globex' }]);
      expect(b?.outcome).toBe('created');
      expect(b?.id).not.toBe(a?.id);
      expect(await store.get('globex', a?.id ?? '')).toBeUndefined();
      expect((await lease(10, 'w', 'globex')).map((leased) => leased.id)).toEqual([b?.id]);
      expect(await lease(10, 'w', 'initech')).toEqual([]);
      expect(await store.findByKey('globex', event.input.idempotencyKey ?? '')).toHaveLength(1);
    });

    it('renews the leases its owner still holds, from now, and only those', async () => {
      const [a, b] = await store.enqueue([outboxEvent(), outboxEvent()]);
      await lease(2, 'worker-a');
      clock.advance(LEASE_MS - 1000);
      expect(await store.renewLeases('worker-a', [a?.id ?? '', 'ob_missing'], LEASE_MS)).toEqual([a?.id]);
      expect(await store.renewLeases('worker-b', [b?.id ?? ''], LEASE_MS)).toEqual([]);
      expect((await store.get(TENANT, a?.id ?? ''))?.leaseExpiresAt).toBe(clock.now() + LEASE_MS);
      clock.advance(1000);
      // b's lease ran out; a's was renewed, so only b is leasable again.
      expect((await lease(10, 'worker-b')).map((event) => event.id)).toEqual([b?.id]);
      expect(await store.renewLeases('worker-a', [b?.id ?? ''], LEASE_MS)).toEqual([]);
      await store.settle([{ id: a?.id ?? '', owner: 'worker-a', attempt: attempt(), to: 'delivered' }]);
      expect(await store.renewLeases('worker-a', [a?.id ?? ''], LEASE_MS)).toEqual([]);
      expect(await store.renewLeases('worker-a', [], LEASE_MS)).toEqual([]);
    });

    it('prunes settled events older than the retention, with their attempts and counts, and nothing else', async () => {
      const first = outboxEvent();
      const [delivered, dead, pending] = await store.enqueue([first, outboxEvent(), outboxEvent()]);
      const held = await lease(2);
      await store.settle([
        { id: held[0]?.id ?? '', owner: 'worker-a', attempt: attempt(), to: 'delivered' },
        { id: held[1]?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' },
      ]);
      clock.advance(10_000);
      expect(await store.pruneSettled(20_000)).toBe(0);
      clock.advance(20_000);
      const [late] = await store.enqueue([outboxEvent()]);
      expect(await store.pruneSettled(20_000, 1)).toBe(1);
      expect(await store.pruneSettled(20_000)).toBe(1);
      expect(await store.get(TENANT, delivered?.id ?? '')).toBeUndefined();
      expect(await store.get(TENANT, dead?.id ?? '')).toBeUndefined();
      expect((await store.get(TENANT, pending?.id ?? ''))?.state).toBe('pending');
      expect((await store.get(TENANT, late?.id ?? ''))?.state).toBe('pending');
      expect(await store.counts(TENANT)).toEqual({ pending: 2, leased: 0, delivered: 0, duplicate: 0, dead: 0 });
      expect(await store.listDead(TENANT)).toEqual([]);
      // A pruned event is forgotten: the same event enqueued again is a new one (why the retention outlasts retries).
      const [again] = await store.enqueue([first]);
      expect(again?.outcome).toBe('created');
    });

    it('keeps targets apart: the same dedupKey for two targets is two events, each leased only by its target', async () => {
      const event = outboxEvent();
      const [a] = await store.enqueue([event]);
      const [b] = await store.enqueue([{ ...event, target: 'https://b.target.test' }]);
      const [again] = await store.enqueue([{ ...event, target: 'https://b.target.test' }]);
      expect(b?.outcome).toBe('created');
      expect(b?.id).not.toBe(a?.id);
      expect(again).toMatchObject({ id: b?.id, outcome: 'existing' });
      expect((await lease(10, 'w', TENANT, 'https://b.target.test')).map((leased) => [leased.id, leased.target])).toEqual([
        [b?.id, 'https://b.target.test'],
      ]);
      expect(await lease(10, 'w', TENANT, 'https://c.target.test')).toEqual([]);
      expect(await store.nextDueAt(TENANT, 'https://c.target.test')).toBeNull();
      expect(await store.counts(TENANT, { target: TARGET })).toMatchObject({ pending: 1, leased: 0 });
      expect(await store.counts(TENANT, { target: 'https://b.target.test' })).toMatchObject({ pending: 0, leased: 1 });
      expect(await store.counts(TENANT)).toMatchObject({ pending: 1, leased: 1 });
      // The ledger shows each event's target; a lookup by key finds both.
      const entries = await store.findByKey(TENANT, event.input.idempotencyKey ?? '');
      expect(entries.map((entry) => entry.target).sort()).toEqual([TARGET, 'https://b.target.test']);
      expect((await store.get(TENANT, a?.id ?? ''))?.target).toBe(TARGET);
    });

    it('requeues the dead letters of one target only, when asked for one', async () => {
      const [a] = await store.enqueue([outboxEvent()]);
      const [b] = await store.enqueue([outboxEvent({ target: 'https://b.target.test' })]);
      const [heldA] = await lease(1, 'w', TENANT, TARGET);
      const [heldB] = await lease(1, 'w', TENANT, 'https://b.target.test');
      await store.settle([
        { id: heldA?.id ?? '', owner: 'w', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' },
        { id: heldB?.id ?? '', owner: 'w', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' },
      ]);
      expect(await store.requeueDead({ tenant: TENANT, target: 'https://b.target.test' })).toEqual([b?.id]);
      expect((await store.get(TENANT, a?.id ?? ''))?.state).toBe('dead');
    });

    it('leases due events oldest first, up to the limit, and never the same event twice while the lease holds', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        ids.push(...(await store.enqueue([outboxEvent()])).map((result) => result.id));
        clock.advance(1);
      }
      const first = await lease(3, 'worker-a');
      expect(first.map((event) => event.id)).toEqual(ids.slice(0, 3));
      expect(first[0]).toMatchObject({
        tenant: TENANT,
        source: 'import',
        owner: 'worker-a',
        leasedAt: clock.now(),
        leaseExpiresAt: clock.now() + LEASE_MS,
        firstAttemptAt: clock.now(),
        previousAttempts: 0,
      });
      const second = await lease(10, 'worker-b');
      expect(second.map((event) => event.id)).toEqual(ids.slice(3));
      expect(await lease(10, 'worker-c')).toEqual([]);
      expect(await store.counts(TENANT)).toMatchObject({ pending: 0, leased: 5 });
    });

    it('gives each event to exactly one of many concurrent leasers on separate connections', async () => {
      const other = await harness.open(clock);
      try {
        const events = Array.from({ length: 120 }, () => outboxEvent());
        await store.enqueue(events);
        const leasers = Array.from({ length: 12 }, (_, index) => (index % 2 === 0 ? store : other));
        const batches = await Promise.all(
          leasers.map((handle, index) =>
            handle.lease({ tenant: TENANT, target: TARGET, owner: `w${index}`, limit: 15, leaseMs: LEASE_MS }),
          ),
        );
        const leased = batches.flat().map((event) => event.id);
        expect(leased).toHaveLength(120);
        expect(new Set(leased).size).toBe(120);
      } finally {
        await other.close();
      }
    });

    it('settles delivered, duplicate, dead and pending, recording the attempt; a settle without the lease changes nothing', async () => {
      await store.enqueue([outboxEvent(), outboxEvent(), outboxEvent(), outboxEvent()]);
      const [a, b, c, d] = await lease(4, 'worker-a');
      if (!a || !b || !c || !d) throw new Error('expected four leased events');
      clock.advance(50);
      const settlements: Settlement[] = [
        { id: a.id, owner: 'worker-a', attempt: attempt({ startedAt: 1, finishedAt: 2 }), to: 'delivered' },
        {
          id: b.id,
          owner: 'worker-a',
          attempt: attempt({ outcome: 'duplicate', status: 409, message: 'seen', eventIds: [] }),
          to: 'duplicate',
        },
        { id: c.id, owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected by the target: HTTP 400' },
        {
          id: d.id,
          owner: 'worker-a',
          attempt: attempt({ outcome: 'failed', status: null, message: 'ECONNRESET', uncertainRequests: 1, eventIds: [] }),
          to: 'pending',
          dueAt: clock.now() + 5000,
        },
      ];
      expect(await store.settle([{ ...settlements[0], owner: 'intruder' } as Settlement])).toEqual([false]);
      expect((await store.get(TENANT, a.id))?.state).toBe('leased');
      expect(await store.settle(settlements)).toEqual([true, true, true, true]);
      expect(await store.settle(settlements)).toEqual([false, false, false, false]);

      expect(await store.get(TENANT, a.id)).toMatchObject({
        state: 'delivered',
        leaseExpiresAt: null,
        attempts: [{ number: 1, startedAt: 1, finishedAt: 2, outcome: 'accepted', status: 200, requests: 1, eventIds: ['evt-1'] }],
      });
      expect(await store.get(TENANT, b.id)).toMatchObject({
        state: 'duplicate',
        attempts: [{ outcome: 'duplicate', status: 409, message: 'seen' }],
      });
      expect(await store.get(TENANT, c.id)).toMatchObject({
        state: 'dead',
        deadReason: 'rejected by the target: HTTP 400',
        deadAt: clock.now(),
        attempts: [{ outcome: 'rejected', status: 400, apiErrorCode: 'VALIDATION_FAILED', rsCode: null, message: 'bad event' }],
      });
      expect(await store.get(TENANT, d.id)).toMatchObject({
        state: 'pending',
        dueAt: clock.now() + 5000,
        attempts: [{ status: null, message: 'ECONNRESET' }],
      });
      expect(await store.counts(TENANT)).toEqual({ pending: 1, leased: 0, delivered: 1, duplicate: 1, dead: 1 });
      // Each attempt says which worker made it (the settlement's owner, whatever the attempt object said).
      for (const id of [a.id, b.id, c.id, d.id]) expect((await store.get(TENANT, id))?.attempts[0]?.handledBy).toBe('worker-a');
    });

    it('leases a rescheduled event only once its due time comes, numbering its attempts, and keeps its first-attempt time', async () => {
      await store.enqueue([outboxEvent()]);
      const [first] = await lease();
      if (!first) throw new Error('expected a leased event');
      const firstAttemptAt = clock.now();
      clock.advance(10);
      const failed = attempt({ outcome: 'failed', status: 503, message: 'busy', uncertainRequests: 1, eventIds: [] });
      await store.settle([{ id: first.id, owner: 'worker-a', attempt: failed, to: 'pending', dueAt: clock.now() + 1000 }]);
      expect(await store.nextDueAt(TENANT, TARGET)).toBe(clock.now() + 1000);
      clock.advance(999);
      expect(await lease()).toEqual([]);
      clock.advance(1);
      const [again] = await lease(10, 'worker-b');
      expect(again).toMatchObject({ id: first.id, previousAttempts: 1, firstAttemptAt, owner: 'worker-b' });
      await store.settle([{ id: first.id, owner: 'worker-b', attempt: attempt({ number: 2 }), to: 'delivered' }]);
      expect((await store.get(TENANT, first.id))?.attempts.map((a) => [a.number, a.outcome])).toEqual([
        [1, 'failed'],
        [2, 'accepted'],
      ]);
      expect(await store.nextDueAt(TENANT, TARGET)).toBeNull();
    });

    it('makes an expired lease due again, records the abandoned attempt, and refuses the old holder', async () => {
      await store.enqueue([outboxEvent()]);
      const [held] = await lease(10, 'crashed-worker');
      if (!held) throw new Error('expected a leased event');
      expect(await store.nextDueAt(TENANT, TARGET)).toBe(clock.now() + LEASE_MS);
      clock.advance(LEASE_MS - 1);
      expect(await lease(10, 'worker-b')).toEqual([]);
      clock.advance(1);
      const [taken] = await lease(10, 'worker-b');
      expect(taken).toMatchObject({ id: held.id, owner: 'worker-b', previousAttempts: 1, firstAttemptAt: held.firstAttemptAt });
      expect(await store.settle([{ id: held.id, owner: 'crashed-worker', attempt: attempt(), to: 'delivered' }])).toEqual([false]);
      const entry = await store.get(TENANT, held.id);
      expect(entry?.state).toBe('leased');
      expect(entry?.attempts).toEqual([
        {
          number: 1,
          startedAt: held.leasedAt,
          finishedAt: clock.now(),
          outcome: 'abandoned',
          status: null,
          message: expect.stringContaining('crashed-worker'),
          apiErrorCode: null,
          rsCode: null,
          requests: 0,
          uncertainRequests: 0,
          eventIds: [],
          handledBy: 'crashed-worker',
        },
      ]);
      expect(
        await store.settle([{ id: held.id, owner: 'worker-b', attempt: attempt({ outcome: 'duplicate', status: 409 }), to: 'duplicate' }]),
      ).toEqual([true]);
      expect((await store.get(TENANT, held.id))?.attempts.map((a) => a.number)).toEqual([1, 2]);
    });

    it('requeues dead letters with a fresh horizon, only the tenant’s and only dead ones', async () => {
      const [a, b, c] = await store.enqueue([outboxEvent(), outboxEvent(), outboxEvent()]);
      await lease(3);
      await store.settle([
        { id: a?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' },
        { id: b?.id ?? '', owner: 'worker-a', attempt: null, to: 'dead', reason: 'horizon passed' },
        { id: c?.id ?? '', owner: 'worker-a', attempt: attempt(), to: 'delivered' },
      ]);
      clock.advance(1000);
      expect(await store.requeueDead({ tenant: 'globex', ids: [a?.id ?? ''] })).toEqual([]);
      expect(await store.requeueDead({ tenant: TENANT, ids: [a?.id ?? '', c?.id ?? '', 'ob_missing'] })).toEqual([a?.id]);
      expect(await store.get(TENANT, a?.id ?? '')).toMatchObject({
        state: 'pending',
        dueAt: clock.now(),
        firstAttemptAt: null,
        deadReason: null,
        deadAt: null,
        attempts: [{ outcome: 'rejected' }],
      });
      expect(await store.get(TENANT, c?.id ?? '')).toMatchObject({ state: 'delivered' });
      expect(await store.requeueDead({ tenant: TENANT })).toEqual([b?.id]);
      expect(await store.counts(TENANT)).toMatchObject({ pending: 2, dead: 0, delivered: 1 });
      const [relet] = await lease(1, 'worker-b');
      expect(relet?.firstAttemptAt).toBe(clock.now());
    });

    it('revives a rejected dead letter whose payload changed, and nothing else', async () => {
      const original = outboxEvent();
      const horizonDead = outboxEvent();
      const [rejected, expired] = await store.enqueue([original, horizonDead]);
      await lease(2);
      await store.settle([
        { id: rejected?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' },
        {
          id: expired?.id ?? '',
          owner: 'worker-a',
          attempt: attempt({ outcome: 'failed', status: 503, uncertainRequests: 1 }),
          to: 'dead',
          reason: 'horizon',
        },
      ]);
      const corrected = { ...original, sourceId: 'events.csv:99', input: { ...original.input, userId: 'ann-fixed' } };
      const diedAt = clock.now();
      clock.advance(7);
      expect(await store.enqueue([original])).toEqual([
        { id: rejected?.id, outcome: 'existing', state: 'dead', updatedAt: diedAt, mayHaveLanded: false },
      ]);
      expect(await store.enqueue([corrected])).toEqual([
        { id: rejected?.id, outcome: 'revived', state: 'pending', updatedAt: clock.now(), mayHaveLanded: false },
      ]);
      expect(await store.get(TENANT, rejected?.id ?? '')).toMatchObject({
        state: 'pending',
        sourceId: 'events.csv:99',
        input: { userId: 'ann-fixed' },
        deadReason: null,
        firstAttemptAt: null,
        attempts: [{ outcome: 'rejected' }],
      });
      expect(await store.findBySourceId(TENANT, 'events.csv:99')).toHaveLength(1);
      const changedExpired = { ...horizonDead, input: { ...horizonDead.input, userId: 'someone-else' } };
      // A 503 is an answer that leaves the outcome unknown: the event may have landed.
      expect(await store.enqueue([changedExpired])).toEqual([
        { id: expired?.id, outcome: 'existing', state: 'dead', updatedAt: diedAt, mayHaveLanded: true },
      ]);
      expect(await store.counts(TENANT)).toMatchObject({ pending: 1, dead: 1 });
    });

    it('finds events by key and by source id, oldest first, and lists dead letters in order of death with paging', async () => {
      const shared = outboxEvent({ key: 'shared-key-123' });
      const [first] = await store.enqueue([shared]);
      clock.advance(1);
      const [second] = await store.enqueue([{ ...shared, dedupKey: 'other-identity', sourceId: 'webhook:1' }]);
      expect((await store.findByKey(TENANT, 'shared-key-123')).map((entry) => entry.id)).toEqual([first?.id, second?.id]);
      expect((await store.findBySourceId(TENANT, 'webhook:1')).map((entry) => entry.id)).toEqual([second?.id]);
      expect(await store.findByKey(TENANT, 'no-such-key')).toEqual([]);
      expect(await store.findBySourceId('globex', 'webhook:1')).toEqual([]);

      const deadIds = (await store.enqueue([outboxEvent(), outboxEvent(), outboxEvent()])).map((result) => result.id);
      const leased = await lease(10);
      for (const id of [...deadIds].reverse()) {
        clock.advance(10);
        await store.settle([{ id, owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: `dead ${id}` }]);
      }
      expect(leased).toHaveLength(5);
      const listed = await store.listDead(TENANT);
      expect(listed.map((entry) => entry.id)).toEqual([...deadIds].reverse());
      expect(listed[0]?.deadReason).toBe(`dead ${deadIds[2]}`);
      expect((await store.listDead(TENANT, { limit: 1, offset: 1 })).map((entry) => entry.id)).toEqual([deadIds[1]]);
      expect(await store.listDead('globex')).toEqual([]);
    });

    it('records an unmappable event as a dead letter with its reason and raw payload, once per dedupKey', async () => {
      const poison = unmappableEvent({ raw: { text: '{"a":"ü', bytes: 70_000, truncated: true } });
      const results = await store.recordUnmappable([poison]);
      expect(results).toEqual([{ id: expect.any(String), outcome: 'created', state: 'dead' }]);
      const id = results[0]?.id ?? '';
      expect(await store.get(TENANT, id)).toEqual({
        id,
        tenant: TENANT,
        target: TARGET,
        source: poison.source,
        sourceId: poison.sourceId,
        dedupKey: poison.dedupKey,
        key: null,
        keyDecision: null,
        input: null,
        unmappable: { text: '{"a":"ü', bytes: 70_000, truncated: true },
        state: 'dead',
        enqueuedAt: clock.now(),
        updatedAt: clock.now(),
        dueAt: null,
        leaseExpiresAt: null,
        firstAttemptAt: null,
        landedSince: null,
        deadReason: poison.reason,
        deadAt: clock.now(),
        attempts: [],
      });
      expect(await store.counts(TENANT)).toEqual({ pending: 0, leased: 0, delivered: 0, duplicate: 0, dead: 1 });
      expect(await store.counts(TENANT, { source: poison.source, target: TARGET })).toMatchObject({ dead: 1 });
      expect((await store.listDead(TENANT)).map((entry) => entry.id)).toEqual([id]);
      expect((await store.findBySourceId(TENANT, poison.sourceId)).map((entry) => entry.id)).toEqual([id]);
      // A redelivery (same identity, another reason even) adds nothing; so does a twin in one call.
      clock.advance(5);
      expect(await store.recordUnmappable([{ ...poison, reason: 'again' }])).toEqual([{ id, outcome: 'existing', state: 'dead' }]);
      const twin = unmappableEvent();
      const twins = await store.recordUnmappable([twin, twin]);
      expect(twins.map((result) => result.outcome)).toEqual(['created', 'existing']);
      expect(twins[1]?.id).toBe(twins[0]?.id);
      expect((await store.counts(TENANT)).dead).toBe(2);
      expect((await store.get(TENANT, id))?.deadReason).toBe(poison.reason);
      // Never leased.
      expect(await lease(10)).toEqual([]);
      expect(await store.nextDueAt(TENANT, TARGET)).toBeNull();
    });

    it('leaves an existing event with the dedupKey alone when an unmappable one claims it', async () => {
      const normal = outboxEvent();
      const [created] = await store.enqueue([normal]);
      clock.advance(3);
      const results = await store.recordUnmappable([unmappableEvent({ dedupKey: normal.dedupKey })]);
      expect(results).toEqual([{ id: created?.id, outcome: 'existing', state: 'pending' }]);
      expect(await store.get(TENANT, created?.id ?? '')).toMatchObject({ state: 'pending', input: normal.input, unmappable: null });
      expect(await store.counts(TENANT)).toMatchObject({ pending: 1, dead: 0 });
    });

    it('never requeues an unmappable dead letter, by id or with every dead letter', async () => {
      const [poison] = await store.recordUnmappable([unmappableEvent()]);
      const [rejected] = await store.enqueue([outboxEvent()]);
      await lease(1);
      await store.settle([{ id: rejected?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' }]);
      clock.advance(10);
      expect(await store.requeueDead({ tenant: TENANT, ids: [poison?.id ?? ''] })).toEqual([]);
      expect(await store.requeueDead({ tenant: TENANT, target: TARGET })).toEqual([rejected?.id]);
      expect(await store.requeueDead({ tenant: TENANT })).toEqual([]);
      expect(await store.get(TENANT, poison?.id ?? '')).toMatchObject({ state: 'dead', input: null });
      expect(await store.counts(TENANT)).toMatchObject({ pending: 1, dead: 1 });
    });

    it('lets a mapped event with the same dedupKey take an unmappable dead letter over (the source resent it, fixed)', async () => {
      const poison = unmappableEvent();
      const [dead] = await store.recordUnmappable([poison]);
      clock.advance(7);
      const fixed = outboxEvent({ dedupKey: poison.dedupKey, source: poison.source, sourceId: 'replay-fixed' });
      expect(await store.enqueue([fixed])).toEqual([
        { id: dead?.id, outcome: 'revived', state: 'pending', updatedAt: clock.now(), mayHaveLanded: false },
      ]);
      expect(await store.get(TENANT, dead?.id ?? '')).toMatchObject({
        state: 'pending',
        input: fixed.input,
        unmappable: null,
        key: fixed.input.idempotencyKey,
        deadReason: null,
        deadAt: null,
        sourceId: 'replay-fixed',
      });
      expect(await store.counts(TENANT)).toMatchObject({ pending: 1, dead: 0 });
      const [held] = await lease(1);
      expect(held).toMatchObject({ id: dead?.id, input: fixed.input });
      // Its identity is taken now: a redelivered poison event adds nothing.
      expect(await store.recordUnmappable([poison])).toEqual([{ id: dead?.id, outcome: 'existing', state: 'leased' }]);
      // It is an ordinary event now: dead again after a rejection, it may be requeued like any other.
      await store.settle([{ id: dead?.id ?? '', owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' }]);
      expect(await store.requeueDead({ tenant: TENANT })).toEqual([dead?.id]);
    });

    it('prunes an old unmappable dead letter like any settled event', async () => {
      const [poison] = await store.recordUnmappable([unmappableEvent()]);
      clock.advance(1000);
      expect(await store.pruneSettled(500)).toBe(1);
      expect(await store.get(TENANT, poison?.id ?? '')).toBeUndefined();
      expect(await store.counts(TENANT)).toMatchObject({ dead: 0 });
    });

    it('keeps how many requests of an attempt ended unknown, and marks the event: it may have landed', async () => {
      const [quickRetry, certain] = await store.enqueue([outboxEvent({ key: null }), outboxEvent({ key: null })]);
      await lease(2);
      // The target client's first request got no answer, its quick retry was accepted: one attempt, 2 requests.
      await store.settle([
        { id: quickRetry?.id ?? '', owner: 'worker-a', attempt: attempt({ requests: 2, uncertainRequests: 1 }), to: 'delivered' },
        { id: certain?.id ?? '', owner: 'worker-a', attempt: attempt({ requests: 2, uncertainRequests: 0 }), to: 'delivered' },
      ]);
      const entry = await store.get(TENANT, quickRetry?.id ?? '');
      expect(entry?.attempts).toEqual([expect.objectContaining({ requests: 2, uncertainRequests: 1 })]);
      expect(entry && mayHaveLanded(entry)).toBe(true);
      expect((await store.get(TENANT, certain?.id ?? ''))?.attempts).toEqual([expect.objectContaining({ uncertainRequests: 0 })]);
      const again = await store.enqueue([outboxEvent({ key: null, dedupKey: entry?.dedupKey ?? '' })]);
      expect(again).toEqual([expect.objectContaining({ id: quickRetry?.id, outcome: 'existing', mayHaveLanded: true })]);
      // An attempt that may have landed, then a retry: the retry's lease says so.
      const [retried] = await store.enqueue([outboxEvent({ key: null })]);
      await lease(1);
      await store.settle([
        {
          id: retried?.id ?? '',
          owner: 'worker-a',
          attempt: attempt({ outcome: 'failed', status: 503, uncertainRequests: 3 }),
          to: 'pending',
          dueAt: clock.now(),
        },
      ]);
      expect(await lease(1, 'worker-b')).toEqual([expect.objectContaining({ id: retried?.id, mayHaveLanded: true, previousAttempts: 1 })]);
    });

    it('keeps when an attempt that may have landed was leased, across requeues; a forced requeue forgets it', async () => {
      const [uncertain, certain, delivered, crashed] = await store.enqueue([outboxEvent(), outboxEvent(), outboxEvent(), outboxEvent()]);
      const ids = [uncertain, certain, delivered, crashed].map((result) => result?.id ?? '');
      const [u, c, d, k] = ids as [string, string, string, string];
      const leasedAt = clock.now();
      await lease(4);
      clock.advance(10);
      const busy = (number: number) => attempt({ number, outcome: 'failed', status: 503, uncertainRequests: 1, eventIds: [] });
      const throttled = attempt({ outcome: 'failed', status: 429, uncertainRequests: 0, eventIds: [] });
      await store.settle([
        { id: u, owner: 'worker-a', attempt: busy(1), to: 'pending', dueAt: clock.now() },
        { id: c, owner: 'worker-a', attempt: throttled, to: 'pending', dueAt: clock.now() },
        { id: d, owner: 'worker-a', attempt: attempt(), to: 'delivered' },
      ]);
      const landed = async (id: string) => (await store.get(TENANT, id))?.landedSince;
      expect([await landed(u), await landed(c), await landed(d)]).toEqual([leasedAt, null, null]);
      // The crashed worker's lease runs out: an abandoned attempt, which may have landed, from its lease's time.
      clock.advance(LEASE_MS);
      const secondLease = clock.now();
      const relet = await lease(4, 'worker-b');
      expect(relet.map((event) => [event.id, event.landedSince]).sort()).toEqual(
        [
          [u, leasedAt],
          [c, null],
          [k, leasedAt],
        ].sort(),
      );
      // A later attempt that may have landed leaves the earliest time.
      await store.settle([
        { id: u, owner: 'worker-b', attempt: busy(2), to: 'dead', reason: 'horizon' },
        { id: c, owner: 'worker-b', attempt: busy(2), to: 'dead', reason: 'horizon' },
        { id: k, owner: 'worker-b', attempt: null, to: 'dead', reason: 'horizon' },
      ]);
      expect([await landed(u), await landed(c), await landed(k)]).toEqual([leasedAt, secondLease, leasedAt]);
      // A requeue gives a fresh horizon, not a fresh key window.
      clock.advance(1000);
      expect(await store.requeueDead({ tenant: TENANT, ids: [u, c] })).toEqual([u, c]);
      expect(await store.get(TENANT, u)).toMatchObject({ state: 'pending', firstAttemptAt: null, landedSince: leasedAt });
      const again = await lease(4, 'worker-c');
      expect(again.map((event) => [event.id, event.firstAttemptAt, event.landedSince]).sort()).toEqual(
        [
          [u, clock.now(), leasedAt],
          [c, clock.now(), secondLease],
        ].sort(),
      );
      // Forced (the operator accepts a possible second record): forgotten, until an attempt may land again.
      await store.settle([{ id: u, owner: 'worker-c', attempt: null, to: 'dead', reason: 'past the window' }]);
      expect((await store.requeueDead({ tenant: TENANT, forcePastWindow: true })).sort()).toEqual([u, k].sort());
      expect([await landed(u), await landed(k)]).toEqual([null, null]);
      const forcedLease = clock.now();
      const [forced] = await lease(1, 'worker-d');
      expect(forced).toMatchObject({ landedSince: null });
      await store.settle([{ id: forced?.id ?? '', owner: 'worker-d', attempt: busy(4), to: 'pending', dueAt: clock.now() }]);
      expect(await landed(forced?.id ?? '')).toBe(forcedLease);
    });

    it('counts possible duplicates from the store: keyless events delivered after an attempt or request that may have landed', async () => {
      const OTHER_TARGET = 'https://b.target.test';
      const events = {
        quickRetry: outboxEvent({ key: null }),
        clean: outboxEvent({ key: null }),
        keyed: outboxEvent(),
        retried: outboxEvent({ key: null }),
        abandoned: outboxEvent({ key: null }),
        deadAfterUnknown: outboxEvent({ key: null }),
        throttledFirst: outboxEvent({ key: null }),
        otherSource: outboxEvent({ key: null, source: 'segment', target: OTHER_TARGET }),
      };
      const [quickRetry, clean, keyed, retried, abandoned, deadAfterUnknown, throttledFirst, otherSource] = await store.enqueue(
        Object.values(events),
      );
      const id = (result: { readonly id: string } | undefined): string => result?.id ?? '';
      expect(await store.countPossibleDuplicates(TENANT)).toBe(0);
      await lease(10);
      await store.lease({ tenant: TENANT, target: OTHER_TARGET, owner: 'worker-a', limit: 1, leaseMs: LEASE_MS });
      const unknown = attempt({ outcome: 'failed', status: null, message: 'socket hang up', uncertainRequests: 1, eventIds: [] });
      const throttled = attempt({ outcome: 'failed', status: 429, message: 'slow down', uncertainRequests: 0, eventIds: [] });
      await store.settle([
        { id: id(quickRetry), owner: 'worker-a', attempt: attempt({ requests: 2, uncertainRequests: 1 }), to: 'delivered' },
        { id: id(clean), owner: 'worker-a', attempt: attempt(), to: 'delivered' },
        { id: id(keyed), owner: 'worker-a', attempt: attempt({ requests: 2, uncertainRequests: 1 }), to: 'delivered' },
        { id: id(retried), owner: 'worker-a', attempt: unknown, to: 'pending', dueAt: clock.now() },
        { id: id(deadAfterUnknown), owner: 'worker-a', attempt: unknown, to: 'dead', reason: 'gave up' },
        { id: id(throttledFirst), owner: 'worker-a', attempt: throttled, to: 'pending', dueAt: clock.now() },
        { id: id(otherSource), owner: 'worker-a', attempt: attempt({ requests: 3, uncertainRequests: 2 }), to: 'delivered' },
      ]);
      // Still on its way: not a duplicate yet.
      expect(await store.countPossibleDuplicates(TENANT)).toBe(2);
      clock.advance(LEASE_MS);
      const relet = await lease(10, 'worker-b');
      expect(relet.map((event) => [event.id, event.mayHaveLanded]).sort()).toEqual(
        [
          [id(retried), true],
          [id(abandoned), true],
          [id(throttledFirst), false],
        ].sort(),
      );
      await store.settle(
        relet.map((event) => ({ id: event.id, owner: 'worker-b', attempt: attempt({ number: 2 }), to: 'delivered' as const })),
      );
      expect(await store.countPossibleDuplicates(TENANT)).toBe(4);
      expect(await store.countPossibleDuplicates(TENANT, { source: 'import' })).toBe(3);
      expect(await store.countPossibleDuplicates(TENANT, { target: OTHER_TARGET })).toBe(1);
      expect(await store.countPossibleDuplicates(TENANT, { source: 'segment', target: TARGET })).toBe(0);
      expect(await store.countPossibleDuplicates('globex')).toBe(0);
      const flagged = [];
      for (const result of [quickRetry, clean, keyed, retried, abandoned, deadAfterUnknown, throttledFirst, otherSource]) {
        const entry = await store.get(TENANT, id(result));
        if (entry && isPossibleDuplicate(entry)) flagged.push(entry.id);
      }
      expect(flagged.sort()).toEqual([id(quickRetry), id(retried), id(abandoned), id(otherSource)].sort());
      // Every handle onto the store reads the same number (another instance, or this one after a restart).
      const other = await harness.open(clock);
      try {
        expect(await other.countPossibleDuplicates(TENANT)).toBe(4);
      } finally {
        await other.close();
      }
      // Pruned events leave the count with the rest of their record.
      clock.advance(60_000);
      while ((await store.pruneSettled(1000)) > 0);
      expect(await store.countPossibleDuplicates(TENANT)).toBe(0);
    });

    it('counts per state, overall and for one source', async () => {
      await store.enqueue([outboxEvent(), outboxEvent({ source: 'segment' }), outboxEvent({ source: 'segment' })]);
      await lease(1);
      expect(await store.counts(TENANT)).toEqual({ pending: 2, leased: 1, delivered: 0, duplicate: 0, dead: 0 });
      expect(await store.counts(TENANT, { source: 'segment' })).toEqual({ pending: 2, leased: 0, delivered: 0, duplicate: 0, dead: 0 });
      expect(await store.counts(TENANT, { source: 'import' })).toEqual({ pending: 0, leased: 1, delivered: 0, duplicate: 0, dead: 0 });
      expect(await store.counts('globex')).toEqual({ pending: 0, leased: 0, delivered: 0, duplicate: 0, dead: 0 });
    });

    it('lists the tenants and targets it holds events for, sorted, up to a limit; a pair whose events were pruned leaves it', async () => {
      expect(await store.listTenantTargets()).toEqual([]);
      const other = 'https://b.target.test:8443/api';
      await store.enqueue([outboxEvent(), outboxEvent({ tenant: 'beta:west' }), outboxEvent({ target: other }), outboxEvent()]);
      await store.recordUnmappable([unmappableEvent({ tenant: 'gamma', target: 'https://g.target.test' })]);
      const live = [
        { tenant: TENANT, target: TARGET },
        { tenant: TENANT, target: other },
        { tenant: 'beta:west', target: TARGET },
      ];
      expect(await store.listTenantTargets()).toEqual([...live, { tenant: 'gamma', target: 'https://g.target.test' }]);
      expect(await store.listTenantTargets({ limit: 2 })).toEqual(live.slice(0, 2));
      // The unmappable dead letter is the only event of gamma: once pruned, gamma is gone.
      clock.advance(10_000);
      expect(await store.pruneSettled(5_000)).toBe(1);
      expect(await store.listTenantTargets()).toEqual(live);
      await expect(store.listTenantTargets({ limit: 0 })).rejects.toBeInstanceOf(OutboxStoreError);
    });

    it('lists events newest first, filtered by source, state, target, key, source id and time, a bounded page at a time', async () => {
      const start = clock.now();
      const old = outboxEvent({ source: 'segment', key: 'list-old-key-1' });
      await store.enqueue([old]);
      clock.advance(1000);
      const [a, b] = await store.enqueue([outboxEvent(), outboxEvent({ target: 'https://b.target.test' })]);
      clock.advance(1000);
      const [poison] = await store.recordUnmappable([unmappableEvent()]);
      await store.enqueue([outboxEvent({ tenant: 'globex' })]);
      const all = await store.listEvents(TENANT);
      expect(all.entries.map((entry) => entry.id)).toEqual([poison?.id, b?.id, a?.id, all.entries[3]?.id]);
      expect(all.entries[3]).toMatchObject({ source: 'segment', key: 'list-old-key-1' });
      expect(all.hasMore).toBe(false);
      const first = await store.listEvents(TENANT, { limit: 2 });
      expect(first.entries.map((entry) => entry.id)).toEqual([poison?.id, b?.id]);
      expect(first.hasMore).toBe(true);
      const second = await store.listEvents(TENANT, { limit: 2, offset: 2 });
      expect(second.entries.map((entry) => entry.source)).toEqual(['import', 'segment']);
      expect(second.hasMore).toBe(false);
      expect((await store.listEvents(TENANT, { source: 'segment' })).entries.map((entry) => entry.key)).toEqual(['list-old-key-1']);
      expect((await store.listEvents(TENANT, { source: 'segment', state: 'pending' })).entries).toHaveLength(1);
      expect((await store.listEvents(TENANT, { source: 'segment', state: 'dead' })).entries).toEqual([]);
      expect((await store.listEvents(TENANT, { source: 'segment', target: 'https://b.target.test' })).entries).toEqual([]);
      expect((await store.listEvents(TENANT, { source: 'zapier' })).entries).toEqual([]);
      expect((await store.listEvents('globex', { source: 'segment' })).entries).toEqual([]);
      expect((await store.listEvents(TENANT, { state: 'dead' })).entries.map((entry) => entry.id)).toEqual([poison?.id]);
      expect((await store.listEvents(TENANT, { target: 'https://b.target.test' })).entries.map((entry) => entry.id)).toEqual([b?.id]);
      expect((await store.listEvents(TENANT, { key: 'list-old-key-1' })).entries).toHaveLength(1);
      expect((await store.listEvents(TENANT, { key: 'list-old-key-1', state: 'dead' })).entries).toHaveLength(0);
      const sourceId = (await store.get(TENANT, a?.id ?? ''))?.sourceId ?? '';
      expect((await store.listEvents(TENANT, { sourceId })).entries.map((entry) => entry.id)).toEqual([a?.id]);
      expect(
        (await store.listEvents(TENANT, { since: start + 1000, until: start + 2000 })).entries.map((entry) => entry.id).sort(),
      ).toEqual([a?.id, b?.id].sort());
      expect((await store.listEvents('nobody')).entries).toEqual([]);
      await expect(store.listEvents(TENANT, { limit: 201 })).rejects.toThrow(/limit/);
      await expect(store.listEvents(TENANT, { state: 'lost' as never })).rejects.toBeInstanceOf(InvalidInputError);
    });

    it('counts activity per bucket from the ledger: received, delivered, duplicate, dead, latency and backlog', async () => {
      const since = clock.now();
      const minute = 60_000;
      await store.enqueue([outboxEvent(), outboxEvent(), outboxEvent()]);
      clock.advance(minute);
      const [a, b, c] = await lease(3);
      if (!a || !b || !c) throw new Error('expected three leased events');
      clock.advance(500);
      await store.settle([
        { id: a.id, owner: 'worker-a', attempt: attempt(), to: 'delivered' },
        { id: b.id, owner: 'worker-a', attempt: rejectedAttempt(), to: 'dead', reason: 'rejected' },
      ]);
      // A window that starts after the three were received: two settled in it, one still leased (carried in).
      const settling = await store.activity(TENANT, { since: since + minute, until: since + 2 * minute, bucketMs: minute });
      expect([settling.received, settling.delivered, settling.dead, settling.backlog]).toEqual([[0], [1], [1], [1]]);
      clock.advance(minute);
      await store.settle([{ id: c.id, owner: 'worker-a', attempt: attempt({ outcome: 'duplicate', status: 409 }), to: 'duplicate' }]);
      await store.recordUnmappable([unmappableEvent()]);
      await store.enqueue([outboxEvent({ tenant: 'globex' })]);
      const series = await store.activity(TENANT, { since, until: since + 4 * minute, bucketMs: minute });
      expect(series.starts).toEqual([since, since + minute, since + 2 * minute, since + 3 * minute]);
      expect(series.received).toEqual([3, 0, 1, 0]);
      expect(series.delivered).toEqual([0, 1, 0, 0]);
      expect(series.duplicate).toEqual([0, 0, 1, 0]);
      expect(series.dead).toEqual([0, 1, 1, 0]);
      expect(series.latencyP50).toEqual([null, minute + 500, 2 * minute + 500, null]);
      expect(series.backlog).toEqual([3, 1, 0, 0]);
      expect(series.truncated).toBe(false);
      // Received before the window, settled in it; received in it (the unmappable one).
      const settled = await store.activity(TENANT, { since: since + minute, until: since + 3 * minute, bucketMs: minute });
      expect([settled.received, settled.delivered, settled.duplicate, settled.dead, settled.backlog]).toEqual([
        [0, 1],
        [1, 0],
        [0, 1],
        [1, 1],
        [1, 0],
      ]);
      // A later window starts with the backlog carried in.
      await store.enqueue([outboxEvent()]);
      const later = await store.activity(TENANT, { since: since + 3 * minute, until: since + 5 * minute, bucketMs: minute });
      expect(later.backlog).toEqual([1, 1]);
      expect((await store.activity(TENANT, { since, until: since + minute, bucketMs: minute, source: 'segment' })).received).toEqual([0]);
      await expect(store.activity(TENANT, { since, until: since + 10 * minute, bucketMs: 10 })).rejects.toThrow(/bucketMs/);
      await expect(store.activity(TENANT, { since, until: since, bucketMs: minute })).rejects.toThrow(/until/);
    });

    it('refuses malformed calls with typed errors', async () => {
      await expect(store.enqueue([outboxEvent({ tenant: '' })])).rejects.toBeInstanceOf(OutboxStoreError);
      await expect(store.enqueue([outboxEvent({ target: '' })])).rejects.toBeInstanceOf(OutboxStoreError);
      await expect(store.lease({ tenant: TENANT, target: '', owner: 'w', limit: 1, leaseMs: 1000 })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      await expect(store.enqueue([outboxEvent({ dedupKey: '' })])).rejects.toThrow(/dedupKey/);
      await expect(store.lease({ tenant: TENANT, target: TARGET, owner: 'w', limit: 0, leaseMs: 1000 })).rejects.toBeInstanceOf(
        InvalidInputError,
      );
      await expect(store.lease({ tenant: TENANT, target: TARGET, owner: '', limit: 1, leaseMs: 1000 })).rejects.toThrow(/owner/);
      await expect(store.requeueDead({ tenant: '' })).rejects.toBeInstanceOf(InvalidInputError);
      await expect(store.recordUnmappable([unmappableEvent({ reason: '' })])).rejects.toThrow(/reason/);
      await expect(store.recordUnmappable([unmappableEvent({ dedupKey: '' })])).rejects.toBeInstanceOf(OutboxStoreError);
      expect(await store.counts(TENANT)).toMatchObject({ pending: 0 });
    });

    // Memory is not durable: the case does not apply, so it is not registered (a skip would read as a missing Redis).
    if (traits.durable) {
      it('keeps everything across a restart (a fresh handle after the first one closed)', async () => {
        const [pending, leasedOne] = await store.enqueue([outboxEvent(), outboxEvent()]);
        const leased = await lease(1);
        expect(leased.map((event) => event.id)).toEqual([pending?.id]);
        await store.close();
        store = await harness.open(clock);
        expect(await store.counts(TENANT)).toMatchObject({ pending: 1, leased: 1 });
        expect((await store.get(TENANT, leasedOne?.id ?? ''))?.state).toBe('pending');
        clock.advance(LEASE_MS);
        const after = await lease(10, 'restarted');
        expect(after.map((event) => event.id).sort()).toEqual([pending?.id, leasedOne?.id].sort());
      });

      it('keeps an unmappable dead letter across a restart', async () => {
        const poison = unmappableEvent();
        const [dead] = await store.recordUnmappable([poison]);
        await store.close();
        store = await harness.open(clock);
        expect(await store.get(TENANT, dead?.id ?? '')).toMatchObject({ state: 'dead', input: null, unmappable: poison.raw });
        expect(await store.recordUnmappable([poison])).toEqual([{ id: dead?.id, outcome: 'existing', state: 'dead' }]);
      });
    }
  });
}
