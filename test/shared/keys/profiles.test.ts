import { describe, expect, it } from 'vitest';
import { checkKey, deriveKey, idempotencyKeyHeaderProfile, saasquatchKeyProfile } from '../../../shared/keys/index.js';

const a = (n: number): string => 'a'.repeat(n);

describe('checkKey with the SaaSquatch profile (8–64 of A-Z a-z 0-9 - _ .)', () => {
  it.each([
    [7, 'too_short'],
    [8, null],
    [64, null],
    [65, 'too_long'],
  ])('length %i → %s', (length, reason) => {
    const check = checkKey(a(length));
    expect(check).toEqual(reason === null ? { valid: true, key: a(length) } : { valid: false, reason });
  });

  it.each(['-', '_', '.'])('accepts the punctuation mark %j', (mark) => {
    expect(checkKey(`abc${mark}defgh`)).toEqual({ valid: true, key: `abc${mark}defgh` });
  });

  it('accepts every allowed character class at once', () => {
    expect(checkKey('AZaz09-_.').valid).toBe(true);
  });

  it.each([
    ['space', 'abcd efgh'],
    ['tab', 'abcd\tefgh'],
    ['newline', 'abcd\nefgh'],
    ['slash', 'abcd/efgh'],
    ['colon', 'order:1234'],
    ['at', 'user@example'],
    ['plus', 'abcd+efgh'],
    ['equals', 'abcdefg='],
    ['straight double quote', 'abcd"efgh'],
    ['straight single quote', "abcd'efgh"],
    ['typographic quotes', 'abcd\u201cefgh\u201d'],
    ['typographic apostrophe', 'abcd\u2019efgh'],
    ['Unicode letter', 'caf\u00e9-order-1'],
    ['Cyrillic look-alike a', 'p\u0430yment-001'],
    ['fullwidth digit', 'order-\uff11\uff12\uff13\uff14'],
    ['Arabic-Indic digit', 'order-\u0661\u0662\u0663\u0664'],
    ['non-breaking hyphen', 'order\u20111234'],
    ['emoji', 'order-1234-\u{1f600}'],
  ])('rejects %s as bad_characters', (_name, candidate) => {
    expect(checkKey(candidate)).toEqual({ valid: false, reason: 'bad_characters' });
  });

  it('never trims: surrounding spaces make a key invalid rather than silently different', () => {
    expect(checkKey(' abcdefgh ')).toEqual({ valid: false, reason: 'bad_characters' });
  });

  it('never folds case: two keys differing only in case are both valid and distinct', () => {
    expect(checkKey('ORDER-1234')).toEqual({ valid: true, key: 'ORDER-1234' });
    expect(checkKey('order-1234')).toEqual({ valid: true, key: 'order-1234' });
  });

  it.each([
    ['empty string', '', 'empty'],
    ['undefined', undefined, 'missing'],
    ['null', null, 'missing'],
    ['a number', 12345678, 'not_a_string'],
    ['a boolean', true, 'not_a_string'],
    ['an object', { id: 'abcdefgh' }, 'not_a_string'],
    ['an array', ['abcdefgh'], 'not_a_string'],
  ])('%s → %s', (_name, candidate, reason) => {
    expect(checkKey(candidate)).toEqual({ valid: false, reason });
  });

  it('accepts a UUID v4', () => {
    const uuid = crypto.randomUUID();
    expect(checkKey(uuid)).toEqual({ valid: true, key: uuid });
  });

  // Real messageId formats from ../shared/reference/segment.md §2.2.
  it.each([
    ['analytics-next (browser)', 'ajs-next-1757955997356-c029ce21-9034-45a6-ac62-b8b23b655df5', true],
    ['classic analytics.js', 'ajs-f8ca1e4de5024d9430b3928bd8ac6b96', true],
    ['@segment/analytics-node 3.x', 'node-next-1668208232027-743be593-7789-4b74-8078-cbcc8894c586', true],
    ['analytics-swift (upper-case UUID)', 'B5372DB0-C21E-11E4-8DFC-AA07A5B093DB', true],
    ['analytics-kotlin (UUID)', '9bd2a5c3-4e7a-4d1b-8f0e-2b6c1f3a9d47', true],
    ['analytics-react-native dev nanoid', 'V1StGXR8_Z5jdHi6B-myT', true],
    ['HTTP API server-assigned', 'api-1U3E4UE7HqqBqUdl3oaR0YRCPCR', true],
  ])('%s messageId is a valid key', (_name, id, valid) => {
    expect(checkKey(id).valid).toBe(valid);
  });

  it('the 74-character classic analytics-node id is too long', () => {
    const id = 'node-9dd4e461268c8034f5c8564e155c67a6-0d938d07-9432-41ba-a22f-9992ea39190a';
    expect(id).toHaveLength(74);
    expect(checkKey(id)).toEqual({ valid: false, reason: 'too_long' });
  });

  it('a 100-character custom id is too long', () => {
    expect(checkKey(a(100))).toEqual({ valid: false, reason: 'too_long' });
  });

  it('prefers bad_characters over a length fault, since fixing length alone would not help', () => {
    expect(checkKey('a b')).toEqual({ valid: false, reason: 'bad_characters' });
    expect(checkKey(`${a(70)}:`)).toEqual({ valid: false, reason: 'bad_characters' });
  });
});

describe('the Idempotency-Key header profile', () => {
  it('takes up to 255 visible ASCII characters, including : and /', () => {
    expect(checkKey('order:1234/retry', idempotencyKeyHeaderProfile).valid).toBe(true);
    expect(checkKey(a(255), idempotencyKeyHeaderProfile).valid).toBe(true);
    expect(checkKey(a(256), idempotencyKeyHeaderProfile)).toEqual({ valid: false, reason: 'too_long' });
  });

  it('refuses quotes, backslashes, spaces and non-ASCII', () => {
    for (const bad of ['a"b', 'a\\b', 'a b', 'caf\u00e9']) {
      expect(checkKey(bad, idempotencyKeyHeaderProfile)).toEqual({ valid: false, reason: 'bad_characters' });
    }
  });
});

describe('deriveKey', () => {
  it('is deterministic and always valid for the profile', () => {
    const candidates = [
      '',
      'x',
      'order:1234',
      'node-9dd4e461268c8034f5c8564e155c67a6-0d938d07-9432-41ba-a22f-9992ea39190a',
      'caf\u00e9 \u{1f600}',
      a(10_000),
    ];
    for (const candidate of candidates) {
      const key = deriveKey(candidate);
      expect(deriveKey(candidate)).toBe(key);
      expect(checkKey(key)).toEqual({ valid: true, key });
      expect(checkKey(key, idempotencyKeyHeaderProfile).valid).toBe(true);
      expect(key.startsWith(saasquatchKeyProfile.derivedKeyPrefix)).toBe(true);
    }
  });

  it('gives different keys for different candidates, including near-identical ones', () => {
    const candidates = ['order:1', 'order:2', 'Order:1', 'order:1 ', 'order\u00a0:1', 'caf\u00e9', 'cafe\u0301'];
    const keys = new Set(candidates.map((candidate) => deriveKey(candidate)));
    expect(keys.size).toBe(candidates.length);
  });

  it('gives 10,000 distinct keys for 10,000 distinct candidates', () => {
    const keys = new Set(Array.from({ length: 10_000 }, (_, i) => deriveKey(`order:${i}`)));
    expect(keys.size).toBe(10_000);
  });
});
