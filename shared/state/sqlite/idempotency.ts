import type { Statement } from 'better-sqlite3';
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
  type LeaseRequest,
  leaseGoneAt,
  newInProgressRecord,
  type StoreClockOption,
  storeFailure,
} from '../idempotency.js';
import { type IdempotencyRow, recordOfRow, rowOfRecord } from '../idempotency-rows.js';
import { migrate, openSqliteDatabase, type SqliteDatabase } from './database.js';

const SCHEMA_MODULE = 'idempotency';
const SCHEMA_VERSION = 1;
const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS idempotency_records (
    tenant TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    owner TEXT,
    fingerprint TEXT,
    created_at INTEGER NOT NULL,
    lease_expires_at INTEGER,
    completed_at INTEGER,
    expires_at INTEGER,
    result TEXT,
    gone_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
  ) WITHOUT ROWID`,
  'CREATE INDEX IF NOT EXISTS idempotency_records_gone_at ON idempotency_records (gone_at)',
];

export interface SqliteStoreOptions extends StoreClockOption {
  /** An open database (shared with other modules); the store creates its tables in it and never closes it. */
  readonly database: SqliteDatabase;
}

/**
 * The embedded default: one durable SQLite file (WAL), shared with the outbox. Claims are an upsert whose WHERE clause
 * only lets a gone record (or, for takeOver, an expired lease) be replaced, run in an IMMEDIATE transaction so that
 * connections in other threads or processes are serialised by SQLite's write lock.
 */
export class SqliteIdempotencyStore implements IdempotencyStore {
  readonly kind = 'sqlite';
  readonly #db: SqliteDatabase;
  readonly #ownsDatabase: boolean;
  readonly #clock: Clock;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #claimTransaction: (ref: IdempotencyRef, lease: LeaseRequest, takeOverExpired: boolean) => ClaimOutcome;

  /** Opens (creating if needed) the file at `path`; `close()` closes it. */
  static open(path: string, options: StoreClockOption = {}): SqliteIdempotencyStore {
    let db: SqliteDatabase;
    try {
      db = openSqliteDatabase(path);
    } catch (error) {
      throw storeFailure('sqlite', `opening ${path}`, error);
    }
    return new SqliteIdempotencyStore({ ...options, database: db }, true);
  }

  constructor(options: SqliteStoreOptions, ownsDatabase = false) {
    this.#db = options.database;
    this.#ownsDatabase = ownsDatabase;
    this.#clock = options.clock ?? systemClock;
    try {
      migrate(this.#db, SCHEMA_MODULE, SCHEMA_VERSION, SCHEMA);
    } catch (error) {
      throw storeFailure('sqlite', 'creating tables', error);
    }
    this.#sql = prepareStatements(this.#db);
    this.#claimTransaction = this.#db.transaction((ref: IdempotencyRef, lease: LeaseRequest, takeOverExpired: boolean): ClaimOutcome => {
      const now = this.#clock.now();
      const before = this.#sql.select.get({ ...ref, now });
      const record = newInProgressRecord(ref, lease, now);
      const changed = this.#sql.claim.run({ ...rowOfRecord(record), now, takeOver: takeOverExpired ? 1 : 0 }).changes === 1;
      if (!changed) {
        // The upsert's WHERE refused, so `before` is live and in the way.
        if (!before) throw new Error('claim refused but no record found');
        return blockedOutcome(recordOfRow(before), now);
      }
      return before?.state === 'in_progress'
        ? { status: 'claimed', record, takenOverFrom: before.owner ?? '' }
        : { status: 'claimed', record };
    }).immediate;
  }

  async claim(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#run('claim', () => this.#claimTransaction(checkArgs.ref(ref), checkArgs.lease(lease), false));
  }

  async takeOver(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#run('takeOver', () => this.#claimTransaction(checkArgs.ref(ref), checkArgs.lease(lease), true));
  }

  async renewLease(ref: IdempotencyRef, owner: string, leaseMs: number): Promise<boolean> {
    const checked = { ...checkArgs.ref(ref), owner: checkArgs.owner(owner) };
    checkArgs.leaseMs(leaseMs);
    return this.#run('renewLease', () => {
      const now = this.#clock.now();
      const leaseExpiresAt = now + leaseMs;
      return this.#sql.renew.run({ ...checked, now, leaseExpiresAt, goneAt: leaseGoneAt(leaseExpiresAt) }).changes === 1;
    });
  }

  async complete(ref: IdempotencyRef, owner: string, completion: Completion): Promise<boolean> {
    const checked = { ...checkArgs.ref(ref), owner: checkArgs.owner(owner) };
    const { result, ttlMs } = checkArgs.completion(completion);
    return this.#run('complete', () => {
      const now = this.#clock.now();
      return this.#sql.complete.run({ ...checked, now, result, expiresAt: now + ttlMs }).changes === 1;
    });
  }

  async release(ref: IdempotencyRef, owner: string): Promise<boolean> {
    const checked = { ...checkArgs.ref(ref), owner: checkArgs.owner(owner) };
    return this.#run('release', () => this.#sql.release.run({ ...checked, now: this.#clock.now() }).changes === 1);
  }

  async get(ref: IdempotencyRef): Promise<IdempotencyRecord | undefined> {
    const checked = checkArgs.ref(ref);
    return this.#run('get', () => {
      const row = this.#sql.select.get({ ...checked, now: this.#clock.now() });
      return row ? recordOfRow(row) : undefined;
    });
  }

  async purgeExpired(): Promise<number> {
    return this.#run('purgeExpired', () => this.#sql.purge.run({ now: this.#clock.now() }).changes);
  }

  async close(): Promise<void> {
    if (this.#ownsDatabase && this.#db.open) this.#db.close();
  }

  #run<T>(operation: string, body: () => T): T {
    try {
      return body();
    } catch (error) {
      throw storeFailure('sqlite', operation, error);
    }
  }
}

function prepareStatements(db: SqliteDatabase) {
  const live = 'tenant = @tenant AND key = @key AND gone_at > @now';
  const held = `${live} AND state = 'in_progress' AND owner = @owner`;
  return {
    select: db.prepare(`SELECT * FROM idempotency_records WHERE ${live}`) as Statement<
      [{ tenant: string; key: string; now: number }],
      IdempotencyRow
    >,
    // The conflict branch only fires for a gone record, or (takeOver) an in_progress record whose lease ran out.
    claim: db.prepare(
      `INSERT INTO idempotency_records (tenant, key, state, owner, fingerprint, created_at, lease_expires_at, completed_at, expires_at, result, gone_at)
       VALUES (@tenant, @key, @state, @owner, @fingerprint, @created_at, @lease_expires_at, NULL, NULL, NULL, @gone_at)
       ON CONFLICT (tenant, key) DO UPDATE SET
         state = excluded.state, owner = excluded.owner, fingerprint = excluded.fingerprint, created_at = excluded.created_at,
         lease_expires_at = excluded.lease_expires_at, completed_at = NULL, expires_at = NULL, result = NULL, gone_at = excluded.gone_at
       WHERE idempotency_records.gone_at <= @now
          OR (@takeOver = 1 AND idempotency_records.state = 'in_progress' AND idempotency_records.lease_expires_at <= @now)`,
    ),
    renew: db.prepare(`UPDATE idempotency_records SET lease_expires_at = @leaseExpiresAt, gone_at = @goneAt WHERE ${held}`),
    complete: db.prepare(
      `UPDATE idempotency_records SET state = 'completed', owner = NULL, lease_expires_at = NULL, completed_at = @now,
         expires_at = @expiresAt, result = @result, gone_at = @expiresAt
       WHERE ${held}`,
    ),
    release: db.prepare(`DELETE FROM idempotency_records WHERE ${held}`),
    purge: db.prepare('DELETE FROM idempotency_records WHERE gone_at <= @now'),
  };
}
