import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../canonical-json.js';
import { type FieldIssue, InvalidInputError } from '../errors.js';
import { buildUserEventInput, type UserEventInput } from '../events/user-event.js';
import {
  decideKey,
  describeFault,
  fieldsCandidate,
  type InvalidKeyPolicy,
  type KeyCandidate,
  type KeyDecision,
  rawCandidate,
} from '../keys/index.js';
import { unmappableReason } from '../outbox/unmappable.js';
import { formatPath, issuesOf } from '../validation.js';
import { csvField } from './csv.js';
import { ERRORS_FILE_COLUMNS, isErrorsFileColumn, rowCellsOf } from './errors-file.js';
import type { ImportFormat, RawRecord } from './records.js';

/** The source name of imported events in the ledger and in key decisions. */
export const IMPORT_SOURCE = 'import';

/** What a JSON value is, in words: for messages about a value of the wrong kind. */
export function describeJsonKind(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return 'text';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return typeof value;
}

/** The message for a member of the wrong kind, or a missing one (`required, …`). */
const expected =
  (what: string) =>
  (issue: { readonly input?: unknown }): string =>
    issue.input === undefined ? `required, ${what}` : `expected ${what}, got ${describeJsonKind(issue.input)}`;

/** The target's import line (`UserEventImportLine.schema.json`): no other members at either level. */
export const importLineSchema = z.strictObject(
  {
    userId: z.string({ error: expected('a string') }).min(1, 'must not be empty'),
    accountId: z.string({ error: expected('a string') }).min(1, 'must not be empty'),
    // Checked against the key rules by decideKey, so that --policy decides what happens to a bad one.
    idempotencyKey: z
      .string({ error: expected('a string') })
      .nullable()
      .optional(),
    event: z.strictObject(
      {
        key: z.string({ error: expected('a string') }).min(1, 'must not be empty'),
        // Integer epoch ms as the target takes it; ISO-8601 strings are converted (toEpochMillis).
        dateTriggered: z
          .union([z.number(), z.string()], { error: expected('epoch milliseconds or an ISO-8601 date') })
          .nullable()
          .optional(),
        fields: z
          .record(z.string(), z.unknown(), { error: expected('an object of fields') })
          .nullable()
          .optional(),
      },
      { error: expected('an object {key, dateTriggered?, fields?}') },
    ),
  },
  { error: (issue) => `the line is ${describeJsonKind(issue.input)}; expected an object {userId, accountId, idempotencyKey?, event}` },
);

export type ImportLine = z.output<typeof importLineSchema>;

const REQUIRED_COLUMNS = ['accountId', 'userId', 'event.key'] as const;
const OPTIONAL_COLUMNS = ['event.dateTriggered', 'idempotencyKey'] as const;
const FIELD_PREFIX = 'event.fields.';

/** Names --key-from may use: the line's members as dotted paths. */
const KEY_FROM_NAME = /^(userId|accountId|idempotencyKey|event\.key|event\.dateTriggered|event\.fields\.[^.].*)$/;

export interface RowConverterOptions {
  readonly format: ImportFormat;
  /** CSV: the header row. */
  readonly header?: readonly string[] | null;
  /** Columns (dotted paths) to derive a key from for rows without one. */
  readonly keyFrom?: readonly string[];
  readonly policy: InvalidKeyPolicy;
  /** Names the record in `sourceId`: `{fileName}:{recordNumber}`. */
  readonly fileName: string;
}

export type ConvertedRow =
  | {
      readonly ok: true;
      readonly recordNumber: number;
      readonly sourceId: string;
      /** Identity for resume: the key when there is one, else the row's content and how many identical rows came before it. */
      readonly dedupKey: string;
      readonly input: UserEventInput;
      readonly decision: KeyDecision;
      /** The record as read, for the errors file should the target refuse it. */
      readonly record: RawRecord;
    }
  | {
      readonly ok: false;
      readonly recordNumber: number;
      readonly sourceId: string;
      /** Why it cannot be mapped (any error: bad input, or a bug that threw). */
      readonly message: string;
      /**
       * Its identity as an unmappable dead letter, stable across re-runs: the one the row would have had once its
       * line was read (its key, or its content and how many identical rows came before it); for a record that could
       * not be read as a line, the same rule over its raw text.
       */
      readonly dedupKey: string;
      /** The record as it is in the file: the JSONL line, or the CSV row. */
      readonly raw: string;
      /** The record as read, for the errors file. */
      readonly record: RawRecord;
    };

