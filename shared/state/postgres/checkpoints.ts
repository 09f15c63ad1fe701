import type { CheckpointStore, SavedPosition } from '../checkpoints.js';
import { type PostgresDatabase, SERVER_NOW_MS } from './database.js';

const MODULE = 'stream_checkpoints';
const MIGRATIONS = [
  [
    `CREATE TABLE stream_checkpoints (
       scope text NOT NULL, stream text NOT NULL, position text NOT NULL, saved_at bigint NOT NULL,
       PRIMARY KEY (scope, stream))`,
  ],
];

/** One row per (scope, stream) in the location's schema, saved with the server's time, committed before `save` resolves. */
export class PostgresCheckpointStore implements CheckpointStore {
  readonly #db: PostgresDatabase;

  /** Applies the table's migration to a database opened elsewhere (the state's one pool). */
  static async create(db: PostgresDatabase): Promise<PostgresCheckpointStore> {
    try {
      await db.migrate(MODULE, MIGRATIONS);
    } catch (error) {
      throw db.unavailable('migrating checkpoints', error);
    }
    return new PostgresCheckpointStore(db);
  }

  private constructor(db: PostgresDatabase) {
    this.#db = db;
  }

  async load(scope: string, stream: string): Promise<string | null> {
    try {
      const result = await this.#db.pool.query<{ position: string }>(
        'SELECT position FROM stream_checkpoints WHERE scope = $1 AND stream = $2',
        [scope, stream],
      );
      return result.rows[0]?.position ?? null;
    } catch (error) {
      throw this.#db.unavailable('loading a checkpoint', error);
    }
  }

  async list(scope: string, limit = 1000): Promise<SavedPosition[]> {
    try {
      // The age on the server's clock, which saved_at is on.
      const result = await this.#db.pool.query<{ stream: string; position: string; saved_ago_ms: string }>(
        `SELECT stream, position, greatest(0, ${SERVER_NOW_MS} - saved_at) AS saved_ago_ms
         FROM stream_checkpoints WHERE scope = $1 ORDER BY stream LIMIT $2`,
        [scope, limit],
      );
      return result.rows.map((row) => ({ stream: row.stream, position: row.position, savedAgoMs: Number(row.saved_ago_ms) }));
    } catch (error) {
      throw this.#db.unavailable('listing checkpoints', error);
    }
  }

  async save(scope: string, stream: string, position: string): Promise<void> {
    try {
      await this.#db.pool.query(
        `INSERT INTO stream_checkpoints (scope, stream, position, saved_at) VALUES ($1, $2, $3, ${SERVER_NOW_MS})
         ON CONFLICT (scope, stream) DO UPDATE SET position = excluded.position, saved_at = excluded.saved_at`,
        [scope, stream, position],
      );
    } catch (error) {
      throw this.#db.unavailable('saving a checkpoint', error);
    }
  }
}
