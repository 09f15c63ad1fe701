import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { type ImportFormat, type ImportProgress, type ImportSummary, importFormats, runImport } from '../../shared/import/index.js';
import { type InvalidKeyPolicy, invalidKeyPolicies } from '../../shared/keys/index.js';
import { jsonLineLogger, type Logger } from '../../shared/log.js';
import {
  addDeliveryOptions,
  addStoreOptions,
  commandLogger,
  type DeliveryOptions,
  deliveryConfigFrom,
  outboxTargetFrom,
  withStore,
} from '../outbox-options.js';
import { choiceOption, EXIT_FAILURE, EXIT_OK, printJson } from '../usage.js';

interface ImportCommandOptions extends DeliveryOptions {
  readonly format?: ImportFormat;
  readonly keyFrom?: string;
  readonly policy: InvalidKeyPolicy;
  readonly errorsFile?: string;
  readonly dryRun?: boolean;
  readonly json?: boolean;
  readonly progress: boolean;
  readonly verbose?: boolean;
}

const EXAMPLES = `
Examples:
  $ export ONCEKIT_TENANT=acme ONCEKIT_API_KEY=...
  $ oncekit import events.jsonl
  $ oncekit import purchases.csv --key-from event.fields.order_id --concurrency 8
  $ oncekit import purchases.csv --dry-run            # validate, decide keys, send nothing
  $ oncekit import purchases.csv --json | tail -n1    # the summary as JSON

JSONL lines are the target's import lines: {"userId","accountId","idempotencyKey"?,"event":{"key","dateTriggered"?,"fields"?}}.
CSV columns: accountId, userId, event.key, event.dateTriggered, event.fields.NAME..., idempotencyKey.
Every row is persisted to the outbox before it counts as taken, so a re-run of the same file (after a crash or
Ctrl-C) skips what the ledger already has and delivers the rest. Bad rows go to the errors file and the run goes on.
The API key is read from ONCEKIT_API_KEY only.
Exit status: 0 when every row was delivered (accepted or duplicate), 1 when some row was invalid, became a dead letter
or is still pending, 2 for bad usage. Accepted rows sent without a key after a lost answer may have been recorded twice:
the summary counts them (possibleDuplicates) and says how to give such rows a key.`;

export function registerImportCommand(program: Command): void {
  const command = program
    .command('import')
    .description('import user events from a JSONL or CSV file through the outbox, exactly once per key')
    .argument('<file>', 'a .jsonl or .csv file')
    .option('--format <format>', `the file format: ${importFormats.join(', ')} (default: from the extension)`, choiceOption(importFormats))
    .option('--key-from <columns>', 'derive a deterministic key from these columns for rows without one, e.g. event.fields.order_id,userId')
    .option(
      '--policy <policy>',
      `what to do with an invalid key: ${invalidKeyPolicies.join(', ')}`,
      choiceOption(invalidKeyPolicies),
      'drop',
    )
    .option('--errors-file <path>', 'where to write rows that failed (default: FILE.errors.csv)')
    .option('--dry-run', 'validate every row and decide its key; store nothing, send nothing')
    .option('--json', 'print the summary as JSON on the last line of stdout')
    .option('--no-progress', 'no progress bar, even on a terminal')
    .option('--verbose', 'log retries and dead letters on stderr as they happen');
  addStoreOptions(command);
  addDeliveryOptions(command);
  command.addHelpText('after', EXAMPLES).action(async (file: string, options: ImportCommandOptions) => {
    const config = deliveryConfigFrom(options);
    const keyFrom = options.keyFrom
      ?.split(',')
      .map((name) => name.trim())
      .filter(Boolean);
    const common = {
      file,
      ...(options.format ? { format: options.format } : {}),
      ...(keyFrom ? { keyFrom } : {}),
      policy: options.policy,
      ...(options.errorsFile ? { errorsFile: options.errorsFile } : {}),
    };
    const bar = options.progress && process.stderr.isTTY && !options.json ? progressBar() : null;
    const logger = retriesShown(commandLogger(options.verbose === true), options.verbose === true, bar);
    const controller = new AbortController();
    const interrupt = (): void => {
      if (controller.signal.aborted) process.exit(130); // a second Ctrl-C: leave now; leases expire and the next run resumes
      process.stderr.write('\nstopping: finishing the batches in flight; run the same command again to resume\n');
      controller.abort();
    };
    process.on('SIGINT', interrupt);
    process.on('SIGTERM', interrupt);
    let summary: ImportSummary;
    try {
      if (options.dryRun) {
        summary = await runImport({
          ...common,
          logger,
          delivery: null,
          signal: controller.signal,
          ...(bar ? { onProgress: bar.update } : {}),
        });
      } else {
        const { target, close } = outboxTargetFrom(options, config.concurrency);
        try {
          summary = await withStore(options, (store) =>
            runImport({
              ...common,
              logger,
              delivery: { store, target, config },
              signal: controller.signal,
              ...(bar ? { onProgress: bar.update } : {}),
            }),
          );
        } finally {
          await close();
        }
      }
    } finally {
      bar?.stop();
      process.off('SIGINT', interrupt);
      process.off('SIGTERM', interrupt);
    }
    if (options.json) {
      printJson(summary);
      if (summary.possibleDuplicates > 0) process.stderr.write(`warning: ${describePossibleDuplicates(summary.possibleDuplicates)}\n`);
    } else process.stdout.write(`${describeSummary(summary)}\n`);
    const complete = summary.invalid === 0 && summary.deadLetters === 0 && summary.pending === 0 && !summary.interrupted;
    process.exitCode = complete ? EXIT_OK : EXIT_FAILURE;
  });
}

