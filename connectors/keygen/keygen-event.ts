import { z } from 'zod';
import { InvalidInputError } from '../../shared/errors.js';
import { buildUserEventInput, type UserEventInput } from '../../shared/events/index.js';
import { type DecideKeyOptions, decideKey, type KeyCandidate, type KeyDecision, KeyRejectedError } from '../../shared/keys/index.js';
import { parseInput } from '../../shared/validation.js';

/** Keygen's webhook-event resource, as posted to the endpoint: `payload` is the event's resource as JSON text. */
const webhookEventSchema = z.object(
  {
    data: z.object({
      id: z.string({ error: 'required: the webhook event id' }).min(1),
      type: z.literal('webhook-events', { error: 'expected "webhook-events"' }),
      meta: z.object({ idempotencyToken: z.string({ error: 'required: Keygen sends one with every webhook event' }).min(1) }),
      attributes: z.object({
        event: z.string({ error: 'required: the event type, e.g. license.created' }).min(1),
        payload: z.string({ error: 'required: the event payload as JSON text' }),
        created: z.string().optional(),
      }),
    }),
  },
  { error: 'expected a Keygen webhook-event resource: a JSON object with data' },
);

export interface KeygenWebhookEvent {
  /** Changes when Keygen retries (a retry is a new resource). */
  readonly id: string;
  /** Stays the same across redeliveries and retries: what the inbox dedups on. */
  readonly idempotencyToken: string;
  readonly event: string;
  readonly payload: unknown;
  readonly created: string | undefined;
}

/** Parses the webhook body; an InvalidInputError names the field (`data.attributes.payload`, …). */
export function parseKeygenWebhook(body: unknown): KeygenWebhookEvent {
  const parsed = parseInput(webhookEventSchema, body, 'invalid Keygen webhook event');
  let payload: unknown;
  try {
    payload = JSON.parse(parsed.data.attributes.payload);
  } catch {
    throw new InvalidInputError([{ field: 'data.attributes.payload', reason: 'not valid JSON' }], 'invalid Keygen webhook event');
  }
  return {
    id: parsed.data.id,
    idempotencyToken: parsed.data.meta.idempotencyToken,
    event: parsed.data.attributes.event,
    payload,
    created: parsed.data.attributes.created,
  };
}

/**
 * Which Keygen events become which user events. Paths are dotted paths into the event payload (the resource Keygen
 * sent, e.g. a license); the first path that holds a non-empty string wins.
 */
export interface KeygenEventMapping {
  /** Events to forward; others are acknowledged and skipped. Empty: forward every event. */
  readonly events: readonly string[];
  /** Event type → SaaSquatch event key; by default the type with dots as underscores (license.created → license_created). */
  readonly eventKeys: Readonly<Record<string, string>>;
  readonly userIdPaths: readonly string[];
  readonly accountIdPaths: readonly string[];
  /** SaaSquatch field name → payload path. */
  readonly fields: Readonly<Record<string, string>>;
}

export const DEFAULT_KEYGEN_EVENT_MAPPING: KeygenEventMapping = {
  events: [],
  eventKeys: {},
  // SaaSquatch recommends the email as both ids; Keygen licenses usually carry it in metadata, users as an attribute.
  userIdPaths: ['data.attributes.metadata.email', 'data.attributes.email', 'data.relationships.user.data.id'],
  accountIdPaths: ['data.attributes.metadata.email', 'data.attributes.email', 'data.relationships.user.data.id'],
  fields: { keygenResourceType: 'data.type', keygenResourceId: 'data.id', keygenName: 'data.attributes.name' },
};

const mappingSchema = z.object({
  events: z.array(z.string().min(1)).default([]),
  eventKeys: z.record(z.string(), z.string().min(1)).default({}),
  userIdPaths: z
    .array(z.string().min(1))
    .min(1)
    .default(DEFAULT_KEYGEN_EVENT_MAPPING.userIdPaths as string[]),
  accountIdPaths: z
    .array(z.string().min(1))
    .min(1)
    .default(DEFAULT_KEYGEN_EVENT_MAPPING.accountIdPaths as string[]),
  fields: z.record(z.string(), z.string().min(1)).default(DEFAULT_KEYGEN_EVENT_MAPPING.fields),
});

