import { InvalidInputError } from './errors.js';

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `1500ms`, `30s`, `90m`, `20h`, `1d` or bare milliseconds (`1500`) into whole milliseconds. */
export function parseDuration(text: string, field: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*$/.exec(text);
  const unit = UNITS[match?.[2] ?? 'ms'];
  if (!match || unit === undefined) {
    throw new InvalidInputError([{ field, reason: `expected a duration such as 500ms, 30s, 90m, 20h or 1d, got ${JSON.stringify(text)}` }]);
  }
  return Math.round(Number(match[1]) * unit);
}

/** A duration for people: the largest unit that divides it, e.g. `20 h`, `90 s`, `1500 ms`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['min', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  }
  if (ms >= 1000) return `${(ms / 1000).toFixed(1)} s`;
  return `${ms} ms`;
}
