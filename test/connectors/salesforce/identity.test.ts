import './helpers.js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_IDENTITY_FIELDS,
  type IdentityRequest,
  identityFieldsFromEnv,
  parseIdentityFields,
  resolveIdentities,
  SalesforceUnavailableError,
  soqlString,
} from '../../../connectors/salesforce/identity.js';
import type { SalesforceSession } from '../../../connectors/salesforce/salesforce-auth.js';
import type { FakeOrg } from '../../../sandbox/salesforce-org/index.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { connectTo, startTestOrg } from './helpers.js';

const LEAD = { Id: '00Q5e00000AbCdEEAV', Email: 'ann@example.com' };
const LEAD_NO_EMAIL = { Id: '00Q5e00000AbCdFEAV', Email: null };
const LEAD_MISSING = '00Q5e00000ZzZzZEAV';
const ACCOUNT = { Id: '0015e00000XyZabAAF', Name: 'Acme', SaaSquatch_Account_Id__c: 'acme-account' };
const CONTACT = { Id: '003G000001SUbc4IAD', Email: 'bob@example.com', AccountId: ACCOUNT.Id };

const lead = (index: number, id18: string, extra: Partial<IdentityRequest> = {}): IdentityRequest => ({
  path: `usersEvents[${index}]`,
  record: { type: 'Lead', id18, idField: 'leadId' },
  ...extra,
});
const contact = (index: number, id18: string, extra: Partial<IdentityRequest> = {}): IdentityRequest => ({
  path: `usersEvents[${index}]`,
  record: { type: 'Contact', id18, idField: 'contactId' },
  ...extra,
});
const account = (index: number, id18: string): IdentityRequest => ({
  path: `usersEvents[${index}]`,
  record: { type: 'Account', id18, idField: 'recordId' },
});

