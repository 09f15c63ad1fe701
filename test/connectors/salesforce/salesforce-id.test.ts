import { describe, expect, it } from 'vitest';
import {
  checkSalesforceId,
  checksumSuffix,
  InvalidSalesforceIdError,
  keyPrefixOf,
  normalizeSalesforceId,
  recordTypeOf,
  UnsupportedRecordTypeError,
} from '../../../connectors/salesforce/salesforce-id.js';

describe('18-character checksum', () => {
  it.each([
    ['a0RE000000IJmcN', 'MAT'],
    ['003G000001SUbc4', 'IAD'],
    ['000000000000000', 'AAA'],
    ['AAAAAAAAAAAAAAA', '555'],
    ['aaaaaaaaaaaaaaa', 'AAA'],
    ['Aaaaa000000000A', 'BAQ'],
  ])('%s gets the suffix %s (the reference examples and the edges of the alphabet)', (id15, suffix) => {
    expect(checksumSuffix(id15)).toBe(suffix);
    expect(normalizeSalesforceId(id15)).toBe(id15 + suffix);
  });

  it('reads the first character of each chunk as the lowest bit', () => {
    expect(checksumSuffix('A0000B0000C0000')).toBe('BBB');
    expect(checksumSuffix('0000A0000B0000C')).toBe('QQQ');
  });
});

describe('normalizeSalesforceId', () => {
  it('keeps a valid 18-character id as it is', () => {
    expect(normalizeSalesforceId('003G000001SUbc4IAD')).toBe('003G000001SUbc4IAD');
    expect(normalizeSalesforceId('a0RE000000IJmcNMAT')).toBe('a0RE000000IJmcNMAT');
  });

  it('accepts a lower-case checksum on a mixed-case id', () => {
    expect(normalizeSalesforceId('003G000001SUbc4iad')).toBe('003G000001SUbc4IAD');
  });

  it.each([
    ['003g000001subc4iad', '003G000001SUbc4IAD'],
    ['003G000001SUBC4IAD', '003G000001SUbc4IAD'],
    ['A0RE000000IJMCNMAT', 'a0RE000000IJmcNMAT'],
    ['a0re000000ijmcnmat', 'a0RE000000IJmcNMAT'],
  ])('restores the case of a case-folded id %s from its checksum', (folded, proper) => {
    expect(normalizeSalesforceId(folded)).toBe(proper);
  });

  it('refuses a mixed-case id whose checksum does not match, rather than guessing', () => {
    const check = checkSalesforceId('003G000001SUbc4IAE');
    expect(check).toMatchObject({ ok: false, fault: 'checksum' });
    // One letter's case changed: a different 15-character id, so the old checksum no longer fits.
    expect(checkSalesforceId('003G000001SUbC4IAD')).toMatchObject({ ok: false, fault: 'checksum' });
    expect(() => normalizeSalesforceId('003G000001SUbc4IAE')).toThrow(InvalidSalesforceIdError);
  });

  it('refuses a case-folded id whose checksum cannot describe it', () => {
    // 'Z' marks position 5 of chunk 1 upper-case, but that character is a digit.
    expect(checkSalesforceId('003g000001subc4ZAD')).toMatchObject({ ok: false, fault: 'checksum' });
    // 6-9 are not in the checksum alphabet.
    expect(checkSalesforceId('003g000001subc4I9D')).toMatchObject({ ok: false, fault: 'checksum' });
  });

  it.each([
    ['', 'length'],
    ['003G000001SUbc', 'length'],
    ['003G000001SUbc4I', 'length'],
    ['003G000001SUbc4IADX', 'length'],
    ['003G000001SUbc-', 'characters'],
    ['003G000001SUbc4IA ', 'characters'],
    ['003G00000ü1SUbc', 'characters'],
  ])('refuses %j (%s)', (value, fault) => {
    expect(checkSalesforceId(value)).toMatchObject({ ok: false, fault });
  });

  it('refuses values that are not strings', () => {
    expect(checkSalesforceId(3)).toMatchObject({ ok: false, fault: 'not_a_string' });
    expect(checkSalesforceId(null)).toMatchObject({ ok: false, fault: 'not_a_string', reason: expect.stringContaining('null') });
  });

  it('does not echo the id in its reason', () => {
    const check = checkSalesforceId('003G000001SUbc4IAE');
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).not.toContain('003G000001SUbc4');
  });
});

describe('recordTypeOf', () => {
  it('maps the supported key prefixes', () => {
    expect(recordTypeOf(normalizeSalesforceId('00Q5e00000AbCdE'))).toBe('Lead');
    expect(recordTypeOf('003G000001SUbc4IAD')).toBe('Contact');
    expect(recordTypeOf(normalizeSalesforceId('0015e00000XyZab'))).toBe('Account');
    expect(keyPrefixOf('Lead')).toBe('00Q');
  });

  it('names a known but unsupported object and lists the supported ones', () => {
    const error = (() => {
      try {
        recordTypeOf(normalizeSalesforceId('0065e00000AbCdE'));
      } catch (caught) {
        return caught;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(UnsupportedRecordTypeError);
    expect((error as Error).message).toMatch(/Opportunity id \(key prefix 006\).*00Q Lead, 003 Contact, 001 Account/);
  });

  it('is case-sensitive on the prefix, as Salesforce is', () => {
    expect(() => recordTypeOf(normalizeSalesforceId('00q5e00000abcde'))).toThrow(UnsupportedRecordTypeError);
  });
});
