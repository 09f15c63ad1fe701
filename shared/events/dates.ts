import { InvalidInputError } from '../errors.js';

/** Accepts epoch milliseconds, a Date, an ISO-8601 string, or a numeric string, and gives epoch milliseconds. */
export function toEpochMillis(value: unknown, field = 'dateTriggered'): number {
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= 0) return value;
    throw new InvalidInputError([{ field, reason: `expected whole epoch milliseconds ≥ 0, got ${value}` }]);
  }
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new InvalidInputError([{ field, reason: 'invalid Date' }]);
    return ms;
  }
  if (typeof value === 'string') {
    const text = value.trim();
    if (/^\d+$/.test(text)) return toEpochMillis(Number(text), field);
    // Only ISO-8601 forms: Date.parse also takes locale formats whose meaning depends on the machine.
    if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
      const withZone = /T|\s/.test(text) && !/(Z|[+-]\d{2}:?\d{2})$/.test(text) ? `${text.replace(' ', 'T')}Z` : text.replace(' ', 'T');
      const ms = Date.parse(withZone);
      if (!Number.isNaN(ms)) return ms;
    }
    throw new InvalidInputError([{ field, reason: `expected an ISO-8601 date or epoch milliseconds, got ${JSON.stringify(value)}` }]);
  }
  throw new InvalidInputError([
    { field, reason: `expected an ISO-8601 date or epoch milliseconds, got ${value === null ? 'null' : typeof value}` },
  ]);
}
