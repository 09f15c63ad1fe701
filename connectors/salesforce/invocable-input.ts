import { z } from 'zod';
import { type FieldIssue, InvalidInputError } from '../../shared/errors.js';
import { buildUserEventInput, type UserEventDraft, type UserEventInput } from '../../shared/events/index.js';
import { type DecideKeyOptions, decideKey, describeFault, type KeyDecision } from '../../shared/keys/index.js';
import { issuesOf, parseInput } from '../../shared/validation.js';
import { salesforceCandidate } from './key-candidate.js';
import { checkSalesforceId, recordTypeOf, type SupportedRecordType, UnsupportedRecordTypeError } from './salesforce-id.js';

/**
 * The relay's three invocable routes, mirroring SaaSquatch's "Track Event by Id / by Lead / by Contact" actions
 * (input variable `usersEvents`). The Apex class in force-app/ posts to exactly these paths with these field names.
 */
export type TrackEventRoute = 'by-id' | 'by-lead' | 'by-contact';
export const trackEventRoutes = ['by-id', 'by-lead', 'by-contact'] as const satisfies readonly TrackEventRoute[];

export type RecordIdField = 'recordId' | 'leadId' | 'contactId';

export interface TrackEventRouteSpec {
  readonly path: string;
  /** The item field that holds the record id. */
  readonly idField: RecordIdField;
  /** The objects whose ids the route takes. */
  readonly recordTypes: readonly SupportedRecordType[];
}

export const TRACK_EVENT_ROUTES: Readonly<Record<TrackEventRoute, TrackEventRouteSpec>> = {
  'by-id': { path: '/salesforce/track-event/by-id', idField: 'recordId', recordTypes: ['Lead', 'Contact', 'Account'] },
  'by-lead': { path: '/salesforce/track-event/by-lead', idField: 'leadId', recordTypes: ['Lead'] },
  'by-contact': { path: '/salesforce/track-event/by-contact', idField: 'contactId', recordTypes: ['Contact'] },
};

/**
 * Most items one request may carry. An invocable method gets one list per transaction chunk, and record triggers
 * run in chunks of 200 (Apex Developer Guide, "Triggers and Bulk Request Best Practices"; for API 21.0+ chunks are
 * not split further); platform-event triggers can hand over up to 2,000, so the Apex class splits its list into
 * requests of at most this many items.
 */
export const MAX_USERS_EVENTS = 200;

/** One well-formed item, with its record id normalised to 18 characters. */
export interface TrackEventItem {
  readonly index: number;
  /** Prefix of this item's fields in errors: `usersEvents[2]`. */
  readonly path: string;
  readonly userId: string | undefined;
  readonly accountId: string | undefined;
  /** The record the identity comes from; null only on by-id when both userId and accountId are given. */
  readonly record: { readonly type: SupportedRecordType; readonly id18: string; readonly idField: RecordIdField } | null;
  readonly key: string;
  readonly fields: Readonly<Record<string, unknown>> | undefined;
  readonly dateTriggered: string | number | undefined;
  /** The caller's key candidate, as given; the shared key layer decides what it becomes. */
  readonly idempotencyKey: unknown;
}

/** A per-item failure: the field (`usersEvents[2].leadId`) and why. Other items of the request go on. */
export interface ItemFailure {
  readonly ok: false;
  readonly field: string;
  readonly reason: string;
}

export type ParsedTrackEventItem = { readonly ok: true; readonly item: TrackEventItem } | (ItemFailure & { readonly index: number });

// Flow passes unset text variables as null and some callers send ""; both mean "not given".
const blankToUndefined = (value: unknown): unknown => (value === null || value === '' ? undefined : value);
const optionalText = z.preprocess(blankToUndefined, z.string({ error: 'expected a string' }).optional());
const optionalIdText = z.preprocess(blankToUndefined, z.string({ error: 'expected a Salesforce id (a string)' }).optional());

