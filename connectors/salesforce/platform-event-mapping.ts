import { z } from 'zod';
import { InvalidInputError } from '../../shared/errors.js';
import { buildUserEventInput, type UserEventDraft, type UserEventInput } from '../../shared/events/index.js';
import { type DecideKeyOptions, decideKey, describeFault, type KeyDecision } from '../../shared/keys/index.js';
import { parseInput } from '../../shared/validation.js';
import { salesforceCandidate } from './key-candidate.js';

/**
 * The one place that knows the platform event's fields. They match
 * force-app/main/default/objects/SaaSquatch_User_Event__e exactly (a test compares them).
 */
export const PLATFORM_EVENT_OBJECT = 'SaaSquatch_User_Event__e';
export const DEFAULT_PLATFORM_EVENT_CHANNEL = `/event/${PLATFORM_EVENT_OBJECT}`;

/** Which payload field holds each part of the user event. */
export interface PlatformEventFieldMap {
  readonly userId: string;
  /** Blank means the user's own account (userId), as SaaSquatch recommends for solo accounts. */
  readonly accountId: string;
  readonly eventKey: string;
  /** JSON text of an object: the event's fields. */
  readonly fields: string;
  /** A DateTime field; CometD delivers it as ISO-8601 text. */
  readonly dateTriggered: string;
  /** Optional; when blank the event's EventUuid is the key candidate. */
  readonly idempotencyKey: string;
}

export const DEFAULT_PLATFORM_EVENT_FIELDS: PlatformEventFieldMap = Object.freeze({
  userId: 'User_Id__c',
  accountId: 'Account_Id__c',
  eventKey: 'Event_Key__c',
  fields: 'Fields__c',
  dateTriggered: 'Date_Triggered__c',
  idempotencyKey: 'Idempotency_Key__c',
});

const fieldApiName = z.string().regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'expected a field API name such as User_Id__c');
const fieldMapSchema = z.strictObject({
  userId: fieldApiName.optional(),
  accountId: fieldApiName.optional(),
  eventKey: fieldApiName.optional(),
  fields: fieldApiName.optional(),
  dateTriggered: fieldApiName.optional(),
  idempotencyKey: fieldApiName.optional(),
});

/** Validates a partial field map (e.g. from configuration) over the defaults. */
export function parsePlatformEventFieldMap(value: unknown): PlatformEventFieldMap {
  const parsed = parseInput(fieldMapSchema, value, 'invalid platform event field map');
  const map: Record<keyof PlatformEventFieldMap, string> = { ...DEFAULT_PLATFORM_EVENT_FIELDS };
  for (const [name, field] of Object.entries(parsed)) if (field !== undefined) map[name as keyof PlatformEventFieldMap] = field;
  return map;
}

/** What the subscriber hands to its sink: the event's identity, position and custom fields. */
export interface PlatformEventMessage {
  readonly channel: string;
  /** System-generated, unique per event; only delivered at CometD API 52.0 and later. */
  readonly eventUuid: string | null;
  /** The event's position in the channel; for checkpoints only, never an identity. */
  readonly replayId: number;
  readonly payload: Readonly<Record<string, unknown>>;
  /**
   * Why the payload could not be read (a Pub/Sub event whose Avro bytes do not decode with its schema); the payload is
   * then empty and the mapping refuses the event naming this reason, so the sink handles it like any unmappable one.
   */
  readonly undecodable?: string;
}

/**
 * How the ledger names a platform event: its EventUuid, unique per event. Only an event read below API 52.0 has none;
 * then the channel and replayId, which are unique within the retention window but not across org migrations.
 */
export function platformEventSourceId(event: PlatformEventMessage): string {
  return event.eventUuid ?? `${event.channel}#${event.replayId}`;
}

export interface PlatformEventMappingOptions extends DecideKeyOptions {
  readonly fieldMap?: PlatformEventFieldMap;
}

