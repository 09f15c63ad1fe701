#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { InvalidInputError, OncekitError } from '../shared/errors.js';
import { TargetCheckError } from '../shared/target/client.js';
import { describeSystemError } from './system-errors.js';
import { EXIT_CONFIG, EXIT_FAILURE, EXIT_USAGE, UsageError } from './usage.js';

// package.json sits two folders up from dist/cli/ (and from cli/ in the sources).
const packageJson = new URL(import.meta.url.includes('/dist/cli/') ? '../../package.json' : '../package.json', import.meta.url);
const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };

const program = new Command('oncekit')
  .description('Forward user events to an events API so that each takes effect once.')
  .version(version, '-V, --version', 'print the version')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

type Register = (program: Command) => void;

/** Each command's module, in the order help lists them: loaded only when named, so a command pays for its own code. */
const commands: Readonly<Record<string, () => Promise<Register>>> = {
  key: async () => (await import('./commands/key.js')).registerKeyCommand,
  send: async () => (await import('./commands/send.js')).registerSendCommand,
  sandbox: async () => (await import('./commands/sandbox.js')).registerSandboxCommand,
  import: async () => (await import('./commands/import.js')).registerImportCommand,
  ledger: async () => (await import('./commands/ledger.js')).registerLedgerCommand,
  'dead-letters': async () => (await import('./commands/dead-letters.js')).registerDeadLettersCommand,
  relay: async () => (await import('./commands/relay.js')).registerRelayCommand,
  demo: async () => (await import('./commands/demo/index.js')).registerDemoCommand,
};

// The first word that is not an option names the command; help, a typo or no command at all loads them all.
const named = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
const loaders = named !== undefined && Object.hasOwn(commands, named) ? [commands[named]] : Object.values(commands);
for (const register of await Promise.all(loaders.map((load) => load?.()))) register?.(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = exitCodeFor(error);
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    // Help and version exit 0; every parse problem is bad usage.
    return error.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  if (error instanceof UsageError || error instanceof InvalidInputError) {
    process.stderr.write(`oncekit: ${error.message}\n`);
    return EXIT_USAGE;
  }
  if (error instanceof TargetCheckError && error.failure.kind === 'auth') {
    process.stderr.write(`oncekit: ${error.message}\n`);
    return EXIT_CONFIG;
  }
  if (error instanceof OncekitError) {
    process.stderr.write(`oncekit: ${error.message}\n`);
    return EXIT_FAILURE;
  }
  const expected = describeSystemError(error);
  if (expected !== null) {
    process.stderr.write(`oncekit: ${expected}\n`);
    return EXIT_FAILURE;
  }
  // A stack is for whoever debugs oncekit, not for every user who meets a bug.
  const debug = process.env.ONCEKIT_LOG_LEVEL === 'debug' || process.env.ONCEKIT_LOG_LEVEL === 'trace';
  const detail = error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error);
  process.stderr.write(`oncekit: unexpected error: ${detail}\n`);
  if (!debug) process.stderr.write('oncekit: set ONCEKIT_LOG_LEVEL=debug to see where it happened\n');
  return EXIT_FAILURE;
}
