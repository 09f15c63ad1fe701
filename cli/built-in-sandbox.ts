import type { RelayConfig } from '../connectors/relay/config.js';
import type { RelayDependencies, RelayTarget, RunningRelay } from '../connectors/relay/relay.js';
import type { Sandbox } from '../sandbox/target/server.js';

/** Tenant the built-in sandbox runs under when no target is configured. */
export const SANDBOX_TENANT = 'demo';

/**
 * The sandbox a command forwards to when no target is configured, started in-process on a free loopback port.
 * Loaded only when needed: graphql-js is the sandbox's alone.
 */
export async function startBuiltInSandbox(): Promise<{ readonly sandbox: Sandbox; readonly target: RelayTarget }> {
  const { startSandbox, DEFAULT_SANDBOX_API_KEY } = await import('../sandbox/target/server.js');
  const sandbox = await startSandbox({ port: 0 });
  // Its address is its identity, as for any target: two relays with built-in sandboxes on one store never take each
  // other's events (a stopped run's leftovers stay with the sandbox that is gone).
  return { sandbox, target: { url: sandbox.url, tenant: SANDBOX_TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, sandbox: true } };
}

/** A relay with its built-in sandbox, when one was started; stopping the relay stops the sandbox after it. */
export type RelayWithSandbox = RunningRelay & { readonly sandbox: Sandbox | null };

/** Starts the relay on its configured target, or on the built-in sandbox when none is configured. */
export async function startRelayOrSandbox(config: RelayConfig, dependencies: RelayDependencies = {}): Promise<RelayWithSandbox> {
  const { startRelay } = await import('../connectors/relay/relay.js');
  const { target, sandbox } = config.target ? { target: config.target, sandbox: null } : await startBuiltInSandbox();
  const relay = await startRelay({ ...config, target }, dependencies).catch(async (error: unknown) => {
    await sandbox?.close();
    throw error;
  });
  let stopped: Promise<void> | null = null;
  return {
    ...relay,
    sandbox,
    stop() {
      stopped ??= relay.stop().then(() => sandbox?.close());
      return stopped;
    },
  };
}