/** Checks a CSV header and --key-from names before any row is read; an InvalidInputError names every problem. */
export function checkImportColumns(
  format: ImportFormat,
  header: readonly string[] | null | undefined,
  keyFrom: readonly string[] = [],
): void {
  const issues: FieldIssue[] = [];
  for (const name of keyFrom) {
    const reserved = prototypePart(name);
    if (reserved !== undefined) {
      issues.push({ field: '--key-from', reason: `"${name}" contains "${reserved}", which cannot name a field` });
    } else if (!KEY_FROM_NAME.test(name)) {
      issues.push({
        field: '--key-from',
        reason: `"${name}" is not a column of the import format (userId, accountId, event.key, event.dateTriggered, event.fields.NAME)`,
      });
    } else if (format === 'csv' && header && !header.includes(name)) {
      issues.push({ field: '--key-from', reason: `"${name}" is not a column of this file` });
    }
  }
  if (format === 'csv' && header) {
    const seen = new Set<string>();
    for (const column of header) {
      if (seen.has(column)) issues.push({ field: 'header', reason: `the column "${column}" appears twice` });
      seen.add(column);
      // An errors file's own columns: it can be fixed and imported again as it is.
      if (isErrorsFileColumn(column)) continue;
      const reserved = prototypePart(column);
      if (reserved !== undefined) {
        issues.push({ field: 'header', reason: `the column "${column}" contains "${reserved}", which cannot name a field` });
        continue;
      }
      const known = (REQUIRED_COLUMNS as readonly string[]).includes(column) || (OPTIONAL_COLUMNS as readonly string[]).includes(column);
      if (!known && !(column.startsWith(FIELD_PREFIX) && column.length > FIELD_PREFIX.length)) {
        issues.push({
          field: 'header',
          reason: `unknown column "${column}"; expected accountId, userId, event.key, event.dateTriggered, event.fields.NAME, idempotencyKey`,
        });
      }
    }
    for (const column of REQUIRED_COLUMNS)
      if (!seen.has(column)) issues.push({ field: 'header', reason: `the required column "${column}" is missing` });
  }
  if (issues.length > 0) throw new InvalidInputError(issues, 'cannot import this file');
}

/**
 * Turns raw records into outbox-ready events, in file order. Every rule comes from its home: the line schema here,
 * the key rules from shared/keys (decideKey, fieldsCandidate), the event rules from shared/events.
 */
export function createRowConverter(options: RowConverterOptions): (record: RawRecord) => ConvertedRow {
  checkImportColumns(options.format, options.header, options.keyFrom);
  const header = options.header ?? [];
  const keyFrom = options.keyFrom ?? [];
  const rowCells = rowCellsOf(header);
  // A keyless row is identified by its own content plus how many identical rows came before it: this survives a
  // rename, a copy, rows appended later and edits to other rows, and two identical rows stay two events.
  const seen = new Map<string, number>();

  // The same rule for records that never became a line, over their raw text (its own count: another digest space).
  const seenRaw = new Map<string, number>();

  return (record) => {
    const sourceId = `${options.fileName}:${record.recordNumber}`;
    // Set once the line is read: the identity the row has (or would have had), for its dead letter too.
    let identity: string | null = null;
    const fail = (message: string): ConvertedRow => {
      const raw = record.line ?? (record.cells ? rowCells(record.cells).map(csvField).join(',') : '');
      identity ??= `raw:${occurrence(seenRaw, createHash('sha256').update(raw).digest('base64url'))}`;
      return { ok: false, recordNumber: record.recordNumber, sourceId, message, dedupKey: identity, raw, record };
    };
    try {
      return convertRecord(record, fail, (line, decision) => {
        identity = decision.key === null ? `row:${rowIdentity(seen, line)}` : `key:${decision.key}`;
        return identity;
      });
    } catch (error) {
      // Not only bad input: whatever the mapping throws is this row's problem, never the whole import's.
      return fail(unmappableReason(error));
    }
  };

  function convertRecord(
    record: RawRecord,
    fail: (message: string) => ConvertedRow,
    identify: (line: ImportLine, decision: KeyDecision) => string,
  ): ConvertedRow {
    if (record.fault) return fail(record.fault);

    let raw: unknown;
    if (record.cells) {
      if (record.cells.length !== header.length) {
        return fail(`expected ${header.length} columns as in the header, got ${record.cells.length}`);
      }
      raw = lineFromCells(header, record.cells);
    } else {
      try {
        raw = withoutErrorsFileMembers(JSON.parse(record.line ?? ''));
      } catch (error) {
        return fail(`not valid JSON: ${error instanceof Error ? error.message : 'parse error'}`);
      }
    }
    const parsed = importLineSchema.safeParse(raw);
    if (!parsed.success) return fail(describeIssues(lineIssues(parsed.error)));
    const line = parsed.data;

    const decision = decideKey(keyCandidate(line, keyFrom), { policy: options.policy });
    const dedupKey = identify(line, decision);
    if (decision.decision === 'rejected') {
      return fail(`idempotencyKey: refused under --policy reject (${decision.reason}): ${describeFault(decision)}`);
    }
    let input: UserEventInput;
    try {
      input = buildUserEventInput(
        {
          userId: line.userId,
          accountId: line.accountId,
          events: [{ key: line.event.key, fields: line.event.fields, dateTriggered: line.event.dateTriggered }],
        },
        decision,
      );
    } catch (error) {
      if (error instanceof InvalidInputError) return fail(describeIssues(error.issues.map(toLineField)));
      throw error;
    }
    return {
      ok: true,
      recordNumber: record.recordNumber,
      sourceId: `${options.fileName}:${record.recordNumber}`,
      dedupKey,
      input,
      decision,
      record,
    };
  }
}

