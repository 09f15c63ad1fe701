import type { Connection } from 'jsforce';
import { z } from 'zod';
import { InvalidInputError, messageOf, OncekitError } from '../../shared/errors.js';
import { parseInput } from '../../shared/validation.js';
import type { SupportedRecordType } from './salesforce-id.js';

/**
 * Which record field gives the SaaSquatch userId and accountId, per object. SaaSquatch recommends the email as both
 * (shared/reference/salesforce.md §5), hence `Email` on Lead and Contact. Account has no standard email field, so it
 * has no default: configure the field carried over at lead conversion (e.g. `SaaSquatch_Account_Id__c`), or pass
 * userId and accountId in the item.
 */
export interface IdentityFieldMap {
  readonly userId: string | null;
  readonly accountId: string | null;
}

export type IdentityFields = Readonly<Record<SupportedRecordType, IdentityFieldMap>>;

export const DEFAULT_IDENTITY_FIELDS: IdentityFields = Object.freeze({
  Lead: { userId: 'Email', accountId: 'Email' },
  Contact: { userId: 'Email', accountId: 'Email' },
  Account: { userId: null, accountId: null },
});

// Field API names and relationship paths (`Account.Email__c`); nothing else can reach the SOQL text.
const fieldName = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/, 'expected a field API name such as Email or Account.Email__c');
const fieldMapSchema = z.strictObject({ userId: fieldName.nullable().optional(), accountId: fieldName.nullable().optional() });
const identityFieldsSchema = z.strictObject({
  Lead: fieldMapSchema.optional(),
  Contact: fieldMapSchema.optional(),
  Account: fieldMapSchema.optional(),
});

/** Validates a partial identity-field configuration (e.g. parsed from ONCEKIT_SF_IDENTITY_FIELDS) over the defaults. */
export function parseIdentityFields(value: unknown, context = 'invalid identity fields'): IdentityFields {
  const parsed = parseInput(identityFieldsSchema, value, context);
  const merged = (type: SupportedRecordType): IdentityFieldMap => ({
    userId: parsed[type]?.userId === undefined ? DEFAULT_IDENTITY_FIELDS[type].userId : parsed[type].userId,
    accountId: parsed[type]?.accountId === undefined ? DEFAULT_IDENTITY_FIELDS[type].accountId : parsed[type].accountId,
  });
  return { Lead: merged('Lead'), Contact: merged('Contact'), Account: merged('Account') };
}

export const IDENTITY_FIELDS_ENV = 'ONCEKIT_SF_IDENTITY_FIELDS';

/** Reads ONCEKIT_SF_IDENTITY_FIELDS (JSON, e.g. `{"Account": {"userId": "SaaSquatch_Account_Id__c"}}`) over the defaults. */
export function identityFieldsFromEnv(env: Readonly<Record<string, string | undefined>> = process.env): IdentityFields {
  const text = env[IDENTITY_FIELDS_ENV];
  if (text === undefined || text.trim() === '') return DEFAULT_IDENTITY_FIELDS;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidInputError([{ field: IDENTITY_FIELDS_ENV, reason: 'is not valid JSON' }], 'invalid Salesforce settings');
  }
  try {
    return parseIdentityFields(value);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const issues = error.issues.map((issue) => ({ field: `${IDENTITY_FIELDS_ENV}.${issue.field}`, reason: issue.reason }));
    throw new InvalidInputError(issues, 'invalid Salesforce settings');
  }
}

/** Salesforce could not be asked (network, session refresh failed, 5xx): the request may be retried as it is. */
export class SalesforceUnavailableError extends OncekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('salesforce_unavailable', message, options);
  }
}

export interface IdentityRequest {
  /** Prefix of this request's fields in errors, e.g. `usersEvents[2]`. */
  readonly path: string;
  /** The record to read; null when userId and accountId are both given. */
  readonly record: { readonly type: SupportedRecordType; readonly id18: string; readonly idField: string } | null;
  /** Given explicitly, these win over the record's fields. */
  readonly userId?: string | undefined;
  readonly accountId?: string | undefined;
}