export const KEYGEN_MAPPING_ENV = 'ONCEKIT_KEYGEN_EVENT_MAPPING';

/** Reads the mapping from JSON text (ONCEKIT_KEYGEN_EVENT_MAPPING); unset fields keep their defaults. */
export function parseKeygenEventMapping(text: string | undefined): KeygenEventMapping {
  if (text === undefined || text.trim() === '') return DEFAULT_KEYGEN_EVENT_MAPPING;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new InvalidInputError([{ field: KEYGEN_MAPPING_ENV, reason: 'not valid JSON' }]);
  }
  try {
    return parseInput(mappingSchema, value);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    throw new InvalidInputError(error.issues.map((issue) => ({ field: `${KEYGEN_MAPPING_ENV}.${issue.field}`, reason: issue.reason })));
  }
}

function valueAt(root: unknown, path: string): unknown {
  let current = root;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function firstText(root: unknown, paths: readonly string[]): string | undefined {
  for (const path of paths) {
    const value = valueAt(root, path);
    if (typeof value === 'string' && value.length > 0) return value;
    if (typeof value === 'number') return String(value);
  }
  return undefined;
}

/**
 * The key candidate: the webhook-event resource's `meta.idempotencyToken`, the same on every redelivery and on a retry,
 * which Keygen sends as a new resource with a new id.
 */
export function keygenCandidate(webhook: { readonly meta?: { readonly idempotencyToken?: unknown } | null }): KeyCandidate {
  return { source: 'keygen', value: webhook.meta?.idempotencyToken };
}

export type KeygenMappingResult =
  | { readonly kind: 'event'; readonly input: UserEventInput; readonly decision: KeyDecision }
  | { readonly kind: 'skipped'; readonly reason: string };

/**
 * The user event for a Keygen webhook event. The key candidate is the idempotency token, so a retried event (a new
 * resource with the same token) is the same event for the target too. Throws InvalidInputError when the payload has
 * no user id under any configured path.
 */
export function keygenWebhookToUserEvent(
  webhook: KeygenWebhookEvent,
  mapping: KeygenEventMapping,
  keys: DecideKeyOptions,
): KeygenMappingResult {
  if (mapping.events.length > 0 && !mapping.events.includes(webhook.event)) {
    return { kind: 'skipped', reason: `event ${webhook.event} is not in ${KEYGEN_MAPPING_ENV}.events` };
  }
  const userId = firstText(webhook.payload, mapping.userIdPaths);
  const accountId = firstText(webhook.payload, mapping.accountIdPaths);
  const missing = [
    ...(userId === undefined ? [{ field: 'payload', reason: `no user id at ${mapping.userIdPaths.join(', ')}` }] : []),
    ...(accountId === undefined ? [{ field: 'payload', reason: `no account id at ${mapping.accountIdPaths.join(', ')}` }] : []),
  ];
  if (missing.length > 0) throw new InvalidInputError(missing, `Keygen event ${webhook.event} cannot be mapped to a user`);
  const fields: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(mapping.fields)) {
    const value = valueAt(webhook.payload, path);
    if (value !== undefined && value !== null) fields[name] = value;
  }
  const decision = decideKey(keygenCandidate({ meta: { idempotencyToken: webhook.idempotencyToken } }), keys);
  if (decision.decision === 'rejected') throw new KeyRejectedError(decision);
  const input = buildUserEventInput(
    {
      userId,
      accountId,
      events: [{ key: mapping.eventKeys[webhook.event] ?? webhook.event.replaceAll('.', '_'), fields, dateTriggered: webhook.created }],
    },
    decision,
  );
  return { kind: 'event', input, decision };
}
