import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../../shared/errors.js';
import { capRawPayload, rawPayloadText, unmappableDedupKey, unmappableReason } from '../../../shared/outbox/unmappable.js';

describe('capRawPayload', () => {
  it('keeps at most the limit in UTF-8 bytes, a prefix cut before a character, marked when cut', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), fc.integer({ min: 0, max: 400 }), (text, limit) => {
        const capped = capRawPayload(text, limit);
        const bytes = Buffer.byteLength(text, 'utf8');
        expect(capped.bytes).toBe(bytes);
        expect(capped.truncated).toBe(bytes > limit);
        expect(Buffer.byteLength(capped.text, 'utf8')).toBeLessThanOrEqual(limit);
        expect(text.startsWith(capped.text)).toBe(true);
        // Cut between characters, never inside a surrogate pair: the prefix survives UTF-8 unchanged. (The input may hold
        // U+FFFD itself, so its absence proves nothing.)
        expect(Buffer.from(capped.text, 'utf8').toString('utf8')).toBe(capped.text);
        // Nothing that would still fit was dropped: the next character would pass the limit.
        if (capped.truncated) {
          const next = String.fromCodePoint(text.codePointAt(capped.text.length) ?? 0);
          expect(Buffer.byteLength(capped.text + next, 'utf8')).toBeGreaterThan(limit);
        }
      }),
    );
  });

  it('keeps 16 KiB by default and serialises a value that is not text as JSON', () => {
    expect(capRawPayload('é'.repeat(10_000))).toMatchObject({ bytes: 20_000, truncated: true });
    expect(Buffer.byteLength(capRawPayload('é'.repeat(10_000)).text)).toBe(16 * 1024);
    expect(capRawPayload({ a: [1, 'x'] })).toEqual({ text: '{"a":[1,"x"]}', bytes: 13, truncated: false });
  });
});

describe('rawPayloadText and unmappableDedupKey', () => {
  it('describes a payload JSON cannot serialise instead of failing (a cycle, a BigInt, too deep)', () => {
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(rawPayloadText(cycle)).toMatch(/^\[payload not serialisable as JSON: /);
    expect(rawPayloadText({ n: 1n })).toMatch(/^\[payload not serialisable as JSON: /);
    let deep: unknown = 1;
    for (let depth = 0; depth < 1_000_000; depth++) deep = [deep];
    expect(rawPayloadText(deep)).toMatch(/^\[payload not serialisable as JSON: /);
  });

  it('is the identity the caller knows, else a digest of the raw event: the same for the same event, different otherwise', () => {
    expect(unmappableDedupKey('segment:m-1', '{"a":1}')).toBe('segment:m-1');
    expect(unmappableDedupKey(null, '{"a":1}')).toBe(unmappableDedupKey('', '{"a":1}'));
    expect(unmappableDedupKey(null, '{"a":1}')).toMatch(/^raw-sha256:[0-9a-f]{64}$/);
    expect(unmappableDedupKey(null, '{"a":1}')).not.toBe(unmappableDedupKey(null, '{"a":2}'));
    expect(unmappableDedupKey(null, { a: 1 })).toBe(unmappableDedupKey(null, '{"a":1}'));
  });
});

describe('unmappableReason', () => {
  it('says what went wrong, naming an unexpected error’s class, never its stack', () => {
    expect(unmappableReason(new InvalidInputError([{ field: 'userId', reason: 'required' }], 'invalid event'))).toBe(
      'could not be mapped: invalid event: userId: required',
    );
    expect(unmappableReason(new RangeError('Maximum call stack size exceeded'))).toBe(
      'could not be mapped: RangeError: Maximum call stack size exceeded',
    );
    expect(unmappableReason(new Error('plain'))).toBe('could not be mapped: plain');
    expect(unmappableReason('a string')).toBe('could not be mapped: a string');
  });
});
