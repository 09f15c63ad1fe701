import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../clock.js';
import { OncekitError } from '../errors.js';
import { parseInput } from '../validation.js';

export type { Clock } from '../clock.js';

/**
 * The one contract behind inbound dedup (the inbox) and request idempotency (the HTTP plugin).
 *
 * A key is first claimed with a short lease held by an owner token (`in_progress`), then completed with a stored
 * result and a long retention TTL (`completed`), or released so a retry can run. Every decision about expiry is made
 * from timestamps stored in the record, read on the store's injected clock; a store's own eviction (Redis PX) is only a
 * backstop. Every key lives inside a tenant: the same key in two tenants is two records.
 */
export interface IdempotencyStore {
  readonly kind: 'memory' | 'sqlite' | 'redis' | 'postgres';
  /** Claims `ref` atomically: exactly one of any number of concurrent claimers gets `claimed`. Never steals a lease. */
  claim(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome>;
  /**
   * Like `claim`, but also takes over an `in_progress` record whose lease has expired (its holder crashed or stalled).
   * Atomic: when many racers take over the same expired lease, exactly one gets `claimed`.
   */
  takeOver(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome>;
  /** Extends the lease of an `in_progress` record; false (and no change) unless `owner` holds it. */
  renewLease(ref: IdempotencyRef, owner: string, leaseMs: number): Promise<boolean>;
  /**
   * Stores the result and keeps the record `ttlMs` from now; false (and no change) unless `owner` holds the record.
   * A holder whose lease ran out may still complete, as long as nobody has taken the record over.
   */
  complete(ref: IdempotencyRef, owner: string, completion: Completion): Promise<boolean>;
  /**
   * Claims `ref` and stores its result in one atomic step, for a caller whose result is decided before the claim, so
   * nothing runs between claiming and completing. A live record blocks it as it blocks `claim`; an expired lease is
   * taken over as by `takeOver`. Optional: a store without it is driven through `takeOver`, then `complete`.
   */
  claimCompleted?(ref: IdempotencyRef, completion: Completion): Promise<ClaimCompletedOutcome>;
  /** Compare-and-delete: removes an `in_progress` record only if `owner` holds it; false (and no change) otherwise. */
  release(ref: IdempotencyRef, owner: string): Promise<boolean>;
  /** The live record, or undefined when there is none or it has expired. */
  get(ref: IdempotencyRef): Promise<IdempotencyRecord | undefined>;
  /** Deletes expired records and returns how many; Redis evicts them by itself and returns 0. */
  purgeExpired(): Promise<number>;
  /** Closes what the store opened (connections it was given stay open). */
  close(): Promise<void>;
}

export interface IdempotencyRef {
  readonly tenant: string;
  readonly key: string;
}

export interface LeaseRequest {
  /** Who holds the lease; only this token may renew, complete or release it. See `newOwnerToken`. */
  readonly owner: string;
  readonly leaseMs: number;
  /** Hash of what the key was used for (e.g. the request); kept with the record so a reuse can be told apart. */
  readonly fingerprint?: string;
}

export interface Completion {
  /** Opaque text (callers store JSON); replayed as it is. */
  readonly result: string;
  /** How long the completed record is kept, from now. */
  readonly ttlMs: number;
}

export type ClaimOutcome =
  /** The caller holds the lease; `takenOverFrom` names the previous holder when an expired lease was taken over. */
  | { readonly status: 'claimed'; readonly record: InProgressRecord; readonly takenOverFrom?: string }
  /** Someone holds the key. `leaseExpired` says the holder's lease has run out, so `takeOver` would win. */
  | {
      readonly status: 'in_progress';
      readonly owner: string;
      readonly leaseExpiresAt: number;
      readonly leaseExpired: boolean;
      readonly record: InProgressRecord;
    }
  | { readonly status: 'completed'; readonly record: CompletedRecord };

/** What `claimCompleted` reports: the completed record it wrote, or what was in the way (as `claim` reports it). */
export type ClaimCompletedOutcome =
  | { readonly status: 'claimed'; readonly record: CompletedRecord; readonly takenOverFrom?: string }
  | Exclude<ClaimOutcome, { readonly status: 'claimed' }>;

interface RecordBase {
  readonly tenant: string;
  readonly key: string;
  readonly fingerprint?: string;
  /** When the current claim was made (epoch ms on the store's clock). */
  readonly createdAt: number;
}

export interface InProgressRecord extends RecordBase {
  readonly state: 'in_progress';
  readonly owner: string;
  readonly leaseExpiresAt: number;
}

export interface CompletedRecord extends RecordBase {
  readonly state: 'completed';
  readonly result: string;
  readonly completedAt: number;
  readonly expiresAt: number;
}

export type IdempotencyRecord = InProgressRecord | CompletedRecord;

/**
 * How long a record whose lease ran out is kept before it counts as gone: long enough for a late holder to complete
 * and for a takeover to name the previous holder; short enough that abandoned claims do not pile up.
 */
export const ABANDONED_LEASE_RETENTION_MS = 60 * 60 * 1000;

/** When a record stops existing, whether or not the store has deleted it yet. All stores (and Redis PX) use this. */
export function recordGoneAt(record: IdempotencyRecord): number {
  return record.state === 'completed' ? record.expiresAt : leaseGoneAt(record.leaseExpiresAt);
}

/** When an `in_progress` record whose lease runs out at `leaseExpiresAt` counts as gone. */
export function leaseGoneAt(leaseExpiresAt: number): number {
  return leaseExpiresAt + ABANDONED_LEASE_RETENTION_MS;
}

export function isRecordGone(record: IdempotencyRecord, now: number): boolean {
  return now >= recordGoneAt(record);
}

export function isLeaseExpired(record: InProgressRecord, now: number): boolean {
  return now >= record.leaseExpiresAt;
}

/** The outcome a claim reports when `existing` is in the way (the caller has already ruled out that it is gone). */
export function blockedOutcome(existing: IdempotencyRecord, now: number): Exclude<ClaimOutcome, { readonly status: 'claimed' }> {
  if (existing.state === 'completed') return { status: 'completed', record: existing };
  return {
    status: 'in_progress',
    owner: existing.owner,
    leaseExpiresAt: existing.leaseExpiresAt,
    leaseExpired: isLeaseExpired(existing, now),
    record: existing,
  };
}

/** A fresh owner token for one claim. */
export function newOwnerToken(): string {
  return randomUUID();
}

/** The store could not be reached or failed; callers fail closed (the HTTP plugin answers 503). */
export class StoreUnavailableError extends OncekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('store_unavailable', message, options);
  }
}

