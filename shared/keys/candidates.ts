import { canonicalJson } from '../canonical-json.js';
import type { KeyFaultReason } from './profiles.js';

/** Where a candidate came from; shown in decisions, logs and the ledger. */
export type KeySource = 'segment' | 'zapier' | 'salesforce' | 'keygen' | 'import' | 'raw';
export const keySources = ['segment', 'zapier', 'salesforce', 'keygen', 'import', 'raw'] as const satisfies readonly KeySource[];

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

/** Segment: the event's `messageId`, kept across Segment's retries. */
export function segmentCandidate(event: { readonly messageId?: unknown }): KeyCandidate {
  return { source: 'segment', value: event.messageId };
}

/** Salesforce: the invocable input `idempotencyKey`, else a Platform Event's `EventUuid`. */
export function salesforceCandidate(input: { readonly idempotencyKey?: unknown; readonly eventUuid?: unknown }): KeyCandidate {
  const explicit = input.idempotencyKey;
  const hasExplicit = explicit !== undefined && explicit !== null && explicit !== '';
  return { source: 'salesforce', value: hasExplicit ? explicit : input.eventUuid };
}

/**
 * Keygen-style webhooks: the webhook-event resource's `meta.idempotencyToken` (the body's `data`), the same on every
 * redelivery and on a retry, which Keygen sends as a new resource with a new id.
 */
export function keygenCandidate(webhook: { readonly meta?: { readonly idempotencyToken?: unknown } | null }): KeyCandidate {
  return { source: 'keygen', value: webhook.meta?.idempotencyToken };
}

/** A key given directly, e.g. on the command line or in an import row. */
export function rawCandidate(value: unknown, source: KeySource = 'raw'): KeyCandidate {
  return { source, value };
}

/**
 * A key derived from chosen fields of a record, for users without a ready id (Zapier's `idempotencyKeyFrom`,
 * the importer's `--key-from`). The same values always give the same key, whatever the order the fields were named in.
 * Every chosen field must have a value: a key built from the rest would merge distinct events.
 */
export function fieldsCandidate(source: KeySource, record: Readonly<Record<string, unknown>>, fields: readonly string[]): KeyCandidate {
  const names = [...new Set(fields)];
  if (names.length === 0) {
    return { source, value: undefined, fault: { reason: 'missing', detail: 'no fields were chosen to derive the key from' } };
  }
  const empty = names.filter((name) => isBlank(record[name]));
  if (empty.length > 0) {
    const detail = `the field${empty.length > 1 ? 's' : ''} chosen for the key ${empty.map((n) => `"${n}"`).join(', ')} ${empty.length > 1 ? 'are' : 'is'} empty`;
    return { source, value: undefined, fault: { reason: 'missing', detail } };
  }
  const picked: Record<string, unknown> = {};
  for (const name of names) picked[name] = record[name];
  return { source, value: canonicalJson(picked), derive: true };
}

/** Zapier: the `idempotencyKey` input, or a key derived from the fields listed in `idempotencyKeyFrom`. */
export function zapierCandidate(
  inputData: Readonly<Record<string, unknown>>,
  options: { readonly keyField?: string; readonly fromFields?: readonly string[] } = {},
): KeyCandidate {
  if (options.fromFields && options.fromFields.length > 0) return fieldsCandidate('zapier', inputData, options.fromFields);
  const value = inputData[options.keyField ?? 'idempotencyKey'];
  // Zapier's editor sends an unmapped optional field as "" (cleanInputData is not applied everywhere).
  return { source: 'zapier', value: value === '' ? undefined : value };
}

function isBlank(value: unknown): boolean {
  return value === undefined || value === null || (typeof value === 'string' && value.length === 0);
}
