import { z } from 'zod';
import type { KeyDecision } from '../keys/decide.js';
import { parseInput } from '../validation.js';
import { toEpochMillis } from './dates.js';

/** SaaSquatch rejects event-field strings over 1500 UTF-8 bytes. */
export const MAX_FIELD_STRING_BYTES = 1500;

type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

const jsonValue: z.ZodType<JsonValue> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(jsonValue), z.record(z.string(), jsonValue)]),
);

type FieldPath = (string | number)[];

/** Finds the first value in `fields` the target does not support, with its path. */
function fieldFault(value: JsonValue, path: FieldPath, insideArray: boolean): { path: FieldPath; reason: string } | null {
  if (typeof value === 'string') {
    const bytes = Buffer.byteLength(value, 'utf8');
    return bytes > MAX_FIELD_STRING_BYTES
      ? { path, reason: `string is ${bytes} UTF-8 bytes; the target accepts at most ${MAX_FIELD_STRING_BYTES}` }
      : null;
  }
  if (Array.isArray(value)) {
    if (insideArray) return { path, reason: 'arrays of arrays are not supported by the target' };
    for (const [index, item] of value.entries()) {
      const fault = fieldFault(item, [...path, index], true);
      if (fault) return fault;
    }
    return null;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const fault = fieldFault(item, [...path, key], false);
      if (fault) return fault;
    }
  }
  return null;
}

export const eventFieldsSchema = z.record(z.string(), jsonValue).superRefine((fields, ctx) => {
  const fault = fieldFault(fields, [], false);
  if (fault) ctx.addIssue({ code: 'custom', message: fault.reason, path: fault.path });
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
