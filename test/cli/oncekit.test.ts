import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

describe('oncekit --version', () => {
  it('prints the version of the package and exits 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const run = await runCli([flag]);
      expect(run.code).toBe(0);
      expect(run.stdout.trim()).toBe(version);
    }
  });
});

describe('read-only commands never create a store', () => {
  it('ledger show and dead-letters list on a SQLite path that does not exist: exit 1, one line naming the path, nothing created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oncekit-readonly-'));
    try {
      const missing = join(dir, 'no-such-dir', 'x.db');
      for (const args of [
        ['ledger', 'show', 'some-key-123', '--tenant', 't1', '--store', `sqlite:${missing}`],
        ['dead-letters', 'list', '--tenant', 't1', '--store', `sqlite:${missing}`],
      ]) {
        const run = await runCli(args);
        expect(run.code).toBe(1);
        expect(run.stderr.trim()).toBe(
          `oncekit: no store at ${missing} (--store): nothing was ever stored there; check the path, or run this where the relay or import keeps its store`,
        );
        expect(existsSync(join(dir, 'no-such-dir'))).toBe(false);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('an unreadable import file', () => {
  it('is one line naming the file, exit 1, said before any store is created', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oncekit-unreadable-'));
    try {
      const missing = join(dir, 'no-such-file.csv');
      const run = await runCli(['import', missing, '--tenant', 't1'], { env: { ONCEKIT_API_KEY: 'k-123', HOME: dir }, cwd: dir });
      expect(run.code).toBe(1);
      expect(run.stderr.trim()).toBe(`oncekit: cannot read ${missing}: ENOENT: no such file or directory, stat '${missing}'`);
      expect(existsSync(join(dir, '.oncekit'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