function rowIdentity(seen: Map<string, number>, line: ImportLine): string {
  return occurrence(seen, createHash('sha256').update(canonicalJson(line)).digest('base64url'));
}

/** `{digest}#{how many times it came before}`, counting this one. */
function occurrence(seen: Map<string, number>, digest: string): string {
  const count = seen.get(digest) ?? 0;
  seen.set(digest, count + 1);
  return `${digest}#${count}`;
}

function keyCandidate(line: ImportLine, keyFrom: readonly string[]): KeyCandidate {
  const explicit = line.idempotencyKey;
  if (explicit !== undefined && explicit !== null && explicit !== '') return rawCandidate(explicit, IMPORT_SOURCE);
  if (keyFrom.length === 0) return rawCandidate(undefined, IMPORT_SOURCE);
  const picked = new Map(keyFrom.map((name) => [name, valueAt(line, name)] as const));
  return fieldsCandidate(IMPORT_SOURCE, Object.fromEntries(picked), keyFrom);
}

/** The value at a dotted path of the line, e.g. `event.fields.order_id`. */
function valueAt(line: ImportLine, path: string): unknown {
  let value: unknown = line;
  for (const part of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** A CSV row as an import line; empty cells are absent values. */
function lineFromCells(header: readonly string[], cells: readonly string[]): Record<string, unknown> {
  const event: Record<string, unknown> = {};
  const line: Record<string, unknown> = { event };
  let fields: Record<string, unknown> | undefined;
  header.forEach((column, index) => {
    const cell = cells[index] ?? '';
    if (isErrorsFileColumn(column)) return;
    if (column === 'accountId' || column === 'userId') line[column] = cell;
    else if (column === 'idempotencyKey') {
      if (cell !== '') line.idempotencyKey = cell;
    } else if (column === 'event.key') event.key = cell;
    else if (column === 'event.dateTriggered') {
      if (cell !== '') event.dateTriggered = cell;
    } else if (cell !== '') {
      fields ??= {};
      setPath(fields, column.slice(FIELD_PREFIX.length).split('.'), csvValue(cell));
    }
  });
  if (fields) event.fields = fields;
  return line;
}

/** Own data properties only (defineProperty, hasOwn): a column path can never reach or replace a prototype. */
function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  path.forEach((part, index) => {
    if (index === path.length - 1) {
      defineMember(node, part, value);
      return;
    }
    const next = Object.hasOwn(node, part) ? node[part] : undefined;
    if (next !== null && typeof next === 'object' && !Array.isArray(next)) node = next as Record<string, unknown>;
    else {
      const created: Record<string, unknown> = {};
      defineMember(node, part, created);
      node = created;
    }
  });
}

function defineMember(node: Record<string, unknown>, name: string, value: unknown): void {
  Object.defineProperty(node, name, { value, enumerable: true, writable: true, configurable: true });
}

/** Path parts that name a prototype in JavaScript: refused in columns, since a row's fields are built from them. */
const PROTOTYPE_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

function prototypePart(column: string): string | undefined {
  return column.split('.').find((part) => PROTOTYPE_NAMES.has(part));
}

/**
 * A CSV cell's JSON value: `true`/`false`, numbers written plainly (no leading zeros, no exponent, integers within
 * 2^53) become booleans and numbers; everything else stays text, so ids like `007` or `12345678901234567890` survive.
 */
export function csvValue(cell: string): string | number | boolean {
  if (cell === 'true') return true;
  if (cell === 'false') return false;
  if (/^-?(0|[1-9]\d*)(\.\d+)?$/.test(cell)) {
    const number = Number(cell);
    if (cell.includes('.') ? Number.isFinite(number) : Number.isSafeInteger(number)) return number;
  }
  return cell;
}

/** Zod's issues, with each unknown member named as the field at fault. */
function lineIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.flatMap((issue): FieldIssue[] => {
    if (issue.code !== 'unrecognized_keys') return issuesOf(new z.ZodError([issue]));
    const at = formatPath(issue.path);
    return issue.keys.map((key) => ({
      field: at === '(root)' ? key : `${at}.${key}`,
      reason: `not part of the import line (${at === '(root)' ? 'userId, accountId, idempotencyKey, event' : 'key, dateTriggered, fields'})`,
    }));
  });
}

/** Event-model paths (`events[0].fields.x`) in the import's own names (`event.fields.x`). */
function toLineField(issue: FieldIssue): FieldIssue {
  return { field: issue.field.replace(/^events\[0\]/, 'event'), reason: issue.reason };
}

function describeIssues(issues: readonly FieldIssue[]): string {
  return issues.map((issue) => (issue.field === '(root)' ? issue.reason : `${issue.field}: ${issue.reason}`)).join('; ');
}

/** A JSONL line from an errors file is the original line plus the errors file's members: those are left out. */
function withoutErrorsFileMembers(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  if (!ERRORS_FILE_COLUMNS.some((name) => Object.hasOwn(value, name))) return value;
  const own: Record<string, unknown> = {};
  for (const [name, member] of Object.entries(value)) if (!isErrorsFileColumn(name)) defineMember(own, name, member);
  return own;
}
