import { z } from 'zod';
import { type FieldIssue, InvalidInputError } from '../../shared/errors.js';
import { buildUserEventInput, type UserEventInput } from '../../shared/events/index.js';
import { type DecideKeyOptions, decideKey, type KeyCandidate, type KeyDecision, KeyRejectedError } from '../../shared/keys/index.js';
import type { Logger } from '../../shared/log.js';
import type { UserUpsert } from '../../shared/target/index.js';
import { issuesOf } from '../../shared/validation.js';
import type { SegmentSettings } from './settings.js';

/**
 * Why an event cannot be forwarded, in Segment's two discard classes:
 * - `invalid-payload`: the event itself is malformed (a missing event name, properties that are not an object,
 *   a field the target cannot store) → InvalidEventPayload;
 * - `validation`: a well-formed event that SaaSquatch cannot take as it is (anonymous, no accountId, a refused key)
 *   → ValidationError.
 */
export class SegmentEventError extends Error {
  readonly kind: 'invalid-payload' | 'validation';
  constructor(kind: 'invalid-payload' | 'validation', message: string) {
    super(message);
    this.name = 'SegmentEventError';
    this.kind = kind;
  }
}

type EventObject = Readonly<Record<string, unknown>>;

// Segment's ids are strings; numbers turn up in events built by hand for the HTTP API.
const idValue = z.union([z.string(), z.number()], { error: 'expected a string' }).nullish();
const objectOrNull = (what: string) => z.record(z.string(), z.unknown(), { error: `expected an object of ${what}` }).nullish();
const contextSchema = z.looseObject({ locale: z.unknown().optional() }).nullish();

const trackEventSchema = z.looseObject({
  event: z.string({ error: 'required: the name of the track event' }).min(1, 'must not be empty'),
  userId: idValue,
  properties: objectOrNull('event properties'),
  context: contextSchema,
});

const identifyEventSchema = z.looseObject({
  userId: idValue,
  traits: objectOrNull('user traits'),
  context: contextSchema,
});

function parseEvent<T extends z.ZodType>(schema: T, event: unknown, type: string): z.output<T> {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) {
    throw new SegmentEventError('invalid-payload', `invalid ${type} event: expected an event object`);
  }
  const result = schema.safeParse(event);
  if (!result.success) throw new SegmentEventError('invalid-payload', describeIssues(`invalid ${type} event`, issuesOf(result.error)));
  return result.data;
}

function describeIssues(context: string, issues: readonly FieldIssue[]): string {
  return new InvalidInputError(issues, context).message;
}

function idText(value: string | number | null | undefined): string | null {
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : null;
  return typeof value === 'string' && value !== '' ? value : null;
}

/** SaaSquatch keeps events and users only for known users, so an event with only an anonymousId cannot be sent. */
function requireUserId(value: string | number | null | undefined, type: string): string {
  const userId = idText(value);
  if (userId !== null) return userId;
  throw new SegmentEventError(
    'validation',
    `userId: missing. This ${type} event is anonymous (it has no userId), and SaaSquatch only takes events and users ` +
      'with a userId; send it after identify, with the userId set',
  );
}

