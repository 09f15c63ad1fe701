import { createHash, randomUUID } from 'node:crypto';
import { Analytics } from '@segment/analytics-node';
import { describe, expect, test } from 'vitest';
import type { Sandbox } from '../../../sandbox/target/index.js';
import { type IngestOptions, type SegmentIngest, startSegmentIngest } from '../../fakes/segment-ingest.js';
import { closeAfterTest, settingsFor, startTestSandbox, TENANT, warnLines } from './helpers.js';

/**
 * The whole chain over loopback HTTP: the real @segment/analytics-node client → a Segment-like ingest (POST /v1/batch)
 * → the built function in Segment's runtime harness → the sandbox. Segment's retries are the ingest's.
 */

const WRITE_KEY = 'wk_oncekit_test';

interface Chain {
  readonly sandbox: Sandbox;
  readonly ingest: SegmentIngest;
  readonly analytics: Analytics;
  /** Sends everything the client holds and waits until Segment (the ingest) has finished delivering it. */
  settle(): Promise<void>;
}

async function chain(
  options: { settings?: Record<string, unknown>; batching?: IngestOptions['batching']; flushAt?: number } = {},
): Promise<Chain> {
  const sandbox = await startTestSandbox();
  const ingest = closeAfterTest(
    await startSegmentIngest({
      writeKey: WRITE_KEY,
      settings: settingsFor(sandbox, options.settings),
      ...(options.batching ? { batching: options.batching } : {}),
    }),
  );
  const analytics = new Analytics({
    writeKey: WRITE_KEY,
    host: ingest.url,
    flushAt: options.flushAt ?? 1,
    flushInterval: 50,
    maxRetries: 0,
  });
  closeAfterTest({ close: () => analytics.closeAndFlush({ timeout: 5_000 }) });
  return {
    sandbox,
    ingest,
    analytics,
    async settle() {
      await analytics.flush({ timeout: 10_000 });
      await ingest.idle();
    },
  };
}

/** Stored events, keyed by the `n` property each test gives its events, so order of arrival does not matter. */
function storedByN(sandbox: Sandbox) {
  return sandbox
    .inspect(TENANT)
    .events.map(({ key, userId, accountId, fields, dateTriggered, idempotencyKey }) => ({
      key,
      userId,
      accountId,
      fields,
      dateTriggered,
      idempotencyKey,
    }))
    .sort((a, b) => Number(a.fields.n) - Number(b.fields.n));
}

