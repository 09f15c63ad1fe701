import parseHumanDuration from 'parse-duration';
import { InvalidInputError } from './errors.js';

/**
 * Parses a duration as people write it: `1500ms`, `30s`, `90m`, `20h`, `1d`, `1h30m`, `1h 30min`, or bare milliseconds
 * (`1500`), into whole milliseconds. Negative, empty or unreadable text is refused naming `field`.
 */
export function parseDuration(text: string, field: string): number {
  const ms = text.trim() === '' ? null : parseHumanDuration(text);
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) {
    throw new InvalidInputError([
      { field, reason: `expected a duration such as 500ms, 30s, 90m, 20h, 1h30m or 1d, got ${JSON.stringify(text)}` },
    ]);
  }
  return Math.round(ms);
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
