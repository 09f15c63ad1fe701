import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { formatDuration, parseDuration } from '../../shared/duration.js';
import { InvalidInputError } from '../../shared/errors.js';
import { type InvalidKeyPolicy, invalidKeyPolicies } from '../../shared/keys/decide.js';
import { defaultOutboxDeliveryConfig, type OutboxDeliveryConfig } from '../../shared/outbox/config.js';
import { defaultStoreLocation, parseStoreLocation, type StoreLocation } from '../../shared/state/location.js';
import { DEFAULT_REDIS_PREFIX, redisAllowVolatileFromEnv } from '../../shared/state/redis/connection.js';
import { parseInput } from '../../shared/validation.js';
import { KEYGEN_MAPPING_ENV, type KeygenEventMapping, parseKeygenEventMapping } from '../keygen/webhook-plugin.js';
import {
  DEFAULT_PUBSUB_ENDPOINT,
  type IdentityFields,
  identityFieldsFromEnv,
  type PlatformEventTransport,
  type PubSubEndpoint,
  parsePubSubEndpoint,
  type SalesforceAuthConfig,
  salesforceAuthConfigFromEnv,
} from '../salesforce/relay-plugin.js';
import { type DeliverySettingValues, deliverySettingsFrom } from './delivery-settings.js';

/** Everything the relay reads from its options and environment; the command line wins over the environment. */
export interface RelayConfig {
  readonly host: string;
  readonly port: number;
  /** Null: no target configured, so the relay runs the sandbox in-process and says so loudly. */
  readonly target: { readonly url: string; readonly tenant: string; readonly apiKey: string } | null;
  readonly store: StoreLocation;
  readonly relaySecret: string;
  /** True when the secret was generated at start-up (then it is printed once, like Jupyter's token). */
  readonly relaySecretGenerated: boolean;
  readonly invalidKeyPolicy: InvalidKeyPolicy;
  readonly keygen: { readonly publicKey: string; readonly host: string | null } | null;
  /** How Keygen events become user events (ONCEKIT_KEYGEN_EVENT_MAPPING, or the default). */
  readonly keygenMapping: KeygenEventMapping;
  readonly segmentSharedSecret: string | null;
  readonly salesforceConfigured: boolean;
  /** The Salesforce auth settings (ONCEKIT_SF_*), when ONCEKIT_SF_CLIENT_ID is set. */
  readonly salesforceAuth: SalesforceAuthConfig | null;
  /** Which Salesforce fields give the SaaSquatch ids (ONCEKIT_SF_IDENTITY_FIELDS, or the default). */
  readonly identityFields: IdentityFields;
  readonly platformEventChannel: string | null;
  /** How Platform Events arrive (ONCEKIT_SF_EVENT_TRANSPORT): the Pub/Sub API (default) or CometD. */
  readonly platformEventTransport: PlatformEventTransport;
  /** Where the Pub/Sub API is (ONCEKIT_SF_PUBSUB_ENDPOINT, default api.pubsub.salesforce.com:7443). */
  readonly pubSubEndpoint: PubSubEndpoint;
  /** A managed event subscription's developer name or id (ONCEKIT_SF_MANAGED_SUBSCRIPTION): Salesforce keeps the position. */
  readonly managedSubscription: string | null;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'silent';
  /** How the relay's worker delivers (batch size, concurrency, lease, horizon, backoff, rate cap); unset: the defaults. */
  readonly delivery: Partial<OutboxDeliveryConfig>;
  /** Redis stores only: the key prefix (ONCEKIT_REDIS_PREFIX) and whether a Redis without persistence may be used. */
  readonly redis: { readonly keyPrefix: string; readonly allowVolatile: boolean };
  /** How long settled events stay in the ledger (and dedup their redeliveries); never shorter than the retry horizon. */
  readonly retentionMs: number;
  /**
   * Whether concurrent requests share one outbox commit (ONCEKIT_GROUP_COMMIT, default on). A diagnostic setting: `off`
   * commits each request's events by themselves, the baseline the `state` benchmark compares group commit with.
   */
  readonly groupCommit: boolean;
  /**
   * Backpressure: above this many undelivered events (pending or leased, for the relay's tenant and target, counted in
   * the store) the event routes answer 503 with Retry-After and the Pub/Sub subscriber stops requesting
   * (ONCEKIT_MAX_BACKLOG, default 10000; `off`: null, no limit).
   */
  readonly maxBacklog: number | null;
  /** Backpressure on delivery lag: the oldest due event's wait, in ms (ONCEKIT_MAX_DELIVERY_LAG; default off, null). */
  readonly maxDeliveryLagMs: number | null;
}

