/**
 * How long and how often each benchmark measures, and where it keeps state. `--quick` (`npm run bench -- --quick`)
 * is a one-minute smoke run; the full run stays under fifteen minutes. Every figure is measured beside its baseline,
 * interleaved (A B A B …), `repetitions` times after a warm-up round.
 */
const flags = new Set(process.argv.slice(2).filter((arg) => arg.startsWith('--')));
export const quick = flags.has('--quick');

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

/** Length of each timed load, in seconds (ONCEKIT_BENCH_SECONDS). */
export const loadSeconds = positive('ONCEKIT_BENCH_SECONDS', quick ? 1 : 5);
/** Length of the untimed warm-up before each load, in seconds. */
export const warmUpSeconds = quick ? 0.5 : 1;
/** Interleaved repetitions of every figure and its baseline (ONCEKIT_BENCH_REPETITIONS, at least 3). */
export const repetitions = Math.max(3, Math.floor(positive('ONCEKIT_BENCH_REPETITIONS', 3)));
/** Length of each in-process rate measurement (inbox, keys, client), in milliseconds. */
export const rateMs = quick ? 400 : 1500;

/**
 * The Redis the benchmarks write to (ONCEKIT_BENCH_REDIS_URL). Its own database by default, never database 0, so a
 * benchmark never shares a keyspace with an application or the tests.
 */
export const REDIS_URL = process.env.ONCEKIT_BENCH_REDIS_URL || 'redis://127.0.0.1:6379/14';

/** The benchmarks a `--quick` run includes; a full run includes them all. */
export const QUICK_BENCHES: readonly string[] = ['keys', 'inbox', 'relay'];
