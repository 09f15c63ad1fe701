import type { Bundle, ZObject } from 'zapier-platform-core';
import type { Logger } from '../../shared/log.js';
import { createTargetClient, DEFAULT_TARGET_URL, type TargetClient } from '../../shared/target/index.js';
import { zapierTransport } from './transport.js';

/** The connection as the user entered it (the auth fields), trimmed; checked by the target client, not here. */
export interface ConnectionSettings {
  readonly tenant: string;
  readonly apiKey: string;
  readonly baseUrl: string;
}

const text = (value: unknown): string => (typeof value === 'string' ? value.trim() : '');

export function connectionSettings(authData: Readonly<Record<string, unknown>> | undefined): ConnectionSettings {
  return {
    tenant: text(authData?.tenantAlias),
    apiKey: text(authData?.apiKey),
    // The field is optional and the editor sends an unset one as "".
    baseUrl: text(authData?.apiBaseUrl) || DEFAULT_TARGET_URL,
  };
}

/** Auth field keys by the target client's option names, so errors about the connection name what the user typed. */
export const authFieldForClientOption: Readonly<Record<string, string>> = {
  tenant: 'tenantAlias',
  apiKey: 'apiKey',
  baseUrl: 'apiBaseUrl',
};

// Below Zapier's 30 s limit for a create, so a slow target ends in our retryable error rather than the platform's timeout.
const ATTEMPT_TIMEOUT_MS = 25_000;

/** oncekit's structured log lines, written to the Zapier task log (the events carry no credentials). */
export function zapierLogger(z: ZObject): Logger {
  const line = (level: string, fields: Record<string, unknown>, message: string): string =>
    JSON.stringify({ level, ...fields, msg: message });
  return {
    info: (fields, message) => z.console.log(line('info', fields, message)),
    warn: (fields, message) => z.console.warn(line('warn', fields, message)),
    error: (fields, message) => z.console.error(line('error', fields, message)),
  };
}

/**
 * The shared target client for this run, over `z.request`. Its own retries are off: Zapier retries a failed step
 * (Autoreplay, manual replay, ThrottledError), and a step has 30 s, too little for backoff.
 * Throws InvalidInputError (naming the client option) when the connection settings are unusable.
 */
export function targetClientFor(z: ZObject, bundle: Pick<Bundle, 'authData'>): TargetClient {
  const settings = connectionSettings(bundle.authData);
  return createTargetClient({
    baseUrl: settings.baseUrl,
    tenant: settings.tenant,
    apiKey: settings.apiKey,
    transport: zapierTransport(z),
    retry: { maxAttempts: 1 },
    timeoutMs: ATTEMPT_TIMEOUT_MS,
    logger: zapierLogger(z),
  });
}
