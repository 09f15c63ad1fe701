import { z } from 'zod';
import { findJsonFault, type JsonBounds } from '../json-walk.js';
import type { KeyDecision } from '../keys/decide.js';
import { parseInput } from '../validation.js';
import { toEpochMillis } from './dates.js';

/** SaaSquatch rejects event-field strings over 1500 UTF-8 bytes. */
export const MAX_FIELD_STRING_BYTES = 1500;

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Bounds of an event's fields: deeper or larger input is refused (400 naming the path), never walked recursively. */
export const EVENT_FIELDS_BOUNDS: JsonBounds = { maxDepth: 32, maxNodes: 10_000 };

/** Why one value inside `fields` is not something the target supports, or null. */
function fieldFault(value: unknown, parent: unknown): string | null {
  if (typeof value === 'string') {
    // In Unicode mode a well-formed pair is one code point, so only a lone surrogate matches.
    if (/\p{Surrogate}/u.test(value)) return 'text holds a lone surrogate, which is not valid Unicode';
    const bytes = Buffer.byteLength(value, 'utf8');
    return bytes > MAX_FIELD_STRING_BYTES ? `string is ${bytes} UTF-8 bytes; the target accepts at most ${MAX_FIELD_STRING_BYTES}` : null;
  }
  if (typeof value === 'number') return Number.isFinite(value) ? null : 'expected a finite number';
  if (typeof value === 'boolean' || value === null) return null;
  if (Array.isArray(value)) return Array.isArray(parent) ? 'arrays of arrays are not supported by the target' : null;
  if (typeof value === 'object' && !(value instanceof Date)) return null;
  return 'expected a JSON value (text, number, boolean, null, a list or an object)';
}

// An explicit-stack walk rather than a recursive schema: fields come from users and may be nested arbitrarily deep.
export const eventFieldsSchema = z
  .custom<Record<string, JsonValue>>(() => true)
  .superRefine((fields, ctx) => {
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields) || fields instanceof Date) {
      ctx.addIssue({ code: 'custom', message: 'expected an object of fields' });
      return;
    }
    const fault = findJsonFault(fields, EVENT_FIELDS_BOUNDS, fieldFault);
    if (fault) ctx.addIssue({ code: 'custom', message: fault.reason, path: [...fault.path] });
  });

/** One event inside a UserEventInput (SaaSquatch `UserEventDataInput`). */
export const userEventDataSchema = z.object({
  key: z.string({ error: 'required, a non-empty string' }).min(1, 'must not be empty'),
  fields: eventFieldsSchema.optional(),
  dateTriggered: z.number({ error: 'expected epoch milliseconds' }).int('expected whole epoch milliseconds').nonnegative().optional(),
});

/** The target's `UserEventInput`: one user, one optional idempotency key for the whole request, one or more events. */
export const userEventInputSchema = z.object({
  userId: z.string({ error: 'required, a non-empty string' }).min(1, 'must not be empty'),
  accountId: z.string({ error: 'required, a non-empty string' }).min(1, 'must not be empty'),
  idempotencyKey: z.string().optional(),
  events: z.array(userEventDataSchema, { error: 'required, a list of events' }).min(1, 'needs at least one event'),
});

export type UserEventData = z.output<typeof userEventDataSchema>;
export type UserEventInput = z.output<typeof userEventInputSchema>;

/** What a connector hands over before dates are normalised and the key decision is applied. */
export interface UserEventDraft {
  readonly userId: unknown;
  readonly accountId: unknown;
  readonly events: readonly { readonly key: unknown; readonly fields?: unknown; readonly dateTriggered?: unknown }[];
}

/**
 * Builds a validated UserEventInput from a connector's draft and its key decision.
 * Source dates (ISO strings, Date, ms) become epoch ms; errors name the field, e.g. `events[0].dateTriggered`.
 */
export function buildUserEventInput(draft: UserEventDraft, decision: KeyDecision | null): UserEventInput {
  const events = draft.events.map((event, index) => ({
    key: event.key,
    ...(event.fields === undefined || event.fields === null ? {} : { fields: event.fields }),
    ...(event.dateTriggered === undefined || event.dateTriggered === null || event.dateTriggered === ''
      ? {}
      : { dateTriggered: toEpochMillis(event.dateTriggered, `events[${index}].dateTriggered`) }),
  }));
  return parseInput(
    userEventInputSchema,
    {
      userId: draft.userId,
      accountId: draft.accountId,
      ...(decision?.key ? { idempotencyKey: decision.key } : {}),
      events,
    },
    'invalid user event',
  );
}
