import { defineInputField } from 'zapier-platform-core';
import { z as zod } from 'zod';
import { InvalidInputError } from '../../shared/errors.js';
import {
  decideKey,
  fieldsCandidate,
  type InvalidKeyPolicy,
  invalidKeyPolicies,
  type KeyCandidate,
  type KeyDecision,
  KeyRejectedError,
  saasquatchKeyProfile,
} from '../../shared/keys/index.js';
import type { Logger } from '../../shared/log.js';

/** The inputs of one event that `idempotencyKeyFrom` may name, as Zapier gave them. */
export interface EventKeyInputs {
  readonly userId?: unknown;
  readonly accountId?: unknown;
  readonly eventKey?: unknown;
  readonly dateTriggered?: unknown;
  readonly fields?: unknown;
  readonly idempotencyKey?: unknown;
}

const DERIVABLE_FIELDS = ['userId', 'accountId', 'eventKey', 'dateTriggered', 'fields'] as const;
const EVENT_FIELD_PREFIX = 'fields.';

export const idempotencyKeyHelp =
  `Optional. A stable id of this event from the trigger, e.g. an order or message id, so that replays and retries of this step ` +
  `record the event once: SaaSquatch ignores a key it saw in the last 24 hours. Must be ${saasquatchKeyProfile.rule}. ` +
  'A value that breaks the rule is handled by the Invalid Key Policy.';

export const idempotencyKeyFromHelp =
  `Optional. Instead of an Idempotency Key, name the inputs that identify the event, one per line: ${DERIVABLE_FIELDS.join(', ')}, ` +
  `or one entry of Event Fields as \`fields.<name>\` (e.g. \`fields.order_id\`). The key is then derived from their values: ` +
  'the same values always give the same key, different values a different one. Every named input must have a value. ' +
  'Takes precedence over Idempotency Key.';

export const invalidKeyPolicyHelp =
  `What to do when the key is not ${saasquatchKeyProfile.rule}, or a field named in Derive Idempotency Key From is empty: ` +
  '**drop** sends the event without a key (the default), **hash** sends a key derived from the given one, ' +
  '**reject** fails the step without sending the event.';

export const invalidKeyPolicyChoices = [
  { value: 'drop', sample: 'drop', label: 'Drop the key and send the event without one' },
  { value: 'hash', sample: 'hash', label: 'Send a key derived from the invalid one' },
  { value: 'reject', sample: 'reject', label: 'Fail the step without sending the event' },
] as const satisfies readonly { value: InvalidKeyPolicy; sample: string; label: string }[];

/** The Derive Idempotency Key From input; `note` adds what differs per action. */
export function idempotencyKeyFromInputField(note?: string) {
  return defineInputField({
    key: 'idempotencyKeyFrom',
    label: 'Derive Idempotency Key From',
    type: 'string',
    list: true,
    required: false,
    helpText: note ? `${idempotencyKeyFromHelp} ${note}` : idempotencyKeyFromHelp,
  });
}

/** The Invalid Key Policy input, the same in both actions. */
export const invalidKeyPolicyInputField = defineInputField({
  key: 'invalidKeyPolicy',
  label: 'Invalid Key Policy',
  type: 'string',
  required: false,
  default: 'drop',
  choices: [...invalidKeyPolicyChoices],
  helpText: invalidKeyPolicyHelp,
});

const policySchema = zod.enum(invalidKeyPolicies, { error: `expected one of ${invalidKeyPolicies.join(', ')}` });

/** The Invalid Key Policy input: drop when unset (the editor sends an unset field as ""). */
export function readInvalidKeyPolicy(value: unknown): InvalidKeyPolicy {
  if (value === undefined || value === null || value === '') return 'drop';
  const parsed = policySchema.safeParse(value);
  if (!parsed.success) throw new InvalidInputError([{ field: 'invalidKeyPolicy', reason: parsed.error.issues[0]?.message ?? 'invalid' }]);
  return parsed.data;
}

/** The Derive Idempotency Key From input: a list, or one text of comma-separated names when a single value was mapped. */
export function readKeyFromFields(value: unknown): string[] {
  const items = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  const names = items.flatMap((item) => (typeof item === 'string' ? item.split(',') : [String(item)])).map((name) => name.trim());
  const chosen = names.filter((name) => name.length > 0);
  // An unknown name is a setup mistake, not a data problem: the invalid-key policy must not quietly drop the key for it.
  const unknown = chosen.filter((name) => !isDerivableField(name));
  if (unknown.length > 0) {
    throw new InvalidInputError([
      {
        field: 'idempotencyKeyFrom',
        reason: `unknown input ${unknown.map((name) => `"${name}"`).join(', ')}; use ${DERIVABLE_FIELDS.join(', ')} or fields.<name>`,
      },
    ]);
  }
  return chosen;
}

function isDerivableField(name: string): boolean {
  return (
    (DERIVABLE_FIELDS as readonly string[]).includes(name) ||
    (name.startsWith(EVENT_FIELD_PREFIX) && name.length > EVENT_FIELD_PREFIX.length)
  );
}

/** The values `idempotencyKeyFrom` can pick from: the event's inputs, plus each Event Fields entry as `fields.<name>`. */
function keyRecord(inputs: EventKeyInputs): Record<string, unknown> {
  const record: Record<string, unknown> = {};
  for (const name of DERIVABLE_FIELDS) record[name] = inputs[name];
  if (inputs.fields !== null && typeof inputs.fields === 'object' && !Array.isArray(inputs.fields)) {
    for (const [name, value] of Object.entries(inputs.fields)) record[`${EVENT_FIELD_PREFIX}${name}`] = value;
  }
  record.idempotencyKey = inputs.idempotencyKey;
  return record;
}

export interface EventKeyOptions {
  readonly fromFields: readonly string[];
  readonly policy: InvalidKeyPolicy;
  readonly logger: Logger;
}

/** The key candidate: the `idempotencyKey` input, or a key derived from the fields listed in `idempotencyKeyFrom`. */
export function zapierCandidate(
  inputData: Readonly<Record<string, unknown>>,
  options: { readonly keyField?: string; readonly fromFields?: readonly string[] } = {},
): KeyCandidate {
  if (options.fromFields && options.fromFields.length > 0) return fieldsCandidate('zapier', inputData, options.fromFields);
  const value = inputData[options.keyField ?? 'idempotencyKey'];
  // Zapier's editor sends an unmapped optional field as "" (cleanInputData is not applied everywhere).
  return { source: 'zapier', value: value === '' ? undefined : value };
}

/**
 * The key decision for one event through the shared rules, or null when the step was given neither a key nor fields
 * to derive one (no key is sent then, whatever the policy: the policy is about invalid keys, not absent ones).
 * Throws KeyRejectedError under the `reject` policy.
 */
export function decideEventKey(inputs: EventKeyInputs, options: EventKeyOptions): KeyDecision | null {
  const candidate = zapierCandidate(keyRecord(inputs), { fromFields: options.fromFields });
  const noCandidate =
    (candidate.value === undefined || candidate.value === null) && candidate.fault === undefined && candidate.derive !== true;
  if (noCandidate) return null;
  const decision = decideKey(candidate, { policy: options.policy, logger: options.logger });
  if (decision.decision === 'rejected') throw new KeyRejectedError(decision);
  return decision;
}