describe('resolveIdentities', () => {
  let org: FakeOrg;
  let session: SalesforceSession;
  beforeAll(async () => {
    org = await startTestOrg({ records: { Lead: [LEAD, LEAD_NO_EMAIL], Contact: [CONTACT], Account: [ACCOUNT] } });
    session = await connectTo(org);
  });
  afterAll(async () => {
    await org.close();
  });
  let queriesBefore = 0;
  beforeEach(() => {
    queriesBefore = org.queries.length;
  });
  const newQueries = () => org.queries.slice(queriesBefore);

  it('reads userId and accountId from Email by default, in input order', async () => {
    const results = await resolveIdentities(session.connection, [contact(0, CONTACT.Id), lead(1, LEAD.Id)]);
    expect(results).toEqual([
      { ok: true, userId: 'bob@example.com', accountId: 'bob@example.com', recordType: 'Contact', recordId18: CONTACT.Id },
      { ok: true, userId: 'ann@example.com', accountId: 'ann@example.com', recordType: 'Lead', recordId18: LEAD.Id },
    ]);
  });

  it('asks Salesforce once per object type, however many items', async () => {
    const requests = [
      lead(0, LEAD.Id),
      lead(1, LEAD_NO_EMAIL.Id),
      lead(2, LEAD.Id),
      lead(3, LEAD_MISSING),
      contact(4, CONTACT.Id),
      contact(5, CONTACT.Id),
    ];
    await resolveIdentities(session.connection, requests);
    expect(newQueries().map((query) => query.type)).toEqual(['Lead', 'Contact']);
    const leadQuery = newQueries()[0]?.soql ?? '';
    expect(leadQuery).toBe(`SELECT Id, Email FROM Lead WHERE Id IN ('${LEAD.Id}', '${LEAD_NO_EMAIL.Id}', '${LEAD_MISSING}')`);
    // No per-record GETs.
    expect(org.requests.filter((request) => request.path.includes('/sobjects/'))).toEqual([]);
  });

  it('reports a record that does not exist on the item’s id field', async () => {
    const [result] = await resolveIdentities(session.connection, [lead(3, LEAD_MISSING)]);
    expect(result).toEqual({
      ok: false,
      field: 'usersEvents[3].leadId',
      reason: expect.stringContaining(`no Lead with id ${LEAD_MISSING}`),
    });
  });

  it('says which field on which record is empty', async () => {
    const [result] = await resolveIdentities(session.connection, [lead(1, LEAD_NO_EMAIL.Id)]);
    expect(result).toEqual({
      ok: false,
      field: 'usersEvents[1].userId',
      reason: `Lead ${LEAD_NO_EMAIL.Id} has no Email (the field that gives userId); fill it in on the record, or pass userId`,
    });
  });

  it('lets explicit ids win, and reads only what is missing', async () => {
    const results = await resolveIdentities(session.connection, [
      lead(0, LEAD.Id, { userId: 'explicit-user' }),
      lead(1, LEAD_NO_EMAIL.Id, { userId: 'u1', accountId: 'a1' }),
    ]);
    expect(results).toEqual([
      { ok: true, userId: 'explicit-user', accountId: 'ann@example.com', recordType: 'Lead', recordId18: LEAD.Id },
      { ok: true, userId: 'u1', accountId: 'a1', recordType: 'Lead', recordId18: LEAD_NO_EMAIL.Id },
    ]);
    expect(newQueries()).toEqual([{ type: 'Lead', soql: `SELECT Id, Email FROM Lead WHERE Id IN ('${LEAD.Id}')` }]);
  });

  it('does not ask Salesforce at all when every item has both ids', async () => {
    const results = await resolveIdentities(session.connection, [
      { path: 'usersEvents[0]', record: null, userId: 'u', accountId: 'a' },
      lead(1, LEAD_MISSING, { userId: 'u', accountId: 'a' }),
    ]);
    expect(results.every((result) => result.ok)).toBe(true);
    expect(results[0]).toMatchObject({ recordType: null, recordId18: null });
    expect(newQueries()).toEqual([]);
  });

  it('has no default fields for Account, and says how to configure them', async () => {
    expect(DEFAULT_IDENTITY_FIELDS.Account).toEqual({ userId: null, accountId: null });
    const [result] = await resolveIdentities(session.connection, [account(0, ACCOUNT.Id)]);
    expect(result).toEqual({
      ok: false,
      field: 'usersEvents[0].userId',
      reason: expect.stringContaining('no Account field is configured to give userId'),
    });
    expect(newQueries()).toEqual([]);
  });

  it('reads configured fields, relationship paths included', async () => {
    const fields = parseIdentityFields({
      Account: { userId: 'SaaSquatch_Account_Id__c', accountId: 'SaaSquatch_Account_Id__c' },
      Contact: { accountId: 'Account.SaaSquatch_Account_Id__c' },
    });
    expect(fields.Contact).toEqual({ userId: 'Email', accountId: 'Account.SaaSquatch_Account_Id__c' });
    const results = await resolveIdentities(session.connection, [account(0, ACCOUNT.Id), contact(1, CONTACT.Id)], { fields });
    expect(results).toEqual([
      { ok: true, userId: 'acme-account', accountId: 'acme-account', recordType: 'Account', recordId18: ACCOUNT.Id },
      { ok: true, userId: 'bob@example.com', accountId: 'acme-account', recordType: 'Contact', recordId18: CONTACT.Id },
    ]);
    expect(newQueries().map((query) => query.soql)).toContain(
      `SELECT Id, Email, Account.SaaSquatch_Account_Id__c FROM Contact WHERE Id IN ('${CONTACT.Id}')`,
    );
  });

  it('turns a field the org does not have into per-item failures, not an outage', async () => {
    const fields = parseIdentityFields({ Lead: { userId: 'Referral_Email__c' } });
    const results = await resolveIdentities(session.connection, [lead(0, LEAD.Id), contact(1, CONTACT.Id)], { fields });
    expect(results[0]).toEqual({
      ok: false,
      field: 'usersEvents[0].leadId',
      reason: expect.stringContaining("INVALID_FIELD: No such column 'Referral_Email__c'"),
    });
    expect(results[1]).toMatchObject({ ok: true });
  });

  it('throws SalesforceUnavailableError when Salesforce cannot be asked', async () => {
    const own = await connectTo(org);
    org.invalidateTokens();
    org.failTokenRequests(1);
    await expect(resolveIdentities(own.connection, [lead(0, LEAD.Id)])).rejects.toThrow(SalesforceUnavailableError);
    await own.refresh();
    session = await connectTo(org);
  });
});

