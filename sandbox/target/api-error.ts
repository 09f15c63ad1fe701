import { type FieldIssue, InvalidInputError } from '../../shared/errors.js';
import type { TargetApiError } from '../../shared/target/outcome.js';

/** The API's error body (spec `Error` / `VariablesError`); `rsCode` is null where the API documents none. */
export interface SandboxApiError extends TargetApiError {
  readonly validationErrors?: readonly string[];
}

const error = (statusCode: number, apiErrorCode: string, rsCode: string | null, message: string): SandboxApiError => ({
  statusCode,
  message,
  apiErrorCode,
  rsCode,
});

/** The API's codes for "user id must not be empty" and "account id must not be empty". */
export const RS_EMPTY_ID = { userId: 'RS043', accountId: 'RS044' } as const;

export const BASIC_AUTH_HINT = 'send the API key as the Basic-auth password with an empty user name';

export const apiErrors = {
  missingCredentials: (): SandboxApiError => error(401, 'UNAUTHORIZED', 'RS045', `Missing authorization credentials: ${BASIC_AUTH_HINT}`),

  /** Wrong key, unknown tenant or a malformed header; `reason` must never contain the key. */
  invalidCredentials: (reason: string): SandboxApiError => error(401, 'UNAUTHORIZED', 'RS045', `Invalid credentials: ${reason}`),

  validation: (issues: readonly FieldIssue[], rsCode: string | null = null): SandboxApiError => ({
    // InvalidInputError owns the "field: reason; field: reason" wording.
    ...error(400, 'VALIDATION_FAILED', rsCode, new InvalidInputError(issues).message),
    validationErrors: issues.map((issue) => `${issue.field}: ${issue.reason}`),
  }),

  invalidJson: (detail: string): SandboxApiError =>
    error(
      400,
      'BAD_REQUEST',
      'RS046',
      `Invalid JSON in the request body (${detail}); send a JSON object with Content-Type: application/json`,
    ),

  wrongContentType: (got: string | undefined): SandboxApiError =>
    error(
      400,
      'BAD_REQUEST',
      'RS046',
      `Wrong content type ${got === undefined ? '(none)' : JSON.stringify(got.slice(0, 100))}; expected application/json`,
    ),

  duplicateKey: (key: string, expiresAt: number): SandboxApiError =>
    error(
      409,
      'IDEMPOTENCY_KEY_CONFLICT',
      null,
      `An event input with idempotency key "${key}" was already processed for this tenant; the key is remembered until ${new Date(expiresAt).toISOString()}`,
    ),

  userNotFound: (accountId: string, userId: string): SandboxApiError =>
    error(404, 'USER_NOT_FOUND', 'RS042', `No user found with id ${JSON.stringify(userId)} in account ${JSON.stringify(accountId)}`),

  routeNotFound: (method: string, path: string): SandboxApiError =>
    error(404, 'NOT_FOUND', null, `No route for ${method} ${path.length > 200 ? `${path.slice(0, 200)}…` : path}`),

  methodNotAllowed: (method: string, allowed: string): SandboxApiError =>
    error(405, 'METHOD_NOT_ALLOWED', null, `${method} is not allowed here; use ${allowed}`),

  badPath: (reason: string): SandboxApiError => error(400, 'BAD_REQUEST', null, `Bad URL path: ${reason}`),

  payloadTooLarge: (limitBytes: number): SandboxApiError =>
    error(413, 'PAYLOAD_TOO_LARGE', null, `The request body is larger than ${limitBytes} bytes`),

  conflict: (message: string): SandboxApiError => error(409, 'CONFLICT', null, message),

  internal: (): SandboxApiError => error(500, 'INTERNAL_SERVER_ERROR', null, 'Sandbox internal error (see the sandbox log)'),
};
