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
