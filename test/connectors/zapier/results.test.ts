import { describe, expect, it } from 'vitest';
import type { Bundle, ZObject } from 'zapier-platform-core';
import { loggedUserEvent, throwUnlessAllDelivered, throwUnlessDelivered } from '../../../connectors/zapier/results.js';
import { targetClientFor } from '../../../connectors/zapier/target.js';
import type { DeliveryResult } from '../../../shared/target/index.js';
import { appErrorBody, appTester, authDataFor, rejectionOf, TENANT, throttledBody, useSandbox } from './helpers.js';

const sandbox = useSandbox();

const result = (overrides: Partial<DeliveryResult>): DeliveryResult => ({
  outcome: 'accepted',
  status: 200,
  attempts: 1,
  key: 'order-A-1001-v1',
  message: null,
  apiErrorCode: null,
  rsCode: null,
  eventIds: [],
  retryAfterMs: null,
  ...overrides,
});

/** Runs the mapping with the platform's real z, so the errors are the ones Zapier sees. */
const mapOne = (delivery: DeliveryResult) => appTester(async (z: ZObject) => throwUnlessDelivered(z, TENANT, delivery) ?? 'delivered');
const mapAll = (deliveries: DeliveryResult[]) =>
  appTester(async (z: ZObject) => throwUnlessAllDelivered(z, TENANT, deliveries) ?? 'delivered');

describe('throwUnlessDelivered', () => {
  it('treats accepted and duplicate (409) as success', async () => {
    expect(await mapOne(result({ outcome: 'accepted' }))).toBe('delivered');
    expect(await mapOne(result({ outcome: 'duplicate', status: 409, message: 'already processed' }))).toBe('delivered');
  });

  it("turns a 400 into an error carrying the API's message, which names the field", async () => {
    const error = await rejectionOf(
      mapOne(result({ outcome: 'rejected', status: 400, apiErrorCode: 'VALIDATION_FAILED', message: 'events[0].key: must not be empty' })),
    );

    expect(appErrorBody(error)).toEqual({
      code: 'EventRejected',
      status: 400,
      message: 'SaaSquatch rejected the event (HTTP 400 VALIDATION_FAILED: events[0].key: must not be empty).',
    });
  });

  it('turns a 400 from the API itself into that error (input the shared layer would have refused, sent anyway)', async () => {
    const error = await rejectionOf(
      appTester(
        async (z: ZObject, bundle: Bundle) => {
          const client = targetClientFor(z, bundle);
          const delivery = await client.logUserEvent({ userId: 'user-1', accountId: 'account-1', events: [{ key: '' }] });
          throwUnlessDelivered(z, client.tenant, delivery);
        },
        { authData: authDataFor(sandbox.current()) },
      ),
    );

    expect(appErrorBody(error)).toEqual({
      code: 'EventRejected',
      status: 400,
      message: 'SaaSquatch rejected the event (HTTP 400 VALIDATION_FAILED: events[0].key: must not be empty).',
    });
    expect(sandbox.current().inspect(TENANT).events).toEqual([]);
  });

  it('rounds a Retry-After up to whole seconds, and leaves the delay to Zapier when there is none', async () => {
    const withDelay = await rejectionOf(mapOne(result({ outcome: 'failed', status: 429, retryAfterMs: 1500 })));
    const without = await rejectionOf(mapOne(result({ outcome: 'failed', status: 429 })));

    expect(throttledBody(withDelay)).toEqual({
      message: 'SaaSquatch is rate limiting requests (HTTP 429); Zapier reruns this step after 2 s with the same idempotency key.',
      delay: 2,
    });
    expect(throttledBody(without)).toEqual({
      message: 'SaaSquatch is rate limiting requests (HTTP 429); Zapier reruns this step after a delay with the same idempotency key.',
    });
  });

  it('keeps other 4xx final and 5xx retryable', async () => {
    const notFound = await rejectionOf(
      mapOne(result({ outcome: 'rejected', status: 404, rsCode: 'RS042', message: 'No user found with id "u" in account "a"' })),
    );
    const unavailable = await rejectionOf(mapOne(result({ outcome: 'failed', status: 503, message: 'Service Unavailable' })));

    expect(appErrorBody(notFound)).toEqual({
      code: 'EventRejected',
      status: 404,
      message: 'SaaSquatch rejected the event (HTTP 404 RS042: No user found with id "u" in account "a").',
    });
    expect(appErrorBody(unavailable)).toMatchObject({ code: 'TargetUnavailable', status: 503 });
  });
});

describe('throwUnlessAllDelivered', () => {
  it('succeeds when every event was accepted or a duplicate', async () => {
    expect(await mapAll([result({}), result({ outcome: 'duplicate', status: 409 })])).toBe('delivered');
  });

  it('asks for a replay when some events failed, and warns about events recorded without a key', async () => {
    const error = await rejectionOf(
      mapAll([
        result({ key: null }),
        result({ outcome: 'duplicate', status: 409 }),
        result({ outcome: 'failed', status: 503, message: 'Service Unavailable' }),
      ]),
    );

    expect(appErrorBody(error)).toEqual({
      code: 'TargetUnavailable',
      message:
        'SaaSquatch did not confirm every event: 1 of 3 events was not recorded (event 3: HTTP 503: Service Unavailable); 2 were. ' +
        'A replay resends them all with the same idempotency keys; those already recorded come back as duplicates. ' +
        'Event 1 was recorded without an idempotency key; a replay records it again.',
    });
  });

  it('lists rejected events when nothing is retryable', async () => {
    const error = await rejectionOf(
      mapAll([
        result({}),
        result({ outcome: 'rejected', status: 400, apiErrorCode: 'VALIDATION_FAILED', message: 'userId: must not be empty' }),
      ]),
    );

    expect(appErrorBody(error)).toEqual({
      code: 'EventRejected',
      message:
        'SaaSquatch rejected events: 1 of 2 events was not recorded (event 2: HTTP 400 VALIDATION_FAILED: userId: must not be empty); 1 was.',
    });
  });

  it('throttles with the longest Retry-After, and reports a 401 as an auth error', async () => {
    const throttled = await rejectionOf(
      mapAll([
        result({ outcome: 'failed', status: 429, retryAfterMs: 2000 }),
        result({ outcome: 'failed', status: 429, retryAfterMs: 9000 }),
      ]),
    );
    const unauthorized = await rejectionOf(mapAll([result({ outcome: 'rejected', status: 401, message: 'Invalid credentials' })]));

    expect(throttledBody(throttled).delay).toBe(9);
    expect(unauthorized.name).toBe('ExpiredAuthError');
    expect(unauthorized.message).toContain(`for tenant "${TENANT}" (HTTP 401: Invalid credentials)`);
  });
});

describe('loggedUserEvent', () => {
  it('reports a dropped key with its reason and a sentence', () => {
    const output = loggedUserEvent(
      { userId: 'u', accountId: 'a', events: [{ key: 'signup' }] },
      { source: 'zapier', candidate: 'bad key', key: null, decision: 'dropped', reason: 'bad_characters', detail: null },
      result({ key: null, eventIds: ['e1', 'e2'] }),
    );

    expect(output).toEqual({
      userId: 'u',
      accountId: 'a',
      eventKey: 'signup',
      eventIds: ['e1', 'e2'],
      eventId: 'e1',
      duplicate: false,
      idempotencyKey: null,
      idempotencyKeyDecision: 'dropped',
      idempotencyKeyDropped: 'bad_characters',
      idempotencyKeyDroppedDetail: 'it contains characters outside 8 to 64 characters of A-Z a-z 0-9 - _ .',
    });
  });
});
