import type { DemoSource } from './sources.js';

export interface DemoSourceRow {
  readonly source: DemoSource;
  readonly label: string;
  /** Events the source sent, retries and redeliveries included. */
  readonly sent: number;
  /** Events the relay took in as new (records in its outbox). */
  readonly accepted: number;
  /** Events in Apex retries answered from request idempotency (Idempotent-Replayed), not processed again. */
  readonly replayed: number;
  /** Redeliveries and repeats the relay recognised (inbox or outbox) and did not take again. */
  readonly duplicates: number;
  /** Events refused by the relay (4xx). */
  readonly rejected: number;
  /** Accepted events whose key candidate was invalid: sent to the target without an idempotency key. */
  readonly keysDropped: number;
  /** Accepted events settled as 409 by the target: an earlier attempt had landed (record-then-fail). */
  readonly target409: number;
  /** Events the target holds for this source. */
  readonly recorded: number;
}

export interface DemoInvariant {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DemoReport {
  readonly ok: boolean;
  readonly sandbox: { readonly url: string; readonly tenant: string };
  readonly relay: { readonly url: string; readonly store: string };
  readonly sources: readonly DemoSourceRow[];
  readonly target: {
    readonly requests: number;
    readonly byStatus: Readonly<Record<string, number>>;
    readonly faultsInjected: Readonly<Record<string, number>>;
    readonly events: number;
  };
  readonly keyedEvents: number;
  readonly unkeyedEvents: number;
  readonly drainMs: number;
  readonly elapsedMs: number;
  readonly invariants: readonly DemoInvariant[];
  readonly notes: readonly string[];
}

/** The human report: one row per source, the target's side, and the verdict as the last line. */
export function formatDemoReport(report: DemoReport): string {
  const header = ['source', 'sent', 'accepted', 'replayed', 'duplicates', 'keys dropped', 'target 409', 'recorded by target'];
  const total = (pick: (row: DemoSourceRow) => number): string => String(report.sources.reduce((sum, row) => sum + pick(row), 0));
  const body = report.sources.map((row) => [
    row.label,
    String(row.sent),
    String(row.accepted),
    String(row.replayed),
    String(row.duplicates),
    String(row.keysDropped),
    String(row.target409),
    String(row.recorded),
  ]);
  const totals = [
    'total',
    total((row) => row.sent),
    total((row) => row.accepted),
    total((row) => row.replayed),
    total((row) => row.duplicates),
    total((row) => row.keysDropped),
    total((row) => row.target409),
    total((row) => row.recorded),
  ];
  const table = [header, ...body, totals];
  const widths = header.map((_, column) => Math.max(...table.map((cells) => (cells[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ');
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  const statuses = Object.entries(report.target.byStatus)
    .map(([status, n]) => `${status}×${n}`)
    .join(', ');
  const faults = Object.entries(report.target.faultsInjected)
    .map(([kind, n]) => `${kind}×${n}`)
    .join(', ');
  const failed = report.invariants.filter((invariant) => !invariant.ok);
  const lines = [
    `oncekit demo: sandbox ${report.sandbox.url} (tenant ${report.sandbox.tenant}), relay ${report.relay.url} (store ${report.relay.store})`,
    '',
    line(header),
    rule,
    ...body.map(line),
    rule,
    line(totals),
    '',
    `target: ${report.target.requests} API requests (${statuses}); faults injected: ${faults || 'none'}; ${report.target.events} events recorded`,
    `outbox drained ${(report.drainMs / 1000).toFixed(1)} s after the first event; demo took ${(report.elapsedMs / 1000).toFixed(1)} s`,
    ...report.notes,
    '',
    ...failed.map((invariant) => `FAILED ${invariant.name}: ${invariant.detail}`),
    report.ok
      ? `OK: every event with a key (${report.keyedEvents}) was recorded exactly once by the target; ${report.unkeyedEvents} without a key, once each; nothing lost.`
      : `NOT OK: ${failed.length} of ${report.invariants.length} checks failed.`,
  ];
  return `${lines.join('\n')}\n`;
}
