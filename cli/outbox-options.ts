import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { DELIVERY_SETTINGS, type DeliverySettingValues, deliverySettingsFrom } from '../connectors/relay/delivery-settings.js';
import { InvalidInputError, OncekitError } from '../shared/errors.js';
import { jsonLineLogger, type Logger } from '../shared/log.js';
import { type OutboxDeliveryConfig, outboxDeliveryConfig } from '../shared/outbox/config.js';
import type { OutboxStore } from '../shared/outbox/types.js';
import type { OutboxTarget } from '../shared/outbox/worker.js';
import { defaultStoreLocation, describeStoreLocation, parseStoreLocation, type StoreLocation } from '../shared/state/location.js';
import { type OpenStateOptions, openState } from '../shared/state/open-state.js';
import { undiciTransport } from '../shared/target/transport-undici.js';
import {
  type GivenTargetSettings,
  givenTargetSettings,
  type StoredScope,
  TARGET_URL_SETTING,
  TENANT_SETTING,
  targetSettings,
  targetUrlFromStore,
  tenantFromStore,
} from './target-env.js';
import { integerOption, parseOptions, UsageError } from './usage.js';

export interface StoreOptions {
  readonly store?: string;
  readonly tenant?: string;
}

export interface TargetOptions extends StoreOptions {
  readonly targetUrl?: string;
}

export interface DeliveryOptions extends TargetOptions {
  readonly batchSize?: number;
  readonly concurrency?: number;
  readonly horizon?: string;
  readonly lease?: string;
  readonly backoffBase?: string;
  readonly backoffMax?: string;
  readonly maxRate?: string;
}

/** --store, else ONCEKIT_STORE, else the SQLite file in .oncekit/. */
export function storeLocationFrom(option: string | undefined, env: NodeJS.ProcessEnv = process.env): StoreLocation {
  if (option !== undefined) return parseStoreLocation(option, '--store');
  if (env.ONCEKIT_STORE) return parseStoreLocation(env.ONCEKIT_STORE, 'ONCEKIT_STORE');
  return defaultStoreLocation();
}

/**
 * ONCEKIT_REDIS_PREFIX and ONCEKIT_REDIS_ALLOW_VOLATILE, for a redis:// store (the opener warns on stderr). Loads the
 * Redis engine's rule when asked, so a command on another store never loads the Redis driver.
 */
export async function redisStoreSettingsFrom(env: NodeJS.ProcessEnv): Promise<{ redisKeyPrefix?: string; allowVolatile: boolean }> {
  const { redisAllowVolatileFromEnv } = await import('../shared/state/redis/connection.js');
  const prefix = env.ONCEKIT_REDIS_PREFIX?.trim();
  return { ...(prefix ? { redisKeyPrefix: prefix } : {}), allowVolatile: redisAllowVolatileFromEnv(env) };
}

export function addStoreOptions(command: Command): Command {
  return command
    .option('--tenant <alias>', 'the tenant alias (env ONCEKIT_TENANT; default: the only tenant the store holds events for)')
    .option(
      '--store <location>',
      'where the outbox and ledger live: sqlite:PATH, redis://HOST:PORT, postgres://USER@HOST:PORT/DB or memory (env ONCEKIT_STORE; default sqlite:.oncekit/oncekit.db)',
    );
}

export function addDeliveryOptions(command: Command): Command {
  command.option(
    '--target-url <url>',
    "the API base URL (env ONCEKIT_TARGET_URL; default: the only target the store holds the tenant's events for, else https://app.referralsaasquatch.com)",
  );
  return addDeliverySettingOptions(command);
}