describe('analytics-node → Segment → the function → SaaSquatch', () => {
  test('valid messageIds: one event per messageId, keyed by it; identify upserts the user', async () => {
    const { sandbox, ingest, analytics, settle } = await chain();
    analytics.identify({ userId: 'ann', traits: { email: 'ann@example.com', firstName: 'Ann', plan: 'pro' } });
    analytics.track({ userId: 'ann', event: 'Order Completed', properties: { n: 1, revenue: 42 } });
    analytics.track({ userId: 'ann', event: 'Signed Up', properties: { n: 2 } });
    await settle();

    // What the real client sent, as Segment receives it.
    expect(ingest.requests).toHaveLength(3);
    for (const request of ingest.requests) expect(request.authorization).toBe(`Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`);

    const tracks = ingest.deliveries.filter((delivery) => delivery.event.type === 'track');
    const messageIds = tracks.map((delivery) => delivery.event.messageId as string);
    for (const id of messageIds) expect(id).toMatch(/^node-next-\d{13}-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(ingest.deliveries.map((delivery) => delivery.attempts.map((attempt) => attempt.treatment))).toEqual([
      [{ result: 'delivered' }],
      [{ result: 'delivered' }],
      [{ result: 'delivered' }],
    ]);

    const deliveredTimestamp = (n: number) =>
      Date.parse(tracks.find((delivery) => (delivery.event.properties as { n: number }).n === n)?.event.timestamp as string);
    const idOf = (n: number) => tracks.find((delivery) => (delivery.event.properties as { n: number }).n === n)?.event.messageId;
    expect(storedByN(sandbox)).toEqual([
      {
        key: 'purchase',
        userId: 'ann',
        accountId: 'ann',
        fields: { n: 1, revenue: 42 },
        dateTriggered: deliveredTimestamp(1),
        idempotencyKey: idOf(1),
      },
      {
        key: 'Signed Up',
        userId: 'ann',
        accountId: 'ann',
        fields: { n: 2 },
        dateTriggered: deliveredTimestamp(2),
        idempotencyKey: idOf(2),
      },
    ]);
    expect(sandbox.inspect(TENANT).users).toEqual([
      expect.objectContaining({
        id: 'ann',
        accountId: 'ann',
        email: 'ann@example.com',
        firstName: 'Ann',
        customFields: { plan: 'pro' },
        autoCreated: false,
      }),
    ]);
  });

  test('custom messageIds: invalid ones are dropped (event sent unkeyed, one warning each), valid ones kept', async () => {
    const { sandbox, ingest, analytics, settle } = await chain();
    const md5 = createHash('md5').update('{"event":"x"}').digest('hex');
    const ids = [
      { id: `node-${md5}-${randomUUID()}`, valid: false, reason: 'too_long' }, // classic analytics-node: 74 characters
      { id: 'x'.repeat(100), valid: false, reason: 'too_long' }, // Segment's own maximum
      { id: 'order:1234', valid: false, reason: 'bad_characters' },
      { id: 'order 1234 a', valid: false, reason: 'bad_characters' },
      { id: '1234567', valid: false, reason: 'too_short' },
      { id: 'abcdefgh', valid: true, reason: null }, // 8: the shortest valid key
      { id: 'k'.repeat(64), valid: true, reason: null }, // 64: the longest
    ];
    ids.forEach(({ id }, n) => {
      analytics.track({ userId: 'ann', event: 'Signed Up', messageId: id, properties: { n } });
    });
    await settle();

    expect(ingest.deliveries.map((delivery) => delivery.outcome)).toEqual(ids.map(() => ({ result: 'delivered' })));
    expect(storedByN(sandbox).map((event) => event.idempotencyKey)).toEqual(ids.map(({ id, valid }) => (valid ? id : null)));
    const warnings = warnLines(ingest.fn.logs);
    expect(
      warnings
        .map(({ event, reason, candidateLength }) => ({ event, reason, candidateLength }))
        .sort((a, b) => Number(a.candidateLength) - Number(b.candidateLength)),
    ).toEqual(
      ids
        .filter(({ valid }) => !valid)
        .map(({ id, reason }) => ({ event: 'idempotency_key_dropped', reason, candidateLength: id.length }))
        .sort((a, b) => a.candidateLength - b.candidateLength),
    );

    // Segment delivers them all again (a retry, or its best-effort dedup missing them): keyed events are not stored
    // twice; unkeyed ones are, which is what dropping a key costs and what the hash policy avoids (next test).
    ids.forEach(({ id }, n) => {
      analytics.track({ userId: 'ann', event: 'Signed Up', messageId: id, properties: { n } });
    });
    await settle();
    const keys = storedByN(sandbox).map((event) => event.idempotencyKey);
    expect(keys.filter((key) => key !== null)).toEqual(['abcdefgh', 'k'.repeat(64)]);
    expect(keys.filter((key) => key === null)).toHaveLength(10);
    expect(sandbox.inspect(TENANT).requests.byStatus).toEqual({ '200': 12, '409': 2 });
  });

  test('invalidKeyPolicy hash: a resent invalid messageId is stored once too', async () => {
    const { sandbox, analytics, settle } = await chain({ settings: { invalidKeyPolicy: 'hash' } });
    for (let round = 0; round < 2; round += 1) {
      analytics.track({ userId: 'ann', event: 'Signed Up', messageId: 'order:1234', properties: { n: 1 } });
      analytics.track({ userId: 'ann', event: 'Signed Up', messageId: '1234567', properties: { n: 2 } });
      await settle();
    }
    const stored = storedByN(sandbox);
    expect(stored).toHaveLength(2);
    for (const event of stored) expect(event.idempotencyKey).toMatch(/^oncekit-sha256-[A-Za-z0-9_-]{43}$/);
    expect(sandbox.inspect(TENANT).requests.byStatus).toEqual({ '200': 2, '409': 2 });
  });

  test('the same messageId again after a success: 409, counted as delivered, stored once', async () => {
    const { sandbox, ingest, analytics, settle } = await chain();
    const messageId = `resend-${randomUUID()}`;
    analytics.track({ userId: 'ann', event: 'Order Completed', messageId, properties: { n: 1 } });
    await settle();
    analytics.track({ userId: 'ann', event: 'Order Completed', messageId, properties: { n: 1 } });
    await settle();

    expect(ingest.deliveries.map((delivery) => delivery.outcome)).toEqual([{ result: 'delivered' }, { result: 'delivered' }]);
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events.map((event) => event.idempotencyKey)).toEqual([messageId]);
    expect(snapshot.keys.map(({ key, requests }) => ({ key, requests }))).toEqual([{ key: messageId, requests: 2 }]);
    expect(snapshot.requests.byStatus).toEqual({ '200': 1, '409': 1 });
  });

  test('injected target failures make the chain retry: Segment retries the RetryError until the event is taken, once', async () => {
    const { sandbox, ingest, analytics, settle } = await chain();
    // Each Segment attempt makes two requests (the function retries once itself).
    sandbox.faults.enqueue(
      { kind: 'status', status: 500 },
      { kind: 'status', status: 503 },
      { kind: 'drop' },
      { kind: 'throttle', retryAfterSeconds: 60 },
    );
    analytics.track({ userId: 'ann', event: 'Order Completed', properties: { n: 1 } });
    await settle();

    const [delivery] = ingest.deliveries;
    expect(delivery?.attempts.map((attempt) => attempt.treatment.result)).toEqual(['retry', 'retry', 'delivered']);
    expect(delivery?.attempts[0]?.treatment).toMatchObject({ category: 'Retry', message: expect.stringMatching(/\(503 /) });
    expect(delivery?.attempts[1]?.treatment).toMatchObject({ category: 'Retry', message: expect.stringMatching(/\(429 /) });
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events.map((event) => event.idempotencyKey)).toEqual([delivery?.event.messageId]);
    expect(snapshot.keys.map(({ requests }) => requests)).toEqual([5]);
    expect(snapshot.requests).toEqual({ total: 5, byStatus: { '200': 1, '429': 1, '500': 1, '503': 1 }, dropped: 1 });
  });

  test('stored, then the answer lost on every in-function attempt: Segment retries, gets 409, nothing twice', async () => {
    const { sandbox, ingest, analytics, settle } = await chain();
    sandbox.faults.enqueue({ kind: 'record-then-fail', failWith: 'drop' }, { kind: 'drop' });
    analytics.track({ userId: 'ann', event: 'Order Completed', properties: { n: 1 } });
    await settle();
    expect(ingest.deliveries[0]?.attempts.map((attempt) => attempt.treatment.result)).toEqual(['retry', 'delivered']);
    const snapshot = sandbox.inspect(TENANT);
    expect(snapshot.events).toHaveLength(1);
    expect(snapshot.requests).toEqual({ total: 3, byStatus: { '409': 1 }, dropped: 2 });
  });

  test('batching: 400 events reach onBatch together and cost one target request; a failed batch is retried whole, stored once', async () => {
    const { sandbox, ingest, analytics, settle } = await chain({ batching: { maxEvents: 400, maxWaitMs: 200 }, flushAt: 400 });
    sandbox.faults.enqueue({ kind: 'status', status: 503 }, { kind: 'status', status: 503 });
    for (let n = 0; n < 400; n += 1) analytics.track({ userId: `user-${n % 50}`, event: 'Signed Up', properties: { n } });
    await settle();

    expect(ingest.requests).toHaveLength(1);
    expect(ingest.deliveries).toHaveLength(400);
    for (const delivery of ingest.deliveries) {
      expect(delivery.attempts.map(({ handler, batchSize, treatment }) => ({ handler, batchSize, result: treatment.result }))).toEqual([
        { handler: 'onBatch', batchSize: 400, result: 'retry' },
        { handler: 'onBatch', batchSize: 400, result: 'delivered' },
      ]);
    }
    const snapshot = sandbox.inspect(TENANT);
    // Two failed attempts of the first onBatch, then the retried batch in a single request.
    expect(snapshot.requests).toEqual({ total: 3, byStatus: { '200': 1, '503': 2 }, dropped: 0 });
    expect(storedByN(sandbox).map((event) => event.idempotencyKey)).toEqual(
      [...ingest.deliveries]
        .sort((a, b) => Number((a.event.properties as { n: number }).n) - Number((b.event.properties as { n: number }).n))
        .map((delivery) => delivery.event.messageId),
    );
  });
});
