import type { Connection } from 'jsforce';
import type { UserEventInput } from '../../shared/events/index.js';
import type { DecideKeyOptions, KeyDecision } from '../../shared/keys/index.js';
import { type IdentityFields, type IdentityRequest, resolveIdentities } from './identity.js';
import {
  buildTrackEventItemInput,
  type ItemFailure,
  itemResult,
  parseTrackEventRequest,
  type TrackEventItem,
  type TrackEventResponse,
  type TrackEventRoute,
  trackEventItemToUserEvent,
} from './invocable-input.js';
import type { SupportedRecordType } from './salesforce-id.js';

/**
 * Everything an invocable route does before the outbox, without HTTP: check the body, resolve identities through
 * jsforce, decide keys, build the target's inputs. The relay's route enqueues the ready items and answers with
 * `trackEventResponse(outcomes)`.
 */

export type TrackEventOutcome =
  | {
      readonly ok: true;
      readonly index: number;
      readonly input: UserEventInput;
      readonly decision: KeyDecision;
      /** Where the identity came from, for the ledger; null when the item named no record. */
      readonly record: { readonly type: SupportedRecordType; readonly id18: string } | null;
    }
  | (ItemFailure & { readonly index: number });

export interface PrepareTrackEventOptions {
  /** Null when Salesforce is not configured: items must then carry userId and accountId. */
  readonly connection: Connection | null;
  readonly identityFields?: IdentityFields;
  /** Per Salesforce lookup; default DEFAULT_LOOKUP_TIMEOUT_MS. */
  readonly lookupTimeoutMs?: number;
  /** Key policy (default drop), profile and the logger that receives the one warning per dropped key. */
  readonly keys?: DecideKeyOptions;
}

/**
 * Per-item outcomes in input order. Throws InvalidInputError for a malformed envelope (answer 400) and
 * SalesforceUnavailableError when identities could not be read (answer 503, the caller may retry).
 */
export async function prepareTrackEventBatch(
  route: TrackEventRoute,
  body: unknown,
  options: PrepareTrackEventOptions,
): Promise<TrackEventOutcome[]> {
  const parsed = parseTrackEventRequest(route, body);
  const items: TrackEventItem[] = [];
  for (const entry of parsed) if (entry.ok) items.push(entry.item);

  const requests: IdentityRequest[] = items.map((item) => ({
    path: item.path,
    record: item.record,
    userId: item.userId,
    accountId: item.accountId,
  }));
  const identities = await resolveIdentities(options.connection, requests, {
    ...(options.identityFields ? { fields: options.identityFields } : {}),
    ...(options.lookupTimeoutMs === undefined ? {} : { timeoutMs: options.lookupTimeoutMs }),
  });
  const byIndex = new Map<number, TrackEventOutcome>();
  items.forEach((item, position) => {
    const identity = identities[position];
    if (identity === undefined) throw new Error('unreachable: one identity per item');
    if (!identity.ok) {
      byIndex.set(item.index, { ok: false, index: item.index, field: identity.field, reason: identity.reason });
      return;
    }
    const built = buildTrackEventItemInput(item, trackEventItemToUserEvent(item, identity, options.keys));
    byIndex.set(
      item.index,
      built.ok
        ? {
            ok: true,
            index: item.index,
            input: built.input,
            decision: built.decision,
            record: item.record && { type: item.record.type, id18: item.record.id18 },
          }
        : { ok: false, index: item.index, field: built.field, reason: built.reason },
    );
  });
  return parsed.map((entry, index) => (entry.ok ? (byIndex.get(index) as TrackEventOutcome) : entry));
}

/** The route's JSON answer, one result per item in input order. */
export function trackEventResponse(outcomes: readonly TrackEventOutcome[]): TrackEventResponse {
  return { results: outcomes.map((outcome) => itemResult(outcome)) };
}
