import canonicalize from 'canonicalize';
import { InvalidInputError } from './errors.js';
import { findJsonFault, type JsonBounds } from './json-walk.js';
import { formatPath } from './validation.js';

/** Bounds of every canonicalisation: deep enough for any real payload, far below what a stack or a heap would mind. */
export const CANONICAL_JSON_BOUNDS: JsonBounds = { maxDepth: 64, maxNodes: 1_000_000 };

/** The canonicalizer recurses once per level: no caller's bounds take it deeper than this, far within Node's stack. */
export const MAX_CANONICAL_DEPTH = 1000;

/**
 * RFC 8785 (JSON Canonicalization Scheme) text of `value`: object keys sorted at every depth, numbers and strings in
 * ECMAScript form, so equal data always gives the same text (the basis of derived keys and request fingerprints).
 * Undefined members are left out, as JSON.stringify does.
 *
 * The canonicalizer recurses, so the value is first walked with an explicit stack: past `bounds`, or holding what
 * RFC 8785 cannot encode (a lone surrogate, a non-finite number), it throws an InvalidInputError naming the path
 * instead of overflowing the stack or failing without one.
 */
export function canonicalJson(value: unknown, bounds: JsonBounds = CANONICAL_JSON_BOUNDS): string {
  const safe = { ...bounds, maxDepth: Math.min(bounds.maxDepth, MAX_CANONICAL_DEPTH) };
  const fault = findJsonFault(value, safe, notCanonicalizable);
  if (fault) throw new InvalidInputError([{ field: formatPath(fault.path), reason: fault.reason }]);
  return canonicalize(value) ?? 'null';
}

/** Why RFC 8785 cannot encode `value` (or one of an object's keys), or null. */
function notCanonicalizable(value: unknown): string | null {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? null : 'expected a finite number';
    case 'string':
      return hasLoneSurrogate(value) ? 'text holds a lone surrogate, which is not valid Unicode' : null;
    case 'bigint':
    case 'function':
    case 'symbol':
      return 'expected a JSON value';
    case 'object':
      if (value === null || Array.isArray(value) || value instanceof Date) return null;
      for (const key of Object.keys(value)) {
        if (hasLoneSurrogate(key)) return `the name ${JSON.stringify(key)} holds a lone surrogate, which is not valid Unicode`;
      }
      return null;
    default:
      return null;
  }
}

// In Unicode mode a well-formed pair is one code point, so only a lone surrogate matches.
const hasLoneSurrogate = (text: string): boolean => /\p{Surrogate}/u.test(text);
