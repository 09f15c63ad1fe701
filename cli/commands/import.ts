import type { Command } from 'commander';
import {
  IMPORT_SQLITE_CACHE_KIB,
  type ImportFormat,
  type ImportProgress,
  type ImportSummary,
  importFormatOf,
  importFormats,
  readableFileSize,
  runImport,
} from '../../shared/import/index.js';
import { type InvalidKeyPolicy, invalidKeyPolicies } from '../../shared/keys/index.js';
import { jsonLineLogger } from '../../shared/log.js';
import type { DeliveryRetry } from '../../shared/outbox/worker.js';
import { paceHeap } from '../heap-pacer.js';
import {
  addDeliveryOptions,
  addStoreOptions,
  commandLogger,
  type DeliveryOptions,
  deliveryConfigFrom,
  outboxTargetFrom,
  storeLocationFrom,
  tenantAndTargetUrlFor,
  withStore,
} from '../outbox-options.js';
import { createProgressBar } from '../progress.js';
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

/** The old generation the import keeps its heap near (see paceHeap): with the 8 MB page cache, peak RSS stays under 150 MB. */
const IMPORT_HEAP_MB = 32;

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
The errors file holds each failed row as it was, in the file's format, with recordNumber and error (why) in front:
fix the rows there and import the errors file itself: its recordNumber and error columns are ignored, the fixed rows
are delivered, and a row left as it was is not sent again.
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
    .option(
      '--errors-file <path>',
      'where to write rows that failed, in the format of FILE (default: FILE.errors.csv or FILE.errors.jsonl)',
    )
    .option('--dry-run', 'validate every row and decide its key; store nothing, send nothing')
    .option('--json', 'print the summary as JSON on the last line of stdout')
    .option('--no-progress', 'no progress bar, even on a terminal')
    .option('--verbose', 'log retries and dead letters on stderr as they happen');
  addStoreOptions(command);
  addDeliveryOptions(command);
  command.addHelpText('after', EXAMPLES).action(async (file: string, options: ImportCommandOptions) => {
    const config = deliveryConfigFrom(options);
    // Usage first (the format, the store), then a mistyped path, before any store is opened (or created) for it.
    importFormatOf(file, options.format);
    storeLocationFrom(options.store);
    await readableFileSize(file);
    const bar = options.progress && process.stderr.isTTY && !options.json ? importProgressBar(options.dryRun === true) : null;
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
      logger: commandLogger(options.verbose === true),
      onRetry: retryShown(options.verbose === true, bar),
    };
    const controller = new AbortController();
    const interrupt = (): void => {
      if (controller.signal.aborted) process.exit(130); // a second Ctrl-C: leave now; leases expire and the next run resumes
      process.stderr.write('\nstopping: finishing the batches in flight; run the same command again to resume\n');
      controller.abort();
    };
    process.on('SIGINT', interrupt);
    process.on('SIGTERM', interrupt);
    // Reading stays a bounded window ahead of delivery, so little is alive: the heap is kept near that, not let grow.
    const stopPacing = paceHeap(IMPORT_HEAP_MB);
    let summary: ImportSummary;
    try {
      if (options.dryRun) {
        summary = await runImport({ ...common, delivery: null, signal: controller.signal, ...(bar ? { onProgress: bar.update } : {}) });
      } else {
        // The tenant and target by the rule every command follows; a store that exists may give them.
        const scope = await tenantAndTargetUrlFor(options);
        const { target, close } = outboxTargetFrom({ ...options, ...scope }, config.concurrency);
        try {
          summary = await withStore(
            options,
            (store) =>
              runImport({
                ...common,
                delivery: { store, target, config },
                signal: controller.signal,
                ...(bar ? { onProgress: bar.update } : {}),
              }),
            { sqliteCacheKib: IMPORT_SQLITE_CACHE_KIB },
          );
        } finally {
          await close();
        }
      }
    } finally {
      stopPacing();
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

interface ImportProgressLine {
  update(progress: ImportProgress): void;
  /** Shows why delivery is waiting, until the next row settles. */
  retrying(message: string): void;
  stop(): void;
}

/** The bar follows rows done with (settled by the target, or invalid), not bytes read: reading runs ahead of delivery. */
function importProgressBar(dryRun: boolean): ImportProgressLine {
  const bar = dryRun ? createProgressBar('checking', 'rows checked') : createProgressBar('importing', 'rows settled');
  let last: ImportProgress | null = null;
  let retrying = '';
  const show = (progress: ImportProgress): void => {
    const detail = [
      progress.invalid > 0 ? `${progress.invalid} invalid` : '',
      progress.skipped > 0 ? `${progress.skipped} skipped` : '',
      retrying,
    ].filter(Boolean);
    bar.update({ done: progress.done, total: progress.total, totalExact: progress.totalExact, detail: detail.join(', ') });
  };
  return {
    update: (progress) => {
      if (last !== null && progress.done > last.done) retrying = '';
      last = progress;
      show(progress);
    },
    retrying: (message) => {
      retrying = `waiting: ${message}`;
      if (last !== null) show(last);
    },
    stop: bar.stop,
  };
}

/**
 * A delivery the worker will retry (the target cannot be resolved, refuses the connection, or fails) is never silent:
 * it is shown on the progress line, or, without one, logged on stderr each time (--verbose logs it already).
 */
function retryShown(verbose: boolean, bar: ImportProgressLine | null): (retry: DeliveryRetry) => void {
  const always = jsonLineLogger();
  return ({ message, ...fields }) => {
    if (bar) bar.retrying(message);
    else if (!verbose) always.warn(fields, message);
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
