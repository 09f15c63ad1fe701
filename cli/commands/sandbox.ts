import type { Command } from 'commander';
import { DEFAULT_SANDBOX_API_KEY } from '../../sandbox/target/defaults.js';
import { integerOption } from '../usage.js';

interface SandboxCommandOptions {
  readonly port: number;
  readonly host: string;
  readonly faults?: string;
  readonly strictUsers?: boolean;
  readonly maxRate?: number;
}

export function registerSandboxCommand(program: Command): void {
  program
    .command('sandbox')
    .description('run a local, stateful stand-in for the SaaSquatch user-events API')
    .option('--port <n>', 'port to listen on (0 picks a free one)', integerOption(0, 65_535), 8787)
    .option('--host <host>', 'address to bind', '127.0.0.1')
    .option(
      '--faults <spec>',
      'inject faults, e.g. "500=0.1,503=0.05,429=0.05,retry-after=2,drop=0.02,record-then-fail=0.05,latency=20,seed=42"',
    )
    .option(
      '--max-rate <n>',
      "the target's capacity in events per second; over it event requests get 429 with Retry-After",
      integerOption(1, 10_000_000),
    )
    .option('--strict-users', 'answer 404 for events of users that were never upserted')
    .addHelpText(
      'after',
      `\nThe API key it accepts is ONCEKIT_API_KEY, or "${DEFAULT_SANDBOX_API_KEY}" when that is unset.\nInspect what it recorded at /__sandbox/tenants/{tenant}.`,
    )
    .action(async (options: SandboxCommandOptions) => {
      // Loaded here, not at start-up: graphql-js is only needed by this command.
      const { parseFaultSpec, startSandbox } = await import('../../sandbox/target/index.js');
      const faults = options.faults === undefined ? undefined : parseFaultSpec(options.faults);
      const apiKey = process.env.ONCEKIT_API_KEY || undefined;
      const sandbox = await startSandbox({
        host: options.host,
        port: options.port,
        ...(apiKey ? { apiKey } : {}),
        ...(faults ? { faults } : {}),
        ...(options.strictUsers ? { strictUsers: true } : {}),
        ...(options.maxRate === undefined ? {} : { maxEventsPerSecond: options.maxRate }),
      });
      // Listening for SIGTERM before the first line: whoever reads that line may stop the sandbox at once.
      const stopped = new Promise<void>((resolve) => {
        const stop = (): void => {
          sandbox.close().then(resolve, resolve);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      process.stdout.write(`oncekit sandbox listening on ${sandbox.url}\n`);
      process.stdout.write(
        apiKey
          ? 'accepting the API key from ONCEKIT_API_KEY\n'
          : `accepting the development API key "${DEFAULT_SANDBOX_API_KEY}" (set ONCEKIT_API_KEY to choose one)\n`,
      );
      process.stdout.write(`inspect: ${sandbox.url}/__sandbox/tenants\n`);
      if (faults) process.stdout.write(`faults: ${options.faults}\n`);
      if (options.maxRate !== undefined) process.stdout.write(`capacity: ${options.maxRate} events/s, then 429\n`);
      await stopped;
    });
}
