import { z } from 'zod';
import type { FieldIssue } from '../../shared/errors.js';
import { issuesOf } from '../../shared/validation.js';
import { apiErrors, type SandboxApiError } from './api-error.js';
import type { TenantState } from './state.js';

// Limits the API documents for users (saasquatch/schema UserCustomFields, OpenUserStub.locale).
const MAX_CUSTOM_FIELDS = 100;
const CUSTOM_FIELD_NAME = /^[a-zA-Z0-9_]{1,64}$/;
const MAX_CUSTOM_FIELD_STRING = 1024;
const LOCALE = /^[a-z]{2,3}(_[A-Z]{2})?$/;

const requiredId = z.string({ error: 'required, a non-empty string' }).min(1, 'must not be empty');
const optionalText = z.string({ error: 'expected a string' }).nullable().optional();

const customFieldsSchema = z.record(z.string(), z.unknown(), { error: 'expected an object' }).superRefine((fields, ctx) => {
  const names = Object.keys(fields);
  if (names.length > MAX_CUSTOM_FIELDS) {
    ctx.addIssue({ code: 'custom', message: `has ${names.length} fields; at most ${MAX_CUSTOM_FIELDS}`, path: [] });
  }
  for (const name of names) {
    const value = fields[name];
    if (!CUSTOM_FIELD_NAME.test(name))
      ctx.addIssue({ code: 'custom', message: 'a custom field name must be 1 to 64 characters of A-Z a-z 0-9 _', path: [name] });
    else if (typeof value === 'string' && value.length > MAX_CUSTOM_FIELD_STRING) {
      ctx.addIssue({ code: 'custom', message: `string is ${value.length} characters; at most ${MAX_CUSTOM_FIELD_STRING}`, path: [name] });
    }
  }
});

/** The body of the open-endpoint user upsert (spec `OpenUserStub`); members it does not list are kept as given. */
export const userUpsertSchema = z.looseObject({
  id: requiredId,
  accountId: requiredId,
  email: optionalText,
  firstName: optionalText,
  lastName: optionalText,
  imageUrl: optionalText,
  locale: z
    .string({ error: 'expected a string' })
    .regex(LOCALE, 'expected language_COUNTRY, e.g. en_US (lower-case language, upper-case country, an underscore)')
    .nullable()
    .optional(),
  customFields: customFieldsSchema.nullable().optional(),
});

export type UpsertResult =
  | { readonly ok: true; readonly user: Record<string, unknown> }
  | { readonly ok: false; readonly error: SandboxApiError };

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Creates or updates a user: given members replace stored ones, custom fields merge by name. */
export function upsertUser(tenant: TenantState, raw: unknown, pathIds: { accountId: string; userId: string }, now: number): UpsertResult {
  if (!isObject(raw)) return { ok: false, error: apiErrors.validation([{ field: '(root)', reason: 'expected a JSON object (a user)' }]) };
  const parsed = userUpsertSchema.safeParse(raw);
  const issues: FieldIssue[] = parsed.success ? [] : issuesOf(parsed.error);
  for (const field of ['accountId', 'id'] as const) {
    const inPath = field === 'id' ? pathIds.userId : pathIds.accountId;
    const inBody = raw[field];
    if (inPath === '') issues.push({ field, reason: `the ${field === 'id' ? 'userId' : 'accountId'} in the URL path must not be empty` });
    else if (typeof inBody === 'string' && inBody !== '' && inBody !== inPath) {
      issues.push({
        field,
        reason: `must equal the ${field === 'id' ? 'userId' : 'accountId'} in the URL path (body ${JSON.stringify(inBody)}, path ${JSON.stringify(inPath)})`,
      });
    }
  }
  if (issues.length > 0 || !parsed.success) return { ok: false, error: apiErrors.validation(issues) };

  const given: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(parsed.data)) if (value !== undefined) given[name] = value;
  const existing = tenant.user(pathIds.accountId, pathIds.userId);
  const before = existing?.data ?? {};
  const customFields =
    isObject(before.customFields) && isObject(given.customFields) ? { ...before.customFields, ...given.customFields } : given.customFields;
  const data: Record<string, unknown> = {
    ...before,
    ...given,
    ...(customFields === undefined ? {} : { customFields }),
    dateCreated: typeof before.dateCreated === 'number' ? before.dateCreated : now,
    dateModified: now,
  };
  tenant.putUser(pathIds.accountId, pathIds.userId, { data, autoCreated: false });
  return { ok: true, user: data };
}
