import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import {
  decideKey,
  type InvalidKeyPolicy,
  invalidKeyPolicies,
  type KeyDecision,
  type KeyProfileName,
  type KeySource,
  keyProfiles,
  rawCandidate,
} from '../../shared/keys/index.js';
import { choiceOption, EXIT_FAILURE, EXIT_OK, printJson } from '../usage.js';

/** The sources a decision may be labelled with: oncekit's connectors, the importer, and a raw key. */
const keySources = ['segment', 'zapier', 'salesforce', 'keygen', 'import', 'raw'] as const satisfies readonly KeySource[];

interface KeyCommandOptions {
  readonly policy: InvalidKeyPolicy;
  readonly profile: KeyProfileName;
  readonly source: KeySource;
}

export function registerKeyCommand(program: Command): void {
  program
    .command('key')
    .description('decide the idempotency key for a candidate and print the decision as JSON')
    .argument('[candidate]', 'the candidate key; without it, one candidate per line is read from stdin and one JSON line is printed each')
    .option(
      '--policy <policy>',
      `what to do with an invalid candidate: ${invalidKeyPolicies.join(', ')}`,
      choiceOption(invalidKeyPolicies),
      'drop',
    )
    .option(
      '--profile <profile>',
      `the target's key rules: ${Object.keys(keyProfiles).join(', ')}`,
      choiceOption(Object.keys(keyProfiles) as KeyProfileName[]),
      'saasquatch',
    )
    .option('--source <source>', `the source named in the decision: ${keySources.join(', ')}`, choiceOption(keySources), 'raw')
    .addHelpText(
      'after',
      "\nExit status: 0, or 1 when --policy reject refused a candidate.\nA line's trailing CR (Windows line ends) is not part of the candidate.",
    )
    .action(async (candidate: string | undefined, options: KeyCommandOptions) => {
      // The decision printed is the report, so the drop warning is not repeated on stderr.
      const decide = (value: string): KeyDecision =>
        decideKey(rawCandidate(value, options.source), { policy: options.policy, profile: keyProfiles[options.profile] });
      if (candidate !== undefined) {
        const decision = decide(candidate);
        printJson(decision);
        process.exitCode = decision.decision === 'rejected' ? EXIT_FAILURE : EXIT_OK;
        return;
      }
      process.exitCode = (await decideLines(decide)) ? EXIT_FAILURE : EXIT_OK;
    });
}

/** Streams stdin line by line, writing output in large chunks so that millions of lines stay fast. */
async function decideLines(decide: (value: string) => KeyDecision): Promise<boolean> {
  let anyRejected = false;
  let buffer = '';
  const lines = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    const decision = decide(line);
    anyRejected ||= decision.decision === 'rejected';
    buffer += `${JSON.stringify(decision)}\n`;
    if (buffer.length > 64 * 1024) {
      if (!process.stdout.write(buffer)) await new Promise((resolve) => process.stdout.once('drain', resolve));
      buffer = '';
    }
  }
  if (buffer.length > 0) process.stdout.write(buffer);
  return anyRejected;
}
