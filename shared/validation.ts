import type { z } from 'zod';
import { type FieldIssue, InvalidInputError } from './errors.js';

/** Renders a zod path as `events[0].fields.name`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(root)' : out;
}

export function issuesOf(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({ field: formatPath(issue.path), reason: issue.message }));
}

/** Parses `value` or throws an InvalidInputError that names each bad field. */
export function parseInput<T extends z.ZodType>(schema: T, value: unknown, context?: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new InvalidInputError(issuesOf(result.error), context);
}