export interface RelayOptions {
  readonly host?: string;
  readonly port?: number;
  readonly targetUrl?: string;
  readonly tenant?: string;
  readonly store?: string;
  /** The command line's delivery settings; each falls back to its ONCEKIT_* variable. */
  readonly delivery?: DeliverySettingValues;
  /** How long settled events stay in the ledger, e.g. `7d` (else ONCEKIT_RETENTION). */
  readonly retention?: string;
}

/** The variable (or option) behind each field, so every error names what the user sets. */
export const RELAY_SETTING_NAMES = {
  host: '--host (or ONCEKIT_HOST)',
  port: '--port (or ONCEKIT_PORT)',
  targetUrl: '--target-url (or ONCEKIT_TARGET_URL)',
  tenant: '--tenant (or ONCEKIT_TENANT)',
  apiKey: 'ONCEKIT_API_KEY',
  store: '--store (or ONCEKIT_STORE)',
  relaySecret: 'ONCEKIT_RELAY_SECRET',
  invalidKeyPolicy: 'ONCEKIT_INVALID_KEY_POLICY',
  keygenPublicKey: 'ONCEKIT_KEYGEN_PUBLIC_KEY',
  keygenHost: 'ONCEKIT_KEYGEN_HOST',
  segmentSharedSecret: 'ONCEKIT_SEGMENT_SHARED_SECRET',
  platformEventChannel: 'ONCEKIT_SF_EVENT_CHANNEL',
  platformEventTransport: 'ONCEKIT_SF_EVENT_TRANSPORT',
  pubSubEndpoint: 'ONCEKIT_SF_PUBSUB_ENDPOINT',
  managedSubscription: 'ONCEKIT_SF_MANAGED_SUBSCRIPTION',
  logLevel: 'ONCEKIT_LOG_LEVEL',
  redisPrefix: 'ONCEKIT_REDIS_PREFIX',
  groupCommit: 'ONCEKIT_GROUP_COMMIT',
  maxBacklog: 'ONCEKIT_MAX_BACKLOG',
  maxDeliveryLag: 'ONCEKIT_MAX_DELIVERY_LAG',
} as const satisfies Readonly<Record<string, string>>;

const blankToUndefined = (value: unknown): unknown => (value === '' ? undefined : value);
const optionalText = z.preprocess(blankToUndefined, z.string().optional());
/** The target's URL and tenant, as for every command: set but empty is an error, not unset (the built-in sandbox). */
const notBlank = z.string().refine((value) => value.trim() !== '', 'is set but empty: give it a value, or unset it for the default');

