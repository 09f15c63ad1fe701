import { describe, expect, it } from 'vitest';
import {
  buildTrackEventItemInput,
  itemResult,
  MAX_USERS_EVENTS,
  type ParsedTrackEventItem,
  parseTrackEventRequest,
  TRACK_EVENT_ROUTES,
  type TrackEventItem,
  trackEventItemToUserEvent,
} from '../../../connectors/salesforce/invocable-input.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { memoryLogger } from '../../../shared/log.js';

const LEAD_15 = '00Q5e00000AbCdE';
const LEAD_18 = '00Q5e00000AbCdEEAV';
const CONTACT_18 = '003G000001SUbc4IAD';
const KEY = 'f650f058-192c-4e52-b72d-9634116f59eb';

function okItem(entry: ParsedTrackEventItem | undefined): TrackEventItem {
  if (!entry?.ok) throw new Error(`expected a valid item, got ${JSON.stringify(entry)}`);
  return entry.item;
}

function invalidBody(route: 'by-id' | 'by-lead' | 'by-contact', body: unknown): InvalidInputError {
  try {
    parseTrackEventRequest(route, body);
  } catch (error) {
    if (error instanceof InvalidInputError) return error;
    throw error;
  }
  throw new Error('expected InvalidInputError');
}

describe('the routes', () => {
  it('are the three SaaSquatch invocable actions, each with its id field', () => {
    expect(TRACK_EVENT_ROUTES).toEqual({
      'by-id': { path: '/salesforce/track-event/by-id', idField: 'recordId', recordTypes: ['Lead', 'Contact', 'Account'] },
      'by-lead': { path: '/salesforce/track-event/by-lead', idField: 'leadId', recordTypes: ['Lead'] },
      'by-contact': { path: '/salesforce/track-event/by-contact', idField: 'contactId', recordTypes: ['Contact'] },
    });
  });
});

describe('parseTrackEventRequest: the envelope', () => {
  it.each([
    ['a string', 'usersEvents', '(root)'],
    ['an object without usersEvents', {}, 'usersEvents'],
    ['an empty list', { usersEvents: [] }, 'usersEvents'],
    ['a list that is an object', { usersEvents: { a: 1 } }, 'usersEvents'],
  ])('refuses %s as a whole, naming the field', (_label, body, field) => {
    const error = invalidBody('by-lead', body);
    expect(error.issues[0]?.field).toBe(field);
    expect(error.message).toContain('/salesforce/track-event/by-lead');
  });

  it(`takes at most ${MAX_USERS_EVENTS} items`, () => {
    const item = { leadId: LEAD_18, key: 'purchase' };
    expect(parseTrackEventRequest('by-lead', { usersEvents: Array(MAX_USERS_EVENTS).fill(item) })).toHaveLength(MAX_USERS_EVENTS);
    const error = invalidBody('by-lead', { usersEvents: Array(MAX_USERS_EVENTS + 1).fill(item) });
    expect(error.issues).toEqual([{ field: 'usersEvents', reason: expect.stringContaining('at most 200') }]);
  });
});

describe('parseTrackEventRequest: items', () => {
  it('normalises the record id to 18 characters and keeps the inputs', () => {
    const [entry] = parseTrackEventRequest('by-lead', {
      usersEvents: [
        { leadId: LEAD_15, key: 'purchase', fields: { revenue: 10 }, dateTriggered: '2024-05-01T12:00:00.000Z', idempotencyKey: KEY },
      ],
    });
    expect(okItem(entry)).toEqual({
      index: 0,
      path: 'usersEvents[0]',
      userId: undefined,
      accountId: undefined,
      record: { type: 'Lead', id18: LEAD_18, idField: 'leadId' },
      key: 'purchase',
      fields: { revenue: 10 },
      dateTriggered: '2024-05-01T12:00:00.000Z',
      idempotencyKey: KEY,
    });
  });

  it('fails only the bad item, naming the item and field', () => {
    const results = parseTrackEventRequest('by-lead', {
      usersEvents: [
        { leadId: LEAD_18, key: 'a' },
        { leadId: LEAD_18, key: 'b' },
        { leadId: CONTACT_18, key: 'c' },
      ],
    });
    expect(results.map((result) => result.ok)).toEqual([true, true, false]);
    expect(results[2]).toEqual({
      ok: false,
      index: 2,
      field: 'usersEvents[2].leadId',
      reason: 'expected a Lead id, got a Contact id (key prefix 003)',
    });
  });

  it('reports every problem of an item, the first as its field', () => {
    const [result] = parseTrackEventRequest('by-contact', { usersEvents: [{ contactId: 42, fields: [1] }] });
    expect(result).toMatchObject({ ok: false, field: 'usersEvents[0].contactId' });
    expect(result?.ok === false && result.reason).toMatch(/usersEvents\[0\]\.key: required.*usersEvents\[0\]\.fields: expected an object/);
  });

  it('names the checksum problem of a bad id', () => {
    const [result] = parseTrackEventRequest('by-contact', { usersEvents: [{ contactId: '003G000001SUbc4IAE', key: 'k' }] });
    expect(result).toMatchObject({ ok: false, field: 'usersEvents[0].contactId', reason: expect.stringContaining('do not match') });
  });

  it('refuses an item that is not an object', () => {
    const [, result] = parseTrackEventRequest('by-id', { usersEvents: [{ recordId: LEAD_18, key: 'k' }, 'purchase'] });
    expect(result).toMatchObject({ ok: false, field: 'usersEvents[1]', reason: 'expected an object (one users event)' });
  });

  it('requires the route’s own id on by-lead and by-contact, whatever else is given', () => {
    const [result] = parseTrackEventRequest('by-lead', { usersEvents: [{ userId: 'u', accountId: 'a', contactId: CONTACT_18, key: 'k' }] });
    expect(result).toMatchObject({ ok: false, field: 'usersEvents[0].leadId', reason: 'required: the Lead id' });
  });

  it('lets by-id go without a record when userId and accountId are both given', () => {
    const [alone, half] = parseTrackEventRequest('by-id', {
      usersEvents: [
        { userId: 'ann@example.com', accountId: 'ann@example.com', key: 'k' },
        { userId: 'ann@example.com', key: 'k' },
      ],
    });
    expect(okItem(alone).record).toBeNull();
    expect(half).toMatchObject({
      ok: false,
      field: 'usersEvents[1].recordId',
      reason: expect.stringContaining('or both userId and accountId'),
    });
  });

  it('takes any of the three objects on by-id and refuses others', () => {
    const results = parseTrackEventRequest('by-id', {
      usersEvents: [
        { recordId: LEAD_18, key: 'k' },
        { recordId: CONTACT_18, key: 'k' },
        { recordId: '0015e00000XyZab', key: 'k' },
        { recordId: '0065e00000AbCdE', key: 'k' },
      ],
    });
    expect(results.slice(0, 3).map((result) => okItem(result).record?.type)).toEqual(['Lead', 'Contact', 'Account']);
    expect(results[3]).toMatchObject({ ok: false, field: 'usersEvents[3].recordId', reason: expect.stringContaining('Opportunity') });
  });

  it('treats null and "" as not given, as Flow sends unset variables', () => {
    const [entry] = parseTrackEventRequest('by-lead', {
      usersEvents: [{ leadId: LEAD_18, userId: '', accountId: null, key: 'k', fields: null, dateTriggered: '', idempotencyKey: null }],
    });
    const item = okItem(entry);
    expect([item.userId, item.accountId, item.fields, item.dateTriggered]).toEqual([undefined, undefined, undefined, undefined]);
  });
});

