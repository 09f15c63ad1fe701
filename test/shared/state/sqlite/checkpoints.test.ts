import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openState } from '../../../../shared/state/open-state.js';
import { describeCheckpointContract } from '../checkpoints-contract.js';
import { tempDir } from '../temp-dir.js';

describeCheckpointContract('sqlite', { durable: true }, async () => {
  const dir = tempDir();
  return { location: { kind: 'sqlite', path: join(dir.path, 'oncekit.db') }, dispose: async () => dir.remove() };
});

describe('checkpoints on SQLite', () => {
  it('keeps the replay ids saved by an earlier version, in its own table, when the file is opened again', async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, 'oncekit.db');
      const old = new Database(path);
      old.exec(`CREATE TABLE salesforce_replay_checkpoints (
        tenant TEXT NOT NULL, channel TEXT NOT NULL, replay_id TEXT NOT NULL, saved_at INTEGER NOT NULL, PRIMARY KEY (tenant, channel))`);
      old.prepare('INSERT INTO salesforce_replay_checkpoints VALUES (?, ?, ?, ?)').run('acme', '/event/A__e', '4242', 1);
      old.close();
      const state = await openState({ kind: 'sqlite', path });
      try {
        expect(await state.checkpoints.load('acme', '/event/A__e')).toBe('4242');
      } finally {
        await state.close();
      }
    } finally {
      dir.remove();
    }
  });
});
