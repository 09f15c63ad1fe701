import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, MAX_CANONICAL_DEPTH } from '../../../shared/canonical-json.js';
import {
  checkKey,
  decideKey,
  fieldsCandidate,
  type InvalidKeyPolicy,
  idempotencyKeyHeaderProfile,
  rawCandidate,
  saasquatchKeyProfile,
} from '../../../shared/keys/index.js';

const profiles = [saasquatchKeyProfile, idempotencyKeyHeaderProfile] as const;
const policies: readonly InvalidKeyPolicy[] = ['drop', 'hash', 'reject'];

/** Candidates near and far from valid keys: allowed characters at every length, any text, any value. */
const candidate = fc.oneof(
  fc.stringMatching(/^[A-Za-z0-9._-]{0,70}$/),
  fc.stringMatching(/^[\x21-\x7e]{0,260}$/),
  fc.string({ unit: 'grapheme', maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  fc.anything(),
);

/** JSON objects parsed from text, so keys such as `__proto__` are own data members as in a request body. */
const jsonKey = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', ''));
const parsedValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 1 }), tie('object'), fc.array(tie('value'), { maxLength: 4 })),
  object: fc
    .array(fc.tuple(jsonKey, tie('value')), { maxLength: 5 })
    .map((entries) => JSON.parse(`{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`).join(',')}}`)),
})).value;

/** The same data with every object's members in reverse order. */
function reordered(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reordered);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).reverse()) {
    Object.defineProperty(out, key, { value: reordered((value as Record<string, unknown>)[key]), enumerable: true });
  }
  return out;
}

describe('key layer properties', () => {
  it('a kept key is valid and exactly the candidate; a valid candidate is always kept', () => {
    fc.assert(
      fc.property(candidate, fc.constantFrom(...policies), fc.constantFrom(...profiles), (value, policy, profile) => {
        const decision = decideKey(rawCandidate(value), { policy, profile });
        if (checkKey(value, profile).valid) expect(decision).toMatchObject({ decision: 'kept', key: value });
        if (decision.decision === 'kept') {
          expect(decision.key).toBe(value);
          expect(checkKey(decision.key, profile).valid).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('a hash key is valid and deterministic; drop never yields an invalid key; reject never yields a key for a bad one', () => {
    fc.assert(
      fc.property(candidate, fc.constantFrom(...policies), fc.constantFrom(...profiles), (value, policy, profile) => {
        const first = decideKey(rawCandidate(value), { policy, profile });
        const again = decideKey(rawCandidate(value), { policy, profile });
        expect(again).toEqual(first);
        if (first.key !== null) expect(checkKey(first.key, profile)).toEqual({ valid: true, key: first.key });
        if (first.decision === 'hashed') {
          expect(policy).toBe('hash');
          expect(first.key?.startsWith(profile.derivedKeyPrefix)).toBe(true);
        }
        if (policy === 'drop') expect(['kept', 'dropped']).toContain(first.decision);
        if (policy === 'reject') expect(['kept', 'rejected']).toContain(first.decision);
      }),
      { numRuns: 2000 },
    );
  });

  it('a key derived from fields is valid and the same whatever the order the fields are named in', () => {
    fc.assert(
      fc.property(
        fc.dictionary(jsonKey, parsedValue, { maxKeys: 6 }),
        fc.array(jsonKey, { minLength: 1, maxLength: 4 }),
        (record, fields) => {
          const forward = decideKey(fieldsCandidate('prop', record, fields), { policy: 'hash' });
          const backward = decideKey(fieldsCandidate('prop', record, [...fields].reverse()), { policy: 'hash' });
          expect(backward.key).toBe(forward.key);
          if (forward.key !== null) expect(checkKey(forward.key).valid).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('canonical JSON properties', () => {
  it('is independent of member order', () => {
    fc.assert(
      fc.property(parsedValue, (value) => {
        expect(canonicalJson(reordered(value))).toBe(canonicalJson(value));
      }),
      { numRuns: 2000 },
    );
  });

  it('is injective on JSON values: the text parses back to the same value, so different values never share a text', () => {
    fc.assert(
      fc.property(parsedValue, (value) => {
        const normal = JSON.parse(JSON.stringify(value) ?? 'null') as unknown;
        expect(isDeepStrictEqual(JSON.parse(canonicalJson(value)), normal)).toBe(true);
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(parsedValue, parsedValue, (a, b) => {
        if (canonicalJson(a) === canonicalJson(b))
          expect(isDeepStrictEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)))).toBe(true);
      }),
      { numRuns: 2000 },
    );
    // The case a member-by-member copy got wrong: `__proto__` as data, not as the copy's prototype.
    expect(canonicalJson(JSON.parse('{"__proto__":{"a":1}}'))).not.toBe(canonicalJson({}));
  });

  it("walks 100,000 levels without recursion and refuses them past the bound, naming the path; no bounds reach past the canonicalizer's safe depth", () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(() => canonicalJson(deep)).toThrow(/^\[0\]\[0\].*: nested deeper than 64 levels$/);
    expect(() => canonicalJson(deep, { maxDepth: 200_000, maxNodes: 200_000 })).toThrow(
      new RegExp(`: nested deeper than ${MAX_CANONICAL_DEPTH} levels$`),
    );
    const atTheLimit = JSON.parse(`${'['.repeat(MAX_CANONICAL_DEPTH)}${']'.repeat(MAX_CANONICAL_DEPTH)}`) as unknown;
    expect(canonicalJson(atTheLimit, { maxDepth: 200_000, maxNodes: 200_000 })).toHaveLength(2 * MAX_CANONICAL_DEPTH);
  });

  it('matches RFC 8785 on its examples, and refuses what it cannot encode naming the path', () => {
    // RFC 8785 section 3.2.2: numbers in ECMAScript form, keys sorted by UTF-16 code units, minimal string escapes.
    const value = JSON.parse(
      String.raw`{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/","literals":[null,true,false]}`,
    ) as unknown;
    expect(canonicalJson(value)).toBe(
      String.raw`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
    );
    expect(canonicalJson({ b: 1, a: { d: [1, { f: 2, e: 3 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"e":3,"f":2}]},"b":1}');
    expect(() => canonicalJson({ a: [1, { b: 'x\ud800' }] })).toThrow(/^a\[1\]\.b: text holds a lone surrogate/);
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(/^a: expected a finite number$/);
  });
});