const settingsSchema = z
  .object({
    host: z.string().min(1),
    port: z.coerce.number().int('a whole number').min(0).max(65_535),
    targetUrl: notBlank.pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })).optional(),
    tenant: notBlank.optional(),
    apiKey: optionalText,
    store: optionalText,
    relaySecret: z.preprocess(blankToUndefined, z.string().min(16, 'must be at least 16 characters').optional()),
    invalidKeyPolicy: z.enum(invalidKeyPolicies, { error: `expected one of ${invalidKeyPolicies.join(', ')}` }),
    keygenPublicKey: optionalText,
    keygenHost: optionalText,
    segmentSharedSecret: optionalText,
    platformEventChannel: z.preprocess(
      blankToUndefined,
      z
        .string()
        .regex(/^\/event\/\w+$/, 'expected /event/Name__e')
        .optional(),
    ),
    platformEventTransport: z.enum(['pubsub', 'cometd'], { error: 'expected pubsub or cometd' }),
    pubSubEndpoint: z.string().min(1),
    managedSubscription: z.preprocess(
      blankToUndefined,
      z
        .string()
        .regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'expected the developer name (or id) of a managed event subscription')
        .optional(),
    ),
    logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'silent']),
    redisPrefix: optionalText,
    groupCommit: z.enum(['on', 'off'], { error: 'expected on or off' }),
    maxBacklog: z.union([z.literal('off'), z.coerce.number().int('a whole number').positive('must be positive')], {
      error: 'expected a positive whole number, or off',
    }),
    maxDeliveryLag: optionalText,
  })
  .superRefine((settings, ctx) => {
    if (settings.managedSubscription !== undefined && settings.platformEventTransport !== 'pubsub') {
      ctx.addIssue({
        code: 'custom',
        path: ['managedSubscription'],
        message: 'managed subscriptions need the Pub/Sub API (ONCEKIT_SF_EVENT_TRANSPORT=pubsub)',
      });
    }
    // A target is all three or none: half a target would silently fall back to the sandbox.
    const given = [settings.targetUrl, settings.tenant, settings.apiKey].filter((value) => value !== undefined).length;
    if (given > 0 && given < 3) {
      for (const [field, value] of [
        ['targetUrl', settings.targetUrl],
        ['tenant', settings.tenant],
        ['apiKey', settings.apiKey],
      ] as const) {
        if (value === undefined)
          ctx.addIssue({
            code: 'custom',
            path: [field],
            message:
              'required when a target is configured (set all of target URL, tenant and API key, or none to use the built-in sandbox)',
          });
      }
    }
  });

/**
 * Reads the relay's configuration, the only place the relay reads its environment; an InvalidInputError names each bad
 * option or variable. Secrets are never echoed.
 */