/** The delivery settings shared by every command that delivers (see DELIVERY_SETTINGS), each with its variable. */
export function addDeliverySettingOptions(command: Command): Command {
  const { batchSize, concurrency, horizonMs, leaseMs, backoffBaseMs, backoffMaxMs, maxEventsPerSecond } = DELIVERY_SETTINGS;
  const help = (setting: { help: string; env: string; default: string }): string =>
    `${setting.help} (env ${setting.env}; default ${setting.default})`;
  return command
    .option(`${batchSize.option} <n>`, help(batchSize), integerOption(1, 1000))
    .option(`${concurrency.option} <n>`, help(concurrency), integerOption(1, 256))
    .option(`${horizonMs.option} <duration>`, help(horizonMs))
    .option(`${leaseMs.option} <duration>`, help(leaseMs))
    .option(`${backoffBaseMs.option} <duration>`, help(backoffBaseMs))
    .option(`${backoffMaxMs.option} <duration>`, help(backoffMaxMs))
    .option(`${maxEventsPerSecond.option} <events/s>`, help(maxEventsPerSecond));
}

/** The command line's delivery settings, in the shape `deliverySettingsFrom` reads. */
export function deliverySettingValues(options: DeliveryOptions): DeliverySettingValues {
  return {
    ...(options.batchSize === undefined ? {} : { batchSize: options.batchSize }),
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.horizon === undefined ? {} : { horizonMs: options.horizon }),
    ...(options.lease === undefined ? {} : { leaseMs: options.lease }),
    ...(options.backoffBase === undefined ? {} : { backoffBaseMs: options.backoffBase }),
    ...(options.backoffMax === undefined ? {} : { backoffMaxMs: options.backoffMax }),
    ...(options.maxRate === undefined ? {} : { maxEventsPerSecond: options.maxRate }),
  };
}

/**
 * The tenant of a command that reads a store (keys, the outbox and the ledger are all per tenant): --tenant, else
 * ONCEKIT_TENANT, else the only tenant the store holds events for (see tenantFromStore).
 */
export async function tenantOf(given: GivenTargetSettings, store: OutboxStore, location: StoreLocation): Promise<string> {
  if (given.tenant !== undefined) return given.tenant;
  return tenantFromStore(given, await storedScope(store, location));
}

/** The target URL of a command that reads a store and delivers: --target-url, else ONCEKIT_TARGET_URL, else the store's. */
export async function targetUrlOf(
  given: GivenTargetSettings,
  tenant: string,
  store: OutboxStore,
  location: StoreLocation,
): Promise<string> {
  if (given.targetUrl !== undefined) return given.targetUrl;
  return targetUrlFromStore(given, tenant, await storedScope(store, location));
}

/** Enough to list what a store has in an error; more would not be read. */
const LISTED_PAIRS = 1000;

async function storedScope(store: OutboxStore, location: StoreLocation): Promise<StoredScope> {
  return { pairs: await store.listTenantTargets({ limit: LISTED_PAIRS }), where: `the store ${describeStoreLocation(location)}` };
}

/**
 * The tenant and target URL for a command that writes a store (import), by the same rule, without creating the store:
 * one that does not exist yet holds nothing, so the tenant must be given and the URL defaults to production.
 */
export async function tenantAndTargetUrlFor(options: TargetOptions): Promise<{ tenant: string; targetUrl: string }> {
  const given = givenTargetSettings(options);
  if (given.tenant !== undefined && given.targetUrl !== undefined) return { tenant: given.tenant, targetUrl: given.targetUrl };
  const location = storeLocationFrom(options.store);
  const stored: StoredScope =
    location.kind === 'sqlite' && !existsSync(location.path)
      ? { pairs: [], where: `the store ${describeStoreLocation(location)} (not created yet)` }
      : await openAndRun(location, (store) => storedScope(store, location));
  const tenant = tenantFromStore(given, stored);
  return { tenant, targetUrl: targetUrlFromStore(given, tenant, stored) };
}

