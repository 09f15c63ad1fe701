import type { Command } from 'commander';
import { parseDuration } from '../../shared/duration.js';
import { outboxDeliveryConfig } from '../../shared/outbox/config.js';
import { describeKey, describeLedgerEntry, isPossibleDuplicate, mayHaveLanded } from '../../shared/outbox/ledger.js';
import { type LedgerEntry, MAX_EVENT_PAGE, type OutboxState, outboxStates } from '../../shared/outbox/types.js';
import { addStoreOptions, type StoreOptions, withStoreTenant } from '../outbox-options.js';
import { choiceOption, EXIT_FAILURE, EXIT_OK, integerOption, printJson, UsageError } from '../usage.js';

interface LedgerShowOptions extends StoreOptions {
  readonly sourceId?: string;
  readonly json?: boolean;
}

interface LedgerListOptions extends StoreOptions {
  readonly state?: OutboxState;
  readonly source?: string;
  readonly key?: string;
  readonly sourceId?: string;
  readonly since?: string;
  readonly until?: string;
  readonly limit: number;
  readonly offset: number;
  readonly json?: boolean;
}

/** --since or --until: a duration back from now (`2h`, `30m`) or a time (`2026-12-04T10:00:00Z`). */
export function sinceFrom(text: string, now: number, field: '--since' | '--until' = '--since'): number {
  if (/^\d{4}-\d{2}-\d{2}/.test(text)) {
    const at = Date.parse(text);
    if (Number.isNaN(at)) throw new UsageError([{ field, reason: `not a time: ${JSON.stringify(text)}` }]);
    return at;
  }
  try {
    return now - parseDuration(text, field);
  } catch {
    throw new UsageError([{ field, reason: `expected a duration (2h, 30m) or an ISO time, got ${JSON.stringify(text)}` }]);
  }
}

const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

/** One line per event, for `ledger list`. */
function describeListed(entry: LedgerEntry): string {
  const last = entry.attempts.at(-1);
  const answer = last === undefined ? '' : `  last: ${last.outcome}${last.status === null ? '' : ` ${last.status}`}`;
  const reason = entry.state === 'dead' ? `  reason: ${entry.deadReason ?? '-'}` : '';
  return `${entry.id}  ${iso(entry.enqueuedAt)}  ${entry.state.padEnd(9)}  ${entry.source}  ${entry.sourceId}  ${describeKey(entry)}  ${entry.attempts.length} attempts${answer}${reason}`;
}

export function registerLedgerCommand(program: Command): void {
  const ledger = program
    .command('ledger')
    .description('read the ledger: every event the outbox took, its key decision, attempts and outcome');
  const list = ledger
    .command('list')
    .description('list events, newest first, filtered by state, source, key, source id or age')
    .option('--state <state>', `one of ${outboxStates.join(', ')}`, choiceOption(outboxStates))
    .option('--source <name>', 'where events came from: import, segment, salesforce, …')
    .option('--key <key>', 'the idempotency key sent')
    .option('--source-id <id>', 'the source id (e.g. events.csv:17)')
    .option('--since <when>', 'enqueued since: a duration back from now (2h, 30m) or an ISO time')
    .option('--until <when>', 'enqueued before: a duration back from now or an ISO time')
    .option('--limit <n>', `at most this many (1 to ${MAX_EVENT_PAGE})`, integerOption(1, MAX_EVENT_PAGE), 50)
    .option('--offset <n>', 'skip this many first', integerOption(0, 1_000_000), 0)
    .option(
      '--json',
      'print {"entries":[...],"hasMore":bool} as JSON, with "searchStopped":{"searched","resumeUntil"} when a search stopped early',
    );
  addStoreOptions(list)
    .addHelpText('after', "\nRead-only. `ledger show KEY` tells one event's story in full. Exit status: 0, or 2 for bad usage.")
    .action(async (options: LedgerListOptions) => {
      for (const [field, value] of [
        ['--source', options.source],
        ['--key', options.key],
        ['--source-id', options.sourceId],
      ] as const) {
        if (value !== undefined && value.length === 0) throw new UsageError([{ field, reason: 'must not be empty' }]);
      }
      const query = {
        ...(options.state === undefined ? {} : { state: options.state }),
        ...(options.source === undefined ? {} : { source: options.source }),
        ...(options.key === undefined ? {} : { key: options.key }),
        ...(options.sourceId === undefined ? {} : { sourceId: options.sourceId }),
        ...(options.since === undefined ? {} : { since: sinceFrom(options.since, Date.now()) }),
        ...(options.until === undefined ? {} : { until: sinceFrom(options.until, Date.now(), '--until') }),
        limit: options.limit,
        offset: options.offset,
      };
      const { tenant, page } = await withStoreTenant(options, async (store, tenant) => ({
        tenant,
        page: await store.listEvents(tenant, query),
      }));
      if (options.json) {
        printJson({
          entries: page.entries.map((entry) => ({
            ...entry,
            mayHaveLanded: mayHaveLanded(entry),
            possibleDuplicate: isPossibleDuplicate(entry),
          })),
          hasMore: page.hasMore,
          ...(page.searchStopped === undefined ? {} : { searchStopped: page.searchStopped }),
        });
      } else {
        const stopped = page.searchStopped;
        if (page.entries.length === 0) {
          process.stdout.write(
            `no events in the ledger of tenant ${tenant} match${stopped === undefined ? '' : ' among those searched'}\n`,
          );
        } else process.stdout.write(`${page.entries.map(describeListed).join('\n')}\n`);
        if (page.hasMore) process.stdout.write(`… more: --offset ${options.offset + options.limit}\n`);
        if (stopped !== undefined) {
          process.stdout.write(
            `… searched the newest ${stopped.searched} events only; older ones: --until ${iso(stopped.resumeUntil)} --offset 0\n`,
          );
        }
      }
      process.exitCode = EXIT_OK;
    });

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
      else if (entries.length > 0) {
        const window = { keyWindowMs: outboxDeliveryConfig().keyWindowMs, now: Date.now() };
        process.stdout.write(`${entries.map((entry) => describeLedgerEntry(entry, window)).join('\n\n')}\n`);
      }
      if (entries.length === 0) {
        const what = key !== undefined ? `key ${key}` : `source id ${options.sourceId}`;
        process.stderr.write(`oncekit: the ledger of tenant ${tenant} has no event with ${what}\n`);
      }
      process.exitCode = entries.length > 0 ? EXIT_OK : EXIT_FAILURE;
    });
}