const itemSchema = z.object(
  {
    userId: optionalText,
    accountId: optionalText,
    recordId: optionalIdText,
    leadId: optionalIdText,
    contactId: optionalIdText,
    key: z.string({ error: 'required: the event key (a non-empty string)' }).min(1, 'must not be empty'),
    fields: z.preprocess(blankToUndefined, z.record(z.string(), z.unknown(), { error: 'expected an object of event fields' }).optional()),
    dateTriggered: z.preprocess(
      blankToUndefined,
      z.union([z.string(), z.number()], { error: 'expected an ISO-8601 date or epoch milliseconds' }).optional(),
    ),
    idempotencyKey: z.unknown().optional(),
  },
  { error: 'expected an object (one users event)' },
);

const envelopeSchema = z.object(
  {
    usersEvents: z
      .array(z.unknown(), { error: 'required: the list of users events' })
      .min(1, 'needs at least one users event')
      .max(MAX_USERS_EVENTS, `at most ${MAX_USERS_EVENTS} users events per request; split larger lists`),
  },
  { error: 'expected a JSON object with a usersEvents list' },
);

/** `usersEvents[2]` or `usersEvents[2].leadId`. */
export function itemPath(index: number, field?: string): string {
  return field === undefined ? `usersEvents[${index}]` : `usersEvents[${index}].${field}`;
}

/**
 * Checks a request body. The envelope (an object with 1–200 usersEvents) must be right or the whole request is
 * refused with InvalidInputError (HTTP 400); each item is then checked on its own, so one bad item fails alone,
 * as an invocable action must answer every input.
 */
export function parseTrackEventRequest(route: TrackEventRoute, body: unknown): ParsedTrackEventItem[] {
  const envelope = parseInput(envelopeSchema, body, `invalid ${TRACK_EVENT_ROUTES[route].path} request`);
  return envelope.usersEvents.map((raw, index) => parseItem(route, raw, index));
}

function parseItem(route: TrackEventRoute, raw: unknown, index: number): ParsedTrackEventItem {
  const spec = TRACK_EVENT_ROUTES[route];
  const result = itemSchema.safeParse(raw);
  const issues: FieldIssue[] = result.success ? [] : issuesOf(result.error).map((issue) => prefixed(index, issue));
  if (!result.success) return failure(index, issues);

  const parsed = result.data;
  const bothIds = parsed.userId !== undefined && parsed.accountId !== undefined;
  const givenId = parsed[spec.idField];
  let record: TrackEventItem['record'] = null;
  if (givenId === undefined) {
    // by-id also takes SaaSquatch ids alone, as SaaSquatch's own "Track Event by Id" does; the others need their record.
    if (!(route === 'by-id' && bothIds)) {
      const alternative = route === 'by-id' ? ', or both userId and accountId' : '';
      issues.push({ field: itemPath(index, spec.idField), reason: `required: the ${describeTypes(spec.recordTypes)} id${alternative}` });
    }
  } else {
    const checked = checkRecordId(givenId, spec.recordTypes);
    if (checked.ok) record = { type: checked.type, id18: checked.id18, idField: spec.idField };
    else issues.push({ field: itemPath(index, spec.idField), reason: checked.reason });
  }
  if (issues.length > 0) return failure(index, issues);

  return {
    ok: true,
    item: {
      index,
      path: itemPath(index),
      userId: parsed.userId,
      accountId: parsed.accountId,
      record,
      key: parsed.key,
      fields: parsed.fields,
      dateTriggered: parsed.dateTriggered,
      idempotencyKey: parsed.idempotencyKey,
    },
  };
}

type RecordIdCheck = { ok: true; type: SupportedRecordType; id18: string } | { ok: false; reason: string };

function checkRecordId(value: string, accepted: readonly SupportedRecordType[]): RecordIdCheck {
  const checked = checkSalesforceId(value);
  if (!checked.ok) return { ok: false, reason: checked.reason };
  let type: SupportedRecordType;
  try {
    type = recordTypeOf(checked.id18);
  } catch (error) {
    if (error instanceof UnsupportedRecordTypeError)
      return { ok: false, reason: `expected a ${describeTypes(accepted)} id; ${error.message}` };
    throw error;
  }
  if (!accepted.includes(type)) {
    return { ok: false, reason: `expected a ${describeTypes(accepted)} id, got a ${type} id (key prefix ${checked.id18.slice(0, 3)})` };
  }
  return { ok: true, type, id18: checked.id18 };
}

