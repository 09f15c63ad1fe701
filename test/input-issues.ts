import { type FieldIssue, InvalidInputError } from '../shared/errors.js';

/** Runs `run` and returns the field issues of the InvalidInputError it throws; fails the test when it throws none. */
export function inputIssuesOf(run: () => unknown): FieldIssue[] {
  try {
    run();
  } catch (error) {
    if (error instanceof InvalidInputError) return [...error.issues];
    throw error;
  }
  throw new Error('expected an InvalidInputError');
}
