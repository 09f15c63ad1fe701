import { type IdempotencyRecord, recordGoneAt } from './idempotency.js';

/** An idempotency record as the SQL engines (SQLite, PostgreSQL) store it: one table, the same columns. */
export interface IdempotencyRow {
  tenant: string;
  key: string;
  state: 'in_progress' | 'completed';
  owner: string | null;
  fingerprint: string | null;
  created_at: number;
  lease_expires_at: number | null;
  completed_at: number | null;
  expires_at: number | null;
  result: string | null;
  gone_at: number;
}

export function rowOfRecord(record: IdempotencyRecord): IdempotencyRow {
  const inProgress = record.state === 'in_progress';
  return {
    tenant: record.tenant,
    key: record.key,
    state: record.state,
    owner: inProgress ? record.owner : null,
    fingerprint: record.fingerprint ?? null,
    created_at: record.createdAt,
    lease_expires_at: inProgress ? record.leaseExpiresAt : null,
    completed_at: inProgress ? null : record.completedAt,
    expires_at: inProgress ? null : record.expiresAt,
    result: inProgress ? null : record.result,
    gone_at: recordGoneAt(record),
  };
}

export function recordOfRow(row: IdempotencyRow): IdempotencyRecord {
  const base = {
    tenant: row.tenant,
    key: row.key,
    ...(row.fingerprint === null ? {} : { fingerprint: row.fingerprint }),
    createdAt: row.created_at,
  };
  if (row.state === 'in_progress')
    return { ...base, state: 'in_progress', owner: row.owner ?? '', leaseExpiresAt: row.lease_expires_at ?? 0 };
  return { ...base, state: 'completed', result: row.result ?? '', completedAt: row.completed_at ?? 0, expiresAt: row.expires_at ?? 0 };
}