/** The delivery config from the options, else ONCEKIT_*; a broken rule (the horizon vs the key window) names its source. */
export function deliveryConfigFrom(options: DeliveryOptions, env: NodeJS.ProcessEnv = process.env): OutboxDeliveryConfig {
  try {
    return outboxDeliveryConfig(deliverySettingsFrom(deliverySettingValues(options), env));
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    throw new UsageError(error.issues);
  }
}

const targetSchema = z.object({
  targetUrl: z
    .string()
    .trim()
    .min(1, 'is empty: set the API base URL, or unset ONCEKIT_TARGET_URL for https://app.referralsaasquatch.com')
    .pipe(z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' })),
  tenant: z.string({ error: 'required' }).min(1, 'must not be empty'),
  apiKey: z.string({ error: 'required: set the environment variable (it is never taken from the command line)' }).min(1),
});

const TARGET_OPTION_NAMES: Record<string, string> = {
  targetUrl: TARGET_URL_SETTING,
  tenant: TENANT_SETTING,
  apiKey: 'ONCEKIT_API_KEY',
};

/**
 * Where to deliver, from options and ONCEKIT_* (the API key only from the environment), plus a transport to close.
 * Commands that read a store pass the tenant and URL they found by the rule (tenantOf, targetUrlOf) as the options.
 */
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

/** Opens the store (creating it if need be: for commands that write, like import) for the duration of `work`. */
export async function withStore<T>(
  options: StoreOptions,
  work: (store: OutboxStore) => Promise<T>,
  tuning: Pick<OpenStateOptions, 'sqliteCacheKib'> = {},
): Promise<T> {
  return openAndRun(storeLocationFrom(options.store), work, tuning);
}

/**
 * For commands that read what others stored (ledger, dead letters): the existing store (see withExistingStore) and the
 * tenant by the rule (tenantOf), for the duration of `work`; `given` has the options and variables, checked before
 * the store is opened.
 */
export async function withStoreTenant<T>(
  options: StoreOptions & { readonly targetUrl?: string },
  work: (store: OutboxStore, tenant: string, given: GivenTargetSettings, location: StoreLocation) => Promise<T>,
): Promise<T> {
  const given = givenTargetSettings(options);
  return withExistingStore(options, async (store, location) => work(store, await tenantOf(given, store, location), given, location));
}

/**
 * For commands that read what others stored (ledger, dead letters): a SQLite file that does not exist is a mistyped
 * path, not a store to create, so it is an error naming the path.
 */
export async function withExistingStore<T>(
  options: StoreOptions,
  work: (store: OutboxStore, location: StoreLocation) => Promise<T>,
): Promise<T> {
  const location = storeLocationFrom(options.store);
  if (location.kind === 'sqlite' && !existsSync(location.path)) {
    throw new StoreNotFoundError(
      `no store at ${location.path} (${options.store !== undefined ? '--store' : process.env.ONCEKIT_STORE ? 'ONCEKIT_STORE' : 'the default location'}): ` +
        'nothing was ever stored there; check the path, or run this where the relay or import keeps its store',
    );
  }
  return openAndRun(location, work);
}

/** A command that only reads was pointed at a store that does not exist. */
export class StoreNotFoundError extends OncekitError {
  constructor(message: string) {
    super('store_not_found', message);
  }
}

async function openAndRun<T>(
  location: StoreLocation,
  work: (store: OutboxStore, location: StoreLocation) => Promise<T>,
  tuning: Pick<OpenStateOptions, 'sqliteCacheKib'> = {},
): Promise<T> {
  const redis = location.kind === 'redis' ? await redisStoreSettingsFrom(process.env) : {};
  const state = await openState(location, { ...redis, ...tuning });
  try {
    return await work(state.outbox, location);
  } finally {
    await state.close();
  }
}

/** Errors only on stderr by default: per-event warnings (retries, dead letters) are in the ledger and the errors file. */
export function commandLogger(verbose: boolean): Logger {
  const logger = jsonLineLogger();
  return verbose ? logger : { info() {}, warn() {}, error: logger.error };
}