/**
 * The command's logger, except that a delivery the worker will retry (the target cannot be resolved, refuses the
 * connection, or fails) is never silent: it is shown on the progress line, or, without one, logged on stderr each time.
 */
function retriesShown(logger: Logger, verbose: boolean, bar: ProgressLine | null): Logger {
  const always = jsonLineLogger();
  return {
    info: (fields, message) => logger.info(fields, message),
    error: (fields, message) => logger.error(fields, message),
    warn: (fields, message) => {
      if (fields.event !== 'outbox_delivery_retry') return logger.warn(fields, message);
      bar?.retrying(message);
      if (verbose) logger.warn(fields, message);
      else if (!bar) always.warn(fields, message);
    },
  };
}

interface ProgressLine {
  update(progress: ImportProgress): void;
  /** Shows why delivery is waiting until the next event settles. */
  retrying(message: string): void;
  stop(): void;
}

function progressBar(): ProgressLine {
  const bar = new SingleBar(
    {
      format:
        'importing [{bar}] {percentage}% | {rows} rows, {settled} settled, {invalid} invalid, {skipped} skipped | {eta_formatted}{retrying}',
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
    },
    undefined,
  );
  let started = false;
  let settled = 0;
  let retrying = '';
  return {
    update: (progress) => {
      if (progress.settled > settled) retrying = '';
      settled = progress.settled;
      const payload = { rows: progress.rows, settled: progress.settled, invalid: progress.invalid, skipped: progress.skipped, retrying };
      if (!started) {
        bar.start(Math.max(1, progress.totalBytes), progress.bytesRead, payload);
        started = true;
      } else bar.update(progress.bytesRead, payload);
    },
    retrying: (message) => {
      retrying = ` | ${message}`;
      if (started) bar.update({ retrying });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

/** The warning for keyless rows that may have been recorded twice, with what prevents it next time. */
function describePossibleDuplicates(count: number): string {
  return (
    `${count} accepted row${count === 1 ? ' was' : 's were'} sent without an idempotency key after an answer was lost ` +
    '(timeout, reset or 5xx), so the target may have recorded them twice; give rows a key with --key-from COLUMNS ' +
    '(or --policy hash for invalid keys), and see oncekit ledger show'
  );
}

function describeSummary(s: ImportSummary): string {
  const seconds = (s.elapsedMs / 1000).toFixed(1);
  const lines = [
    s.dryRun
      ? `dry run of ${s.file} (${s.format}): nothing was stored or sent`
      : `imported ${s.file} (${s.format}) into tenant ${s.tenant}`,
    `  rows:       ${s.rows} (${s.valid} valid, ${s.invalid} invalid)`,
    `  keys:       ${s.keysKept} kept, ${s.keysHashed} hashed, ${s.keysDropped} dropped (sent without a key)`,
  ];
  if (!s.dryRun) {
    lines.push(`  enqueued:   ${s.enqueued}, skipped ${s.skipped} already in the ledger`);
    lines.push(`  outcomes:   ${s.accepted} accepted, ${s.duplicate} duplicate, ${s.rejected} rejected, ${s.deadLetters} dead letters`);
    if (s.pending > 0) lines.push(`  pending:    ${s.pending} still in the outbox; run the same command again to deliver them`);
    if (s.possibleDuplicates > 0) lines.push(`  duplicates? ${describePossibleDuplicates(s.possibleDuplicates)}`);
  }
  if (s.interrupted) lines.push('  interrupted before the end of the file');
  if (s.errorsFile) lines.push(`  errors:     ${s.errorsFile}`);
  if (s.deadLetters > 0) lines.push('  see:        oncekit dead-letters list');
  lines.push(`  took:       ${seconds} s`);
  return lines.join('\n');
}