describe('resolveIdentities against a hung Salesforce', () => {
  it('turns a lookup that never answers into SalesforceUnavailableError after the timeout', async () => {
    const org = await startTestOrg({ records: { Lead: [LEAD] } });
    try {
      const session = await connectTo(org);
      org.hangQueries(1);
      const started = Date.now();
      const lookup = resolveIdentities(session.connection, [lead(0, LEAD.Id)], { timeoutMs: 300 });
      await expect(lookup).rejects.toThrow(SalesforceUnavailableError);
      await expect(lookup).rejects.toThrow(/did not answer the Lead lookup within 300 ms/);
      expect(Date.now() - started).toBeLessThan(5000);
      // The next lookup is answered as usual.
      expect(await resolveIdentities(session.connection, [lead(0, LEAD.Id)], { timeoutMs: 300 })).toMatchObject([{ ok: true }]);
    } finally {
      await org.close();
    }
  });
});

describe('resolveIdentities without Salesforce configured', () => {
  it('takes explicit ids and fails items that need a record, saying what to pass', async () => {
    const results = await resolveIdentities(null, [
      lead(0, LEAD.Id, { userId: 'u', accountId: 'a' }),
      lead(1, LEAD.Id, { userId: 'u' }),
      contact(2, CONTACT.Id),
    ]);
    expect(results[0]).toMatchObject({ ok: true, userId: 'u', accountId: 'a' });
    expect(results[1]).toEqual({
      ok: false,
      field: 'usersEvents[1].accountId',
      reason: expect.stringContaining('Salesforce is not configured'),
    });
    expect(results[2]).toEqual({ ok: false, field: 'usersEvents[2].userId', reason: expect.stringContaining('pass userId and accountId') });
  });
});

describe('identity configuration', () => {
  it('refuses anything but field names, so configuration cannot change the query', () => {
    expect(() => parseIdentityFields({ Lead: { userId: "Email FROM Lead WHERE Name = 'x' --" } })).toThrow(InvalidInputError);
    expect(() => parseIdentityFields({ Opportunity: { userId: 'Email' } })).toThrow(InvalidInputError);
    expect(parseIdentityFields({ Lead: { userId: null } }).Lead).toEqual({ userId: null, accountId: 'Email' });
  });

  it('reads ONCEKIT_SF_IDENTITY_FIELDS, naming the variable in errors', () => {
    expect(identityFieldsFromEnv({})).toEqual(DEFAULT_IDENTITY_FIELDS);
    expect(
      identityFieldsFromEnv({ ONCEKIT_SF_IDENTITY_FIELDS: '{"Account":{"userId":"Email__c","accountId":"Email__c"}}' }).Account,
    ).toEqual({
      userId: 'Email__c',
      accountId: 'Email__c',
    });
    expect(() => identityFieldsFromEnv({ ONCEKIT_SF_IDENTITY_FIELDS: '{Account' })).toThrow(
      /ONCEKIT_SF_IDENTITY_FIELDS: is not valid JSON/,
    );
    expect(() => identityFieldsFromEnv({ ONCEKIT_SF_IDENTITY_FIELDS: '{"Lead":{"userId":"1x"}}' })).toThrow(
      /ONCEKIT_SF_IDENTITY_FIELDS\.Lead\.userId: /,
    );
  });

  it('quotes SOQL strings', () => {
    expect(soqlString("O'Brien\\")).toBe("'O\\'Brien\\\\'");
  });
});
