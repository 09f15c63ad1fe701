import { InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import { InvalidInputError } from '../shared/errors.js';
import { issuesOf } from '../shared/validation.js';

/** Exit codes every command uses: 0 success, 1 failure, 2 bad usage, 78 a setting the target refuses (sysexits' EX_CONFIG). */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** Restarting cannot help (e.g. the target refuses the API key): a supervisor can stop retrying on it. */
export const EXIT_CONFIG = 78;

/** A usage problem: exits 2 with a message naming the option. */
export class UsageError extends InvalidInputError {}

/** Validates parsed options with zod; a failure names each option (`--tenant: must not be empty`). */
export function parseOptions<T extends z.ZodType>(schema: T, value: unknown, optionName: (field: string) => string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new UsageError(issuesOf(result.error).map((issue) => ({ field: optionName(issue.field), reason: issue.reason })));
}

/** Commander argument parser for a whole number within bounds. */
export function integerOption(min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new InvalidArgumentError(`expected a whole number, got ${JSON.stringify(value)}`);
    const n = Number(value);
    if (n < min || n > max) throw new InvalidArgumentError(`expected ${min} to ${max}, got ${n}`);
    return n;
  };
}

/** Commander argument parser for one of a fixed set of words. */
export function choiceOption<T extends string>(choices: readonly T[]) {
  return (value: string): T => {
    if ((choices as readonly string[]).includes(value)) return value as T;
    throw new InvalidArgumentError(`expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`);
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}
