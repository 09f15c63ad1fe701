import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteDatabase } from '../../../../shared/state/sqlite/database.js';
import { tempDir } from '../temp-dir.js';

describe('SQLite durability', () => {
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) dir.remove();
  });

  it('syncs every commit to disk (synchronous = FULL), so an acknowledged event survives a power cut', () => {
    const dir = tempDir();
    dirs.push(dir);
    const db = openSqliteDatabase(join(dir.path, 'oncekit.db'));
    // 2 = FULL (0 OFF, 1 NORMAL, 3 EXTRA)
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });
});