/** Reads a dotted path through own members only, so a path cannot reach prototype members. */
function valueAtPath(root: EventObject, path: string): unknown {
  let current: unknown = root;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** The accountId: the userId itself (SaaSquatch's integration does the same), or the first path that has one. */
function resolveAccountId(event: EventObject, userId: string, settings: SegmentSettings, type: string): string {
  if (settings.accountIdFrom.length === 0) return userId;
  for (const path of settings.accountIdFrom) {
    const value = valueAtPath(event, path);
    const accountId = typeof value === 'string' || typeof value === 'number' ? idText(value) : null;
    if (accountId !== null) return accountId;
  }
  const paths = settings.accountIdFrom.join(', ');
  throw new SegmentEventError(
    'validation',
    `${paths}: no accountId. The accountIdFrom setting reads the SaaSquatch accountId from ${paths}, and this ${type} event ` +
      'has no non-empty string or number there',
  );
}

/** The event name, renamed through eventKeyMap (e.g. "Order Completed" → purchase); otherwise unchanged. */
export function eventKeyFor(name: string, eventKeyMap: Readonly<Record<string, string>>): string {
  return Object.hasOwn(eventKeyMap, name) ? (eventKeyMap[name] as string) : name;
}

/** The parts of a track event the key layer and the target need, before the key is decided. */
export interface TrackEventParts {
  readonly userId: string;
  readonly accountId: string;
  readonly key: string;
  readonly fields: Readonly<Record<string, unknown>> | undefined;
  readonly timestamp: unknown;
}

/** Checks a track event's shape and identity; throws SegmentEventError naming the field. */
export function readTrackEvent(event: unknown, settings: SegmentSettings): TrackEventParts {
  const parsed = parseEvent(trackEventSchema, event, 'track');
  const userId = requireUserId(parsed.userId, 'track');
  return {
    userId,
    accountId: resolveAccountId(parsed, userId, settings, 'track'),
    key: eventKeyFor(parsed.event, settings.eventKeyMap),
    fields: parsed.properties ?? undefined,
    timestamp: parsed.timestamp,
  };
}

/**
 * The target's input for a track event: properties become fields, the ISO timestamp becomes dateTriggered in epoch ms,
 * and the key decided from messageId (or none) rides along. Field problems come back under Segment's names.
 */
export function trackToUserEventInput(parts: TrackEventParts, decision: KeyDecision, settings: SegmentSettings): UserEventInput {
  try {
    return buildUserEventInput(
      {
        userId: parts.userId,
        accountId: parts.accountId,
        events: [{ key: parts.key, ...(parts.fields === undefined ? {} : { fields: parts.fields }), dateTriggered: parts.timestamp }],
      },
      decision,
    );
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const issues = error.issues.map((issue) => ({ field: segmentFieldName(issue.field, settings), reason: issue.reason }));
    throw new SegmentEventError('invalid-payload', describeIssues('invalid track event', issues));
  }
}

/** The key candidate: the event's `messageId`, kept across Segment's retries. */
export function segmentCandidate(event: { readonly messageId?: unknown }): KeyCandidate {
  return { source: 'segment', value: event.messageId };
}

/** Decides a key from a candidate; only the benchmark replaces the shared `decideKey`. */
export type KeyDecider = (candidate: KeyCandidate, options: DecideKeyOptions) => KeyDecision;

/**
 * The one Segment track mapping, for the destination function and the relay's webhook route alike: the event's shape
 * and identity checked, its key decided from messageId under the settings' policy (an invalid key is dropped and
 * logged once by default), and the target's input built. Throws SegmentEventError naming the field.
 */
export function mapTrackEvent(
  event: unknown,
  settings: SegmentSettings,
  options: { readonly logger: Logger; readonly decide?: KeyDecider },
): { readonly input: UserEventInput; readonly decision: KeyDecision } {
  const parts = readTrackEvent(event, settings);
  const decide = options.decide ?? decideKey;
  const candidate = segmentCandidate((event ?? {}) as { readonly messageId?: unknown });
  const decision = decide(candidate, { policy: settings.invalidKeyPolicy, logger: options.logger });
  if (decision.decision === 'rejected') {
    throw new SegmentEventError(
      'validation',
      `messageId: ${new KeyRejectedError(decision).message}; the invalidKeyPolicy setting is "reject"`,
    );
  }
  return { input: trackToUserEventInput(parts, decision, settings), decision };
}

/** Maps a UserEventInput field path back to the Segment field it came from. */
function segmentFieldName(field: string, settings: SegmentSettings): string {
  if (field === 'events[0].dateTriggered') return 'timestamp';
  if (field === 'events[0].key') return 'event';
  if (field === 'events[0].fields') return 'properties';
  if (field.startsWith('events[0].fields')) return `properties${field.slice('events[0].fields'.length)}`;
  if (field === 'accountId' && settings.accountIdFrom.length > 0) return settings.accountIdFrom.join(', ');
  if (field === 'accountId') return 'userId';
  return field;
}

// Traits SaaSquatch's integration maps to user fields, and the ones it ignores; every other trait is a custom field.
const NAME_TRAITS = new Set(['email', 'firstName', 'first_name', 'lastName', 'last_name', 'name', 'avatar']);
const IGNORED_TRAITS = new Set(['address', 'birthday', 'created_at', 'createdAt', 'id']);
// The target's limits for custom fields (names of A-Z a-z 0-9 _ up to 64, text up to 1024); the integration fits
// values to them rather than losing the whole identify.
const CUSTOM_FIELD_NAME_MAX = 64;
const CUSTOM_FIELD_TEXT_MAX = 1024;

function optionalText(traits: EventObject, name: string): string | undefined {
  const value = traits[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  throw new SegmentEventError(
    'invalid-payload',
    describeIssues('invalid identify event', [{ field: `traits.${name}`, reason: 'expected a string' }]),
  );
}

/** "Ann Lee Smith" → Ann / Lee Smith, as SaaSquatch's integration splits `name`. */
function splitName(name: string | undefined): { first?: string; last?: string } {
  const parts = (name ?? '').trim().split(/\s+/).filter(Boolean);
  if (parts.length === 0) return {};
  const [first, ...rest] = parts as [string, ...string[]];
  return rest.length > 0 ? { first, last: rest.join(' ') } : { first };
}

/** Segment's BCP 47 locale ("en-US") in SaaSquatch's form ("en_US"); a locale it cannot express is left out. */
export function saasquatchLocale(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const match = /^([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}))?$/.exec(value.trim());
  if (!match) return undefined;
  const language = (match[1] as string).toLowerCase();
  return match[2] ? `${language}_${match[2].toUpperCase()}` : language;
}

function customFieldsOf(traits: EventObject): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(traits)) {
    if (NAME_TRAITS.has(name) || IGNORED_TRAITS.has(name) || value === undefined) continue;
    const fieldName = name.replace(/[^A-Za-z0-9_]/g, '').slice(0, CUSTOM_FIELD_NAME_MAX);
    if (fieldName === '') continue;
    fields[fieldName] = typeof value === 'string' ? value.slice(0, CUSTOM_FIELD_TEXT_MAX) : value;
  }
  return fields;
}

