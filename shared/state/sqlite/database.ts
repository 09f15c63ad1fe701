import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';

export type SqliteDatabase = Database.Database;

/**
 * Opens (creating if needed) the one SQLite file that holds oncekit's durable state, set up for a single writer
 * process with concurrent readers: WAL, a busy timeout instead of instant SQLITE_BUSY, and FULL sync: a commit is on
 * disk before it returns, so an event acknowledged to its sender survives a power cut or an OS crash too (NORMAL would
 * survive only a process crash).
 * Each module creates its own tables with `CREATE TABLE IF NOT EXISTS` through `migrate`.
 */
export function openSqliteDatabase(path: string): SqliteDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  return db;
}

/** Applies a module's schema statements once per database, in one transaction. */
export function migrate(db: SqliteDatabase, module: string, version: number, statements: readonly string[]): void {
  db.exec('CREATE TABLE IF NOT EXISTS oncekit_schema (module TEXT PRIMARY KEY, version INTEGER NOT NULL)');
  const current = db.prepare<[string], { version: number }>('SELECT version FROM oncekit_schema WHERE module = ?').get(module);
  if (current && current.version >= version) return;
  db.transaction(() => {
    for (const statement of statements) db.exec(statement);
    db.prepare(
      'INSERT INTO oncekit_schema (module, version) VALUES (?, ?) ON CONFLICT(module) DO UPDATE SET version = excluded.version',
    ).run(module, version);
  })();
}
