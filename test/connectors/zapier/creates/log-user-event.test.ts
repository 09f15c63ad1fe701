import { describe, expect, it } from 'vitest';
import { performLogUserEvent } from '../../../../connectors/zapier/creates/log-user-event.js';
import type { LoggedUserEvent } from '../../../../connectors/zapier/results.js';
import type { TenantSnapshot } from '../../../../sandbox/target/index.js';
import {
  API_KEY,
  appErrorBody,
  appTester,
  authDataFor,
  BASIC_CREDENTIALS,
  lostAnswer,
  rejectionOf,
  runLogged,
  TENANT,
  throttledBody,
  useSandbox,
} from '../helpers.js';

const sandbox = useSandbox();
const PERFORM = 'creates.log_user_event.operation.perform';

const purchase = (inputData: Record<string, unknown> = {}) => ({
  userId: 'user-1',
  accountId: 'account-1',
  eventKey: 'purchase',
  fields: { order_id: 'A-1001', revenue: '12.50' },
  dateTriggered: '2024-05-01T08:00:00-04:00',
  ...inputData,
});

/** Runs the create the way Zapier's test harness does; resolves with its output. */
async function logEvent(inputData: Record<string, unknown>, authData: Record<string, string> = {}): Promise<LoggedUserEvent> {
  return (await appTester(performLogUserEvent, {
    authData: { ...authDataFor(sandbox.current()), ...authData },
    inputData,
  })) as LoggedUserEvent;
}

const recorded = (): TenantSnapshot => sandbox.current().inspect(TENANT);
const KEYED = 'order-A-1001-v1';

