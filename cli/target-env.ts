import { z } from 'zod';
import type { FieldIssue } from '../shared/errors.js';
import type { TenantTarget } from '../shared/outbox/types.js';
import { DEFAULT_TARGET_URL } from '../shared/target/saasquatch-api.js';
import { targetId } from '../shared/target/target-id.js';
import { UsageError } from './usage.js';

/** The environment variables every command that talks to the target reads. The API key is only ever taken from here. */
export const targetEnvironmentSchema = z.object({
  ONCEKIT_TARGET_URL: z.string().optional(),
  ONCEKIT_TENANT: z.string().optional(),
  ONCEKIT_API_KEY: z.string().optional(),
});

/** How errors name each setting: the option and its variable. */
export const TENANT_SETTING = '--tenant (or ONCEKIT_TENANT)';
export const TARGET_URL_SETTING = '--target-url (or ONCEKIT_TARGET_URL)';

/** What the command line and the environment give, before any default. */
export interface GivenTargetSettings {
  readonly targetUrl: string | undefined;
  readonly tenant: string | undefined;
  readonly apiKey: string | undefined;
}

export interface TargetSettings extends GivenTargetSettings {
  readonly targetUrl: string;
}

/**
 * The rule every command follows for its tenant and target, its first two steps: the option, else the environment
 * variable. Either one given but empty is a usage error, never a default: an empty ONCEKIT_TARGET_URL must not quietly
 * mean production. (Commands that read a store take a third step: tenantFromStore, targetUrlFromStore.)
 */
export function givenTargetSettings(
  options: { readonly targetUrl?: string; readonly tenant?: string },
  env: NodeJS.ProcessEnv = process.env,
): GivenTargetSettings {
  const parsed = targetEnvironmentSchema.parse(env);
  const issues: FieldIssue[] = [];
  const pick = (option: string | undefined, optionName: string, variable: string | undefined, variableName: string) => {
    const [value, name] = option !== undefined ? [option, optionName] : [variable, variableName];
    if (value !== undefined && value.trim() === '') {
      issues.push({
        field: name,
        reason: name === optionName ? 'must not be empty' : 'is set but empty: give it a value, or unset it for the default',
      });
    }
    return value;
  };
  const targetUrl = pick(options.targetUrl, '--target-url', parsed.ONCEKIT_TARGET_URL, 'ONCEKIT_TARGET_URL');
  const tenant = pick(options.tenant, '--tenant', parsed.ONCEKIT_TENANT, 'ONCEKIT_TENANT');
  if (issues.length > 0) throw new UsageError(issues);
  return { targetUrl, tenant, apiKey: parsed.ONCEKIT_API_KEY || undefined };
}

/** For a command that reads no store (send): the URL defaults to SaaSquatch's production API. */
export function targetSettings(
  options: { readonly targetUrl?: string; readonly tenant?: string },
  env: NodeJS.ProcessEnv = process.env,
): TargetSettings {
  const given = givenTargetSettings(options, env);
  return { ...given, targetUrl: given.targetUrl ?? DEFAULT_TARGET_URL };
}

/** What a store holds, for the third step: its tenants and targets, and how to name it in an error. */
export interface StoredScope {
  readonly pairs: readonly TenantTarget[];
  /** e.g. `the store sqlite:.oncekit/oncekit.db`. */
  readonly where: string;
}

/**
 * The tenant of a command that reads a store: the option, else ONCEKIT_TENANT, else the only tenant the store holds
 * events for (for the given target, when one is given). None or several: a usage error listing what the store has.
 */
export function tenantFromStore(given: GivenTargetSettings, stored: StoredScope): string {
  if (given.tenant !== undefined) return given.tenant;
  const url = given.targetUrl;
  const pairs = url === undefined ? stored.pairs : stored.pairs.filter((pair) => sameTarget(pair.target, url));
  const tenants = distinct(pairs.map((pair) => pair.tenant));
  if (tenants.length === 1 && tenants[0] !== undefined) return tenants[0];
  const forTarget = url === undefined ? '' : ` for ${url}`;
  throw new UsageError([
    {
      field: TENANT_SETTING,
      reason:
        tenants.length === 0
          ? `required: ${stored.where} holds no events${forTarget} to take the tenant from`
          : `required: ${stored.where} holds events${forTarget} of several tenants (${listed(tenants)}); give one`,
    },
  ]);
}

/**
 * The target URL of a command that reads a store and delivers: the option, else ONCEKIT_TARGET_URL, else the only
 * target the store holds events of the tenant for, else (none) SaaSquatch's production API. Several: a usage error
 * listing them.
 */
export function targetUrlFromStore(given: GivenTargetSettings, tenant: string, stored: StoredScope): string {
  if (given.targetUrl !== undefined) return given.targetUrl;
  // '' is the target of events stored before targets were recorded: any target of the tenant may take them.
  const targets = distinct(stored.pairs.filter((pair) => pair.tenant === tenant && pair.target !== '').map((pair) => pair.target));
  if (targets.length === 0) return DEFAULT_TARGET_URL;
  if (targets.length === 1 && targets[0] !== undefined) return targets[0];
  throw new UsageError([
    {
      field: TARGET_URL_SETTING,
      reason: `required: ${stored.where} holds events of tenant ${tenant} for several targets (${listed(targets)}); give one`,
    },
  ]);
}

function sameTarget(stored: string, url: string): boolean {
  try {
    return stored === targetId(url);
  } catch {
    return false; // not a URL: the URL check names the option later
  }
}

const distinct = (values: readonly string[]): string[] => [...new Set(values)];

/** At most ten, so a store with many tenants still gives a readable line. */
function listed(values: readonly string[]): string {
  const shown = values.slice(0, 10).join(', ');
  return values.length > 10 ? `${shown} and ${values.length - 10} more` : shown;
}
