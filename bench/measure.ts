/** One figure of a benchmark; `baseline` names the figure it is compared with in the same run. */
export interface BenchRow {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly baseline?: string;
  /** value ÷ baseline's value. */
  readonly ratio?: number;
  readonly note?: string;
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

export function formatRows(title: string, rows: readonly BenchRow[]): string {
  const fmt = (n: number): string => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(2));
  const lines = [`\n## ${title}`, '', '| figure | value | vs baseline | ratio |', '|---|---:|---|---:|'];
  for (const row of rows) {
    lines.push(
      `| ${row.name} | ${fmt(row.value)} ${row.unit} | ${row.baseline ?? ''} | ${row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}×`} |`,
    );
  }
  const notes = rows.filter((row) => row.note).map((row) => `- ${row.name}: ${row.note}`);
  return [...lines, ...(notes.length ? ['', ...notes] : [])].join('\n');
}