/** Wraps any backend failure (already-typed oncekit errors pass through). */
export function storeFailure(kind: IdempotencyStore['kind'], operation: string, cause: unknown): OncekitError {
  if (cause instanceof OncekitError) return cause;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new StoreUnavailableError(`${kind} idempotency store: ${operation} failed: ${reason}`, { cause });
}

const refSchema = z.object({
  tenant: z.string().min(1, 'tenant must not be empty'),
  key: z.string().min(1, 'key must not be empty'),
});
const durationSchema = z.number().int('must be whole milliseconds').positive('must be > 0').max(Number.MAX_SAFE_INTEGER);
const ownerSchema = z.string().min(1, 'owner token must not be empty');
const leaseSchema = z.object({ owner: ownerSchema, leaseMs: durationSchema, fingerprint: z.string().optional() });
const completionSchema = z.object({ result: z.string(), ttlMs: durationSchema });

/** Argument checks shared by every store, so a bad call fails the same way everywhere. */
export const checkArgs = {
  ref: (ref: IdempotencyRef): IdempotencyRef => parseInput(refSchema, ref, 'idempotency ref'),
  lease: (lease: LeaseRequest): LeaseRequest => {
    const parsed = parseInput(leaseSchema, lease, 'lease');
    return parsed.fingerprint === undefined
      ? { owner: parsed.owner, leaseMs: parsed.leaseMs }
      : { ...parsed, fingerprint: parsed.fingerprint };
  },
  owner: (owner: string): string => parseInput(ownerSchema, owner, 'owner'),
  leaseMs: (leaseMs: number): number => parseInput(durationSchema, leaseMs, 'leaseMs'),
  completion: (completion: Completion): Completion => parseInput(completionSchema, completion, 'completion'),
};

/** The record a claim writes. */
export function newInProgressRecord(ref: IdempotencyRef, lease: LeaseRequest, now: number): InProgressRecord {
  return {
    state: 'in_progress',
    tenant: ref.tenant,
    key: ref.key,
    ...(lease.fingerprint === undefined ? {} : { fingerprint: lease.fingerprint }),
    createdAt: now,
    owner: lease.owner,
    leaseExpiresAt: now + lease.leaseMs,
  };
}

export interface StoreClockOption {
  /** Default: the system clock. Every expiry decision reads it. */
  readonly clock?: Clock;
}
