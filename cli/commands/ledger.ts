import type { Command } from 'commander';
import { describeLedgerEntry, isPossibleDuplicate, mayHaveLanded } from '../../shared/outbox/ledger.js';
import { addStoreOptions, type StoreOptions, withStoreTenant } from '../outbox-options.js';
import { EXIT_FAILURE, EXIT_OK, printJson, UsageError } from '../usage.js';

interface LedgerShowOptions extends StoreOptions {
  readonly sourceId?: string;
  readonly json?: boolean;
}

export function registerLedgerCommand(program: Command): void {
  const ledger = program
    .command('ledger')
    .description('read the ledger: every event the outbox took, its key decision, attempts and outcome');
  const show = ledger
    .command('show')
    .description('what happened to an event and why: by idempotency key, or by source id (e.g. events.csv:17)')
    .argument('[key]', 'the idempotency key the event was sent with')
    .option('--source-id <id>', 'the source id instead: FILE:RECORD for imports (e.g. events.csv:17), the webhook or message id otherwise')
    .option('--json', 'print {"entries":[...]} as JSON');
  addStoreOptions(show)
    .addHelpText(
      'after',
      '\nEvents without a key can only be found by source id; the entry says why they have none.\nExit status: 0 when something was found, 1 when nothing was, 2 for bad usage.',
    )
    .action(async (key: string | undefined, options: LedgerShowOptions) => {
      if ((key === undefined) === (options.sourceId === undefined)) {
        throw new UsageError([{ field: 'KEY|--source-id', reason: 'give exactly one: an idempotency key or --source-id ID' }]);
      }
      const { tenant, entries } = await withStoreTenant(options, async (store, tenant) => ({
        tenant,
        entries: key !== undefined ? await store.findByKey(tenant, key) : await store.findBySourceId(tenant, options.sourceId ?? ''),
      }));
      if (options.json)
        printJson({
          entries: entries.map((entry) => ({
            ...entry,
            mayHaveLanded: mayHaveLanded(entry),
            possibleDuplicate: isPossibleDuplicate(entry),
          })),
        });
      else if (entries.length > 0) process.stdout.write(`${entries.map(describeLedgerEntry).join('\n\n')}\n`);
      if (entries.length === 0) {
        const what = key !== undefined ? `key ${key}` : `source id ${options.sourceId}`;
        process.stderr.write(`oncekit: the ledger of tenant ${tenant} has no event with ${what}\n`);
      }
      process.exitCode = entries.length > 0 ? EXIT_OK : EXIT_FAILURE;
    });
}
