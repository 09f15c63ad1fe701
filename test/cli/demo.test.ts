import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { DemoReport, DemoSourceRow } from '../../cli/commands/demo/report.js';
import { runCli } from './run-cli.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'oncekit-demo-test-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function row(report: DemoReport, source: DemoSourceRow['source']): Omit<DemoSourceRow, 'target409' | 'label'> {
  const found = report.sources.find((candidate) => candidate.source === source);
  if (!found) throw new Error(`no row for ${source}`);
  const { target409: _target409, label: _label, ...rest } = found;
  return rest;
}

describe('oncekit demo', () => {
  it('sends traffic from each source through target faults and reports every keyed event recorded exactly once', async () => {
    // A user's target or Salesforce settings must not leak into the demo.
    const run = await runCli(['demo', '--json'], {
      env: { TMPDIR: dir, ONCEKIT_TARGET_URL: 'http://127.0.0.1:9/unused', ONCEKIT_SF_CLIENT_ID: 'someone-elses-org' },
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as DemoReport;

    expect(report.ok).toBe(true);
    expect(report.invariants.length).toBeGreaterThan(0);
    expect(report.invariants.filter((invariant) => !invariant.ok)).toEqual([]);
    // Apex retried one 3-item call with the same Idempotency-Key (replayed), a later call repeated an event key, and
    // a by-lead call took its user from the fake org's Lead through jsforce.
    expect(row(report, 'salesforce')).toEqual({
      source: 'salesforce',
      sent: 11,
      accepted: 7,
      replayed: 3,
      duplicates: 1,
      rejected: 0,
      keysDropped: 1,
      recorded: 7,
    });
    // Platform Events from the fake org's Pub/Sub API: three keyed by EventUuid, and one published twice with one
    // Idempotency_Key__c.
    expect(report.notes.join(' ')).toMatch(/Pub\/Sub API gRPC server publishing the Platform Events/);
    expect(row(report, 'salesforce-event')).toEqual({
      source: 'salesforce-event',
      sent: 5,
      accepted: 4,
      replayed: 0,
      duplicates: 1,
      rejected: 0,
      keysDropped: 0,
      recorded: 4,
    });
    // A redelivery and a retried event (new id, same token) are both absorbed by the inbox.
    expect(row(report, 'keygen')).toEqual({
      source: 'keygen',
      sent: 4,
      accepted: 2,
      replayed: 0,
      duplicates: 2,
      rejected: 0,
      keysDropped: 0,
      recorded: 2,
    });
    // A redelivered messageId is taken once; order:1234 is not a valid key, so that event goes without one.
    expect(row(report, 'segment')).toEqual({
      source: 'segment',
      sent: 5,
      accepted: 4,
      replayed: 0,
      duplicates: 1,
      rejected: 0,
      keysDropped: 1,
      recorded: 4,
    });
    expect(report.keyedEvents).toBe(15);
    expect(report.unkeyedEvents).toBe(2);
    expect(report.target.events).toBe(17);
    // Every scripted fault hit the target, and the record-then-fail came back as a 409 the relay settled as a duplicate.
    expect(report.target.faultsInjected).toEqual({ status: 3, throttle: 1, 'record-then-fail': 1 });
    expect(report.target.byStatus).toMatchObject({ '429': 1, '500': 2, '503': 2 });
    expect(report.sources.reduce((sum, source) => sum + source.target409, 0)).toBeGreaterThanOrEqual(1);
    expect(report.sandbox.url).not.toContain(':9/');
    expect(report.notes.join(' ')).toMatch(/local fake org on loopback/);
  });

  it('prints a table per source and a final verdict, and leaves no temporary store behind', async () => {
    const run = await runCli(['demo', '--store', 'sqlite'], { env: { TMPDIR: dir } });
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    const header = lines.find((line) => line.startsWith('source'));
    expect(header?.split(/\s{2,}/)).toEqual([
      'source',
      'sent',
      'accepted',
      'replayed',
      'duplicates',
      'keys dropped',
      'target 409',
      'recorded by target',
    ]);
    const cells = (label: string) => lines.find((line) => line.startsWith(label))?.split(/\s{2,}/);
    expect(cells('Salesforce invocable')).toEqual(['Salesforce invocable', '11', '7', '3', '1', '1', expect.any(String), '7']);
    expect(cells('Salesforce Platform Events')).toEqual(['Salesforce Platform Events', '5', '4', '0', '1', '0', expect.any(String), '4']);
    expect(cells('Keygen webhooks')).toEqual(['Keygen webhooks', '4', '2', '0', '2', '0', expect.any(String), '2']);
    expect(cells('Segment webhooks')).toEqual(['Segment webhooks', '5', '4', '0', '1', '1', expect.any(String), '4']);
    expect(cells('total')).toEqual(['total', '25', '17', '3', '5', '2', expect.any(String), '17']);
    expect(run.stdout).toContain('(store sqlite:');
    expect(run.stdout).toContain('local fake org on loopback');
    expect(lines.at(-1)).toBe(
      'OK: every event with a key (15) was recorded exactly once by the target; 2 without a key, once each; nothing lost.',
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses an unknown store with exit 2', async () => {
    const run = await runCli(['demo', '--store', 'postgres']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('expected one of memory, sqlite');
  });
});
