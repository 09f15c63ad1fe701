import { describe, expect, it } from 'vitest';
import { type LoggedUserEvents, performLogUserEvents } from '../../../../connectors/zapier/creates/log-user-events.js';
import type { TenantSnapshot } from '../../../../sandbox/target/index.js';
import { appErrorBody, appTester, authDataFor, lostAnswer, rejectionOf, TENANT, throttledBody, useSandbox } from '../helpers.js';

const sandbox = useSandbox();

/** Line items as Zapier passes them: one object per item, every value text. */
const orderLines = (order: string, count: number) =>
  Array.from({ length: count }, (_, index) => ({
    userId: 'user-1',
    accountId: 'account-1',
    eventKey: 'purchase',
    fields: JSON.stringify({ order_id: order, line: index + 1 }),
    dateTriggered: '2024-05-01T12:00:00Z',
    idempotencyKey: `${order}-line-${index + 1}`,
  }));

async function logEvents(inputData: Record<string, unknown>): Promise<LoggedUserEvents> {
  return (await appTester(performLogUserEvents, { authData: authDataFor(sandbox.current()), inputData })) as LoggedUserEvents;
}

const recorded = (): TenantSnapshot => sandbox.current().inspect(TENANT);

describe('Log User Events', () => {
  it('logs every line item in one logUserEvents call, each with its own key', async () => {
    const output = await logEvents({ events: orderLines('A-1001', 3) });

    expect(recorded().requests).toEqual({ total: 1, byStatus: { '200': 1 }, dropped: 0 });
    expect(
      recorded().events.map(({ key, fields, dateTriggered, idempotencyKey, via }) => ({ key, fields, dateTriggered, idempotencyKey, via })),
    ).toEqual(
      [1, 2, 3].map((line) => ({
        key: 'purchase',
        fields: { order_id: 'A-1001', line },
        dateTriggered: Date.UTC(2024, 4, 1, 12),
        idempotencyKey: `A-1001-line-${line}`,
        via: 'graphql',
      })),
    );
    expect(output).toEqual({
      events: recorded().events.map((event, index) => ({
        userId: 'user-1',
        accountId: 'account-1',
        eventKey: 'purchase',
        eventIds: [event.id],
        eventId: event.id,
        duplicate: false,
        idempotencyKey: `A-1001-line-${index + 1}`,
        idempotencyKeyDecision: 'kept',
        idempotencyKeyDropped: null,
        idempotencyKeyDroppedDetail: null,
      })),
      total: 3,
      recorded: 3,
      duplicates: 0,
    });
  });

  it('reports a replay as duplicates and records nothing new; a new line item in it is recorded', async () => {
    await logEvents({ events: orderLines('A-1001', 2) });
    const replay = await logEvents({ events: orderLines('A-1001', 2) });
    const extended = await logEvents({ events: orderLines('A-1001', 3) });

    expect(replay).toMatchObject({ total: 2, recorded: 0, duplicates: 2 });
    expect(replay.events.map((event) => event.duplicate)).toEqual([true, true]);
    expect(extended).toMatchObject({ total: 3, recorded: 1, duplicates: 2 });
    expect(recorded().events.map((event) => event.idempotencyKey)).toEqual(['A-1001-line-1', 'A-1001-line-2', 'A-1001-line-3']);
  });

  it('derives each event key from its own line item with idempotencyKeyFrom', async () => {
    const lines = orderLines('A-1001', 2).map(({ idempotencyKey: _, ...line }) => line);
    const first = await logEvents({ events: lines, idempotencyKeyFrom: ['fields.order_id', 'fields.line'] });
    const replay = await logEvents({ events: lines, idempotencyKeyFrom: ['fields.line', 'fields.order_id'] });

    const keys = first.events.map((event) => event.idempotencyKey);
    expect(keys[0]).toMatch(/^oncekit-sha256-/);
    expect(new Set(keys).size).toBe(2);
    expect(replay.events.map((event) => event.idempotencyKey)).toEqual(keys);
    expect(replay.duplicates).toBe(2);
    expect(recorded().events).toHaveLength(2);
  });

  it('drops an invalid key of one line item and still logs that event', async () => {
    const lines = orderLines('A-1001', 2);
    const output = await logEvents({ events: [lines[0], { ...lines[1], idempotencyKey: 'line 2' }] });

    expect(output.events[1]).toMatchObject({
      idempotencyKey: null,
      idempotencyKeyDecision: 'dropped',
      idempotencyKeyDropped: 'bad_characters',
    });
    expect(recorded().events.map((event) => event.idempotencyKey)).toEqual(['A-1001-line-1', null]);
  });

  it('accepts a single event given without line items', async () => {
    const [line] = orderLines('A-1001', 1);
    const output = await logEvents({ events: line });

    expect(output).toMatchObject({ total: 1, recorded: 1 });
  });

  it('names every bad line item and sends nothing', async () => {
    const lines = orderLines('A-1001', 3);
    const error = await rejectionOf(
      logEvents({
        events: [lines[0], { ...lines[1], eventKey: '' }, { ...lines[2], fields: 'order A-1001', idempotencyKey: 'x' }],
        invalidKeyPolicy: 'reject',
      }),
    );

    expect(appErrorBody(error)).toEqual({
      code: 'InvalidInput',
      message:
        'No event was sent: events[1].eventKey: must not be empty; events[2].fields: expected a JSON object, e.g. {"order_id": "A-1"}',
    });
    const rejectedKey = await rejectionOf(logEvents({ events: [{ ...lines[0], idempotencyKey: 'x' }], invalidKeyPolicy: 'reject' }));
    expect(appErrorBody(rejectedKey).message).toBe(
      'No event was sent: events[0].idempotencyKey: idempotency key from zapier rejected (too_short): it has 1 character; the minimum is 8',
    );
    const none = await rejectionOf(logEvents({ events: [] }));
    expect(appErrorBody(none).message).toBe('No event was sent: events: needs at least one event');
    expect(recorded().requests.total).toBe(0);
  });

  describe('failures Zapier retries', () => {
    it('turns a 500 into a retryable error; the rerun records every event once', async () => {
      sandbox.current().faults.enqueue({ kind: 'status', status: 500 });
      const error = await rejectionOf(logEvents({ events: orderLines('A-1001', 2) }));

      expect(appErrorBody(error)).toEqual({
        code: 'TargetUnavailable',
        message:
          'SaaSquatch did not confirm every event: 2 of 2 events were not recorded (event 1: HTTP 500 INTERNAL_SERVER_ERROR: Internal Server Error; ' +
          'event 2: HTTP 500 INTERNAL_SERVER_ERROR: Internal Server Error); 0 were. ' +
          'A replay resends them all with the same idempotency keys; those already recorded come back as duplicates.',
      });
      expect(recorded().events).toEqual([]);
      const rerun = await logEvents({ events: orderLines('A-1001', 2) });
      expect(rerun).toMatchObject({ recorded: 2, duplicates: 0 });
      expect(recorded().events).toHaveLength(2);
    });

    it('reruns a batch SaaSquatch recorded before its answer was lost as duplicates', async () => {
      sandbox.current().faults.enqueue(lostAnswer('status'));
      const error = await rejectionOf(logEvents({ events: orderLines('A-1001', 2) }));
      expect(appErrorBody(error).code).toBe('TargetUnavailable');
      expect(recorded().events).toHaveLength(2);

      const rerun = await logEvents({ events: orderLines('A-1001', 2) });
      expect(rerun).toMatchObject({ recorded: 0, duplicates: 2 });
      expect(recorded().events).toHaveLength(2);
    });

    it('turns a 429 into a ThrottledError with the Retry-After delay', async () => {
      sandbox.current().faults.enqueue({ kind: 'throttle', retryAfterSeconds: 12 });
      const error = await rejectionOf(logEvents({ events: orderLines('A-1001', 2) }));

      expect(throttledBody(error).delay).toBe(12);
      expect(recorded().events).toEqual([]);
    });
  });
});
