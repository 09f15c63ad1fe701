import type { Command } from 'commander';
import { addDeliverySettingOptions, type DeliveryOptions, deliverySettingValues } from '../outbox-options.js';
import { integerOption } from '../usage.js';

interface RelayCommandOptions extends DeliveryOptions {
  readonly port?: number;
  readonly host?: string;
  readonly targetUrl?: string;
  readonly tenant?: string;
  readonly store?: string;
  readonly retention?: string;
}

export function registerRelayCommand(program: Command): void {
  const command = program
    .command('relay')
    .description('run the relay: Salesforce invocable calls and Platform Events, signed webhooks, a status page and metrics')
    .option('--port <n>', 'port to listen on (env ONCEKIT_PORT; default 8080; 0 picks a free one)', integerOption(0, 65_535))
    .option('--host <host>', 'address to bind (env ONCEKIT_HOST; default 127.0.0.1)')
    .option('--target-url <url>', 'the API base URL (env ONCEKIT_TARGET_URL); without a target the built-in sandbox is used')
    .option('--tenant <alias>', 'the tenant alias (env ONCEKIT_TENANT)')
    .option(
      '--store <store>',
      'memory | sqlite:PATH | redis://HOST:PORT | postgres://USER@HOST:PORT/DB (env ONCEKIT_STORE; default sqlite:.oncekit/oncekit.db)',
    )
    .addHelpText(
      'after',
      [
        '',
        'The API key comes from ONCEKIT_API_KEY and the inbound secret from ONCEKIT_RELAY_SECRET (generated and printed once',
        'when unset). Keygen: ONCEKIT_KEYGEN_PUBLIC_KEY. Segment webhooks: ONCEKIT_SEGMENT_SHARED_SECRET. Salesforce: ONCEKIT_SF_*.',
        'SIGTERM or Ctrl-C stops it gracefully: no new requests, in-flight work finishes, the outbox stays durable.',
      ].join('\n'),
    )
    .action(async (options: RelayCommandOptions) => {
      // Loaded here: the relay pulls in Fastify, jsforce and the stores, which the other commands do not need.
      const { readRelayConfig } = await import('../../connectors/relay/config.js');
      const { startRelayOrSandbox } = await import('../built-in-sandbox.js');
      const { describeStoreLocation } = await import('../../shared/state/location.js');
      const config = readRelayConfig({
        ...(options.port === undefined ? {} : { port: options.port }),
        ...(options.host === undefined ? {} : { host: options.host }),
        ...(options.targetUrl === undefined ? {} : { targetUrl: options.targetUrl }),
        ...(options.tenant === undefined ? {} : { tenant: options.tenant }),
        ...(options.store === undefined ? {} : { store: options.store }),
        delivery: deliverySettingValues(options),
        ...(options.retention === undefined ? {} : { retention: options.retention }),
      });
      // Without a target the relay forwards to the built-in sandbox, and says so loudly below.
      const relay = await startRelayOrSandbox(config);
      const say = (line: string): void => {
        process.stdout.write(`${line}\n`);
      };
      // Listening for SIGTERM before the first line: whoever reads that line may stop the relay at once.
      const stopped = new Promise<void>((resolve) => {
        const stop = (): void => {
          say('stopping: finishing in-flight requests and deliveries');
          relay.stop().then(resolve, resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      say(`oncekit relay listening on ${relay.url}`);
      if (relay.target.sandbox) {
        say('!! No target is configured: events go to the BUILT-IN SANDBOX, not to SaaSquatch.');
        say(
          `!! sandbox ${relay.target.url}, tenant "${relay.target.tenant}". Set ONCEKIT_TARGET_URL, ONCEKIT_TENANT and ONCEKIT_API_KEY to forward for real.`,
        );
      } else {
        say(`forwarding to ${relay.target.url}, tenant "${relay.target.tenant}"`);
      }
      if (config.relaySecretGenerated) {
        say(`relay secret (generated for this run, shown once; set ONCEKIT_RELAY_SECRET to keep one): ${config.relaySecret}`);
        say(`status page: ${relay.url}/?token=${config.relaySecret}`);
      } else {
        say(`status page: ${relay.url}/?token=<ONCEKIT_RELAY_SECRET>`);
      }
      say(`store: ${describeStoreLocation(config.store)}`);
      if (relay.subscriber) say(`Platform Events: subscribed to ${relay.subscriber.channel}`);

      await stopped;
    });
  addDeliverySettingOptions(command);
  command.option(
    '--retention <duration>',
    'how long settled events stay in the ledger; at least the retry horizon (env ONCEKIT_RETENTION; default 7d)',
  );
}
