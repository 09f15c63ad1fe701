import { parseDuration } from '../../shared/duration.js';
import { InvalidInputError } from '../../shared/errors.js';
import { type OutboxDeliveryConfig, outboxDeliveryConfig } from '../../shared/outbox/config.js';

type Field = 'batchSize' | 'concurrency' | 'horizonMs' | 'leaseMs' | 'backoffBaseMs' | 'backoffMaxMs' | 'maxEventsPerSecond';

interface DeliverySetting {
  readonly option: string;
  readonly env: string;
  readonly kind: 'count' | 'duration' | 'rate';
  readonly help: string;
  /** The default, as people write it. */
  readonly default: string;
}

/**
 * The delivery settings every command that delivers shares (the relay, `import`, `dead-letters retry`): one name on
 * the command line and one in the environment each; the command line wins.
 */
export const DELIVERY_SETTINGS: Readonly<Record<Field, DeliverySetting>> = {
  batchSize: { option: '--batch-size', env: 'ONCEKIT_BATCH_SIZE', kind: 'count', help: 'events per logUserEvents call', default: '100' },
  concurrency: { option: '--concurrency', env: 'ONCEKIT_CONCURRENCY', kind: 'count', help: 'batches in flight at once', default: '4' },
  horizonMs: {
    option: '--horizon',
    env: 'ONCEKIT_HORIZON',
    kind: 'duration',
    help: "how long to keep retrying an event after its first attempt; must stay under the target's 24 h key window",
    default: '20h',
  },
  leaseMs: {
    option: '--lease',
    env: 'ONCEKIT_LEASE',
    kind: 'duration',
    help: "how long a worker holds a batch; a crashed worker's batch is retried after it",
    default: '10s',
  },
  backoffBaseMs: { option: '--backoff-base', env: 'ONCEKIT_BACKOFF_BASE', kind: 'duration', help: 'first retry delay', default: '1s' },
  backoffMaxMs: { option: '--backoff-max', env: 'ONCEKIT_BACKOFF_MAX', kind: 'duration', help: 'longest retry delay', default: '5m' },
  maxEventsPerSecond: {
    option: '--max-rate',
    env: 'ONCEKIT_MAX_RATE',
    kind: 'rate',
    help: 'at most this many events per second towards the target, per process',
    default: 'no cap',
  },
};

/** The settings as a command line gave them: counts already whole numbers, durations and rates as text. */
export type DeliverySettingValues = { readonly [F in Field]?: string | number };

/** The delivery overrides from the command line, else the environment; an error names the option or the variable. */
export function deliverySettingsFrom(
  values: DeliverySettingValues,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Partial<OutboxDeliveryConfig> {
  const overrides: { -readonly [F in Field]?: number } = {};
  const names: Partial<Record<Field, string>> = {};
  const issues: { field: string; reason: string }[] = [];
  for (const [field, setting] of Object.entries(DELIVERY_SETTINGS) as [Field, DeliverySetting][]) {
    const fromOption = values[field];
    const raw = fromOption ?? (env[setting.env] || undefined);
    if (raw === undefined) continue;
    const name = fromOption === undefined ? setting.env : setting.option;
    names[field] = name;
    try {
      overrides[field] = parseSetting(setting, String(raw), name);
    } catch (error) {
      if (!(error instanceof InvalidInputError)) throw error;
      issues.push(...error.issues);
    }
  }
  if (issues.length > 0) throw new InvalidInputError(issues, 'invalid delivery settings');
  try {
    outboxDeliveryConfig(overrides);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    const renamed = error.issues.map((issue) => ({
      field: names[issue.field as Field] ?? DELIVERY_SETTINGS[issue.field as Field]?.option ?? issue.field,
      reason: issue.reason,
    }));
    throw new InvalidInputError(renamed, 'invalid delivery settings');
  }
  return overrides;
}

function parseSetting(setting: DeliverySetting, text: string, name: string): number {
  if (setting.kind === 'duration') return parseDuration(text, name);
  const value = Number(text.trim());
  const valid = setting.kind === 'count' ? /^\d+$/.test(text.trim()) : Number.isFinite(value) && value > 0;
  if (!valid || text.trim() === '') {
    const expected = setting.kind === 'count' ? 'a whole number' : 'a number of events per second above 0';
    throw new InvalidInputError([{ field: name, reason: `expected ${expected}, got ${JSON.stringify(text)}` }]);
  }
  return value;
}
