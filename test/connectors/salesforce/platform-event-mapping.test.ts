import { describe, expect, it } from 'vitest';
import {
  DEFAULT_PLATFORM_EVENT_CHANNEL,
  DEFAULT_PLATFORM_EVENT_FIELDS,
  type PlatformEventMessage,
  parsePlatformEventFieldMap,
  platformEventSourceId,
  platformEventToUserEvent,
  platformEventToUserEventInput,
} from '../../../connectors/salesforce/platform-event-mapping.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { memoryLogger } from '../../../shared/log.js';
import { inputIssuesOf } from '../../input-issues.js';

const UUID = '0b6b8b5e-3f0e-4d5c-9a0f-3e2f7f4b9c11';

function event(payload: Record<string, unknown>, eventUuid: string | null = UUID): PlatformEventMessage {
  return {
    channel: DEFAULT_PLATFORM_EVENT_CHANNEL,
    eventUuid,
    replayId: 1001,
    payload: { CreatedDate: '2024-05-01T12:00:05.000Z', CreatedById: '005000000000001AAA', ...payload },
  };
}

describe('platform event mapping', () => {
  it('reads the default fields and keys the event by its EventUuid', () => {
    const { input, decision } = platformEventToUserEventInput(
      event({
        User_Id__c: 'ann@example.com',
        Account_Id__c: 'acme',
        Event_Key__c: 'purchase',
        Fields__c: '{"revenue": 10, "currency": "USD"}',
        Date_Triggered__c: '2024-05-01T12:00:00.000Z',
      }),
    );
    expect(decision).toMatchObject({ source: 'salesforce', key: UUID, decision: 'kept' });
    expect(input).toEqual({
      userId: 'ann@example.com',
      accountId: 'acme',
      idempotencyKey: UUID,
      events: [{ key: 'purchase', fields: { revenue: 10, currency: 'USD' }, dateTriggered: Date.parse('2024-05-01T12:00:00.000Z') }],
    });
  });

  it('prefers Idempotency_Key__c when the publisher set one, and uses the user as the account when none is given', () => {
    const { input } = platformEventToUserEventInput(
      event({ User_Id__c: 'ann@example.com', Event_Key__c: 'purchase', Idempotency_Key__c: 'order-1234-purchase' }),
    );
    expect(input).toEqual({
      userId: 'ann@example.com',
      accountId: 'ann@example.com',
      idempotencyKey: 'order-1234-purchase',
      events: [{ key: 'purchase' }],
    });
  });

  it('drops the key with one warning when neither is usable (an event read below API 52.0 has no EventUuid)', () => {
    const logger = memoryLogger();
    const { input, decision } = platformEventToUserEventInput(event({ User_Id__c: 'u', Event_Key__c: 'k' }, null), { logger });
    expect(decision).toMatchObject({ key: null, decision: 'dropped', reason: 'missing' });
    expect(input.idempotencyKey).toBeUndefined();
    expect(logger.lines).toHaveLength(1);
  });

  it('names the event by its EventUuid in the ledger', () => {
    expect(platformEventSourceId(event({}))).toBe(UUID);
    expect(platformEventSourceId(event({}, null))).toBe('/event/SaaSquatch_User_Event__e#1001');
  });

  it('never uses the replayId as a key', () => {
    const { decision } = platformEventToUserEvent(event({ User_Id__c: 'u', Event_Key__c: 'k' }, null));
    expect(decision).toMatchObject({ candidate: null, key: null });
    expect(JSON.stringify(decision)).not.toContain('1001');
  });

  it('names the payload field when something is wrong', () => {
    expect(
      inputIssuesOf(() => platformEventToUserEventInput(event({ User_Id__c: 'u', Event_Key__c: 'k', Fields__c: '{revenue: 10}' }))),
    ).toEqual([{ field: 'Fields__c', reason: 'is not valid JSON' }]);
    expect(inputIssuesOf(() => platformEventToUserEventInput(event({ User_Id__c: 'u', Event_Key__c: 'k', Fields__c: '[1]' })))).toEqual([
      { field: 'Fields__c', reason: 'expected a JSON object of event fields' },
    ]);
    expect(inputIssuesOf(() => platformEventToUserEventInput(event({ User_Id__c: 'u' }))).map((issue) => issue.field)).toEqual([
      'Event_Key__c',
    ]);
    expect(inputIssuesOf(() => platformEventToUserEventInput(event({ Event_Key__c: 'k' }))).map((issue) => issue.field)).toEqual([
      'User_Id__c',
      'Account_Id__c (or User_Id__c)',
    ]);
    expect(
      inputIssuesOf(() => platformEventToUserEventInput(event({ User_Id__c: 'u', Event_Key__c: 'k', Date_Triggered__c: 'soon' }))).map(
        (issue) => issue.field,
      ),
    ).toEqual(['Date_Triggered__c']);
    expect(
      inputIssuesOf(() =>
        platformEventToUserEventInput(event({ User_Id__c: 'u', Event_Key__c: 'k', Fields__c: JSON.stringify({ note: 'x'.repeat(1501) }) })),
      ),
    ).toEqual([{ field: 'Fields__c.note', reason: expect.stringContaining('1501 UTF-8 bytes') }]);
  });

  it('refuses an invalid key under the reject policy, naming where it came from', () => {
    expect(
      inputIssuesOf(() =>
        platformEventToUserEventInput(event({ User_Id__c: 'u', Event_Key__c: 'k', Idempotency_Key__c: 'a:b:c:d:e' }), { policy: 'reject' }),
      ),
    ).toEqual([{ field: 'Idempotency_Key__c', reason: expect.stringMatching(/^rejected: /) }]);
  });

  it('takes a custom field map over the defaults, and only field names', () => {
    const fieldMap = parsePlatformEventFieldMap({ userId: 'Referrer_Email__c', eventKey: 'Kind__c' });
    expect(fieldMap).toEqual({ ...DEFAULT_PLATFORM_EVENT_FIELDS, userId: 'Referrer_Email__c', eventKey: 'Kind__c' });
    const { input } = platformEventToUserEventInput(event({ Referrer_Email__c: 'ann@example.com', Kind__c: 'signup' }), { fieldMap });
    expect(input).toMatchObject({ userId: 'ann@example.com', events: [{ key: 'signup' }] });
    expect(() => parsePlatformEventFieldMap({ userId: 'User Id' })).toThrow(InvalidInputError);
    expect(() => parsePlatformEventFieldMap({ replayId: 'Replay__c' })).toThrow(InvalidInputError);
  });
});
