import { SingleBar } from 'cli-progress';

/** How far back the rate behind an ETA looks: long enough to smooth out batches, short enough to follow a slowdown. */
const RATE_WINDOW_MS = 15_000;
/** At most one rate sample this often, so the window holds a bounded number of them. */
const SAMPLE_EVERY_MS = 250;

/**
 * Time left from the recent rate of progress: `done` items per millisecond over the last window, or null while that
 * rate is unknown (too little time seen, or nothing done in it).
 */
export class EtaEstimator {
  readonly #samples: { readonly at: number; readonly done: number }[] = [];

  sample(at: number, done: number): void {
    const last = this.#samples.at(-1);
    if (last !== undefined && at - last.at < SAMPLE_EVERY_MS && done >= last.done) return;
    this.#samples.push({ at, done });
    while (this.#samples.length > 2 && at - (this.#samples[1]?.at ?? at) >= RATE_WINDOW_MS) this.#samples.shift();
  }

  /** Milliseconds until `total` at the recent rate, from `done` now. */
  remainingMs(done: number, total: number): number | null {
    if (done >= total) return 0;
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (first === undefined || last === undefined || last.at - first.at < 1000 || last.done <= first.done) return null;
    const perMs = (last.done - first.done) / (last.at - first.at);
    return Math.round((total - done) / perMs);
  }
}

/** A duration for a progress line: `45s`, `3m05s`, `2h07m`; `--` when unknown. */
export function formatRemaining(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms) || ms < 0) return '--';
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, '0')}s`;
  return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, '0')}m`;
}

export interface ProgressUpdate {
  /** Items done with (settled rows, settled events). */
  readonly done: number;
  readonly total: number;
  /** False while the total is an estimate: shown as `~total`. */
  readonly totalExact?: boolean;
  /** Counts after the main ones, e.g. `3 invalid, 10 skipped`. */
  readonly detail?: string;
}

export interface ProgressBar {
  update(progress: ProgressUpdate): void;
  stop(): void;
}

/**
 * A progress bar on stderr that follows items done with, its ETA from their recent rate; `label` names what is going
 * on and `unit` what is counted (`rows settled`). Callers create one only for a terminal (stderr is a TTY, no --json).
 */
export function createProgressBar(label: string, unit: string, now: () => number = Date.now): ProgressBar {
  const bar = new SingleBar(
    {
      format: `${label} [{bar}] {percentage}% | {done}/{totalText} ${unit}{detail} | ETA {remaining}`,
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
    },
    undefined,
  );
  const eta = new EtaEstimator();
  let started = false;
  return {
    update: ({ done, total, totalExact = true, detail }) => {
      eta.sample(now(), done);
      const payload = {
        done,
        totalText: totalExact ? String(total) : `~${total}`,
        detail: detail ? `, ${detail}` : '',
        remaining: formatRemaining(eta.remainingMs(done, total)),
      };
      if (!started) {
        bar.start(Math.max(1, total), done, payload);
        started = true;
      } else {
        bar.setTotal(Math.max(1, total));
        bar.update(done, payload);
      }
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
