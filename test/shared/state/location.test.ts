import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../shared/errors.js';
import { describeStoreLocation, parseStoreLocation } from '../../../shared/state/location.js';

describe('parseStoreLocation: postgres://', () => {
  it('takes pool_max, statement_timeout and schema out of the URL, with defaults', () => {
    expect(parseStoreLocation('postgres://oncekit@db:5432/oncekit')).toEqual({
      kind: 'postgres',
      url: 'postgres://oncekit@db:5432/oncekit',
      poolMax: 10,
      statementTimeoutMs: 5000,
    });
    expect(parseStoreLocation('postgresql://u:p@db/oncekit?sslmode=require&pool_max=3&statement_timeout=2s&schema=relay')).toEqual({
      kind: 'postgres',
      url: 'postgresql://u:p@db/oncekit?sslmode=require',
      poolMax: 3,
      statementTimeoutMs: 2000,
      schema: 'relay',
    });
  });

  it('refuses bad values, naming the field', () => {
    for (const [text, field] of [
      ['postgres://db/x?pool_max=0', 'ONCEKIT_STORE pool_max'],
      ['postgres://db/x?pool_max=ten', 'ONCEKIT_STORE pool_max'],
      ['postgres://db/x?statement_timeout=soon', 'ONCEKIT_STORE statement_timeout'],
      ['postgres://db/x?schema=Bad-Name', 'ONCEKIT_STORE schema'],
    ] as const) {
      const failure = (() => {
        try {
          parseStoreLocation(text, 'ONCEKIT_STORE');
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(failure).toBeInstanceOf(InvalidInputError);
      expect((failure as InvalidInputError).issues).toEqual([expect.objectContaining({ field })]);
    }
  });

  it('never shows the password', () => {
    const shown = describeStoreLocation(parseStoreLocation('postgres://oncekit:s3cret@db:5432/oncekit?pool_max=4'));
    expect(shown).not.toContain('s3cret');
    expect(shown).toBe('postgres://oncekit:***@db:5432/oncekit?pool_max=4&statement_timeout=5000ms');
  });
});
