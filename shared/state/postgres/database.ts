import pg from 'pg';
import type { Clock } from '../../clock.js';
import { InvalidInputError } from '../../errors.js';
import { StoreUnavailableError } from '../idempotency.js';
import { describeStoreLocation, POSTGRES_SCHEMA_PATTERN, type PostgresStoreLocation } from '../location.js';

/*
 * Time on PostgreSQL comes from the store, not from the caller: every expiry, lease and due decision compares stored
 * times with the server's clock (`clock_timestamp()` in ms), so instances whose clocks disagree still agree on when a
 * lease ran out. Tests inject a manual clock instead; its `now()` is then sent as a query parameter, and SQL takes it
 * in place of the server's clock: `COALESCE($n::bigint, <server ms>)`. Production passes null (no clock).
 */
export const SERVER_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

/** SQL for "now" given the query parameter `$index` (null: the server's clock). */
export const nowSql = (index: number): string => `COALESCE($${index}::bigint, ${SERVER_NOW_MS})`;

/** The parameter `nowSql` reads: the injected clock's time, or null so the server's clock decides. */
export const nowParam = (clock: Clock | undefined): number | null => (clock === undefined ? null : clock.now());

export const DEFAULT_POSTGRES_SCHEMA = 'public';

const INT8_OID = 20;
// Times and sequence numbers are bigint; every one oncekit stores fits a double exactly (epoch ms, row numbers).
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};

/** PostgreSQL could not be reached, refused the connection or lost it: the store is unavailable (fail closed). */
export class PostgresUnavailableError extends StoreUnavailableError {}

/** One migration: the statements that take a module's tables from the previous version to this one. */
export type Migration = readonly string[];

/**
 * A pool onto one PostgreSQL database, with every connection's search_path set to oncekit's schema, and the
 * versioned migrations of each module applied once, even when several processes open it at the same moment.
 */
export class PostgresDatabase {
  readonly pool: pg.Pool;
  readonly schema: string;
  readonly #config: pg.ClientConfig;
  readonly #description: string;

  constructor(location: PostgresStoreLocation, schema: string = location.schema ?? DEFAULT_POSTGRES_SCHEMA) {
    if (!POSTGRES_SCHEMA_PATTERN.test(schema)) {
      throw new InvalidInputError([
        { field: 'schema', reason: `expected a lower-case identifier of at most 40 characters, got ${JSON.stringify(schema)}` },
      ]);
    }
    this.schema = schema;
    this.#description = describeStoreLocation(location);
    this.#config = {
      connectionString: location.url,
      // The schema may not exist yet; migrations create it, and the search path finds it from then on.
      options: `-c search_path=${schema}`,
      application_name: 'oncekit',
      connectionTimeoutMillis: 5000,
      types,
      ...(location.statementTimeoutMs > 0 ? { statement_timeout: location.statementTimeoutMs } : {}),
    };
    this.pool = new pg.Pool({ ...this.#config, max: location.poolMax, idleTimeoutMillis: 30_000 });
    // An idle connection that dies (server restart) must not crash the process; the next query reports it.
    this.pool.on('error', () => {});
  }

  /** Opens the pool and applies `module`'s migrations; fails with PostgresUnavailableError when nothing answers. */
  static async open(
    location: PostgresStoreLocation,
    module: string,
    migrations: readonly Migration[],
    schema?: string,
  ): Promise<PostgresDatabase> {
    const db = new PostgresDatabase(location, schema);
    try {
      await db.migrate(module, migrations);
    } catch (error) {
      await db.close();
      throw db.unavailable(`opening (migrating ${module})`, error);
    }
    return db;
  }

  /** The NOTIFY channel of this schema's outbox. */
  get outboxChannel(): string {
    return `oncekit_outbox_${this.schema}`;
  }

  /** A separate client (not from the pool), e.g. for LISTEN; the caller ends it. */
  newClient(): pg.Client {
    return new pg.Client(this.#config);
  }

  /**
   * Applies the migrations of `module` it has not applied yet, version 1 being `migrations[0]`. A transaction-level
   * advisory lock serialises every process migrating this schema, so two starting at once both succeed, one after the
   * other, and the second finds nothing left to do.
   */
  async migrate(module: string, migrations: readonly Migration[]): Promise<void> {
    await this.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`oncekit:migrate:${this.schema}`]);
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.schema}`);
      await client.query(`SET LOCAL search_path TO ${this.schema}`);
      await client.query(`CREATE TABLE IF NOT EXISTS oncekit_migrations (
        module text NOT NULL, version integer NOT NULL, applied_at bigint NOT NULL, PRIMARY KEY (module, version))`);
      const done = await client.query<{ version: number | null }>(
        'SELECT max(version) AS version FROM oncekit_migrations WHERE module = $1',
        [module],
      );
      const current = done.rows[0]?.version ?? 0;
      for (const [index, statements] of migrations.entries()) {
        const version = index + 1;
        if (version <= current) continue;
        for (const statement of statements) await client.query(statement);
        await client.query(`INSERT INTO oncekit_migrations (module, version, applied_at) VALUES ($1, $2, ${SERVER_NOW_MS})`, [
          module,
          version,
        ]);
      }
    });
  }

  /** Runs `work` in one transaction on one pooled connection: committed if it resolves, rolled back if it throws. */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const value = await work(client);
      await client.query('COMMIT');
      return value;
    } catch (error) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackError) {
        // The connection is unusable: do not give it back to the pool.
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      }
      throw error;
    } finally {
      client.release(broken);
    }
  }

  /** A StoreUnavailableError naming the database (never its password). */
  unavailable(operation: string, cause: unknown): PostgresUnavailableError {
    if (cause instanceof PostgresUnavailableError) return cause;
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new PostgresUnavailableError(`PostgreSQL at ${this.#description}: ${operation} failed: ${reason}`, { cause });
  }

  async close(): Promise<void> {
    if (!this.pool.ended) await this.pool.end();
  }
}

/** The now of one transaction: read once, so every row it touches gets the same time. */
export async function transactionNow(client: pg.PoolClient, clock: Clock | undefined): Promise<number> {
  const result = await client.query<{ now: number }>(`SELECT ${nowSql(1)} AS now`, [nowParam(clock)]);
  const now = result.rows[0]?.now;
  if (typeof now !== 'number') throw new Error('the server did not tell the time');
  return now;
}
