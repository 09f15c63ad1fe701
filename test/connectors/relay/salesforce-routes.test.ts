import './helpers.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { FakeOrg } from '../../../sandbox/salesforce-org/index.js';
import { clientCredentialsEnv, startTestOrg } from '../salesforce/helpers.js';
import {
  hmacSignature,
  id18,
  postJson,
  RELAY_SECRET,
  startTestRelay,
  type TestRelay,
  tempDir,
  waitFor,
  waitForSettled,
} from './helpers.js';

// Mixed-case 15-character ids, so normalising to 18 characters is visible (the checksum encodes the case).
const LEAD_15 = '00Q5g00000AbCdE';
const CONTACT_15 = '0035g00000XyZaB';
const ACCOUNT_15 = '0015g00000QrStU';
const LEAD = id18(LEAD_15);
const CONTACT = id18(CONTACT_15);
const ACCOUNT = id18(ACCOUNT_15);

let org: FakeOrg;
let dir: ReturnType<typeof tempDir>;
let harness: TestRelay;

beforeAll(async () => {
  org = await startTestOrg({
    records: {
      Lead: [{ Id: LEAD, Email: 'lead@example.com', FirstName: 'Lee', LastName: 'Ad', Company: 'Acme' }],
      Contact: [{ Id: CONTACT, Email: 'contact@example.com', FirstName: 'Con', LastName: 'Tact' }],
      Account: [{ Id: ACCOUNT, Name: 'Acme', SaaSquatch_Account_Id__c: 'acct-acme' }],
    },
  });
  dir = tempDir();
});
afterAll(async () => {
  await org.close();
  dir.remove();
});

let counter = 0;
beforeEach(async () => {
  counter++;
  harness = await startTestRelay(
    {
      ...clientCredentialsEnv(org),
      ONCEKIT_SF_IDENTITY_FIELDS: JSON.stringify({
        Account: { userId: 'SaaSquatch_Account_Id__c', accountId: 'SaaSquatch_Account_Id__c' },
      }),
    },
    `sqlite:${dir.dir}/routes-${counter}.db`,
  );
});
afterEach(async () => {
  await harness.relay.stop();
});

function url(path: string): string {
  return `${harness.relay.url}${path}`;
}

function recorded() {
  const sandbox = harness.relay.sandbox;
  if (!sandbox) throw new Error('expected the embedded sandbox');
  return sandbox.inspect(harness.relay.target.tenant).events.map((event) => ({
    userId: event.userId,
    accountId: event.accountId,
    key: event.key,
    fields: event.fields,
    idempotencyKey: event.idempotencyKey,
  }));
}

