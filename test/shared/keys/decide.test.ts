import { describe, expect, it } from 'vitest';
import { keygenCandidate } from '../../../connectors/keygen/keygen-event.js';
import { salesforceCandidate } from '../../../connectors/salesforce/key-candidate.js';
import { segmentCandidate } from '../../../connectors/segment/mapping.js';
import { zapierCandidate } from '../../../connectors/zapier/idempotency.js';
import { decideKey, deriveKey, fieldsCandidate, KeyRejectedError, rawCandidate } from '../../../shared/keys/index.js';
import { memoryLogger } from '../../../shared/log.js';

describe('decideKey', () => {
  it('keeps a valid candidate as it is, and logs nothing', () => {
    const logger = memoryLogger();
    const decision = decideKey(segmentCandidate({ messageId: 'node-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586' }), { logger });
    expect(decision).toEqual({
      source: 'segment',
      candidate: 'node-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586',
      key: 'node-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586',
      decision: 'kept',
      reason: null,
      detail: null,
    });
    expect(logger.lines).toEqual([]);
  });

  it('drops an invalid candidate by default and logs exactly one structured warning without the candidate', () => {
    const logger = memoryLogger();
    const decision = decideKey(segmentCandidate({ messageId: 'order:1234' }), { logger });
    expect(decision).toEqual({
      source: 'segment',
      candidate: 'order:1234',
      key: null,
      decision: 'dropped',
      reason: 'bad_characters',
      detail: null,
    });
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]).toMatchObject({
      level: 'warn',
      fields: { event: 'idempotency_key_dropped', source: 'segment', reason: 'bad_characters', candidateLength: 10 },
    });
    expect(JSON.stringify(logger.lines)).not.toContain('order:1234');
  });

  it.each([
    ['too_short', 'abc1234'],
    ['too_long', 'node-9dd4e461268c8034f5c8564e155c67a6-0d938d07-9432-41ba-a22f-9992ea39190a'],
    ['empty', ''],
    ['missing', undefined],
  ])('drop policy reports %s', (reason, messageId) => {
    const logger = memoryLogger();
    const decision = decideKey(segmentCandidate({ messageId }), { logger });
    expect(decision.decision).toBe('dropped');
    expect(decision.reason).toBe(reason);
    expect(logger.lines[0]?.fields.reason).toBe(reason);
  });

  it('hash policy derives a valid key from an invalid candidate, deterministically', () => {
    const first = decideKey(rawCandidate('order:1234'), { policy: 'hash' });
    const again = decideKey(rawCandidate('order:1234'), { policy: 'hash' });
    expect(first).toEqual({
      source: 'raw',
      candidate: 'order:1234',
      key: deriveKey('order:1234'),
      decision: 'hashed',
      reason: 'bad_characters',
      detail: null,
    });
    expect(again.key).toBe(first.key);
  });

  it('hash policy keeps a valid candidate unchanged', () => {
    expect(decideKey(rawCandidate('abcdefgh'), { policy: 'hash' })).toMatchObject({ key: 'abcdefgh', decision: 'kept' });
  });

  it.each([
    ['empty', ''],
    ['missing', undefined],
    ['not_a_string', 12345678],
  ])('hash policy cannot derive from %s, so it drops (one key for all of them would merge events)', (reason, value) => {
    const logger = memoryLogger();
    expect(decideKey(rawCandidate(value), { policy: 'hash', logger })).toMatchObject({ key: null, decision: 'dropped', reason });
    expect(logger.lines).toHaveLength(1);
  });

  it('reject policy refuses without logging a drop, and the error explains why', () => {
    const logger = memoryLogger();
    const decision = decideKey(rawCandidate('abc'), { policy: 'reject', logger });
    expect(decision).toMatchObject({ key: null, decision: 'rejected', reason: 'too_short' });
    expect(logger.lines).toEqual([]);
    const error = new KeyRejectedError(decision);
    expect(error.code).toBe('key_rejected');
    expect(error.message).toBe('idempotency key from raw rejected (too_short): it has 3 characters; the minimum is 8');
  });
});

describe('candidate extractors', () => {
  it('Segment: messageId', () => {
    expect(segmentCandidate({ messageId: 'ajs-f8ca1e4de5024d9430b3928bd8ac6b96' })).toEqual({
      source: 'segment',
      value: 'ajs-f8ca1e4de5024d9430b3928bd8ac6b96',
    });
  });

  it('Salesforce: the invocable idempotencyKey wins over EventUuid; EventUuid when there is none', () => {
    expect(salesforceCandidate({ idempotencyKey: 'opp-0061234567', eventUuid: 'e6e0cdb6-1c52-4b5f-9a59-3f8b2b5a1c77' }).value).toBe(
      'opp-0061234567',
    );
    expect(salesforceCandidate({ idempotencyKey: '', eventUuid: 'e6e0cdb6-1c52-4b5f-9a59-3f8b2b5a1c77' }).value).toBe(
      'e6e0cdb6-1c52-4b5f-9a59-3f8b2b5a1c77',
    );
    expect(salesforceCandidate({}).value).toBeUndefined();
  });

  it('Keygen: meta.idempotencyToken', () => {
    expect(keygenCandidate({ meta: { idempotencyToken: 'tok_0123456789' } })).toEqual({ source: 'keygen', value: 'tok_0123456789' });
    expect(keygenCandidate({}).value).toBeUndefined();
  });

  it('Zapier: the idempotencyKey input, with an unmapped "" treated as missing', () => {
    expect(zapierCandidate({ idempotencyKey: 'zap-run-00000001' }).value).toBe('zap-run-00000001');
    expect(decideKey(zapierCandidate({ idempotencyKey: '' })).reason).toBe('missing');
  });

  it('fields: the same values give the same key whatever the order the fields are named in', () => {
    const record = { orderId: 'A-1', email: 'ann@example.com', amount: 10 };
    const one = decideKey(fieldsCandidate('zapier', record, ['orderId', 'email']));
    const two = decideKey(fieldsCandidate('zapier', { ...record }, ['email', 'orderId']));
    expect(one.decision).toBe('hashed');
    expect(one.key).toBe(two.key);
    expect(decideKey(fieldsCandidate('zapier', { ...record, orderId: 'A-2' }, ['orderId', 'email'])).key).not.toBe(one.key);
  });

  it('fields: a value that happens to be a valid key is still derived, so the key format never depends on the data', () => {
    const decision = decideKey(fieldsCandidate('import', { orderId: 'abcdefgh' }, ['orderId']));
    expect(decision.decision).toBe('hashed');
    expect(decision.key).not.toBe('abcdefgh');
  });

  it('fields: a chosen field that is empty means no key, naming the field', () => {
    const logger = memoryLogger();
    const decision = decideKey(fieldsCandidate('zapier', { orderId: '', email: 'ann@example.com' }, ['orderId', 'email']), { logger });
    expect(decision).toMatchObject({
      key: null,
      decision: 'dropped',
      reason: 'missing',
      detail: 'the field chosen for the key "orderId" is empty',
    });
    expect(logger.lines[0]?.fields.detail).toBe('the field chosen for the key "orderId" is empty');
  });

  it('fields: typed values are kept apart (1 and "1" differ)', () => {
    const n = decideKey(fieldsCandidate('import', { id: 1 }, ['id'])).key;
    const s = decideKey(fieldsCandidate('import', { id: '1' }, ['id'])).key;
    expect(n).not.toBe(s);
  });
});
