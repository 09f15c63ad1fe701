import { OncekitError } from '../../shared/errors.js';

/**
 * Salesforce record ids (reference: shared/reference/salesforce.md §4).
 * - 15 characters: case-sensitive base 62.
 * - 18 characters: the same id plus a 3-character checksum of the case of the first 15, so the id survives
 *   case-insensitive systems (spreadsheets, some databases, email).
 * Every id the connector uses is normalised to 18 characters in its proper case; one whose checksum fails is refused,
 * never repaired, because a "repaired" id can name a different record.
 */

/** The record types the relay resolves identities from, by their key prefix (the first three characters). */
export const KEY_PREFIXES = { '00Q': 'Lead', '003': 'Contact', '001': 'Account' } as const;

export type SupportedRecordType = (typeof KEY_PREFIXES)[keyof typeof KEY_PREFIXES];
export const supportedRecordTypes = ['Lead', 'Contact', 'Account'] as const satisfies readonly SupportedRecordType[];

/** Why a string is not a usable Salesforce id. */
export type SalesforceIdFault = 'not_a_string' | 'length' | 'characters' | 'checksum';

export class InvalidSalesforceIdError extends OncekitError {
  readonly fault: SalesforceIdFault;
  constructor(fault: SalesforceIdFault, message: string) {
    super('invalid_salesforce_id', message);
    this.fault = fault;
  }
}

/** The id is well-formed, but its key prefix names an object the relay does not resolve identities from. */
export class UnsupportedRecordTypeError extends OncekitError {
  readonly keyPrefix: string;
  constructor(keyPrefix: string) {
    super('unsupported_record_type', `${describePrefix(keyPrefix)}; supported: ${supportedPrefixList()}`);
    this.keyPrefix = keyPrefix;
  }
}

const SUFFIX_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';
const ID_CHARACTERS = /^[A-Za-z0-9]*$/;
const KNOWN_PREFIXES: Readonly<Record<string, string>> = {
  '005': 'User',
  '006': 'Opportunity',
  '00D': 'Organization',
  '500': 'Case',
  '04l': 'outbound-message notification',
};

function isUpper(character: string): boolean {
  return character >= 'A' && character <= 'Z';
}

/** The 3-character checksum of a 15-character id: one character per five, upper-case letters as bits, first = lowest. */
export function checksumSuffix(id15: string): string {
  if (id15.length !== 15)
    throw new InvalidSalesforceIdError('length', `a checksum needs the 15-character id, got ${id15.length} characters`);
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let position = 0; position < 5; position++) {
      if (isUpper(id15.charAt(chunk * 5 + position))) bits |= 1 << position;
    }
    suffix += SUFFIX_ALPHABET.charAt(bits);
  }
  return suffix;
}

export type SalesforceIdCheck =
  | { readonly ok: true; readonly id18: string }
  | { readonly ok: false; readonly fault: SalesforceIdFault; readonly reason: string };

/**
 * Checks an id and gives its 18-character form in proper case:
 * - 15 characters: the checksum is appended;
 * - 18 characters in mixed case: the checksum must match the case as given;
 * - 18 characters case-folded (no lower-case or no upper-case letters in the first 15): the case is restored from the
 *   checksum, which is what case-safe ids are for; a checksum that contradicts the id (a digit marked upper-case, a
 *   character outside the checksum alphabet) is refused.
 */
export function checkSalesforceId(value: unknown): SalesforceIdCheck {
  if (typeof value !== 'string')
    return fail('not_a_string', `expected a Salesforce id (a string), got ${value === null ? 'null' : typeof value}`);
  if (!ID_CHARACTERS.test(value)) return fail('characters', 'a Salesforce id has only the characters A-Z a-z 0-9');
  if (value.length === 15) return { ok: true, id18: value + checksumSuffix(value) };
  if (value.length !== 18) return fail('length', `a Salesforce id has 15 or 18 characters, got ${value.length}`);

  const body = value.slice(0, 15);
  const suffix = value.slice(15).toUpperCase();
  if (/[a-z]/.test(body) && /[A-Z]/.test(body)) {
    const expected = checksumSuffix(body);
    return expected === suffix ? { ok: true, id18: body + suffix } : checksumFailure(value);
  }
  const restored = restoreCase(body, suffix);
  return restored === null ? checksumFailure(value) : { ok: true, id18: restored + suffix };
}

/** Applies the case the checksum records; null when the checksum cannot describe this id. */
function restoreCase(foldedBody: string, suffix: string): string | null {
  let restored = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    const bits = SUFFIX_ALPHABET.indexOf(suffix.charAt(chunk));
    if (bits < 0) return null;
    for (let position = 0; position < 5; position++) {
      const character = foldedBody.charAt(chunk * 5 + position);
      const upper = (bits & (1 << position)) !== 0;
      const isLetter = /[A-Za-z]/.test(character);
      if (upper && !isLetter) return null;
      restored += isLetter ? (upper ? character.toUpperCase() : character.toLowerCase()) : character;
    }
  }
  return restored;
}

function checksumFailure(value: string): SalesforceIdCheck {
  // The id itself is not echoed: callers put the reason next to the field that held it.
  return fail('checksum', `the last 3 characters of this 18-character id do not match its first 15 (checksum ${value.slice(15)})`);
}

function fail(fault: SalesforceIdFault, reason: string): SalesforceIdCheck {
  return { ok: false, fault, reason };
}

/** The 18-character form of a 15- or 18-character id; throws InvalidSalesforceIdError. */
export function normalizeSalesforceId(value: unknown): string {
  const check = checkSalesforceId(value);
  if (check.ok) return check.id18;
  throw new InvalidSalesforceIdError(check.fault, check.reason);
}

/** The record type of a normalised id by its key prefix (case-sensitive: `00Q` is Lead, `00q` is not). */
export function recordTypeOf(id18: string): SupportedRecordType {
  const prefix = id18.slice(0, 3);
  if (Object.hasOwn(KEY_PREFIXES, prefix)) return KEY_PREFIXES[prefix as keyof typeof KEY_PREFIXES];
  throw new UnsupportedRecordTypeError(prefix);
}

/** The key prefix of a record type, e.g. `00Q` for Lead. */
export function keyPrefixOf(type: SupportedRecordType): string {
  for (const [prefix, name] of Object.entries(KEY_PREFIXES)) if (name === type) return prefix;
  throw new Error(`unreachable: no key prefix for ${type}`);
}

function describePrefix(prefix: string): string {
  const known = KNOWN_PREFIXES[prefix];
  return known ? `the id is a ${known} id (key prefix ${prefix}), which is not supported` : `the key prefix ${prefix} is not supported`;
}

function supportedPrefixList(): string {
  return Object.entries(KEY_PREFIXES)
    .map(([prefix, name]) => `${prefix} ${name}`)
    .join(', ');
}
