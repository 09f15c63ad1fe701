/** Base of every error oncekit throws on purpose; `code` is stable and machine-readable. */
export class OncekitError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export interface FieldIssue {
  /** Dotted path of the offending field, e.g. `events[0].key`. */
  readonly field: string;
  readonly reason: string;
}

/** Bad input from a caller: names every field that failed and why. */
export class InvalidInputError extends OncekitError {
  readonly issues: readonly FieldIssue[];
  constructor(issues: readonly FieldIssue[], context?: string) {
    const list = issues.map((issue) => `${issue.field}: ${issue.reason}`).join('; ');
    super('invalid_input', context ? `${context}: ${list}` : list);
    this.issues = issues;
  }
}

/**
 * The store's state is gone under a running process: a Redis wiped by a restart without persistence, a FLUSHALL, or a
 * failover to an empty replica. Nothing is done on the empty state; callers answer 503 and an operator must look.
 */
export class StateLostError extends OncekitError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('state_lost', message, options);
  }
}

/** The message of anything thrown: an Error's message, else its text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
