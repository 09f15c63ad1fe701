import { createHash } from 'node:crypto';

/** Why a candidate is not a usable key as it stands. */
export type KeyFaultReason = 'missing' | 'not_a_string' | 'empty' | 'bad_characters' | 'too_short' | 'too_long';

export type KeyCheck = { readonly valid: true; readonly key: string } | { readonly valid: false; readonly reason: KeyFaultReason };

/**
 * A target's idempotency-key rules. Connectors never see these directly: they pass a profile to `decideKey`,
 * so a new target only needs a new profile.
 */
export interface TargetKeyProfile {
  readonly name: string;
  /** The rule in words, for help texts and error messages. */
  readonly rule: string;
  readonly minLength: number;
  readonly maxLength: number;
  /** Matches a whole string made only of allowed characters. Plain ASCII classes: no folding, no look-alikes. */
  readonly allowedCharacters: RegExp;
  /** Keys are unique only within this scope. */
  readonly scope: 'tenant';
  /** How long the target remembers a key. */
  readonly retentionMs: number;
  /** Where the key travels: a JSON body field or an HTTP header, and under which name. */
  readonly carrier: { readonly kind: 'body-field' | 'header'; readonly name: string };
  /** Prefix of keys derived by the hash policy, so operators can tell them from source ids. */
  readonly derivedKeyPrefix: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** SaaSquatch user events: 8–64 of `A-Z a-z 0-9 - _ .`, per tenant, kept 24 h, sent as the body field `idempotencyKey`. */
export const saasquatchKeyProfile: TargetKeyProfile = {
  name: 'saasquatch',
  rule: '8 to 64 characters of A-Z a-z 0-9 - _ .',
  minLength: 8,
  maxLength: 64,
  allowedCharacters: /^[A-Za-z0-9._-]*$/,
  scope: 'tenant',
  retentionMs: DAY_MS,
  carrier: { kind: 'body-field', name: 'idempotencyKey' },
  derivedKeyPrefix: 'oncekit-sha256-',
};

/** The IETF `Idempotency-Key` header style (Stripe, Salesbricks): 1–255 visible ASCII characters but `"` and `\`. */
export const idempotencyKeyHeaderProfile: TargetKeyProfile = {
  name: 'idempotency-key-header',
  rule: '1 to 255 visible ASCII characters, without " or \\',
  minLength: 1,
  maxLength: 255,
  allowedCharacters: /^[\x21\x23-\x5B\x5D-\x7E]*$/,
  scope: 'tenant',
  retentionMs: DAY_MS,
  carrier: { kind: 'header', name: 'Idempotency-Key' },
  derivedKeyPrefix: 'oncekit-sha256-',
};

export const keyProfiles = {
  saasquatch: saasquatchKeyProfile,
  'idempotency-key-header': idempotencyKeyHeaderProfile,
} as const satisfies Record<string, TargetKeyProfile>;

export type KeyProfileName = keyof typeof keyProfiles;

/** Checks a candidate exactly as given: it is never trimmed, case-folded or normalised. */
export function checkKey(candidate: unknown, profile: TargetKeyProfile = saasquatchKeyProfile): KeyCheck {
  if (candidate === undefined || candidate === null) return { valid: false, reason: 'missing' };
  if (typeof candidate !== 'string') return { valid: false, reason: 'not_a_string' };
  if (candidate.length === 0) return { valid: false, reason: 'empty' };
  if (!profile.allowedCharacters.test(candidate)) return { valid: false, reason: 'bad_characters' };
  if (candidate.length < profile.minLength) return { valid: false, reason: 'too_short' };
  if (candidate.length > profile.maxLength) return { valid: false, reason: 'too_long' };
  return { valid: true, key: candidate };
}

/**
 * The deterministic key of the hash policy: the prefix plus the unpadded base64url SHA-256 of the candidate's UTF-8
 * bytes (43 characters of A-Z a-z 0-9 - _). Equal candidates give equal keys, so retries still dedup.
 */
export function deriveKey(candidate: string, profile: TargetKeyProfile = saasquatchKeyProfile): string {
  const digest = createHash('sha256').update(candidate, 'utf8').digest('base64url');
  return `${profile.derivedKeyPrefix}${digest}`;
}
