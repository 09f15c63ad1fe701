import type { FieldIssue } from '../../shared/errors.js';
import { type UserEventInput, userEventInputSchema } from '../../shared/events/user-event.js';
import { checkKey, saasquatchKeyProfile } from '../../shared/keys/profiles.js';
import { issuesOf } from '../../shared/validation.js';
import { apiErrors, RS_EMPTY_ID, type SandboxApiError } from './api-error.js';
import { objectId } from './object-id.js';
import type { Channel, EventFields, KeyRecord, StoredEvent, TenantState } from './state.js';

/** One event as the API answers it (REST `events[]`, GraphQL `UserEventData`). */
export interface LoggedEvent {
  readonly id: string;
  readonly key: string;
  readonly fields: EventFields;
  readonly dateTriggered: number;
  readonly dateReceived: number;
  readonly dateProcessed: number;
}

export interface UserEventResultBody {
  readonly userId: string;
  readonly accountId: string;
  readonly events: readonly LoggedEvent[];
}

export type LogResult =
  | { readonly ok: true; readonly result: UserEventResultBody }
  | { readonly ok: false; readonly error: SandboxApiError };

export interface LogRequest {
  readonly tenant: TenantState;
  readonly now: number;
  readonly retentionMs: number;
  readonly strictUsers: boolean;
  readonly via: Channel;
  /** REST only: the ids from the URL, which must equal the body's. */
  readonly pathIds?: { readonly accountId: string; readonly userId: string };
  /** previewUserEvent: validate and answer, but store nothing and leave keys alone. */
  readonly preview?: boolean;
}

type JsonObject = Record<string, unknown>;
const isObject = (value: unknown): value is JsonObject => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * The API is Java (Jackson): an explicit null in an optional member reads as absent. The Java SDK sends
 * `fields: null` for events without fields, so refusing nulls here would refuse what the real API takes.
 */
function withoutNullOptionals(raw: JsonObject): JsonObject {
  const out: JsonObject = raw.idempotencyKey === null ? { ...raw, idempotencyKey: undefined } : raw;
  if (!Array.isArray(raw.events)) return out;
  let events: unknown[] | null = null;
  raw.events.forEach((event: unknown, index) => {
    if (isObject(event) && (event.fields === null || event.dateTriggered === null)) {
      events ??= [...(raw.events as unknown[])];
      events[index] = {
        ...event,
        fields: event.fields === null ? undefined : event.fields,
        dateTriggered: event.dateTriggered === null ? undefined : event.dateTriggered,
      };
    }
  });
  return events === null ? out : { ...out, events };
}

/** Counts a request that carries a well-formed key, whatever then happens to it (400, 409, injected fault). */
export function noteCarriedKey(tenant: TenantState, raw: unknown, now: number): KeyRecord | null {
  if (!isObject(raw) || typeof raw.idempotencyKey !== 'string') return null;
  const check = checkKey(raw.idempotencyKey, saasquatchKeyProfile);
  return check.valid ? tenant.noteKey(check.key, now) : null;
}

const PATH_FIELDS = ['accountId', 'userId'] as const;

export function validateUserEventInput(
  raw: unknown,
  pathIds?: LogRequest['pathIds'],
): { readonly ok: true; readonly input: UserEventInput } | { readonly ok: false; readonly error: SandboxApiError } {
  if (!isObject(raw))
    return { ok: false, error: apiErrors.validation([{ field: '(root)', reason: 'expected a JSON object (a UserEventInput)' }]) };
  const body = withoutNullOptionals(raw);
  const parsed = userEventInputSchema.safeParse(body);
  let issues: FieldIssue[] = parsed.success ? [] : issuesOf(parsed.error);
  // A missing or empty id gets the API's RS043/RS044; a mismatch with the path is a plain validation error.
  const emptyId = issues.find((issue) => issue.field === 'userId' || issue.field === 'accountId')?.field as
    | keyof typeof RS_EMPTY_ID
    | undefined;
  let rsCode: string | null = emptyId === undefined ? null : RS_EMPTY_ID[emptyId];

  if (body.idempotencyKey !== undefined) {
    // The key rule lives in checkKey; its reason code replaces zod's generic "expected string".
    const check = checkKey(body.idempotencyKey, saasquatchKeyProfile);
    if (!check.valid) {
      issues = issues.filter((issue) => issue.field !== 'idempotencyKey');
      issues.push({ field: 'idempotencyKey', reason: `${check.reason}: an idempotency key must be ${saasquatchKeyProfile.rule}` });
    }
  }
  if (pathIds !== undefined) {
    for (const field of PATH_FIELDS) {
      const inPath = pathIds[field];
      const inBody = body[field];
      if (inPath === '') {
        issues.push({ field, reason: `the ${field} in the URL path must not be empty` });
        rsCode ??= RS_EMPTY_ID[field];
      } else if (typeof inBody === 'string' && inBody !== '' && inBody !== inPath) {
        issues.push({
          field,
          reason: `must equal the ${field} in the URL path (body ${JSON.stringify(inBody)}, path ${JSON.stringify(inPath)})`,
        });
      }
    }
  }
  if (issues.length > 0 || !parsed.success) return { ok: false, error: apiErrors.validation(issues, rsCode) };
  return { ok: true, input: parsed.data };
}

/**
 * The one implementation of trackEvent / logUserEvent: validate, check the user, apply the idempotency key, record.
 * Synchronous, so the key check and the record are atomic with respect to every other request.
 */
export function logUserEvent(raw: unknown, request: LogRequest): LogResult {
  const { tenant, now } = request;
  const keyRecord = request.preview ? null : noteCarriedKey(tenant, raw, now);

  const validated = validateUserEventInput(raw, request.pathIds);
  if (!validated.ok) return validated;
  const { userId, accountId, events } = validated.input;

  if (tenant.user(accountId, userId) === undefined) {
    if (request.strictUsers) return { ok: false, error: apiErrors.userNotFound(accountId, userId) };
    if (!request.preview) {
      tenant.putUser(accountId, userId, { data: { id: userId, accountId, dateCreated: now, dateModified: now }, autoCreated: true });
    }
  }

  // noteKey() already replaced a record whose window had passed, so a stored record here is a live one.
  if (keyRecord !== null && keyRecord.expiresAt !== null) {
    return { ok: false, error: apiErrors.duplicateKey(keyRecord.key, keyRecord.expiresAt) };
  }

  const logged: LoggedEvent[] = events.map((event) => ({
    id: objectId(now),
    key: event.key,
    fields: event.fields ?? {},
    dateTriggered: event.dateTriggered ?? now,
    dateReceived: now,
    dateProcessed: now,
  }));
  if (!request.preview) {
    const idempotencyKey = keyRecord?.key ?? null;
    for (const event of logged) {
      const stored: StoredEvent = { ...event, userId, accountId, idempotencyKey, via: request.via };
      tenant.events.push(stored);
    }
    if (keyRecord !== null) {
      keyRecord.expiresAt = now + request.retentionMs;
      keyRecord.eventIds = logged.map((event) => event.id);
    }
  }
  return { ok: true, result: { userId, accountId, events: logged } };
}
