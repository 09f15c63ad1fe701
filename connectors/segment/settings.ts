import { z } from 'zod';
import { InvalidInputError } from '../../shared/errors.js';
import { type InvalidKeyPolicy, invalidKeyPolicies } from '../../shared/keys/index.js';
import { DEFAULT_TARGET_URL } from '../../shared/target/index.js';
import { parseInput } from '../../shared/validation.js';

/** Segment event names renamed to SaaSquatch's reserved event keys, as SaaSquatch's own Segment integration does. */
export const DEFAULT_EVENT_KEY_MAP: Readonly<Record<string, string>> = Object.freeze({
  'Order Completed': 'purchase',
  'Order Refunded': 'refund',
});

/** The function's settings after validation and defaults. Names are fixed: users type them in Segment's UI. */
export interface SegmentSettings {
  readonly apiKey: string;
  readonly tenantAlias: string;
  readonly apiBaseUrl: string;
  readonly invalidKeyPolicy: InvalidKeyPolicy;
  readonly eventKeyMap: Readonly<Record<string, string>>;
  /** Paths tried in order for the accountId; empty means the userId is the accountId too. */
  readonly accountIdFrom: readonly string[];
}

/** Segment hands an unfilled setting over as undefined, null or "" depending on its type; all mean "not set". */
function unset(value: unknown): unknown {
  if (value === null) return undefined;
  if (typeof value !== 'string') return value;
  // Pasted values often carry a stray space or newline; no setting here can have one on purpose.
  const text = value.trim();
  return text === '' ? undefined : text;
}

const ACCOUNT_ID_PATH = /^(traits|properties|context)(\.[^.\s]+)+$/;

const settingsSchema = z.object({
  apiKey: z.preprocess(unset, z.string({ error: 'required: the API key of your SaaSquatch tenant (a secret setting)' })),
  tenantAlias: z.preprocess(
    unset,
    z
      .string({ error: 'required: the tenant alias from SaaSquatch, e.g. "test_a1b2c3"' })
      .regex(/^[A-Za-z0-9_-]+$/, 'expected a tenant alias such as "test_a1b2c3" (letters, digits, _ and -)'),
  ),
  apiBaseUrl: z.preprocess(
    unset,
    z
      .url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://app.referralsaasquatch.com' })
      .transform((url) => url.replace(/\/+$/, ''))
      .default(DEFAULT_TARGET_URL),
  ),
  invalidKeyPolicy: z.preprocess(
    unset,
    z.enum(invalidKeyPolicies, { error: `expected one of ${invalidKeyPolicies.join(', ')}` }).default('drop'),
  ),
  eventKeyMap: z.preprocess(
    (value) => {
      const given = unset(value);
      // An empty map is what Segment sends for an untouched map setting, so it means "use the defaults".
      return given !== null && typeof given === 'object' && !Array.isArray(given) && Object.keys(given).length === 0 ? undefined : given;
    },
    z
      .record(
        z.string(),
        z.string({ error: 'expected a SaaSquatch event key' }).trim().min(1, 'expected a SaaSquatch event key, not an empty value'),
        { error: 'expected a map from Segment event names to SaaSquatch event keys' },
      )
      .default(DEFAULT_EVENT_KEY_MAP),
  ),
  accountIdFrom: z.preprocess(
    unset,
    z
      .string({ error: 'expected one or more event paths separated by commas, e.g. "traits.accountId"' })
      .transform((text) => text.split(',').map((path) => path.trim()))
      .pipe(
        z.array(
          z.string().regex(ACCOUNT_ID_PATH, 'expected a path starting with traits., properties. or context., e.g. "traits.accountId"'),
        ),
      )
      .default([]),
  ),
});

/** Settings that cannot work; every event fails the same way until someone fixes them in Segment. */
export class InvalidSettingsError extends InvalidInputError {}

/**
 * Validates the settings Segment passes to every handler. Errors name the setting and never contain a value,
 * since one of them is the API key.
 */
export function parseSegmentSettings(raw: unknown): SegmentSettings {
  try {
    return parseInput(settingsSchema, raw ?? {}, 'invalid function settings');
  } catch (error) {
    if (error instanceof InvalidInputError) throw new InvalidSettingsError(error.issues, 'invalid function settings');
    throw error;
  }
}
