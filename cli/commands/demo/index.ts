import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { choiceOption, EXIT_FAILURE, EXIT_OK, integerOption, printJson } from '../../usage.js';
import { checkInvariants, sourceRows } from './checks.js';
import { type DemoReport, formatDemoReport } from './report.js';
import { SOURCES, TENANT } from './sources.js';

export const PLATFORM_EVENTS_NOTE =
  'Salesforce is a local fake org on loopback (OAuth client credentials, REST for the Lead lookup through the real jsforce ' +
  'client, and a Pub/Sub API gRPC server publishing the Platform Events, Avro-encoded, to the real @grpc/grpc-js client with ' +
  'flow control and durable replay); set ONCEKIT_SF_* and run `oncekit relay` for a real org.';

interface DemoCommandOptions {
  readonly json?: boolean;
  readonly store: 'memory' | 'sqlite';
  readonly timeout: number;
  readonly logLevel: 'silent' | 'error' | 'warn' | 'info' | 'debug';
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('start a sandbox and the relay in-process, send traffic from each source with target faults, and show what happened')
    .option('--json', 'print the report as JSON')
    .option(
      '--store <kind>',
      'the relay store: memory, or sqlite in a temporary directory',
      choiceOption(['memory', 'sqlite'] as const),
      'memory',
    )
    .option('--timeout <seconds>', 'how long to wait for the outbox to drain', integerOption(1, 600), 8)
    .option(
      '--log-level <level>',
      "the relay's JSON logs, on stderr",
      choiceOption(['silent', 'error', 'warn', 'info', 'debug'] as const),
      'silent',
    )
    .addHelpText(
      'after',
      `\n${PLATFORM_EVENTS_NOTE}\nExit status: 0 when every keyed event was recorded exactly once and nothing was lost, 1 otherwise.`,
    )
    .action(async (options: DemoCommandOptions) => {
      const report = await runDemo(options);
      if (options.json) printJson(report);
      else process.stdout.write(formatDemoReport(report));
      process.exitCode = report.ok ? EXIT_OK : EXIT_FAILURE;
    });
}

async function runDemo(options: DemoCommandOptions): Promise<DemoReport> {
  const started = performance.now();
  // Loaded here: the sandbox (graphql-js), the relay (fastify, jsforce) and the traffic are this command's alone.
  const { startSandbox, DEFAULT_SANDBOX_API_KEY } = await import('../../../sandbox/target/index.js');
  const { readRelayConfig } = await import('../../../connectors/relay/config.js');
  const { startRelay } = await import('../../../connectors/relay/relay.js');
  const { startFakeOrg } = await import('../../../sandbox/salesforce-org/index.js');
  const traffic = await import('./traffic.js');
  // jsforce sends even loopback requests through a proxy when one is set; the demo's org is on loopback.
  for (const name of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY']) delete process.env[name];

  const keygenKeys = generateKeyPairSync('ed25519');
  const keygenPublicKeyHex = keygenKeys.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
  const relaySecret = randomBytes(24).toString('base64url');
  const segmentSecret = randomBytes(24).toString('base64url');
  const tempDir = options.store === 'sqlite' ? await mkdtemp(join(tmpdir(), 'oncekit-demo-')) : null;
  const storeText = tempDir ? `sqlite:${join(tempDir, 'oncekit.db')}` : 'memory';

  const sandbox = await startSandbox({ host: '127.0.0.1', port: 0 });
  const org = await startFakeOrg({
    clientCredentials: traffic.DEMO_ORG_CLIENT,
    records: { Lead: [traffic.DEMO_LEAD] },
    bayeuxTimeoutSeconds: 5,
    pubsub: true,
  });
  let relay: Awaited<ReturnType<typeof startRelay>> | null = null;
  try {
    // Only what the demo sets: a user's ONCEKIT_SF_* or target settings must not leak in.
    const env: Record<string, string> = {
      ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
      ONCEKIT_RELAY_SECRET: relaySecret,
      ONCEKIT_KEYGEN_PUBLIC_KEY: keygenPublicKeyHex,
      ONCEKIT_SEGMENT_SHARED_SECRET: segmentSecret,
      ONCEKIT_LOG_LEVEL: options.logLevel,
      ONCEKIT_SF_AUTH_FLOW: 'client-credentials',
      ONCEKIT_SF_CLIENT_ID: traffic.DEMO_ORG_CLIENT.clientId,
      ONCEKIT_SF_CLIENT_SECRET: traffic.DEMO_ORG_CLIENT.clientSecret,
      ONCEKIT_SF_LOGIN_URL: org.url,
      // Platform Events come over the Pub/Sub API, from the fake org's loopback gRPC server (plaintext: loopback only).
      ONCEKIT_SF_EVENT_TRANSPORT: 'pubsub',
      ONCEKIT_SF_PUBSUB_ENDPOINT: org.pubsub?.url ?? '',
    };
    const config = readRelayConfig({ host: '127.0.0.1', port: 0, targetUrl: sandbox.url, tenant: TENANT, store: storeText }, env);
    relay = await startRelay(
      { ...config, target: { url: sandbox.url, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY } },
      {
        // Short backoff and polling, so the scripted faults are retried within the demo's few seconds.
        outbox: { backoffBaseMs: 50, backoffMaxMs: 1000, pollMs: 25 },
        logStream: options.logLevel === 'silent' ? discard() : process.stderr,
      },
    );
    const running = relay;
    const tallies = traffic.newTallies();
    const send = traffic.sender(running.url, relaySecret, segmentSecret, keygenKeys.privateKey, tallies);
    const deadline = Date.now() + options.timeout * 1000;

    // Keyed traffic meets the scripted target faults; unkeyed traffic follows once they are spent.
    sandbox.faults.enqueue(...traffic.SCRIPTED_FAULTS);
    const drainStarted = performance.now();
    await traffic.sendKeyedTraffic(send, org, running, tallies, deadline);
    await traffic.waitForDrain(running, sandbox, deadline);
    await traffic.sendUnkeyedTraffic(send);
    const drained = await traffic.waitForDrain(running, sandbox, deadline);
    const drainMs = performance.now() - drainStarted;

    const snapshot = sandbox.inspect(TENANT);
    const rows = await sourceRows(running, tallies, snapshot);
    const counts = await running.outbox.counts(TENANT);
    const invariants = checkInvariants(rows, tallies, snapshot, counts, drained);
    const events = SOURCES.flatMap((source) => [...tallies[source].events.values()]);
    return {
      ok: invariants.every((invariant) => invariant.ok),
      sandbox: { url: sandbox.url, tenant: TENANT },
      relay: { url: running.url, store: storeText },
      sources: rows,
      target: {
        requests: snapshot.requests.total,
        byStatus: snapshot.requests.byStatus,
        faultsInjected: Object.fromEntries(Object.entries(sandbox.faults.state().injected).filter(([, n]) => n > 0)),
        events: snapshot.events.length,
      },
      keyedEvents: events.filter((event) => event.key !== null).length,
      unkeyedEvents: events.filter((event) => event.key === null).length,
      drainMs: Math.round(drainMs),
      elapsedMs: Math.round(performance.now() - started),
      invariants,
      notes: [PLATFORM_EVENTS_NOTE],
    };
  } finally {
    await relay?.stop();
    await org.close();
    await sandbox.close();
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  }
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}
