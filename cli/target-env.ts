import { z } from 'zod';
import { DEFAULT_TARGET_URL } from '../shared/target/saasquatch-api.js';

/** The environment variables every command that talks to the target reads. The API key is only ever taken from here. */
export const targetEnvironmentSchema = z.object({
  ONCEKIT_TARGET_URL: z.string().optional(),
  ONCEKIT_TENANT: z.string().optional(),
  ONCEKIT_API_KEY: z.string().optional(),
});

export interface TargetSettings {
  readonly targetUrl: string;
  readonly tenant: string | undefined;
  readonly apiKey: string | undefined;
}

/**
 * Options win over the environment; the URL defaults to SaaSquatch's production API only when ONCEKIT_TARGET_URL is
 * unset: set but empty, it stays empty and is refused, never taken to mean production.
 */
export function targetSettings(
  options: { readonly targetUrl?: string; readonly tenant?: string },
  env: NodeJS.ProcessEnv = process.env,
): TargetSettings {
  const parsed = targetEnvironmentSchema.parse(env);
  return {
    targetUrl: options.targetUrl ?? parsed.ONCEKIT_TARGET_URL ?? DEFAULT_TARGET_URL,
    tenant: options.tenant ?? (parsed.ONCEKIT_TENANT || undefined),
    apiKey: parsed.ONCEKIT_API_KEY || undefined,
  };
}
