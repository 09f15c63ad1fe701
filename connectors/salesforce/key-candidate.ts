import type { KeyCandidate } from '../../shared/keys/index.js';

/** The key candidate: the invocable input's `idempotencyKey`, else a Platform Event's `EventUuid`. */
export function salesforceCandidate(input: { readonly idempotencyKey?: unknown; readonly eventUuid?: unknown }): KeyCandidate {
  const explicit = input.idempotencyKey;
  const hasExplicit = explicit !== undefined && explicit !== null && explicit !== '';
  return { source: 'salesforce', value: hasExplicit ? explicit : input.eventUuid };
}