function text(payload: Readonly<Record<string, unknown>>, field: string): string | undefined {
  const value = payload[field];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Maps a platform event to the connector's draft and its key decision. The candidate is Idempotency_Key__c when the
 * publisher set one (so an event re-published on retry keeps its key), else the EventUuid; never the replayId.
 * Throws InvalidInputError naming the payload field (`Fields__c`) for a payload that cannot be read.
 */
export function platformEventToUserEvent(
  event: PlatformEventMessage,
  options: PlatformEventMappingOptions = {},
): { readonly draft: UserEventDraft; readonly decision: KeyDecision } {
  const map = options.fieldMap ?? DEFAULT_PLATFORM_EVENT_FIELDS;
  if (event.undecodable !== undefined) {
    throw new InvalidInputError([{ field: 'payload', reason: `cannot be decoded: ${event.undecodable}` }], 'invalid platform event');
  }
  const payload = event.payload;
  const userId = payload[map.userId];
  const accountId = text(payload, map.accountId) ?? userId;
  const fieldsText = payload[map.fields];
  let fields: unknown;
  if (fieldsText !== undefined && fieldsText !== null && fieldsText !== '') {
    if (typeof fieldsText !== 'string')
      throw new InvalidInputError([{ field: map.fields, reason: 'expected JSON text of an object' }], 'invalid platform event');
    try {
      fields = JSON.parse(fieldsText);
    } catch {
      throw new InvalidInputError([{ field: map.fields, reason: 'is not valid JSON' }], 'invalid platform event');
    }
    if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) {
      throw new InvalidInputError([{ field: map.fields, reason: 'expected a JSON object of event fields' }], 'invalid platform event');
    }
  }
  const decision = decideKey(salesforceCandidate({ idempotencyKey: payload[map.idempotencyKey], eventUuid: event.eventUuid }), options);
  const dateTriggered = payload[map.dateTriggered];
  const draft: UserEventDraft = {
    userId,
    accountId,
    events: [
      {
        key: payload[map.eventKey],
        ...(fields === undefined ? {} : { fields }),
        ...(dateTriggered === undefined || dateTriggered === null ? {} : { dateTriggered }),
      },
    ],
  };
  return { draft, decision };
}

/**
 * The target's input for a platform event. Problems are InvalidInputError naming the payload field
 * (`Event_Key__c`, `Fields__c.note`); under the `reject` key policy a refused key is one too.
 * The sink records an event it cannot map (this error or any other) as a dead letter and resolves, never fails for it:
 * a sink failure makes the subscriber resubscribe and receive the same event again (relay-plugin.ts).
 */
export function platformEventToUserEventInput(
  event: PlatformEventMessage,
  options: PlatformEventMappingOptions = {},
): { readonly input: UserEventInput; readonly decision: KeyDecision } {
  const map = options.fieldMap ?? DEFAULT_PLATFORM_EVENT_FIELDS;
  const { draft, decision } = platformEventToUserEvent(event, options);
  if (decision.decision === 'rejected') {
    const field = text(event.payload, map.idempotencyKey) !== undefined ? map.idempotencyKey : 'EventUuid';
    throw new InvalidInputError([{ field, reason: `rejected: ${describeFault(decision)}` }], 'invalid platform event');
  }
  try {
    return { input: buildUserEventInput(draft, decision), decision };
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const issues = error.issues.map((issue) => ({ field: payloadField(issue.field, map), reason: issue.reason }));
    throw new InvalidInputError(issues, 'invalid platform event');
  }
}

function payloadField(field: string, map: PlatformEventFieldMap): string {
  if (field === 'userId') return map.userId;
  if (field === 'accountId') return `${map.accountId} (or ${map.userId})`;
  if (field === 'events[0].key') return map.eventKey;
  if (field === 'events[0].dateTriggered') return map.dateTriggered;
  if (field.startsWith('events[0].fields')) return `${map.fields}${field.slice('events[0].fields'.length)}`;
  return field;
}
