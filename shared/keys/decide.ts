import { OncekitError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { KeyCandidate, KeySource } from './candidates.js';
import { checkKey, deriveKey, type KeyFaultReason, saasquatchKeyProfile, type TargetKeyProfile } from './profiles.js';

/** What to do with a candidate that is not a valid key: `drop` is the documented default. */
export type InvalidKeyPolicy = 'drop' | 'hash' | 'reject';
export const invalidKeyPolicies = ['drop', 'hash', 'reject'] as const satisfies readonly InvalidKeyPolicy[];

export type KeyOutcome = 'kept' | 'dropped' | 'hashed' | 'rejected';

/** Every key decision is a plain value that callers log, store in the ledger and show to users. */
export interface KeyDecision {
  readonly source: KeySource;
  readonly candidate: unknown;
  readonly key: string | null;
  readonly decision: KeyOutcome;
  /** Why the candidate was not kept as it is; null when it was. */
  readonly reason: KeyFaultReason | null;
  /** A sentence for people, e.g. which selected field was empty. */
  readonly detail: string | null;
}

export interface DecideKeyOptions {
  readonly policy?: InvalidKeyPolicy;
  readonly profile?: TargetKeyProfile;
  /** Receives the one structured warning logged for a dropped candidate. */
  readonly logger?: Logger;
}

/** Thrown by callers that refuse an event whose key was rejected under the `reject` policy. */
export class KeyRejectedError extends OncekitError {
  readonly decision: KeyDecision;
  constructor(decision: KeyDecision, profile: TargetKeyProfile = saasquatchKeyProfile) {
    super('key_rejected', `idempotency key from ${decision.source} rejected (${decision.reason}): ${describeFault(decision, profile)}`);
    this.decision = decision;
  }
}

/** Decides the idempotency key for one event. The only place that applies the invalid-key policy. */
export function decideKey(candidate: KeyCandidate, options: DecideKeyOptions = {}): KeyDecision {
  const policy = options.policy ?? 'drop';
  const profile = options.profile ?? saasquatchKeyProfile;
  const value = candidate.value;

  if (candidate.fault) return refuse(candidate, candidate.fault.reason, candidate.fault.detail, policy, profile, options.logger);

  if (candidate.derive) {
    if (typeof value === 'string' && value.length > 0) return decision(candidate, deriveKey(value, profile), 'hashed', null, null);
    return refuse(candidate, 'missing', 'nothing to derive a key from', policy, profile, options.logger);
  }

  const check = checkKey(value, profile);
  if (check.valid) return decision(candidate, check.key, 'kept', null, null);

  // Only a real, non-empty string can be hashed: hashing "" or a missing value would give every such event one key.
  if (policy === 'hash' && typeof value === 'string' && value.length > 0) {
    return decision(candidate, deriveKey(value, profile), 'hashed', check.reason, null);
  }
  return refuse(candidate, check.reason, null, policy, profile, options.logger);
}

// A plain literal: object spread here is a slow path in V8 (about 60 times slower on this hot path).
function decision(
  candidate: KeyCandidate,
  key: string | null,
  outcome: KeyOutcome,
  reason: KeyFaultReason | null,
  detail: string | null,
): KeyDecision {
  return { source: candidate.source, candidate: candidate.value, key, decision: outcome, reason, detail };
}

function refuse(
  candidate: KeyCandidate,
  reason: KeyFaultReason,
  detail: string | null,
  policy: InvalidKeyPolicy,
  profile: TargetKeyProfile,
  logger: Logger = silentLogger,
): KeyDecision {
  if (policy === 'reject') return decision(candidate, null, 'rejected', reason, detail);
  // The candidate itself is not logged: custom ids can carry personal data. Its length is enough to debug.
  logger.warn(
    {
      event: 'idempotency_key_dropped',
      source: candidate.source,
      reason,
      candidateLength: typeof candidate.value === 'string' ? candidate.value.length : null,
      ...(detail ? { detail } : {}),
      rule: profile.rule,
    },
    `idempotency key from ${candidate.source} dropped (${reason}); the event is sent without one`,
  );
  return decision(candidate, null, 'dropped', reason, detail);
}

/** A one-line explanation of why a decision has no key as given, for errors and UIs. */
export function describeFault(decision: KeyDecision, profile: TargetKeyProfile = saasquatchKeyProfile): string {
  if (decision.detail) return decision.detail;
  const length = typeof decision.candidate === 'string' ? decision.candidate.length : 0;
  const characters = `${length} character${length === 1 ? '' : 's'}`;
  switch (decision.reason) {
    case null:
      return 'valid';
    case 'missing':
      return 'no candidate was given';
    case 'not_a_string':
      return `expected a string, got ${decision.candidate === null ? 'null' : typeof decision.candidate}`;
    case 'empty':
      return 'the candidate is an empty string';
    case 'bad_characters':
      return `it contains characters outside ${profile.rule}`;
    case 'too_short':
      return `it has ${characters}; the minimum is ${profile.minLength}`;
    case 'too_long':
      return `it has ${characters}; the maximum is ${profile.maxLength}`;
  }
}
