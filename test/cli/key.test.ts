import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

describe('oncekit key', () => {
  it('prints the decision for a valid candidate and exits 0', async () => {
    const run = await runCli(['key', 'f650f058-192c-4e52-b72d-9634116f59eb']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({
      source: 'raw',
      candidate: 'f650f058-192c-4e52-b72d-9634116f59eb',
      key: 'f650f058-192c-4e52-b72d-9634116f59eb',
      decision: 'kept',
      reason: null,
      detail: null,
    });
  });

  it('drops an invalid candidate by default (exit 0) and hashes it with --policy hash', async () => {
    const dropped = await runCli(['key', 'order:1234']);
    expect(dropped.code).toBe(0);
    expect(JSON.parse(dropped.stdout)).toMatchObject({ key: null, decision: 'dropped', reason: 'bad_characters' });
    const hashed = await runCli(['key', '--policy', 'hash', 'order:1234']);
    expect(JSON.parse(hashed.stdout)).toMatchObject({
      key: expect.stringMatching(/^oncekit-sha256-[A-Za-z0-9_-]{43}$/),
      decision: 'hashed',
    });
  });

  it('exits 1 when --policy reject refuses the candidate', async () => {
    const run = await runCli(['key', '--policy', 'reject', 'abc']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ decision: 'rejected', reason: 'too_short' });
  });

  it('exits 2 for bad usage, naming the option', async () => {
    const run = await runCli(['key', '--policy', 'sometimes', 'abc']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("option '--policy <policy>' argument 'sometimes' is invalid");
    expect(run.stderr).toContain('expected one of drop, hash, reject');
  });

  it('reads thousands of candidates from stdin in one process, one JSON line each, in order', async () => {
    const candidates = Array.from({ length: 5000 }, (_, i) => (i % 3 === 0 ? `bad id ${i}` : `node-next-${i}-${'x'.repeat(20)}`));
    const run = await runCli(['key', '--source', 'segment'], { input: `${candidates.join('\r\n')}\r\n` });
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { candidate: string; decision: string; source: string });
    expect(lines).toHaveLength(5000);
    expect(lines.map((line) => line.candidate)).toEqual(candidates);
    expect(lines.filter((line) => line.decision === 'dropped')).toHaveLength(1667);
    expect(new Set(lines.map((line) => line.source))).toEqual(new Set(['segment']));
  });

  it('has --help', async () => {
    const run = await runCli(['key', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('Usage: oncekit key [options] [candidate]');
  });
});