export function readRelayConfig(options: RelayOptions, env: Readonly<Record<string, string | undefined>> = process.env): RelayConfig {
  let settings: z.output<typeof settingsSchema>;
  try {
    settings = parseInput(settingsSchema, {
      host: options.host ?? env.ONCEKIT_HOST ?? '127.0.0.1',
      port: options.port ?? env.ONCEKIT_PORT ?? 8080,
      targetUrl: options.targetUrl ?? env.ONCEKIT_TARGET_URL,
      tenant: options.tenant ?? env.ONCEKIT_TENANT,
      apiKey: env.ONCEKIT_API_KEY,
      store: options.store ?? env.ONCEKIT_STORE,
      relaySecret: env.ONCEKIT_RELAY_SECRET,
      invalidKeyPolicy: env.ONCEKIT_INVALID_KEY_POLICY || 'drop',
      keygenPublicKey: env.ONCEKIT_KEYGEN_PUBLIC_KEY,
      keygenHost: env.ONCEKIT_KEYGEN_HOST,
      segmentSharedSecret: env.ONCEKIT_SEGMENT_SHARED_SECRET,
      platformEventChannel: env.ONCEKIT_SF_EVENT_CHANNEL,
      platformEventTransport: env.ONCEKIT_SF_EVENT_TRANSPORT || 'pubsub',
      pubSubEndpoint: env.ONCEKIT_SF_PUBSUB_ENDPOINT || DEFAULT_PUBSUB_ENDPOINT,
      managedSubscription: env.ONCEKIT_SF_MANAGED_SUBSCRIPTION,
      logLevel: env.ONCEKIT_LOG_LEVEL || 'info',
      redisPrefix: env.ONCEKIT_REDIS_PREFIX,
      groupCommit: env.ONCEKIT_GROUP_COMMIT || 'on',
      maxBacklog: env.ONCEKIT_MAX_BACKLOG || DEFAULT_MAX_BACKLOG,
      maxDeliveryLag: env.ONCEKIT_MAX_DELIVERY_LAG,
    });
  } catch (error) {
    throw renameFields(error);
  }
  const generated = settings.relaySecret === undefined;
  const salesforceConfigured = Boolean(env.ONCEKIT_SF_CLIENT_ID);
  const delivery = deliverySettingsFrom(options.delivery ?? {}, env);
  return {
    host: settings.host,
    port: settings.port,
    target:
      settings.targetUrl && settings.tenant && settings.apiKey
        ? { url: settings.targetUrl, tenant: settings.tenant, apiKey: settings.apiKey }
        : null,
    store: settings.store === undefined ? defaultStoreLocation() : parseStoreLocation(settings.store, RELAY_SETTING_NAMES.store),
    relaySecret: settings.relaySecret ?? randomBytes(24).toString('base64url'),
    relaySecretGenerated: generated,
    invalidKeyPolicy: settings.invalidKeyPolicy,
    keygen: settings.keygenPublicKey ? { publicKey: settings.keygenPublicKey, host: settings.keygenHost ?? null } : null,
    segmentSharedSecret: settings.segmentSharedSecret ?? null,
    keygenMapping: parseKeygenEventMapping(env[KEYGEN_MAPPING_ENV]),
    salesforceConfigured,
    salesforceAuth: salesforceConfigured ? salesforceAuthConfigFromEnv(env) : null,
    identityFields: identityFieldsFromEnv(env),
    platformEventChannel: settings.platformEventChannel ?? null,
    platformEventTransport: settings.platformEventTransport,
    pubSubEndpoint: parsePubSubEndpoint(settings.pubSubEndpoint, RELAY_SETTING_NAMES.pubSubEndpoint),
    managedSubscription: settings.managedSubscription ?? null,
    logLevel: settings.logLevel,
    delivery,
    retentionMs: retentionFrom(options.retention, env, delivery.horizonMs ?? defaultOutboxDeliveryConfig.horizonMs),
    redis: { keyPrefix: settings.redisPrefix ?? DEFAULT_REDIS_PREFIX, allowVolatile: redisAllowVolatileFromEnv(env) },
    groupCommit: settings.groupCommit === 'on',
    maxBacklog: settings.maxBacklog === 'off' ? null : settings.maxBacklog,
    maxDeliveryLagMs:
      settings.maxDeliveryLag === undefined || settings.maxDeliveryLag === 'off'
        ? null
        : parseDuration(settings.maxDeliveryLag, RELAY_SETTING_NAMES.maxDeliveryLag),
  };
}

/** Undelivered events above which the relay pushes back: a few seconds of delivery at the target's usual pace. */
export const DEFAULT_MAX_BACKLOG = 10_000;

function renameFields(error: unknown): unknown {
  if (!(error instanceof InvalidInputError)) return error;
  const issues = error.issues.map((issue) => ({
    field: (RELAY_SETTING_NAMES as Readonly<Record<string, string>>)[issue.field] ?? issue.field,
    reason: issue.reason,
  }));
  return new InvalidInputError(issues, 'invalid relay configuration');
}

const DEFAULT_RETENTION = '7d';

/**
 * The ledger's retention: a pruned event is forgotten, so a redelivery after it would be sent again. It must outlast
 * the retry horizon; a week also outlasts every source's own retries (Salesforce replays Platform Events for 72 h).
 */
function retentionFrom(option: string | undefined, env: Readonly<Record<string, string | undefined>>, horizonMs: number): number {
  const field = option === undefined ? 'ONCEKIT_RETENTION' : '--retention';
  const retentionMs = parseDuration(option ?? (env.ONCEKIT_RETENTION || DEFAULT_RETENTION), field);
  if (retentionMs < horizonMs) {
    throw new InvalidInputError(
      [
        {
          field,
          reason: `must not be shorter than the retry horizon (${formatDuration(horizonMs)}): an event still being retried would be forgotten`,
        },
      ],
      'invalid relay configuration',
    );
  }
  return retentionMs;
}