export type IdentityResult =
  | {
      readonly ok: true;
      readonly userId: string;
      readonly accountId: string;
      readonly recordType: SupportedRecordType | null;
      readonly recordId18: string | null;
    }
  | { readonly ok: false; readonly field: string; readonly reason: string };

export interface ResolveIdentitiesOptions {
  readonly fields?: IdentityFields;
  /** How long one lookup may take before Salesforce counts as unavailable; default 10 s. */
  readonly timeoutMs?: number;
}

/** A hung lookup would hold the caller's idempotency lease; past this it is a SalesforceUnavailableError (503). */
export const DEFAULT_LOOKUP_TIMEOUT_MS = 10_000;

/** Salesforce error codes that mean the query itself is wrong for this org (configuration), not that it was down. */
const PERMANENT_QUERY_ERRORS = new Set([
  'INVALID_FIELD',
  'INVALID_TYPE',
  'MALFORMED_QUERY',
  'INVALID_QUERY_FILTER_OPERATOR',
  'INSUFFICIENT_ACCESS',
  'INSUFFICIENT_ACCESS_OR_READONLY',
  'NOT_FOUND',
]);

type LookupKey = `${SupportedRecordType}:${string}`;

/**
 * Resolves userId and accountId for each request, in input order. Explicit ids win; missing ones come from the
 * record's configured fields. Records are read with one SOQL query per object type (`WHERE Id IN (...)`), not one
 * request per item: an invocable batch can hold 200 items and the org's API allowance is daily.
 * Throws SalesforceUnavailableError when Salesforce cannot be asked; per-item problems are results.
 * Without a connection (Salesforce not configured) items that need a record fail, naming what to pass instead.
 */
export async function resolveIdentities(
  connection: Connection | null,
  requests: readonly IdentityRequest[],
  options: ResolveIdentitiesOptions = {},
): Promise<IdentityResult[]> {
  const fields = options.fields ?? DEFAULT_IDENTITY_FIELDS;
  const results: (IdentityResult | null)[] = requests.map(() => null);
  const wanted = new Map<SupportedRecordType, { ids: Set<string>; columns: Set<string> }>();

  requests.forEach((request, index) => {
    if (request.userId !== undefined && request.accountId !== undefined) {
      results[index] = identity(request.userId, request.accountId, request);
      return;
    }
    if (request.record === null) {
      results[index] = failed(`${request.path}.userId`, 'required: userId and accountId, or a record id to read them from');
      return;
    }
    if (connection === null) {
      const missing = request.userId === undefined ? 'userId' : 'accountId';
      results[index] = failed(
        `${request.path}.${missing}`,
        `required: Salesforce is not configured (ONCEKIT_SF_*), so the ${request.record.type} cannot be read; pass userId and accountId`,
      );
      return;
    }
    const map = fields[request.record.type];
    for (const [role, column] of [
      ['userId', request.userId === undefined ? map.userId : undefined],
      ['accountId', request.accountId === undefined ? map.accountId : undefined],
    ] as const) {
      if (column === null) {
        results[index] = failed(
          `${request.path}.${role}`,
          `required: no ${request.record.type} field is configured to give ${role}; pass ${role} or configure the identity fields for ${request.record.type}`,
        );
        return;
      }
    }
    const entry = wanted.get(request.record.type) ?? { ids: new Set<string>(), columns: new Set<string>(['Id']) };
    entry.ids.add(request.record.id18);
    if (request.userId === undefined && map.userId) entry.columns.add(map.userId);
    if (request.accountId === undefined && map.accountId) entry.columns.add(map.accountId);
    wanted.set(request.record.type, entry);
  });

  const found = new Map<LookupKey, Readonly<Record<string, unknown>>>();
  const queryFailures = new Map<SupportedRecordType, string>();
  // Without a connection nothing is wanted: every item that needed a record already failed above.
  if (connection !== null) {
    for (const [type, { ids, columns }] of wanted) {
      const soql = `SELECT ${[...columns].join(', ')} FROM ${type} WHERE Id IN (${[...ids].map(soqlString).join(', ')})`;
      try {
        const result = await withTimeout(
          connection.query<Record<string, unknown>>(soql, { autoFetch: true, maxFetch: ids.size }),
          options.timeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS,
          `Salesforce did not answer the ${type} lookup within ${options.timeoutMs ?? DEFAULT_LOOKUP_TIMEOUT_MS} ms`,
        );
        for (const record of result.records) {
          if (typeof record.Id === 'string') found.set(`${type}:${record.Id}`, record);
        }
      } catch (error) {
        if (error instanceof SalesforceUnavailableError) throw error;
        const code = errorCode(error);
        if (code === null || !PERMANENT_QUERY_ERRORS.has(code)) {
          throw new SalesforceUnavailableError(`could not read ${type} records from Salesforce: ${errorText(error)}`, { cause: error });
        }
        queryFailures.set(type, `could not read ${type} records: ${code}: ${errorText(error)}`);
      }
    }
  }

  return requests.map((request, index) => {
    const done = results[index];
    if (done) return done;
    const record = request.record;
    if (record === null) return failed(`${request.path}.userId`, 'unreachable: no record');
    const idField = `${request.path}.${record.idField}`;
    const queryFailure = queryFailures.get(record.type);
    if (queryFailure !== undefined) return failed(idField, queryFailure);
    const row = found.get(`${record.type}:${record.id18}`);
    if (row === undefined) {
      return failed(idField, `no ${record.type} with id ${record.id18} (it may be deleted, or not visible to the integration user)`);
    }
    const map = fields[record.type];
    const userId = request.userId ?? fieldValue(row, map.userId);
    const accountId = request.accountId ?? fieldValue(row, map.accountId);
    if (userId === null) return failed(`${request.path}.userId`, emptyField(record.type, record.id18, map.userId, 'userId'));
    if (accountId === null) return failed(`${request.path}.accountId`, emptyField(record.type, record.id18, map.accountId, 'accountId'));
    return identity(userId, accountId, request);
  });
}

