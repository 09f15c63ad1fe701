import type { UserEventInput } from '../events/user-event.js';
import type { KeyDecision } from '../keys/decide.js';
import type { AttemptRecord, EventFilter, LeasedEvent, LedgerEntry, OutboxState, UnmappableRaw } from '../outbox/types.js';

/** An outbox event as the SQL engines (SQLite, PostgreSQL) store it: one table, the same columns. */
export interface OutboxEventRow {
  seq: number;
  tenant: string;
  target: string;
  source: string;
  source_id: string;
  dedup_key: string;
  idempotency_key: string | null;
  key_decision: string | null;
  input: string;
  state: OutboxState;
  enqueued_at: number;
  updated_at: number;
  due_at: number | null;
  owner: string | null;
  leased_at: number | null;
  lease_expires_at: number | null;
  first_attempt_at: number | null;
  attempt_count: number;
  last_outcome: string | null;
  dead_reason: string | null;
  dead_at: number | null;
  /** An unmappable dead letter's raw payload (UnmappableRaw as JSON); null for a mapped event. */
  unmappable: string | null;
  /** Whether an attempt may have landed without an answer saying so: 0/1 in SQLite, a boolean in PostgreSQL. */
  may_have_landed: number | boolean;
  /** When the earliest attempt that may have landed was leased, on the store's clock (LeasedEvent.landedSince). */
  landed_since: number | null;
}

/** One row of `ledger_attempts`. */
export interface LedgerAttemptRow {
  number: number;
  started_at: number;
  finished_at: number;
  outcome: AttemptRecord['outcome'];
  status: number | null;
  message: string | null;
  api_error_code: string | null;
  rs_code: string | null;
  requests: number;
  uncertain_requests: number;
  event_ids: string;
  /** Absent or null for attempts recorded before the ledger kept who made them. */
  handled_by?: string | null;
}

// Ids are the row's sequence number in base 36, fixed width so they sort as they were created. The database's
// sequence hands out each number once, to whichever process asks, and never goes backwards.
const ID_PATTERN = /^ob_[0-9a-z]{11}$/;
export const outboxIdOfSeq = (seq: number): string => `ob_${seq.toString(36).padStart(11, '0')}`;
export const outboxSeqOfId = (id: string): number | null => (ID_PATTERN.test(id) ? Number.parseInt(id.slice(3), 36) : null);

/** The row's may_have_landed, whichever engine's type it came in. */
export const rowMayHaveLanded = (row: Pick<OutboxEventRow, 'may_have_landed'>): boolean =>
  row.may_have_landed === true || row.may_have_landed === 1;

/** What a lease reads of each event it takes. */
export type LeasedEventRow = Pick<
  OutboxEventRow,
  | 'seq'
  | 'tenant'
  | 'target'
  | 'source'
  | 'source_id'
  | 'input'
  | 'first_attempt_at'
  | 'attempt_count'
  | 'may_have_landed'
  | 'landed_since'
  | 'leased_at'
>;

/**
 * The event a lease hands out, from its row as it was before the lease. `abandoned`: the row held a lease that ran out,
 * an attempt that counts and may have landed since it was leased.
 */
export function leasedEventOfRow(
  row: LeasedEventRow,
  lease: { readonly owner: string; readonly now: number; readonly leaseMs: number },
  abandoned: boolean,
): LeasedEvent {
  return {
    id: outboxIdOfSeq(row.seq),
    tenant: row.tenant,
    target: row.target,
    source: row.source,
    sourceId: row.source_id,
    input: JSON.parse(row.input) as UserEventInput,
    firstAttemptAt: row.first_attempt_at ?? lease.now,
    leasedAt: lease.now,
    leaseExpiresAt: lease.now + lease.leaseMs,
    owner: lease.owner,
    previousAttempts: row.attempt_count + (abandoned ? 1 : 0),
    mayHaveLanded: rowMayHaveLanded(row) || abandoned,
    landedSince: row.landed_since ?? (abandoned ? row.leased_at : null),
  };
}

export function attemptOfRow(row: LedgerAttemptRow): AttemptRecord {
  return {
    number: row.number,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    outcome: row.outcome,
    status: row.status,
    message: row.message,
    apiErrorCode: row.api_error_code,
    rsCode: row.rs_code,
    requests: row.requests,
    uncertainRequests: row.uncertain_requests,
    eventIds: JSON.parse(row.event_ids) as string[],
    ...(row.handled_by ? { handledBy: row.handled_by } : {}),
  };
}

export function ledgerEntryOfRow(row: OutboxEventRow, attempts: readonly AttemptRecord[]): LedgerEntry {
  const payload =
    row.unmappable === null
      ? { input: JSON.parse(row.input) as UserEventInput, unmappable: null }
      : { input: null, unmappable: JSON.parse(row.unmappable) as UnmappableRaw };
  return {
    ...payload,
    id: outboxIdOfSeq(row.seq),
    tenant: row.tenant,
    target: row.target,
    source: row.source,
    sourceId: row.source_id,
    dedupKey: row.dedup_key,
    key: row.idempotency_key,
    keyDecision: row.key_decision === null ? null : (JSON.parse(row.key_decision) as KeyDecision),
    state: row.state,
    enqueuedAt: row.enqueued_at,
    updatedAt: row.updated_at,
    dueAt: row.state === 'pending' ? row.due_at : null,
    leaseExpiresAt: row.state === 'leased' ? row.lease_expires_at : null,
    firstAttemptAt: row.first_attempt_at,
    landedSince: row.landed_since,
    deadReason: row.dead_reason,
    deadAt: row.dead_at,
    attempts,
  };
}

/** The WHERE clause and parameters of an event listing or activity read, for both SQL engines (`?` or `$n`). */
export function eventFilterSql(
  tenant: string,
  filter: EventFilter,
  placeholder: (position: number) => string,
): { where: string; params: (string | number)[] } {
  const params: (string | number)[] = [tenant];
  const clauses = [`tenant = ${placeholder(1)}`];
  const add = (sql: (at: string) => string, value: string | number | undefined): void => {
    if (value === undefined) return;
    params.push(value);
    clauses.push(sql(placeholder(params.length)));
  };
  add((at) => `source = ${at}`, filter.source);
  add((at) => `state = ${at}`, filter.state);
  add((at) => `target = ${at}`, filter.target);
  add((at) => `idempotency_key = ${at}`, filter.key);
  add((at) => `source_id = ${at}`, filter.sourceId);
  add((at) => `enqueued_at >= ${at}`, filter.since);
  add((at) => `enqueued_at < ${at}`, filter.until);
  return { where: clauses.join(' AND '), params };
}