describe('Log User Event', () => {
  it('logs a first run: the event, its fields, its date as epoch ms and the key reach SaaSquatch', async () => {
    const output = await logEvent(purchase({ idempotencyKey: KEYED }));

    const [event] = recorded().events;
    expect(recorded().events).toHaveLength(1);
    expect(event).toMatchObject({
      userId: 'user-1',
      accountId: 'account-1',
      key: 'purchase',
      fields: { order_id: 'A-1001', revenue: '12.50' },
      dateTriggered: Date.UTC(2024, 4, 1, 12, 0, 0),
      idempotencyKey: KEYED,
      via: 'rest',
    });
    expect(output).toEqual({
      userId: 'user-1',
      accountId: 'account-1',
      eventKey: 'purchase',
      eventIds: [event?.id],
      eventId: event?.id,
      duplicate: false,
      idempotencyKey: KEYED,
      idempotencyKeyDecision: 'kept',
      idempotencyKeyDropped: null,
      idempotencyKeyDroppedDetail: null,
    });
  });

  it('answers the same bundle run again (a replay) with duplicate: true, and SaaSquatch keeps one event', async () => {
    const first = await logEvent(purchase({ idempotencyKey: KEYED }));
    const replay = await logEvent(purchase({ idempotencyKey: KEYED }));

    expect(replay).toEqual({ ...first, eventIds: [], eventId: null, duplicate: true });
    expect(recorded().events.map((event) => event.id)).toEqual(first.eventIds);
    expect(recorded().keys).toMatchObject([{ key: KEYED, requests: 2, eventIds: first.eventIds }]);
    expect(recorded().requests.byStatus).toEqual({ '200': 1, '409': 1 });
  });

  it('sends an event without a key when none is given, so each run records one (no dedup without a key)', async () => {
    const first = await logEvent(purchase());
    const second = await logEvent(purchase());

    expect(first).toMatchObject({ idempotencyKey: null, idempotencyKeyDecision: 'none', idempotencyKeyDropped: null, duplicate: false });
    expect(second.duplicate).toBe(false);
    expect(recorded().events.map((event) => event.idempotencyKey)).toEqual([null, null]);
    expect(recorded().keys).toEqual([]);
  });

  it('treats unset optional inputs sent as "" as absent', async () => {
    const output = await logEvent(
      purchase({ fields: '', dateTriggered: '', idempotencyKey: '', idempotencyKeyFrom: '', invalidKeyPolicy: '' }),
    );

    expect(output).toMatchObject({ idempotencyKey: null, idempotencyKeyDecision: 'none', duplicate: false });
    expect(recorded().events).toMatchObject([{ fields: {}, idempotencyKey: null }]);
    expect(recorded().events[0]?.dateTriggered).toBe(recorded().events[0]?.dateReceived);
  });

  describe('idempotencyKeyFrom', () => {
    const derive = { idempotencyKeyFrom: ['eventKey', 'fields.order_id'] };
    // Pinned: a derived key must not change between releases, or a replay after an upgrade would record twice.
    const DERIVED_A1001 = 'oncekit-sha256-8ULhFKYc_PJRkF5M1H7eH0GXWw8Tcfg7kR9HBG9pOGA';

    it('derives the same key from the same data, whatever the order the inputs are named in', async () => {
      const first = await logEvent(purchase(derive));
      const again = await logEvent(
        purchase({ idempotencyKeyFrom: ['fields.order_id', 'eventKey'], fields: { order_id: 'A-1001', revenue: '99' } }),
      );

      expect(first).toMatchObject({ idempotencyKey: DERIVED_A1001, idempotencyKeyDecision: 'hashed', duplicate: false });
      expect(again).toMatchObject({ idempotencyKey: DERIVED_A1001, idempotencyKeyDecision: 'hashed', duplicate: true });
      expect(recorded().events).toHaveLength(1);
      expect(recorded().keys).toMatchObject([{ key: DERIVED_A1001, requests: 2 }]);
    });

    it('derives a different key from different data', async () => {
      const a = await logEvent(purchase(derive));
      const b = await logEvent(purchase({ ...derive, fields: { order_id: 'A-1002', revenue: '12.50' } }));
      const c = await logEvent(purchase({ ...derive, eventKey: 'refund' }));

      expect(new Set([a.idempotencyKey, b.idempotencyKey, c.idempotencyKey]).size).toBe(3);
      expect([a, b, c].map((output) => output.duplicate)).toEqual([false, false, false]);
      expect(recorded().events.map((event) => event.idempotencyKey)).toEqual([a.idempotencyKey, b.idempotencyKey, c.idempotencyKey]);
    });

    it('takes precedence over an explicit key, and accepts the names as one comma-separated text', async () => {
      const output = await logEvent(purchase({ idempotencyKey: KEYED, idempotencyKeyFrom: 'eventKey, fields.order_id' }));

      expect(output.idempotencyKey).toBe(DERIVED_A1001);
      expect(recorded().events[0]?.idempotencyKey).toBe(DERIVED_A1001);
    });

    it('drops the key and names the empty input when a chosen input has no value (drop policy)', async () => {
      const output = await logEvent(purchase({ idempotencyKeyFrom: ['fields.order_id'], fields: { revenue: '5' } }));

      expect(output).toMatchObject({
        idempotencyKey: null,
        idempotencyKeyDecision: 'dropped',
        idempotencyKeyDropped: 'missing',
        idempotencyKeyDroppedDetail: 'the field chosen for the key "fields.order_id" is empty',
      });
      expect(recorded().events).toMatchObject([{ idempotencyKey: null, fields: { revenue: '5' } }]);
    });

    it('fails without sending when a named input does not exist (a setup mistake, not a data problem)', async () => {
      const error = await rejectionOf(logEvent(purchase({ idempotencyKeyFrom: ['eventKey', 'orderId'] })));

      expect(appErrorBody(error)).toEqual({
        code: 'InvalidInput',
        message:
          'The event was not sent: idempotencyKeyFrom: unknown input "orderId"; use userId, accountId, eventKey, dateTriggered, fields or fields.<name>',
      });
      expect(recorded().requests.total).toBe(0);
    });
  });

  describe('an invalid explicit key', () => {
    it('is dropped by default: the event is still logged, without a key, and the output says why', async () => {
      const output = await logEvent(purchase({ idempotencyKey: 'abc' }));

      expect(output).toMatchObject({
        idempotencyKey: null,
        idempotencyKeyDecision: 'dropped',
        idempotencyKeyDropped: 'too_short',
        idempotencyKeyDroppedDetail: 'it has 3 characters; the minimum is 8',
        duplicate: false,
      });
      expect(recorded().events).toMatchObject([{ key: 'purchase', idempotencyKey: null }]);
      expect(recorded().keys).toEqual([]);
    });

    it('logs one structured warning for the dropped key, without the key itself', async () => {
      const run = await runLogged(PERFORM, {
        authData: authDataFor(sandbox.current()),
        inputData: purchase({ idempotencyKey: 'bad key!' }),
      });

      expect(run.error).toBeNull();
      const warnings = run.logs.filter((line) => line.includes('idempotency_key_dropped'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('bad_characters');
      expect(warnings.join('\n')).not.toContain('bad key!');
    });

    it('is replaced by a derived key under the hash policy, so replays still dedup', async () => {
      const first = await logEvent(purchase({ idempotencyKey: 'order #1001', invalidKeyPolicy: 'hash' }));
      const replay = await logEvent(purchase({ idempotencyKey: 'order #1001', invalidKeyPolicy: 'hash' }));

      expect(first.idempotencyKey).toMatch(/^oncekit-sha256-[A-Za-z0-9_-]{43}$/);
      expect(first).toMatchObject({ idempotencyKeyDecision: 'hashed', idempotencyKeyDropped: null, duplicate: false });
      expect(replay).toMatchObject({ idempotencyKey: first.idempotencyKey, duplicate: true });
      expect(recorded().events).toHaveLength(1);
    });

    it('fails the step without sending under the reject policy', async () => {
      const error = await rejectionOf(logEvent(purchase({ idempotencyKey: 'abc', invalidKeyPolicy: 'reject' })));

      expect(appErrorBody(error)).toEqual({
        code: 'IdempotencyKeyRejected',
        message:
          'The event was not sent: idempotency key from zapier rejected (too_short): it has 3 characters; the minimum is 8. Fix the key or choose another Invalid Key Policy.',
      });
      expect(recorded().requests.total).toBe(0);
    });

    it('refuses an unknown policy, naming the input', async () => {
      const error = await rejectionOf(logEvent(purchase({ idempotencyKey: KEYED, invalidKeyPolicy: 'ignore' })));

      expect(appErrorBody(error)).toEqual({
        code: 'InvalidInput',
        message: 'The event was not sent: invalidKeyPolicy: expected one of drop, hash, reject',
      });
      expect(recorded().requests.total).toBe(0);
    });
  });

  describe('bad input', () => {
    it('names the Zapier input of each problem and sends nothing', async () => {
      const error = await rejectionOf(
        logEvent(purchase({ eventKey: '', fields: { note: 'x'.repeat(1501) }, dateTriggered: 'next Tuesday' })),
      );

      expect(appErrorBody(error)).toEqual({
        code: 'InvalidInput',
        message: 'The event was not sent: dateTriggered: expected an ISO-8601 date or epoch milliseconds, got "next Tuesday"',
      });
      const second = await rejectionOf(logEvent(purchase({ eventKey: '', fields: { note: 'x'.repeat(1501) } })));
      expect(appErrorBody(second).message).toBe(
        'The event was not sent: eventKey: must not be empty; fields.note: string is 1501 UTF-8 bytes; the target accepts at most 1500',
      );
      expect(recorded().requests.total).toBe(0);
    });

    it('names the connection field when the API Base URL is not a URL', async () => {
      const error = await rejectionOf(logEvent(purchase(), { apiBaseUrl: 'app.referralsaasquatch' }));

      expect(appErrorBody(error)).toEqual({ code: 'InvalidInput', message: 'The event was not sent: apiBaseUrl: must be an http(s) URL' });
    });
  });

  describe('failures Zapier retries', () => {
    it('turns a 500 into a retryable error; the rerun (Autoreplay) records the event once', async () => {
      sandbox.current().faults.enqueue({ kind: 'status', status: 500 });
      const error = await rejectionOf(logEvent(purchase({ idempotencyKey: KEYED })));

      expect(appErrorBody(error)).toEqual({
        code: 'TargetUnavailable',
        status: 500,
        message: `SaaSquatch did not confirm the event (HTTP 500 INTERNAL_SERVER_ERROR: Internal Server Error). Replaying this step (Autoreplay or by hand) resends it with the same idempotency key "${KEYED}", so SaaSquatch records it once.`,
      });
      expect(recorded().events).toEqual([]);

      const rerun = await logEvent(purchase({ idempotencyKey: KEYED }));
      expect(rerun.duplicate).toBe(false);
      expect(recorded().events).toHaveLength(1);
      expect(recorded().keys).toMatchObject([{ key: KEYED, requests: 2 }]);
    });

    it('reruns a request SaaSquatch recorded before its answer was lost as a duplicate, with one event', async () => {
      sandbox.current().faults.enqueue(lostAnswer('status'));
      const error = await rejectionOf(logEvent(purchase({ idempotencyKey: KEYED })));
      expect(appErrorBody(error)).toMatchObject({ code: 'TargetUnavailable', status: 503 });
      expect(recorded().events).toHaveLength(1);

      const rerun = await logEvent(purchase({ idempotencyKey: KEYED }));
      expect(rerun).toMatchObject({ duplicate: true, eventIds: [], idempotencyKey: KEYED });
      expect(recorded().events).toHaveLength(1);
    });

    it('turns a connection reset into a retryable error; the rerun records once', async () => {
      sandbox.current().faults.enqueue(lostAnswer('drop'));
      const error = await rejectionOf(logEvent(purchase({ idempotencyKey: KEYED })));
      const body = appErrorBody(error);
      expect(body.code).toBe('TargetUnavailable');
      expect(body.status).toBeUndefined();
      expect(body.message).toMatch(/^SaaSquatch did not confirm the event \(no response: .*ECONNRESET.*\)\. Replaying this step/);

      const rerun = await logEvent(purchase({ idempotencyKey: KEYED }));
      expect(rerun.duplicate).toBe(true);
      expect(recorded().events).toHaveLength(1);
    });

    it('says a replay may record twice when the event had no key', async () => {
      sandbox.current().faults.enqueue({ kind: 'status', status: 502 });
      const error = await rejectionOf(logEvent(purchase()));

      expect(appErrorBody(error).message).toBe(
        'SaaSquatch did not confirm the event (HTTP 502: <html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>). ' +
          'It was sent without an idempotency key: if SaaSquatch did record it, a replay records it again.',
      );
    });

    it('turns a 429 into a ThrottledError with the Retry-After delay in seconds', async () => {
      sandbox.current().faults.enqueue({ kind: 'throttle', retryAfterSeconds: 7 });
      const error = await rejectionOf(logEvent(purchase({ idempotencyKey: KEYED })));

      expect(throttledBody(error)).toEqual({
        message: 'SaaSquatch is rate limiting requests (HTTP 429); Zapier reruns this step after 7 s with the same idempotency key.',
        delay: 7,
      });
      expect(recorded().events).toEqual([]);
      const rerun = await logEvent(purchase({ idempotencyKey: KEYED }));
      expect(rerun.duplicate).toBe(false);
      expect(recorded().events).toHaveLength(1);
    });
  });

  it('turns a 401 into an auth error that names the tenant and asks to reconnect', async () => {
    const error = await rejectionOf(logEvent(purchase({ idempotencyKey: KEYED }), { apiKey: 'not-the-key' }));

    expect(error.name).toBe('ExpiredAuthError');
    expect(error.message.split('\n')[0]).toBe(
      `SaaSquatch did not accept the API key for tenant "${TENANT}" (HTTP 401 UNAUTHORIZED: Invalid credentials: the API key is not valid for this tenant). ` +
        'Check the tenant alias and use an API key of that tenant (Portal → Settings → API), then reconnect.',
    );
    expect(recorded().events).toEqual([]);
  });

  it('never puts the API key (or its Basic-auth form) into errors or logs', async () => {
    const authData = authDataFor(sandbox.current());
    sandbox.current().faults.enqueue({ kind: 'status', status: 500 });
    const runs = [
      await runLogged(PERFORM, { authData, inputData: purchase({ idempotencyKey: 'short' }) }),
      await runLogged(PERFORM, { authData, inputData: purchase({ idempotencyKey: KEYED }) }),
      await runLogged(PERFORM, { authData: { ...authData, apiKey: `${API_KEY}-old` }, inputData: purchase() }),
      await runLogged(PERFORM, { authData, inputData: purchase({ eventKey: '' }) }),
    ];

    expect(runs.map((run) => run.error?.name ?? 'ok')).toEqual(['AppError', 'ok', 'ExpiredAuthError', 'AppError']);
    const logs = runs.flatMap((run) => run.logs).join('\n');
    // The capture works: request lines and the dropped-key warning are there.
    expect(logs).toContain('/open/account/account-1/user/user-1/events');
    expect(logs).toContain('idempotency_key_dropped');
    // The User-Agent core's http patch recognises z.request calls by (that patch logs headers unscrubbed).
    expect(logs).toContain('user-agent: Zapier');
    const errors = runs.map((run) => `${run.error?.message ?? ''} ${run.error?.stack ?? ''}`).join('\n');
    for (const secret of [API_KEY, BASIC_CREDENTIALS]) {
      expect(logs).not.toContain(secret);
      expect(errors).not.toContain(secret);
    }
  });
});