/**
 * The open user-upsert body for an identify call, mapped as SaaSquatch's Segment integration documents:
 * firstName/first_name, lastName/last_name or a split `name`; avatar → imageUrl; email; context.locale → locale;
 * address, birthday, created_at and id ignored; every other trait a custom field.
 */
export function identifyToUserUpsert(event: unknown, settings: SegmentSettings): UserUpsert {
  const parsed = parseEvent(identifyEventSchema, event, 'identify');
  const userId = requireUserId(parsed.userId, 'identify');
  const accountId = resolveAccountId(parsed, userId, settings, 'identify');
  const traits: EventObject = parsed.traits ?? {};
  const byName = splitName(optionalText(traits, 'name'));
  const firstName = optionalText(traits, 'firstName') ?? optionalText(traits, 'first_name') ?? byName.first;
  const lastName = optionalText(traits, 'lastName') ?? optionalText(traits, 'last_name') ?? byName.last;
  const email = optionalText(traits, 'email');
  const imageUrl = optionalText(traits, 'avatar');
  const locale = saasquatchLocale(parsed.context?.locale);
  const customFields = customFieldsOf(traits);
  return {
    id: userId,
    accountId,
    ...(firstName === undefined ? {} : { firstName }),
    ...(lastName === undefined ? {} : { lastName }),
    ...(email === undefined ? {} : { email }),
    ...(imageUrl === undefined ? {} : { imageUrl }),
    ...(locale === undefined ? {} : { locale }),
    ...(Object.keys(customFields).length === 0 ? {} : { customFields }),
  };
}
