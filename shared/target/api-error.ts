import type { TargetApiError } from './outcome.js';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => value !== null && typeof value === 'object' && !Array.isArray(value);
const stringOrNull = (value: unknown): string | null => (typeof value === 'string' && value.length > 0 ? value : null);

/** Reads an `{message, statusCode, apiErrorCode?, rsCode?}` object; null when `value` is not one. */
export function readApiError(value: unknown, fallbackStatus: number): TargetApiError | null {
  if (!isObject(value)) return null;
  const message = stringOrNull(value.message);
  const statusCode = typeof value.statusCode === 'number' ? value.statusCode : fallbackStatus;
  if (message === null && typeof value.statusCode !== 'number') return null;
  return {
    message: message ?? `HTTP ${statusCode}`,
    statusCode,
    apiErrorCode: stringOrNull(value.apiErrorCode),
    rsCode: stringOrNull(value.rsCode),
  };
}

export function parseJson(body: string): unknown {
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

/** The error of a non-2xx REST response: the API's body when it has one, else a generic one. */
export function restError(status: number, body: string): TargetApiError {
  const parsed = parseJson(body);
  return (
    readApiError(parsed, status) ?? {
      // A proxy's plain-text or HTML page: keep a short one, on one line, so it reads in logs and platform UIs.
      message:
        body.length > 0 && body.length <= 300 && parsed === undefined
          ? `HTTP ${status}: ${body.replace(/\s+/g, ' ').trim()}`
          : `HTTP ${status}`,
      statusCode: status,
      apiErrorCode: null,
      rsCode: null,
    }
  );
}

/**
 * The error of a GraphQL response, from either shape the API uses: `errors[i].extensions.apiError`, or a
 * top-level `extensions.apiError`. A plain GraphQL error (syntax, validation) has neither and counts as a 400.
 */
export function graphqlError(document: unknown, httpStatus: number): TargetApiError | null {
  if (!isObject(document)) return null;
  const fallback = Math.max(httpStatus, 400);
  const errors = Array.isArray(document.errors) ? document.errors : [];
  for (const error of errors) {
    if (isObject(error) && isObject(error.extensions)) {
      const apiError = readApiError(error.extensions.apiError, fallback);
      if (apiError) return apiError;
    }
  }
  if (isObject(document.extensions)) {
    const apiError = readApiError(document.extensions.apiError, fallback);
    if (apiError) return apiError;
  }
  const first = errors.find(isObject);
  if (first) return { message: stringOrNull(first.message) ?? 'GraphQL error', statusCode: fallback, apiErrorCode: null, rsCode: null };
  return null;
}

/** Event ids from a UserEventResult-shaped object, read leniently. */
export function eventIdsOf(result: unknown): string[] {
  if (!isObject(result) || !Array.isArray(result.events)) return [];
  return result.events.flatMap((event) => (isObject(event) && typeof event.id === 'string' ? [event.id] : []));
}