function identity(userId: string, accountId: string, request: IdentityRequest): IdentityResult {
  return { ok: true, userId, accountId, recordType: request.record?.type ?? null, recordId18: request.record?.id18 ?? null };
}

function failed(field: string, reason: string): IdentityResult {
  return { ok: false, field, reason };
}

function emptyField(type: SupportedRecordType, id18: string, column: string | null, role: string): string {
  return `${type} ${id18} has no ${column} (the field that gives ${role}); fill it in on the record, or pass ${role}`;
}

/** The lookup's answer, or a SalesforceUnavailableError once `ms` pass (jsforce has no per-call timeout; a late answer is ignored). */
async function withTimeout<T>(operation: PromiseLike<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new SalesforceUnavailableError(message)), ms);
  });
  try {
    return await Promise.race([Promise.resolve(operation), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A field of a query row, following relationship paths (`Account.Email__c`); blank values count as missing. */
function fieldValue(row: Readonly<Record<string, unknown>>, path: string | null): string | null {
  if (path === null) return null;
  let current: unknown = row;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return null;
    // SOQL matches field names case-insensitively, and the response spells them the object's own way.
    const key = Object.keys(current).find((name) => name.toLowerCase() === part.toLowerCase());
    if (key === undefined) return null;
    current = (current as Record<string, unknown>)[key];
  }
  if (typeof current === 'number' && Number.isFinite(current)) return String(current);
  return typeof current === 'string' && current.trim() !== '' ? current : null;
}

/** A SOQL string literal. Ids are already checked to be alphanumeric; quoting anyway keeps the query safe by itself. */
export function soqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function errorCode(error: unknown): string | null {
  if (error === null || typeof error !== 'object') return null;
  const code = (error as { errorCode?: unknown }).errorCode ?? (error as { name?: unknown }).name;
  return typeof code === 'string' && /^[A-Z_]+$/.test(code) ? code : null;
}

function errorText(error: unknown): string {
  return messageOf(error);
}
