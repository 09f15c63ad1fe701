import type pg from 'pg';
import {
  ABANDONED_LEASE_RETENTION_MS,
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
import { type IdempotencyRow, recordOfRow } from '../idempotency-rows.js';
import type { PostgresStoreLocation } from '../location.js';
import { type Migration, nowParam, nowSql, PostgresDatabase, transactionNow } from './database.js';

const MODULE = 'idempotency';
// Version 1 is migrations[0]; a later change appends, never edits.
const MIGRATIONS: readonly Migration[] = [
  [
    `CREATE TABLE idempotency_records (
      tenant text NOT NULL,
      key text NOT NULL,
      state text NOT NULL CHECK (state IN ('in_progress', 'completed')),
      owner text,
      fingerprint text,
      created_at bigint NOT NULL,
      lease_expires_at bigint,
      completed_at bigint,
      expires_at bigint,
      result text,
      gone_at bigint NOT NULL
    )`,
    // The dedup rule is the database's: one record per (tenant, key).
    'CREATE UNIQUE INDEX idempotency_records_ref ON idempotency_records (tenant, key)',
    'CREATE INDEX idempotency_records_gone_at ON idempotency_records (gone_at)',
  ],
];

export interface PostgresStoreOptions extends StoreClockOption {
  /** An open database (shared with other modules): the store creates its tables in it and never closes it. */
  readonly database: PostgresDatabase;
}

/**
 * Many relay instances share one PostgreSQL. A claim is an upsert whose WHERE only lets a gone record (or, for
 * takeOver, an expired lease) be replaced, after locking the existing row, so concurrent claimers are serialised by
 * the row lock and the unique index. Time: see postgres-database.ts (the server's clock unless a clock is injected).
 */
export class PostgresIdempotencyStore implements IdempotencyStore {
  readonly kind = 'postgres';
  readonly #db: PostgresDatabase;
  readonly #ownsDatabase: boolean;
  readonly #clock: Clock | undefined;

  /** Opens a pool of its own onto `location` and applies the migrations; `close()` ends the pool. */
  static async open(
    location: PostgresStoreLocation,
    options: StoreClockOption & { readonly schema?: string } = {},
  ): Promise<PostgresIdempotencyStore> {
    const database = await PostgresDatabase.open(location, MODULE, MIGRATIONS, options.schema);
    return new PostgresIdempotencyStore({ database, ...(options.clock ? { clock: options.clock } : {}) }, true);
  }

  /** Applies this store's migrations to a database opened elsewhere. */
  static async create(options: PostgresStoreOptions): Promise<PostgresIdempotencyStore> {
    try {
      await options.database.migrate(MODULE, MIGRATIONS);
    } catch (error) {
      throw options.database.unavailable('migrating idempotency', error);
    }
    return new PostgresIdempotencyStore(options);
  }

  private constructor(options: PostgresStoreOptions, ownsDatabase = false) {
    this.#db = options.database;
    this.#ownsDatabase = ownsDatabase;
    this.#clock = options.clock;
  }

  async claim(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#claim('claim', checkArgs.ref(ref), checkArgs.lease(lease), false);
  }

  async takeOver(ref: IdempotencyRef, lease: LeaseRequest): Promise<ClaimOutcome> {
    return this.#claim('takeOver', checkArgs.ref(ref), checkArgs.lease(lease), true);
  }

  async renewLease(ref: IdempotencyRef, owner: string, leaseMs: number): Promise<boolean> {
    const { tenant, key } = checkArgs.ref(ref);
    checkArgs.owner(owner);
    checkArgs.leaseMs(leaseMs);
    return this.#changed(
      'renewLease',
      `WITH t AS (SELECT ${nowSql(1)} AS now)
       UPDATE idempotency_records r SET lease_expires_at = t.now + $5, gone_at = t.now + $5 + $6
       FROM t WHERE ${HELD}`,
      [nowParam(this.#clock), tenant, key, owner, leaseMs, ABANDONED_LEASE_RETENTION_MS],
    );
  }

  async complete(ref: IdempotencyRef, owner: string, completion: Completion): Promise<boolean> {
    const { tenant, key } = checkArgs.ref(ref);
    checkArgs.owner(owner);
    const { result, ttlMs } = checkArgs.completion(completion);
    return this.#changed(
      'complete',
      `WITH t AS (SELECT ${nowSql(1)} AS now)
       UPDATE idempotency_records r SET state = 'completed', owner = NULL, lease_expires_at = NULL, completed_at = t.now,
         expires_at = t.now + $5, gone_at = t.now + $5, result = $6
       FROM t WHERE ${HELD}`,
      [nowParam(this.#clock), tenant, key, owner, ttlMs, result],
    );
  }

  async release(ref: IdempotencyRef, owner: string): Promise<boolean> {
    const { tenant, key } = checkArgs.ref(ref);
    checkArgs.owner(owner);
    return this.#changed('release', `WITH t AS (SELECT ${nowSql(1)} AS now) DELETE FROM idempotency_records r USING t WHERE ${HELD}`, [
      nowParam(this.#clock),
      tenant,
      key,
      owner,
    ]);
  }

  async get(ref: IdempotencyRef): Promise<IdempotencyRecord | undefined> {
    const { tenant, key } = checkArgs.ref(ref);
    const rows = await this.#run('get', async () => {
      const result = await this.#db.pool.query<IdempotencyRow>(
        `SELECT * FROM idempotency_records WHERE tenant = $2 AND key = $3 AND gone_at > ${nowSql(1)}`,
        [nowParam(this.#clock), tenant, key],
      );
      return result.rows;
    });
    const [row] = rows;
    return row ? recordOfRow(row) : undefined;
  }

  async purgeExpired(): Promise<number> {
    return this.#run('purgeExpired', async () => {
      const result = await this.#db.pool.query(`DELETE FROM idempotency_records WHERE gone_at <= ${nowSql(1)}`, [nowParam(this.#clock)]);
      return result.rowCount ?? 0;
    });
  }

  async close(): Promise<void> {
    if (this.#ownsDatabase) await this.#db.close();
  }

  #claim(operation: string, ref: IdempotencyRef, lease: LeaseRequest, takeOverExpired: boolean): Promise<ClaimOutcome> {
    return this.#run(operation, () =>
      this.#db.transaction(async (client) => {
        const now = await transactionNow(client, this.#clock);
        const before = await selectForUpdate(client, ref);
        const record = newInProgressRecord(ref, lease, now);
        // The conflict branch only fires for a gone record, or (takeOver) an in_progress record whose lease ran out.
        const claimed = await client.query(
          `INSERT INTO idempotency_records AS r (tenant, key, state, owner, fingerprint, created_at, lease_expires_at, gone_at)
           VALUES ($1, $2, 'in_progress', $3, $4, $5, $6, $7)
           ON CONFLICT (tenant, key) DO UPDATE SET
             state = excluded.state, owner = excluded.owner, fingerprint = excluded.fingerprint, created_at = excluded.created_at,
             lease_expires_at = excluded.lease_expires_at, completed_at = NULL, expires_at = NULL, result = NULL, gone_at = excluded.gone_at
           WHERE r.gone_at <= $5 OR ($8 AND r.state = 'in_progress' AND r.lease_expires_at <= $5)`,
          [
            ref.tenant,
            ref.key,
            record.owner,
            record.fingerprint ?? null,
            now,
            record.leaseExpiresAt,
            leaseGoneAt(record.leaseExpiresAt),
            takeOverExpired,
          ],
        );
        if (claimed.rowCount !== 1) {
          // Refused: a live record is in the way. It may have been inserted (and committed) after our first look.
          const blocking = before ?? (await selectForUpdate(client, ref));
          if (!blocking) throw new Error('claim refused but no record found');
          return blockedOutcome(recordOfRow(blocking), now);
        }
        return before && before.gone_at > now && before.state === 'in_progress'
          ? { status: 'claimed', record, takenOverFrom: before.owner ?? '' }
          : { status: 'claimed', record };
      }),
    );
  }

  async #changed(operation: string, sql: string, values: unknown[]): Promise<boolean> {
    return this.#run(operation, async () => (await this.#db.pool.query(sql, values)).rowCount === 1);
  }

  async #run<T>(operation: string, body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (error) {
      throw storeFailure('postgres', operation, error);
    }
  }
}

// The guard of renew, complete and release ($2 tenant, $3 key, $4 owner): the caller holds a live in_progress record.
const HELD = `r.tenant = $2 AND r.key = $3 AND r.gone_at > t.now AND r.state = 'in_progress' AND r.owner = $4`;

async function selectForUpdate(client: pg.PoolClient, ref: IdempotencyRef): Promise<IdempotencyRow | undefined> {
  const result = await client.query<IdempotencyRow>('SELECT * FROM idempotency_records WHERE tenant = $1 AND key = $2 FOR UPDATE', [
    ref.tenant,
    ref.key,
  ]);
  return result.rows[0];
}
