import { systemClock } from '../../clock.js';
import {
  blockedOutcome,
  type ClaimOutcome,
  type Clock,
  type Completion,
  checkArgs,
  type IdempotencyRecord,
  type IdempotencyRef,
  type IdempotencyStore,
  type InProgressRecord,
  isLeaseExpired,
  isRecordGone,
  type LeaseRequest,
  newInProgressRecord,
  type StoreClockOption,
} from '../idempotency.js';

/** The records of a memory store; handles opened over the same map act as one store (as connections to one database). */
export type MemoryRecords = Map<string, IdempotencyRecord>;

export interface MemoryStoreOptions extends StoreClockOption {
  readonly records?: MemoryRecords;
}

/**
 * One process, no durability: for tests and single-process tools. Every method runs to completion without awaiting,
 * so on Node's single thread each one is atomic.
 */
export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly kind = 'memory';
  readonly #records: MemoryRecords;
  readonly #clock: Clock;

  constructor(options: MemoryStoreOptions = {}) {
    this.#records = options.records ?? new Map();
    this.#clock = options.clock ?? systemClock;
  }

  async claim(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#claim(ref, lease, false);
  }

  async takeOver(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#claim(ref, lease, true);
  }

  async renewLease(ref: IdempotencyRef, owner: string, leaseMs: number): Promise<boolean> {
    checkArgs.owner(owner);
    checkArgs.leaseMs(leaseMs);
    const held = this.#heldBy(ref, owner);
    if (!held) return false;
    this.#records.set(mapKey(ref), { ...held, leaseExpiresAt: this.#clock.now() + leaseMs });
    return true;
  }

  async complete(ref: IdempotencyRef, owner: string, completion: Completion): Promise<boolean> {
    const { result, ttlMs } = checkArgs.completion(completion);
    checkArgs.owner(owner);
    const held = this.#heldBy(ref, owner);
    if (!held) return false;
    const now = this.#clock.now();
    this.#records.set(mapKey(ref), {
      state: 'completed',
      tenant: held.tenant,
      key: held.key,
      ...(held.fingerprint === undefined ? {} : { fingerprint: held.fingerprint }),
      createdAt: held.createdAt,
      result,
      completedAt: now,
      expiresAt: now + ttlMs,
    });
    return true;
  }

  async release(ref: IdempotencyRef, owner: string): Promise<boolean> {
    checkArgs.owner(owner);
    if (!this.#heldBy(ref, owner)) return false;
    return this.#records.delete(mapKey(ref));
  }

  async get(ref: IdempotencyRef): Promise<IdempotencyRecord | undefined> {
    return this.#live(checkArgs.ref(ref));
  }

  async purgeExpired(): Promise<number> {
    const now = this.#clock.now();
    let purged = 0;
    for (const [key, record] of this.#records) {
      if (isRecordGone(record, now)) {
        this.#records.delete(key);
        purged += 1;
      }
    }
    return purged;
  }

  async close(): Promise<void> {}

  #claim(ref: IdempotencyRef, lease: LeaseRequest, takeOverExpired: boolean): ClaimOutcome {
    const checkedRef = checkArgs.ref(ref);
    const checkedLease = checkArgs.lease(lease);
    const now = this.#clock.now();
    const existing = this.#live(checkedRef);
    const stealable = takeOverExpired && existing?.state === 'in_progress' && isLeaseExpired(existing, now);
    if (existing && !stealable) return blockedOutcome(existing, now);
    const record = newInProgressRecord(checkedRef, checkedLease, now);
    this.#records.set(mapKey(checkedRef), record);
    return existing?.state === 'in_progress' ? { status: 'claimed', record, takenOverFrom: existing.owner } : { status: 'claimed', record };
  }

  #live(ref: IdempotencyRef): IdempotencyRecord | undefined {
    const record = this.#records.get(mapKey(ref));
    return record && !isRecordGone(record, this.#clock.now()) ? record : undefined;
  }

  #heldBy(ref: IdempotencyRef, owner: string): InProgressRecord | undefined {
    const record = this.#live(checkArgs.ref(ref));
    return record?.state === 'in_progress' && record.owner === owner ? record : undefined;
  }
}

function mapKey(ref: IdempotencyRef): string {
  return JSON.stringify([ref.tenant, ref.key]);
}