function describeTypes(types: readonly SupportedRecordType[]): string {
  return types.length === 1 ? (types[0] as string) : `${types.slice(0, -1).join(', ')} or ${types.at(-1)}`;
}

function prefixed(index: number, issue: FieldIssue): FieldIssue {
  return { field: issue.field === '(root)' ? itemPath(index) : `${itemPath(index)}.${issue.field}`, reason: issue.reason };
}

function failure(index: number, issues: readonly FieldIssue[]): ItemFailure & { index: number } {
  const [first, ...rest] = issues as [FieldIssue, ...FieldIssue[]];
  const also = rest.map((issue) => `${issue.field}: ${issue.reason}`).join('; ');
  return { ok: false, index, field: first.field, reason: also === '' ? first.reason : `${first.reason}; also ${also}` };
}

/** Where the user and account ids of an item finally come from (the item itself, or its record). */
export interface ResolvedIdentity {
  readonly userId: string;
  readonly accountId: string;
}

/**
 * Maps one resolved item to the connector's draft and its key decision. The candidate is the item's idempotencyKey
 * (via the shared Salesforce extractor); it is never built from the record id and the event key, which would merge
 * two real events of one person (two purchases by one Contact).
 */
export function trackEventItemToUserEvent(
  item: TrackEventItem,
  identity: ResolvedIdentity,
  keyOptions: DecideKeyOptions = {},
): { readonly draft: UserEventDraft; readonly decision: KeyDecision } {
  const decision = decideKey(salesforceCandidate({ idempotencyKey: item.idempotencyKey }), keyOptions);
  const draft: UserEventDraft = {
    userId: identity.userId,
    accountId: identity.accountId,
    events: [
      {
        key: item.key,
        ...(item.fields === undefined ? {} : { fields: item.fields }),
        ...(item.dateTriggered === undefined ? {} : { dateTriggered: item.dateTriggered }),
      },
    ],
  };
  return { draft, decision };
}

export type TrackEventItemInput =
  | { readonly ok: true; readonly input: UserEventInput; readonly decision: KeyDecision }
  | (ItemFailure & { readonly decision?: KeyDecision });

/**
 * The target's input for one item, or a per-item failure naming the item's own field (`usersEvents[2].dateTriggered`,
 * `usersEvents[2].fields.note`). Under the `reject` key policy an invalid idempotencyKey fails the item.
 */
export function buildTrackEventItemInput(
  item: TrackEventItem,
  mapped: { readonly draft: UserEventDraft; readonly decision: KeyDecision },
): TrackEventItemInput {
  const { draft, decision } = mapped;
  if (decision.decision === 'rejected') {
    return { ok: false, field: itemPath(item.index, 'idempotencyKey'), reason: `rejected: ${describeFault(decision)}`, decision };
  }
  try {
    return { ok: true, input: buildUserEventInput(draft, decision), decision };
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const issues = error.issues.map((issue) => ({ field: itemPath(item.index, itemField(issue.field)), reason: issue.reason }));
    return { ...failure(item.index, issues), decision };
  }
}

/** Maps a UserEventInput field path (`events[0].fields.x`) back to the item field it came from (`fields.x`). */
function itemField(field: string): string {
  if (field.startsWith('events[0].')) return field.slice('events[0].'.length);
  if (field === 'events[0]' || field === 'events') return 'key';
  return field;
}

/** One item's answer in the route's response, in input order. */
export type TrackEventItemResult =
  | {
      readonly ok: true;
      /** The idempotency key the event is sent with; null when the candidate was dropped (see keyDecision). */
      readonly idempotencyKey: string | null;
      readonly keyDecision: KeyDecision['decision'];
    }
  | { readonly ok: false; readonly field: string; readonly error: string };

/** The route's JSON answer: `{"results": [...]}`, one per usersEvents item, in order. The Apex class reads this. */
export interface TrackEventResponse {
  readonly results: readonly TrackEventItemResult[];
}

export function itemResult(outcome: TrackEventItemInput | ItemFailure): TrackEventItemResult {
  if (outcome.ok) return { ok: true, idempotencyKey: outcome.decision.key, keyDecision: outcome.decision.decision };
  return { ok: false, field: outcome.field, error: `${outcome.field}: ${outcome.reason}` };
}
