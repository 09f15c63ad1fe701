import { InvalidInputError } from './errors.js';

/** Injectable time: key windows, leases, TTLs and retry horizons all read it, so tests never sleep. */
export interface Clock {
  now(): number;
}

/** A clock that only moves when told to, so tests can cross a 24 h window without sleeping. */
export interface ManualClock extends Clock {
  advance(ms: number): void;
  set(ms: number): void;
}

export const systemClock: Clock = { now: () => Date.now() };

/** 2025-01-01T00:00:00Z: a fixed default keeps event dates and ids in tests reproducible. */
export const MANUAL_CLOCK_START_MS = Date.UTC(2025, 0, 1);

function checkMillis(value: number, field: string, allowNegative: boolean): void {
  if (!Number.isFinite(value) || (!allowNegative && value < 0)) {
    throw new InvalidInputError([{ field, reason: `expected ${allowNegative ? 'finite' : 'non-negative'} milliseconds, got ${value}` }]);
  }
}

export function manualClock(startMs: number = MANUAL_CLOCK_START_MS): ManualClock {
  checkMillis(startMs, 'startMs', true);
  let current = startMs;
  return {
    now: () => current,
    advance(ms: number): void {
      // Time never runs backwards through advance(); set() is the explicit way to jump anywhere.
      checkMillis(ms, 'advanceMs', false);
      current += ms;
    },
    set(ms: number): void {
      checkMillis(ms, 'ms', true);
      current = ms;
    },
  };
}
