import type { Command } from 'commander';
import { z } from 'zod';
import { InvalidInputError } from '../../shared/errors.js';
import { buildUserEventInput, type UserEventInput } from '../../shared/events/index.js';
import { decideKey, type InvalidKeyPolicy, invalidKeyPolicies, type KeyDecision, rawCandidate } from '../../shared/keys/index.js';
import { jsonLineLogger } from '../../shared/log.js';
import { createTargetClient, isSuccess, type TargetApi, targetApis } from '../../shared/target/index.js';
import { targetSettings } from '../target-env.js';
import { choiceOption, EXIT_FAILURE, EXIT_OK, integerOption, parseOptions, printJson, UsageError } from '../usage.js';

interface SendCommandOptions {
  readonly targetUrl?: string;
  readonly tenant?: string;
  readonly userId: string;
  readonly accountId: string;
  readonly event: string;
  readonly fields?: string;
  readonly date?: string;
  readonly idempotencyKey?: string;
  readonly policy: InvalidKeyPolicy;
  readonly transport: TargetApi;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
}

const OPTION_NAMES: Record<string, string> = {
  targetUrl: '--target-url (or ONCEKIT_TARGET_URL)',
  tenant: '--tenant (or ONCEKIT_TENANT)',
  apiKey: 'ONCEKIT_API_KEY',
  fields: '--fields',
};

const sendSettingsSchema = z.object({
  targetUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  tenant: z.string({ error: 'required' }).min(1, 'must not be empty'),
  apiKey: z.string({ error: 'required: set the environment variable (it is never taken from the command line)' }).min(1),
});

const fieldsSchema = z.record(z.string(), z.unknown(), { error: 'must be a JSON object' });

export function registerSendCommand(program: Command): void {
  program
    .command('send')
    .description('log one user event through the target client and print the outcome as JSON')
    .option('--target-url <url>', 'the API base URL (env ONCEKIT_TARGET_URL; default https://app.referralsaasquatch.com)')
    .option('--tenant <alias>', 'the tenant alias (env ONCEKIT_TENANT)')
    .requiredOption('--user-id <id>', 'the user id')
    .requiredOption('--account-id <id>', 'the account id')
    .requiredOption('--event <key>', 'the event key, e.g. purchase')
    .option('--fields <json>', 'the event fields as a JSON object')
    .option('--date <iso|ms>', 'when the event happened: ISO-8601 or epoch milliseconds (default: now, set by the target)')
    .option('--idempotency-key <key>', 'the candidate idempotency key; it goes through the key rules')
    .option(
      '--policy <policy>',
      `what to do with an invalid key: ${invalidKeyPolicies.join(', ')}`,
      choiceOption(invalidKeyPolicies),
      'drop',
    )
    .option('--transport <api>', `the API to call: ${targetApis.join(', ')}`, choiceOption(targetApis), 'rest')
    .option('--timeout-ms <ms>', 'timeout of one attempt', integerOption(1, 600_000), 10_000)
    .option('--max-attempts <n>', 'attempts before giving up (retries 408, 429, 5xx, network errors)', integerOption(1, 100), 5)
    .addHelpText(
      'after',
      '\nThe API key is read from ONCEKIT_API_KEY only.\nExit status: 0 when the event was accepted or was a duplicate (409), 1 when rejected or failed, 2 for bad usage.',
    )
    .action(async (options: SendCommandOptions) => {
      const settings = parseOptions(sendSettingsSchema, targetSettings(options), (field) => OPTION_NAMES[field] ?? field);
      const fields = options.fields === undefined ? undefined : parseFields(options.fields);
      const logger = jsonLineLogger();
      const decision =
        options.idempotencyKey === undefined ? null : decideKey(rawCandidate(options.idempotencyKey), { policy: options.policy, logger });
      if (decision?.decision === 'rejected') {
        printJson({
          outcome: 'rejected',
          status: null,
          attempts: 0,
          key: null,
          decision,
          message: `idempotency key refused (${decision.reason})`,
        });
        process.exitCode = EXIT_FAILURE;
        return;
      }
      const input = buildInput(options, fields, decision);
      // Loaded here, not at start-up: only this command talks HTTP.
      const { undiciTransport } = await import('../../shared/target/transport-undici.js');
      const transport = undiciTransport({ connections: 1 });
      try {
        const client = createTargetClient({
          baseUrl: settings.targetUrl,
          tenant: settings.tenant,
          apiKey: settings.apiKey,
          transport: transport.send,
          api: options.transport,
          timeoutMs: options.timeoutMs,
          retry: { maxAttempts: options.maxAttempts },
          logger,
        });
        const result = await client.logUserEvent(input);
        printJson({
          outcome: result.outcome,
          status: result.status,
          attempts: result.attempts,
          key: result.key,
          decision,
          eventIds: result.eventIds,
          ...(result.outcome === 'accepted' ? {} : { message: result.message, apiErrorCode: result.apiErrorCode, rsCode: result.rsCode }),
        });
        process.exitCode = isSuccess(result.outcome) ? EXIT_OK : EXIT_FAILURE;
      } finally {
        await transport.close();
      }
    });
}

const EVENT_FIELD_OPTIONS: [RegExp, string][] = [
  [/^userId/, '--user-id'],
  [/^accountId/, '--account-id'],
  [/^events\[0\]\.key/, '--event'],
  [/^events\[0\]\.dateTriggered/, '--date'],
  [/^events\[0\]\.fields\.?/, '--fields '],
];

/** Builds the event, naming the command-line option in any error rather than the body field. */
function buildInput(
  options: SendCommandOptions,
  fields: Record<string, unknown> | undefined,
  decision: KeyDecision | null,
): UserEventInput {
  try {
    return buildUserEventInput(
      { userId: options.userId, accountId: options.accountId, events: [{ key: options.event, fields, dateTriggered: options.date }] },
      decision,
    );
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    throw new UsageError(
      error.issues.map((issue) => {
        const match = EVENT_FIELD_OPTIONS.find(([pattern]) => pattern.test(issue.field));
        return { field: match ? `${match[1]}${issue.field.replace(match[0], '')}`.trim() : issue.field, reason: issue.reason };
      }),
    );
  }
}

function parseFields(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError([{ field: '--fields', reason: `not valid JSON (${error instanceof Error ? error.message : 'parse error'})` }]);
  }
  return parseOptions(fieldsSchema, parsed, () => '--fields');
}
