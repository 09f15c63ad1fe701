import { loadavg } from 'node:os';

/** The figures one measurement of one subject produced, e.g. `{ perSecond, p99Ms }`. */
export type Figures = Readonly<Record<string, number>>;

/** Every repetition's figures per subject, in the order measured. */
export type Samples<K extends string> = Record<K, Figures[]>;

export interface InterleaveOptions {
  readonly repetitions: number;
  /** Runs each subject once, untimed, before the first repetition (JIT, connections, page cache). Default true. */
  readonly warmUp?: boolean;
}

/**
 * Measures each subject `repetitions` times, interleaved (A B C, B C A, C A B, …: each repetition rotates which goes
 * first, so neither a warming machine nor a filling store favours one), after one untimed warm-up round. `measure`
 * gets the repetition number (-1 for the warm-up) so each run can use a fresh tenant.
 */
export async function interleave<K extends string>(
  subjects: readonly K[],
  measure: (subject: K, repetition: number) => Promise<Figures>,
  options: InterleaveOptions,
): Promise<Samples<K>> {
  const samples = Object.fromEntries(subjects.map((subject) => [subject, [] as Figures[]])) as Samples<K>;
  if (options.warmUp ?? true) for (const subject of subjects) await measure(subject, -1);
  for (let repetition = 0; repetition < options.repetitions; repetition += 1) {
    for (let i = 0; i < subjects.length; i += 1) {
      const subject = subjects[(i + repetition) % subjects.length] as K;
      samples[subject].push(await measure(subject, repetition));
    }
  }
  return samples;
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

export function spread(values: readonly number[]): Spread {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  if (sorted.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, count: 0 };
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted.at(-1) as number, count: sorted.length };
}

/** One figure of one subject across its repetitions. */
export function figure<K extends string>(samples: Samples<K>, subject: K, name: string): Spread {
  return spread(samples[subject].map((figures) => figures[name] ?? Number.NaN));
}

/** The per-repetition ratios of two subjects' figure (paired: measured back to back in the same repetition). */
export function pairedRatios<K extends string>(samples: Samples<K>, subject: K, baseline: K, name: string, baselineName = name): Spread {
  const ratios = samples[subject].map((figures, i) => (figures[name] ?? Number.NaN) / (samples[baseline][i]?.[baselineName] ?? Number.NaN));
  return spread(ratios);
}

/** The machine's load average now, as printed beside every table (the cores are shared). */
export function loadAverage(): string {
  const [one, five, fifteen] = loadavg().map((value) => value.toFixed(2));
  return `${one} / ${five} / ${fifteen}`;
}