describe('trackEventItemToUserEvent and buildTrackEventItemInput', () => {
  const identity = { userId: 'ann@example.com', accountId: 'ann@example.com' };
  const parseOne = (item: Record<string, unknown>): TrackEventItem =>
    okItem(parseTrackEventRequest('by-contact', { usersEvents: [{ contactId: CONTACT_18, ...item }] })[0]);

  it('uses the idempotencyKey input as the candidate and builds the target input', () => {
    const item = parseOne({ key: 'purchase', fields: { revenue: 10 }, dateTriggered: '2024-05-01T12:00:00.000Z', idempotencyKey: KEY });
    const mapped = trackEventItemToUserEvent(item, identity);
    expect(mapped.decision).toMatchObject({ source: 'salesforce', key: KEY, decision: 'kept' });
    const built = buildTrackEventItemInput(item, mapped);
    expect(built).toEqual({
      ok: true,
      decision: mapped.decision,
      input: {
        userId: 'ann@example.com',
        accountId: 'ann@example.com',
        idempotencyKey: KEY,
        events: [{ key: 'purchase', fields: { revenue: 10 }, dateTriggered: Date.parse('2024-05-01T12:00:00.000Z') }],
      },
    });
    expect(itemResult(built)).toEqual({ ok: true, idempotencyKey: KEY, keyDecision: 'kept' });
  });

  it('never derives a key from the record and the event key: without a candidate there is no key', () => {
    const first = trackEventItemToUserEvent(parseOne({ key: 'purchase' }), identity);
    const second = trackEventItemToUserEvent(parseOne({ key: 'purchase' }), identity);
    expect(first.decision).toMatchObject({ key: null, decision: 'dropped', reason: 'missing' });
    expect(second.decision.key).toBeNull();
  });

  it('drops an invalid idempotencyKey with one warning, and the event still goes', () => {
    const logger = memoryLogger();
    const item = parseOne({ key: 'purchase', idempotencyKey: 'order:1234' });
    const mapped = trackEventItemToUserEvent(item, identity, { logger });
    expect(mapped.decision).toMatchObject({ key: null, decision: 'dropped', reason: 'bad_characters' });
    expect(logger.lines).toHaveLength(1);
    expect(JSON.stringify(logger.lines)).not.toContain('order:1234');
    const built = buildTrackEventItemInput(item, mapped);
    expect(built.ok && built.input.idempotencyKey).toBeUndefined();
    expect(itemResult(built)).toEqual({ ok: true, idempotencyKey: null, keyDecision: 'dropped' });
  });

  it('fails the item under the reject policy, naming its idempotencyKey', () => {
    const item = parseOne({ key: 'purchase', idempotencyKey: 'short' });
    const built = buildTrackEventItemInput(item, trackEventItemToUserEvent(item, identity, { policy: 'reject' }));
    expect(built).toMatchObject({
      ok: false,
      field: 'usersEvents[0].idempotencyKey',
      reason: expect.stringMatching(/^rejected: .*minimum is 8/),
    });
  });

  it('names the item’s own field when the event cannot be built', () => {
    const dated = parseOne({ key: 'purchase', dateTriggered: 'last tuesday' });
    expect(buildTrackEventItemInput(dated, trackEventItemToUserEvent(dated, identity))).toMatchObject({
      ok: false,
      field: 'usersEvents[0].dateTriggered',
    });
    const long = parseOne({ key: 'purchase', fields: { note: 'x'.repeat(1501) } });
    const built = buildTrackEventItemInput(long, trackEventItemToUserEvent(long, identity));
    expect(built).toMatchObject({ ok: false, field: 'usersEvents[0].fields.note', reason: expect.stringContaining('1501 UTF-8 bytes') });
    expect(itemResult(built as never)).toEqual({
      ok: false,
      field: 'usersEvents[0].fields.note',
      error: expect.stringMatching(/^usersEvents\[0\]\.fields\.note: /),
    });
  });
});
