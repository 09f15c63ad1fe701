import type { Command } from 'commander';
import { z } from 'zod';
import { parseDuration } from '../shared/duration.js';
import { InvalidInputError } from '../shared/errors.js';
import { jsonLineLogger, type Logger } from '../shared/log.js';
import { type OutboxDeliveryConfig, outboxDeliveryConfig } from '../shared/outbox/config.js';
import { openOutboxStore } from '../shared/outbox/open-store.js';
import type { OutboxStore } from '../shared/outbox/types.js';
import type { OutboxTarget } from '../shared/outbox/worker.js';
import { defaultStoreLocation, parseStoreLocation, type StoreLocation } from '../shared/store/location.js';
import { undiciTransport } from '../shared/target/transport-undici.js';
import { targetSettings } from './target-env.js';
import { integerOption, parseOptions, UsageError } from './usage.js';

export interface StoreOptions {
  readonly store?: string;
  readonly tenant?: string;
}

export interface TargetOptions extends StoreOptions {
  readonly targetUrl?: string;
}

export interface DeliveryOptions extends TargetOptions {
  readonly batchSize: number;
  readonly concurrency: number;
  readonly horizon: string;
  readonly lease: string;
}

/** --store, else ONCEKIT_STORE, else the SQLite file in .oncekit/. */
export function storeLocationFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): StoreLocation {
  if (option !== undefined) return parseStoreLocation(option, '--store');
  if (env.ONCEKIT_STORE) return parseStoreLocation(env.ONCEKIT_STORE, 'ONCEKIT_STORE');
  return defaultStoreLocation();
}

export function addStoreOptions(command: Command): Command {
  return command
    .option('--tenant <alias>', 'the tenant alias (env ONCEKIT_TENANT)')
    .option(
      '--store <location>',
      'where the outbox and ledger live: sqlite:PATH, redis://HOST:PORT, postgres://USER@HOST:PORT/DB or memory (env ONCEKIT_STORE; default sqlite:.oncekit/oncekit.db)',
    );
}

export function addDeliveryOptions(command: Command): Command {
  return command
    .option('--target-url <url>', 'the API base URL (env ONCEKIT_TARGET_URL; default https://app.referralsaasquatch.com)')
    .option('--batch-size <n>', 'events per logUserEvents call', integerOption(1, 1000), 100)
    .option('--concurrency <n>', 'batches in flight at once', integerOption(1, 256), 4)
    .option(
      '--horizon <duration>',
      "how long to keep retrying an event after its first attempt; must stay under the target's 24 h key window",
      '20h',
    )
    .option('--lease <duration>', "how long a worker holds a batch; a crashed worker's batch is retried after it", '60s');
}

/** The tenant, required: keys, the outbox and the ledger are all per tenant. */
export function requireTenant(options: StoreOptions): string {
  const tenant = targetSettings(options).tenant;
  if (!tenant) throw new UsageError([{ field: '--tenant (or ONCEKIT_TENANT)', reason: 'required' }]);
  return tenant;
}

const DELIVERY_OPTION_NAMES: Record<string, string> = {
  batchSize: '--batch-size',
  concurrency: '--concurrency',
  horizonMs: '--horizon',
  leaseMs: '--lease',
};

/** The delivery config from the options; a broken rule (the horizon vs the key window) names the option. */
export function deliveryConfigFrom(options: DeliveryOptions): Partial<OutboxDeliveryConfig> {
  const overrides = {
    batchSize: options.batchSize,
    concurrency: options.concurrency,
    horizonMs: parseDuration(options.horizon, '--horizon'),
    leaseMs: parseDuration(options.lease, '--lease'),
  };
  try {
    outboxDeliveryConfig(overrides);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    throw new UsageError(error.issues.map((issue) => ({ field: DELIVERY_OPTION_NAMES[issue.field] ?? issue.field, reason: issue.reason })));
  }
  return overrides;
}

const targetSchema = z.object({
  targetUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  tenant: z.string({ error: 'required' }).min(1, 'must not be empty'),
  apiKey: z.string({ error: 'required: set the environment variable (it is never taken from the command line)' }).min(1),
});

const TARGET_OPTION_NAMES: Record<string, string> = {
  targetUrl: '--target-url (or ONCEKIT_TARGET_URL)',
  tenant: '--tenant (or ONCEKIT_TENANT)',
  apiKey: 'ONCEKIT_API_KEY',
};

/** Where to deliver, from options and ONCEKIT_* (the API key only from the environment), plus a transport to close. */
export function outboxTargetFrom(options: TargetOptions, connections: number): { target: OutboxTarget; close(): Promise<void> } {
  const settings = parseOptions(targetSchema, targetSettings(options), (field) => TARGET_OPTION_NAMES[field] ?? field);
  const transport = undiciTransport({ connections });
  return {
    target: {
      baseUrl: settings.targetUrl,
      tenant: settings.tenant,
      apiKey: settings.apiKey,
      transport: transport.send,
      userAgent: 'oncekit',
    },
    close: () => transport.close(),
  };
}

export async function withStore<T>(options: StoreOptions, work: (store: OutboxStore) => Promise<T>): Promise<T> {
  const store = await openOutboxStore(storeLocationFrom(options.store));
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/** Errors only on stderr by default: per-event warnings (retries, dead letters) are in the ledger and the errors file. */
export function commandLogger(verbose: boolean): Logger {
  const logger = jsonLineLogger();
  return verbose ? logger : { info() {}, warn() {}, error: logger.error };
}
