import './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseIdentityFields, SalesforceUnavailableError } from '../../../connectors/salesforce/identity.js';
import type { SalesforceSession } from '../../../connectors/salesforce/salesforce-auth.js';
import { prepareTrackEventBatch, trackEventResponse } from '../../../connectors/salesforce/track-event-batch.js';
import type { FakeOrg } from '../../../sandbox/salesforce-org/index.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { memoryLogger } from '../../../shared/log.js';
import { connectTo, startTestOrg } from './helpers.js';

const CONTACT = { Id: '003G000001SUbc4IAD', Email: 'bob@example.com' };
const CONTACT_NO_EMAIL = { Id: '003G000001SUbc5IAD', Email: '' };
const LEAD = { Id: '00Q5e00000AbCdEEAV', Email: 'ann@example.com' };
const KEY = 'f650f058-192c-4e52-b72d-9634116f59eb';

describe('prepareTrackEventBatch', () => {
  let org: FakeOrg;
  let session: SalesforceSession;
  beforeAll(async () => {
    org = await startTestOrg({ records: { Contact: [CONTACT, CONTACT_NO_EMAIL], Lead: [LEAD] } });
    session = await connectTo(org);
  });
  afterAll(async () => {
    await org.close();
  });

  it('answers every item in input order, resolving identities with one query', async () => {
    const logger = memoryLogger();
    const queriesBefore = org.queries.length;
    const outcomes = await prepareTrackEventBatch(
      'by-contact',
      {
        usersEvents: [
          { contactId: '003G000001SUbc4', key: 'purchase', fields: { revenue: 10 }, idempotencyKey: KEY },
          { contactId: 'not-an-id', key: 'purchase' },
          { contactId: CONTACT_NO_EMAIL.Id, key: 'purchase' },
          { contactId: CONTACT.Id, key: 'purchase', idempotencyKey: 'order:1234' },
          { contactId: CONTACT.Id, userId: 'explicit', key: 'purchase', dateTriggered: 'yesterday' },
        ],
      },
      { connection: session.connection, keys: { logger } },
    );

    expect(org.queries.length - queriesBefore).toBe(1);
    expect(outcomes.map((outcome) => outcome.ok)).toEqual([true, false, false, true, false]);
    expect(outcomes[0]).toEqual({
      ok: true,
      index: 0,
      decision: expect.objectContaining({ key: KEY, decision: 'kept' }),
      record: { type: 'Contact', id18: CONTACT.Id },
      input: {
        userId: CONTACT.Email,
        accountId: CONTACT.Email,
        idempotencyKey: KEY,
        events: [{ key: 'purchase', fields: { revenue: 10 } }],
      },
    });
    expect(outcomes[1]).toMatchObject({ index: 1, field: 'usersEvents[1].contactId' });
    expect(outcomes[2]).toMatchObject({
      index: 2,
      field: 'usersEvents[2].userId',
      reason: expect.stringContaining(`Contact ${CONTACT_NO_EMAIL.Id} has no Email`),
    });
    expect(outcomes[3]).toMatchObject({ ok: true, decision: { key: null, decision: 'dropped', reason: 'bad_characters' } });
    expect(outcomes[4]).toMatchObject({ index: 4, field: 'usersEvents[4].dateTriggered' });
    // One warning per dropped candidate: the invalid one, and the item sent without any.
    expect(logger.lines.map((line) => [line.fields.event, line.fields.reason])).toEqual([
      ['idempotency_key_dropped', 'bad_characters'],
      ['idempotency_key_dropped', 'missing'],
    ]);

    expect(trackEventResponse(outcomes)).toEqual({
      results: [
        { ok: true, idempotencyKey: KEY, keyDecision: 'kept' },
        { ok: false, field: 'usersEvents[1].contactId', error: expect.stringMatching(/^usersEvents\[1\]\.contactId: /) },
        { ok: false, field: 'usersEvents[2].userId', error: expect.stringContaining('has no Email') },
        { ok: true, idempotencyKey: null, keyDecision: 'dropped' },
        { ok: false, field: 'usersEvents[4].dateTriggered', error: expect.any(String) },
      ],
    });
  });

  it('resolves by-id across object types with the configured fields', async () => {
    const outcomes = await prepareTrackEventBatch(
      'by-id',
      {
        usersEvents: [
          { recordId: LEAD.Id, key: 'signup' },
          { recordId: CONTACT.Id, key: 'signup' },
          { userId: 'u', accountId: 'a', key: 'signup' },
        ],
      },
      { connection: session.connection, identityFields: parseIdentityFields({ Lead: { accountId: 'Company' } }) },
    );
    expect(outcomes.map((outcome) => outcome.ok && [outcome.input.userId, outcome.input.accountId])).toEqual([
      false,
      ['bob@example.com', 'bob@example.com'],
      ['u', 'a'],
    ]);
    expect(outcomes[0]).toMatchObject({ field: 'usersEvents[0].accountId', reason: expect.stringContaining('has no Company') });
  });

  it('refuses a malformed body as a whole', async () => {
    await expect(prepareTrackEventBatch('by-lead', { usersEvents: 'all of them' }, { connection: session.connection })).rejects.toThrow(
      InvalidInputError,
    );
  });

  it('lets SalesforceUnavailableError through, for the route to answer 503', async () => {
    const own = await connectTo(org);
    org.invalidateTokens();
    org.failTokenRequests(1);
    await expect(
      prepareTrackEventBatch('by-lead', { usersEvents: [{ leadId: LEAD.Id, key: 'k' }] }, { connection: own.connection }),
    ).rejects.toThrow(SalesforceUnavailableError);
    session = await connectTo(org);
  });
});