describe('POST /salesforce/track-event/*', () => {
  it('by-id: explicit ids, and Lead, Contact and Account record ids read through jsforce (15-char ids normalised)', async () => {
    const answer = await postJson(url('/salesforce/track-event/by-id'), {
      usersEvents: [
        { userId: 'u-explicit', accountId: 'a-explicit', key: 'purchase', fields: { total: 10 }, idempotencyKey: 'order-0001' },
        { recordId: LEAD_15, key: 'signup', idempotencyKey: 'order-0002' },
        { recordId: CONTACT, key: 'renewal', fields: { plan: 'pro' }, idempotencyKey: 'order-0003' },
        { recordId: ACCOUNT, key: 'upgrade', idempotencyKey: 'order-0004' },
      ],
    });
    expect(answer.status).toBe(200);
    const results = (answer.json as { results: Record<string, unknown>[] }).results;
    expect(results.map((result) => [result.ok, result.idempotencyKey, result.keyDecision, result.queued])).toEqual([
      [true, 'order-0001', 'kept', true],
      [true, 'order-0002', 'kept', true],
      [true, 'order-0003', 'kept', true],
      [true, 'order-0004', 'kept', true],
    ]);
    await waitForSettled(harness.relay, 4);
    expect(recorded()).toEqual(
      expect.arrayContaining([
        { userId: 'u-explicit', accountId: 'a-explicit', key: 'purchase', fields: { total: 10 }, idempotencyKey: 'order-0001' },
        { userId: 'lead@example.com', accountId: 'lead@example.com', key: 'signup', fields: {}, idempotencyKey: 'order-0002' },
        {
          userId: 'contact@example.com',
          accountId: 'contact@example.com',
          key: 'renewal',
          fields: { plan: 'pro' },
          idempotencyKey: 'order-0003',
        },
        { userId: 'acct-acme', accountId: 'acct-acme', key: 'upgrade', fields: {}, idempotencyKey: 'order-0004' },
      ]),
    );
    expect(recorded()).toHaveLength(4);
    // The 15-character Lead id was read as its 18-character form.
    expect(org.queries.some((query) => query.type === 'Lead' && query.soql.includes(LEAD))).toBe(true);
    expect(org.queries.some((query) => query.soql.includes(`'${LEAD_15}'`))).toBe(false);
    // The ledger names the record by its 18-character id.
    const ledger = await harness.relay.outbox.findByKey(harness.relay.target.tenant, 'order-0002');
    expect(ledger.map((entry) => entry.sourceId)).toEqual([expect.stringMatching(new RegExp(`^Lead/${LEAD}#`))]);
  });

  it('by-lead reads the Lead email; by-contact reads the Contact email (15-char id normalised)', async () => {
    const byLead = await postJson(url('/salesforce/track-event/by-lead'), {
      usersEvents: [{ leadId: LEAD, key: 'demo_booked', fields: { source: 'web' }, idempotencyKey: 'lead-evt-0001' }],
    });
    const byContact = await postJson(url('/salesforce/track-event/by-contact'), {
      usersEvents: [{ contactId: CONTACT_15, key: 'purchase', dateTriggered: 1_767_000_000_000, idempotencyKey: 'contact-evt-0001' }],
    });
    expect(byLead.status).toBe(200);
    expect(byContact.status).toBe(200);
    expect(byLead.json).toMatchObject({ results: [{ ok: true, idempotencyKey: 'lead-evt-0001' }] });
    expect(byContact.json).toMatchObject({ results: [{ ok: true, idempotencyKey: 'contact-evt-0001' }] });
    await waitForSettled(harness.relay, 2);
    expect(recorded()).toEqual(
      expect.arrayContaining([
        {
          userId: 'lead@example.com',
          accountId: 'lead@example.com',
          key: 'demo_booked',
          fields: { source: 'web' },
          idempotencyKey: 'lead-evt-0001',
        },
        {
          userId: 'contact@example.com',
          accountId: 'contact@example.com',
          key: 'purchase',
          fields: {},
          idempotencyKey: 'contact-evt-0001',
        },
      ]),
    );
    expect(recorded()).toHaveLength(2);
    expect(org.queries.filter((query) => query.type === 'Contact').some((query) => query.soql.includes(CONTACT))).toBe(true);
  });

  it('answers per item in input order: a bad checksum, a wrong object and a missing id fail alone', async () => {
    const badChecksum = `${CONTACT_15}${id18(CONTACT_15).slice(15) === 'AAA' ? 'AAB' : 'AAA'}`;
    const answer = await postJson(url('/salesforce/track-event/by-contact'), {
      usersEvents: [
        { contactId: badChecksum, key: 'purchase', idempotencyKey: 'bad-checksum-01' },
        { contactId: CONTACT, key: 'purchase', idempotencyKey: 'good-item-0001' },
        { contactId: LEAD, key: 'purchase', idempotencyKey: 'wrong-object-01' },
        { key: 'purchase' },
      ],
    });
    expect(answer.status).toBe(200);
    const results = (answer.json as { results: Record<string, unknown>[] }).results;
    expect(results).toHaveLength(4);
    expect(results[0]).toMatchObject({ ok: false, field: 'usersEvents[0].contactId' });
    expect(String(results[0]?.error)).toMatch(/checksum/i);
    expect(results[1]).toMatchObject({ ok: true, idempotencyKey: 'good-item-0001', queued: true });
    expect(results[2]).toMatchObject({ ok: false, field: 'usersEvents[2].contactId' });
    expect(results[3]).toMatchObject({ ok: false, field: 'usersEvents[3].contactId' });
    await waitForSettled(harness.relay, 1);
    expect(recorded().map((event) => event.idempotencyKey)).toEqual(['good-item-0001']);
  });

  it('an Apex retry with the same Idempotency-Key replays the answer and records one event', async () => {
    const body = { usersEvents: [{ contactId: CONTACT, key: 'purchase', fields: { total: 5 }, idempotencyKey: 'apex-retry-0001' }] };
    const headers = { authorization: `Bearer ${RELAY_SECRET}`, 'idempotency-key': 'apex-call-7f3a' };
    const first = await postJson(url('/salesforce/track-event/by-contact'), body, headers);
    const retry = await postJson(url('/salesforce/track-event/by-contact'), body, headers);
    expect(first.status).toBe(200);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.json).toEqual(first.json);
    await waitForSettled(harness.relay, 1);
    expect(recorded()).toEqual([
      {
        userId: 'contact@example.com',
        accountId: 'contact@example.com',
        key: 'purchase',
        fields: { total: 5 },
        idempotencyKey: 'apex-retry-0001',
      },
    ]);
    const counts = await harness.relay.outbox.counts(harness.relay.target.tenant);
    expect(counts.delivered).toBe(1);
  });

  it('the same Idempotency-Key with a changed payload is a 400 problem, and nothing more is recorded', async () => {
    const headers = { authorization: `Bearer ${RELAY_SECRET}`, 'idempotency-key': 'apex-call-changed' };
    const first = await postJson(
      url('/salesforce/track-event/by-contact'),
      { usersEvents: [{ contactId: CONTACT, key: 'purchase', idempotencyKey: 'changed-0001' }] },
      headers,
    );
    const changed = await postJson(
      url('/salesforce/track-event/by-contact'),
      { usersEvents: [{ contactId: CONTACT, key: 'purchase', idempotencyKey: 'changed-0002' }] },
      headers,
    );
    expect(first.status).toBe(200);
    expect(changed.status).toBe(400);
    expect(changed.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(changed.json).toMatchObject({ status: 400, type: 'urn:oncekit:problem:idempotency-key-reused' });
    await waitForSettled(harness.relay, 1);
    expect(recorded().map((event) => event.idempotencyKey)).toEqual(['changed-0001']);
  });

  it('an invalid idempotencyKey is dropped: the answer says so, the event is recorded without a key, one warning is logged', async () => {
    const answer = await postJson(url('/salesforce/track-event/by-contact'), {
      usersEvents: [{ contactId: CONTACT, key: 'purchase', idempotencyKey: 'bad key!' }],
    });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ results: [{ ok: true, idempotencyKey: null, keyDecision: 'dropped', queued: true }] });
    await waitForSettled(harness.relay, 1);
    expect(recorded()).toEqual([
      { userId: 'contact@example.com', accountId: 'contact@example.com', key: 'purchase', fields: {}, idempotencyKey: null },
    ]);
    const warnings = harness.logs.lines().filter((line) => line.event === 'idempotency_key_dropped');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, reason: 'bad_characters', source: 'salesforce' });
    // The candidate itself is not logged.
    expect(harness.logs.text).not.toContain('bad key!');
  });

  it('accepts an HMAC of the body keyed by the relay secret', async () => {
    const body = JSON.stringify({ usersEvents: [{ contactId: CONTACT, key: 'purchase', idempotencyKey: 'hmac-signed-01' }] });
    const answer = await postJson(url('/salesforce/track-event/by-contact'), body, { 'x-oncekit-signature': hmacSignature(body) });
    expect(answer.status).toBe(200);
    expect(answer.json).toMatchObject({ results: [{ ok: true, idempotencyKey: 'hmac-signed-01' }] });
    await waitFor('the event recorded', () => recorded().length === 1);
  });

  it.each([
    ['no credentials', {}],
    ['a wrong Bearer token', { authorization: 'Bearer not-the-relay-secret-at-all' }],
    ['an HMAC of another body', { 'x-oncekit-signature': hmacSignature('{"usersEvents":[]}') }],
    ['an HMAC keyed by another secret', { 'x-oncekit-signature': '' }],
    ['a malformed signature header', { 'x-oncekit-signature': 'sha256=zz' }],
  ])('refuses %s with 401 and enqueues nothing', async (_name, headers: Record<string, string>) => {
    const body = JSON.stringify({ usersEvents: [{ contactId: CONTACT, key: 'purchase', idempotencyKey: 'unauth-0001' }] });
    const sent = headers['x-oncekit-signature'] === '' ? { 'x-oncekit-signature': hmacSignature(body, 'another-secret-1234567') } : headers;
    const answer = await postJson(url('/salesforce/track-event/by-contact'), body, sent);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const counts = await harness.relay.outbox.counts(harness.relay.target.tenant);
    expect(Object.values(counts).reduce((sum, count) => sum + count, 0)).toBe(0);
    expect(await harness.relay.outbox.findByKey(harness.relay.target.tenant, 'unauth-0001')).toEqual([]);
  });

  it('an unauthenticated request does not take the Idempotency-Key: the authenticated call with it executes', async () => {
    const body = { usersEvents: [{ contactId: CONTACT, key: 'purchase', idempotencyKey: 'auth-order-0001' }] };
    const refused = await postJson(url('/salesforce/track-event/by-contact'), body, { 'idempotency-key': 'apex-call-auth' });
    expect(refused.status).toBe(401);
    const accepted = await postJson(url('/salesforce/track-event/by-contact'), body, {
      authorization: `Bearer ${RELAY_SECRET}`,
      'idempotency-key': 'apex-call-auth',
    });
    expect(accepted.status).toBe(200);
    expect(accepted.headers.get('idempotent-replayed')).toBeNull();
    expect(accepted.json).toMatchObject({ results: [{ ok: true, queued: true }] });
  });
});
