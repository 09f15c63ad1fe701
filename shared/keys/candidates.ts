import { canonicalJson } from '../canonical-json.js';
import type { KeyFaultReason } from './profiles.js';

/**
 * Where a candidate came from, named by the caller (a connector's source name such as the platform it adapts, `import`,
 * `raw`); shown in decisions, logs and the ledger. The key rules never depend on it.
 */
export type KeySource = string;

/**
 * A source's proposal for an idempotency key, before the rules are applied.
 * `derive` asks for a key derived from `value` even when it is valid as it is (field combinations);
 * `fault` carries a problem the extractor already found.
 */
export interface KeyCandidate {
  readonly source: KeySource;
  readonly value: unknown;
  readonly derive?: boolean;
  readonly fault?: { readonly reason: KeyFaultReason; readonly detail: string };
}

/** A key given directly, e.g. on the command line, in an import row or in a field a connector reads. */
export function rawCandidate(value: unknown, source: KeySource = 'raw'): KeyCandidate {
  return { source, value };
}

/**
 * A key derived from chosen fields of a record, for users without a ready id (input fields a connector's
 * user picks, the importer's `--key-from`). The same values always give the same key, whatever the order the fields were named in.
 * Every chosen field must have a value: a key built from the rest would merge distinct events.
 */
export function fieldsCandidate(source: KeySource, record: Readonly<Record<string, unknown>>, fields: readonly string[]): KeyCandidate {
  const names = [...new Set(fields)];
  if (names.length === 0) {
    return { source, value: undefined, fault: { reason: 'missing', detail: 'no fields were chosen to derive the key from' } };
  }
  // Own members only: a name like `constructor` must not pick up a prototype's function.
  const ownValue = (name: string): unknown => (Object.hasOwn(record, name) ? record[name] : undefined);
  const empty = names.filter((name) => isBlank(ownValue(name)));
  if (empty.length > 0) {
    const detail = `the field${empty.length > 1 ? 's' : ''} chosen for the key ${empty.map((n) => `"${n}"`).join(', ')} ${empty.length > 1 ? 'are' : 'is'} empty`;
    return { source, value: undefined, fault: { reason: 'missing', detail } };
  }
  // Null prototype and defineProperty: a `__proto__` name stays data.
  const picked: Record<string, unknown> = Object.create(null);
  for (const name of names) Object.defineProperty(picked, name, { value: ownValue(name), enumerable: true });
  return { source, value: canonicalJson(picked), derive: true };
}

function isBlank(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.length === 0);
}
