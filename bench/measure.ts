import { cpus } from 'node:os';
import type { Spread } from './interleave.js';

/** One figure of a benchmark; `baseline` names the figure it is compared with in the same run. */
export interface BenchRow {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline?: string;
  /** value ÷ baseline's value. */
  readonly ratio?: number;
  readonly note?: string;
  /** The value's range over interleaved repetitions (the value is then their median). */
  readonly range?: { readonly min: number; readonly max: number; readonly count: number };
  /** The per-repetition (paired) ratios' range. */
  readonly ratioRange?: { readonly min: number; readonly max: number };
}

export interface Rate {
  readonly operations: number;
  readonly seconds: number;
  readonly perSecond: number;
}

/**
 * Runs `batch` (which performs `batchSize` operations) until `minMs` have passed, after a short warm-up; stops earlier
 * once `maxOperations` are done (bounds what a fast store accumulates).
 */
export async function measureRate(
  batch: () => Promise<void> | void,
  batchSize: number,
  minMs = 1500,
  maxOperations = Number.POSITIVE_INFINITY,
): Promise<Rate> {
  const warmUntil = performance.now() + Math.min(300, minMs / 5);
  while (performance.now() < warmUntil) await batch();
  let operations = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    await batch();
    operations += batchSize;
    elapsed = performance.now() - start;
  } while (elapsed < minMs && operations < maxOperations);
  const seconds = elapsed / 1000;
  return { operations, seconds, perSecond: operations / seconds };
}

export function compared(name: string, value: number, unit: string, baseline?: BenchRow, note?: string): BenchRow {
  return {
    name,
    value,
    unit,
    ...(baseline ? { baseline: baseline.name, ratio: value / baseline.value } : {}),
    ...(note ? { note } : {}),
  };
}

/**
 * A row from interleaved repetitions: the median with its min–max; against a baseline, the ratio of the medians with
 * the range of the per-repetition (paired) ratios.
 */
export function spreadRow(
  name: string,
  value: Spread,
  unit: string,
  baseline?: { readonly row: BenchRow; readonly paired: Spread },
  note?: string,
): BenchRow {
  return {
    name,
    value: value.median,
    unit,
    range: { min: value.min, max: value.max, count: value.count },
    ...(baseline
      ? {
          baseline: baseline.row.name,
          ratio: value.median / baseline.row.value,
          ratioRange: { min: baseline.paired.min, max: baseline.paired.max },
        }
      : {}),
    ...(note ? { note } : {}),
  };
}

export interface TableContext {
  /** The load average when the table's measurements started and ended. */
  readonly loadBefore?: string;
  readonly loadAfter?: string;
}

export function formatRows(title: string, rows: readonly BenchRow[], context: TableContext = {}): string {
  const fmt = (n: number): string => (Number.isNaN(n) ? 'n/a' : Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
  const lines = [`\n## ${title}`, ''];
  if (context.loadBefore || context.loadAfter) {
    lines.push(
      `load average (1 / 5 / 15 min) before: ${context.loadBefore ?? '?'}, after: ${context.loadAfter ?? '?'}; ${cpus().length} cores`,
      '',
    );
  }
  lines.push('| figure | median (min–max) | vs baseline | ratio (paired min–max) |', '|---|---:|---|---:|');
  for (const row of rows) {
    const value = row.range && row.range.count > 1 ? `${fmt(row.value)} (${fmt(row.range.min)}–${fmt(row.range.max)})` : fmt(row.value);
    const ratio =
      row.ratio === undefined
        ? ''
        : `${row.ratio.toFixed(2)}×${row.ratioRange ? ` (${row.ratioRange.min.toFixed(2)}–${row.ratioRange.max.toFixed(2)})` : ''}`;
    lines.push(`| ${row.name} | ${value} ${row.unit} | ${row.baseline ?? ''} | ${ratio} |`);
  }
  const notes = rows.filter((row) => row.note).map((row) => `- ${row.name}: ${row.note}`);
  return [...lines, ...(notes.length ? ['', ...notes] : [])].join('\n');
}
