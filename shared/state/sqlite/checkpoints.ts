import type { CheckpointStore, SavedPosition } from '../checkpoints.js';
import { migrate, type SqliteDatabase } from './database.js';

/** One row per (scope, stream) in the shared SQLite file, synced before `save` resolves (synchronous = FULL). */
export class SqliteCheckpointStore implements CheckpointStore {
  readonly #read;
  readonly #write;
  readonly #list;

  constructor(db: SqliteDatabase) {
    const legacy = db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'salesforce_replay_checkpoints'")
      .get();
    migrate(db, 'stream_checkpoints', 1, [
      `CREATE TABLE IF NOT EXISTS stream_checkpoints (
         scope TEXT NOT NULL, stream TEXT NOT NULL, position TEXT NOT NULL, saved_at INTEGER NOT NULL,
         PRIMARY KEY (scope, stream))`,
      // Checkpoints saved before this table existed, in the Platform Event subscriber's own table: kept, not replayed.
      ...(legacy
        ? [
            `INSERT OR IGNORE INTO stream_checkpoints (scope, stream, position, saved_at)
               SELECT tenant, channel, replay_id, saved_at FROM salesforce_replay_checkpoints`,
          ]
        : []),
    ]);
    this.#read = db.prepare<[string, string], { position: string }>(
      'SELECT position FROM stream_checkpoints WHERE scope = ? AND stream = ?',
    );
    this.#list = db.prepare<[string, number], { stream: string; position: string; saved_at: number }>(
      'SELECT stream, position, saved_at FROM stream_checkpoints WHERE scope = ? ORDER BY stream LIMIT ?',
    );
    this.#write = db.prepare<[string, string, string, number]>(
      `INSERT INTO stream_checkpoints (scope, stream, position, saved_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (scope, stream) DO UPDATE SET position = excluded.position, saved_at = excluded.saved_at`,
    );
  }

  /** The file is on this machine: its clock is this host's, the one `save` stamps. */
  async list(scope: string, limit = 1000): Promise<SavedPosition[]> {
    const now = Date.now();
    return this.#list
      .all(scope, limit)
      .map((row) => ({ stream: row.stream, position: row.position, savedAgoMs: Math.max(0, now - row.saved_at) }));
  }

  async load(scope: string, stream: string): Promise<string | null> {
    return this.#read.get(scope, stream)?.position ?? null;
  }

  async save(scope: string, stream: string, position: string): Promise<void> {
    this.#write.run(scope, stream, position, Date.now());
  }
}
