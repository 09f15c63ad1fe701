import type { Command } from 'commander';
import { outboxDeliveryConfig } from '../../shared/outbox/config.js';
import {
  describeRawPayload,
  describeResendWindow,
  landingTimeOf,
  mayHaveLanded,
  resendSafeUntil,
  UNMAPPABLE_ADVICE,
} from '../../shared/outbox/ledger.js';
import { MAX_RETRY_SELECTION, retryDeadLetters } from '../../shared/outbox/retry-dead.js';
import type { LedgerEntry, OutboxState, OutboxStore } from '../../shared/outbox/types.js';
import { createOutboxWorker, type OutboxTarget, outboxTargetId } from '../../shared/outbox/worker.js';
import {
  addDeliveryOptions,
  addStoreOptions,
  commandLogger,
  type DeliveryOptions,
  deliveryConfigFrom,
  outboxTargetFrom,
  type StoreOptions,
  targetUrlOf,
  withStoreTenant,
} from '../outbox-options.js';
import { createProgressBar } from '../progress.js';
import { EXIT_FAILURE, EXIT_OK, integerOption, printJson, UsageError } from '../usage.js';

interface ListOptions extends StoreOptions {
  readonly limit: number;
  readonly offset: number;
  readonly json?: boolean;
}

interface RetryOptions extends DeliveryOptions {
  readonly all?: boolean;
  readonly enqueueOnly?: boolean;
  readonly json?: boolean;
  readonly verbose?: boolean;
  readonly forcePastWindow?: boolean;
}

const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

export function registerDeadLettersCommand(program: Command): void {
  const deadLetters = program
    .command('dead-letters')
    .description('events the outbox gave up on: rejected by the target, past the retry horizon, or impossible to map');

  const list = deadLetters
    .command('list')
    .description('list dead letters with their reason, oldest first')
    .option('--limit <n>', 'at most this many', integerOption(1, 100_000), 100)
    .option('--offset <n>', 'skip this many first', integerOption(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--json', 'print {"deadLetters":[...]} as JSON');
  addStoreOptions(list)
    .addHelpText(
      'after',
      '\n"may have landed": an attempt got no definite answer, so the target may already have the event.\n' +
        '"unmappable": the event could not be mapped to a user event; its raw payload (the first 16 KiB) is shown, and it is never retried.',
    )
    .action(async (options: ListOptions) => {
      const { tenant, entries } = await withStoreTenant(options, async (store, tenant) => ({
        tenant,
        entries: await store.listDead(tenant, { limit: options.limit, offset: options.offset }),
      }));
      const { keyWindowMs } = outboxDeliveryConfig();
      if (options.json) {
        printJson({
          deadLetters: entries.map((entry) => ({
            ...entry,
            mayHaveLanded: mayHaveLanded(entry),
            resendSafeUntil: resendSafeUntil(entry, keyWindowMs),
          })),
        });
        return;
      }
      if (entries.length === 0) {
        process.stdout.write(`no dead letters in tenant ${tenant}\n`);
        return;
      }
      const now = Date.now();
      for (const entry of entries) process.stdout.write(`${describeDeadLetter(entry, keyWindowMs, now)}\n`);
    });

  const retry = deadLetters
    .command('retry')
    .description('re-enqueue dead letters with a fresh retry horizon, then deliver them')
    .argument('[ids...]', 'outbox ids (ob_…) from `dead-letters list`')
    .option('--all', 'every dead letter of the tenant')
    .option('--enqueue-only', 'only make them pending again; a later import (or the relay) delivers them')
    .option('--json', 'print the result as JSON on the last line of stdout')
    .option('--verbose', 'log retries on stderr as they happen')
    .option('--force-past-window', "resend even events that may have landed longer ago than the target's key window");
  addStoreOptions(retry);
  addDeliveryOptions(retry)
    .addHelpText(
      'after',
      '\nA retried event keeps its key. If an earlier attempt may have landed more than 23 h ago (the target keeps keys for\n' +
        '24 h), the target no longer remembers the key and could record the event twice: such events are not resent, and\n' +
        'the output says why, unless --force-past-window.\n' +
        'An unmappable dead letter (the event could not be mapped) is never requeued: there is nothing to send; fix the mapping\n' +
        'and resend it from the source, or send a corrected event with `oncekit send`. The output lists them apart.\n' +
        'Exit status: 0 when every retried event was delivered (or only enqueued with --enqueue-only), 1 otherwise, 2 for bad usage.',
    )
    .action(async (ids: string[], options: RetryOptions) => {
      if (ids.length > 0 === (options.all === true))
        throw new UsageError([{ field: 'IDS|--all', reason: 'give dead-letter ids, or --all' }]);
      const config = deliveryConfigFrom(options);
      const result = await withStoreTenant(options, async (store, tenant, given, location) => {
        // Delivering here: to the tenant's target by the same rule, and only its dead letters (another target's would
        // wait for its own relay).
        const targetUrl = options.enqueueOnly ? null : await targetUrlOf(given, tenant, store, location);
        const delivery = targetUrl === null ? null : outboxTargetFrom({ ...options, tenant, targetUrl }, config.concurrency);
        try {
          const target = delivery ? { target: outboxTargetId(delivery.target) } : {};
          const retried = await retryDeadLetters(store, {
            tenant,
            ...target,
            select: options.all ? { matching: {} } : { ids },
            keyWindowMs: config.keyWindowMs,
            forcePastWindow: options.forcePastWindow === true,
          });
          for (const item of retried.forced) {
            process.stderr.write(`warning: resending anyway (--force-past-window) ${item.id} (key ${item.key ?? 'none'}): ${item.why}\n`);
          }
          for (const item of retried.refused) {
            process.stderr.write(
              `not resent: ${item.id} (key ${item.key ?? 'none'}): ${item.why}. Check the target first (oncekit ledger show ${item.id}); --force-past-window sends it anyway\n`,
            );
          }
          if (retried.moreMatching) {
            process.stderr.write(
              `more dead letters match than one retry takes (${MAX_RETRY_SELECTION}): run it again for the rest once these have settled\n`,
            );
          }
          const { requeued } = retried;
          if (delivery && requeued.length > 0) {
            // On a terminal only, and never with --json: the bar follows the requeued events as they settle.
            const bar = process.stderr.isTTY && !options.json ? createProgressBar('retrying', 'events settled') : null;
            try {
              await deliver(store, delivery.target, config, requeued, options.verbose === true, (done) =>
                bar?.update({ done, total: requeued.length }),
              );
            } finally {
              bar?.stop();
            }
          }
          const entries = (await Promise.all(requeued.map((id) => store.get(tenant, id)))).filter(
            (entry): entry is LedgerEntry => entry !== undefined,
          );
          return {
            entries,
            notRequeued: retried.notRequeued,
            refused: retried.refused,
            unmappable: retried.unmappable,
            moreMatching: retried.moreMatching,
          };
        } finally {
          await delivery?.close();
        }
      });
      report(result.entries, result.notRequeued, result.unmappable, options);
      const settledWell = (state: OutboxState): boolean =>
        state === 'delivered' || state === 'duplicate' || (options.enqueueOnly === true && state === 'pending');
      // Named unmappable ids could not be retried as asked; with --all they are only reported.
      const ok =
        !result.moreMatching &&
        result.notRequeued.length === 0 &&
        result.refused.length === 0 &&
        (options.all === true || result.unmappable.length === 0) &&
        result.entries.every((entry) => settledWell(entry.state));
      process.exitCode = ok ? EXIT_OK : EXIT_FAILURE;
    });
}

/** Runs a worker until every requeued event has settled for good (delivered, duplicate or dead again). */
async function deliver(
  store: OutboxStore,
  target: OutboxTarget,
  config: ReturnType<typeof deliveryConfigFrom>,
  ids: readonly string[],
  verbose: boolean,
  onProgress: (settled: number) => void,
): Promise<void> {
  const waiting = new Set(ids);
  const progress = (): void => onProgress(ids.length - waiting.size);
  progress();
  let wake: (() => void) | null = null;
  const worker = createOutboxWorker({
    store,
    target,
    config,
    label: 'dead-letters-retry',
    logger: commandLogger(verbose),
    maxConsecutiveErrors: 5,
    onSettled: ({ event, settlement }) => {
      if (settlement.to !== 'pending' && waiting.delete(event.id)) {
        progress();
        wake?.();
      }
    },
  });
  worker.start();
  try {
    while (waiting.size > 0) {
      if (worker.failure) throw worker.failure;
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 1000);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      wake = null;
      // Quiet for a second: another process may have delivered some; look them up.
      if (!woken) {
        for (const id of [...waiting]) {
          const state = (await store.get(target.tenant, id))?.state;
          if (state !== 'pending' && state !== 'leased') waiting.delete(id);
        }
        progress();
      }
    }
  } finally {
    await worker.stop();
  }
}

function describeDeadLetter(entry: LedgerEntry, keyWindowMs: number, now: number): string {
  const flag = mayHaveLanded(entry) ? ' [may have landed]' : entry.input === null ? ' [unmappable]' : '';
  const landedSince = landingTimeOf(entry);
  const window = landedSince === null ? '' : `\n  window: ${describeResendWindow(landedSince, keyWindowMs, now)}`;
  const head = `${entry.id}  ${entry.sourceId}  key ${entry.key ?? '(none)'}  died ${iso(entry.deadAt)}  ${entry.attempts.length} attempts${flag}\n  target: ${entry.target || '(any)'}\n  reason: ${entry.deadReason ?? '-'}${window}`;
  return entry.input === null ? `${head}\n  source: ${entry.source}\n  raw:    ${describeRawPayload(entry.unmappable)}` : head;
}

function report(
  entries: readonly LedgerEntry[],
  notRequeued: readonly string[],
  unmappable: readonly LedgerEntry[],
  options: RetryOptions,
): void {
  const risky = entries.filter(mayHaveLanded);
  if (options.json) {
    printJson({
      requeued: entries.length,
      notRequeued,
      unmappable: unmappable.length,
      unmappableEvents: unmappable.map((entry) => ({
        id: entry.id,
        source: entry.source,
        sourceId: entry.sourceId,
        deadReason: entry.deadReason,
        notRetried: UNMAPPABLE_ADVICE,
      })),
      events: entries.map((entry) => ({
        id: entry.id,
        sourceId: entry.sourceId,
        key: entry.key,
        state: entry.state,
        deadReason: entry.deadReason,
        mayHaveLanded: mayHaveLanded(entry),
      })),
    });
    return;
  }
  process.stdout.write(`requeued ${entries.length} dead letter${entries.length === 1 ? '' : 's'} with a fresh retry horizon\n`);
  for (const entry of entries) {
    const reason = entry.state === 'dead' ? `: ${entry.deadReason}` : '';
    process.stdout.write(`  ${entry.id}  ${entry.sourceId}  ${entry.state}${reason}\n`);
  }
  for (const id of notRequeued) process.stdout.write(`  ${id}  not a dead letter of this tenant; left alone\n`);
  if (unmappable.length > 0) {
    process.stdout.write(
      `not retried: ${unmappable.length} unmappable dead letter${unmappable.length === 1 ? '' : 's'}: ${UNMAPPABLE_ADVICE}\n`,
    );
    for (const entry of unmappable) process.stdout.write(`  ${entry.id}  ${entry.source} ${entry.sourceId}: ${entry.deadReason ?? '-'}\n`);
  }
  if (risky.length > 0) {
    process.stderr.write(
      `warning: ${risky.length} of these had an attempt with no definite answer; if it landed more than 24 h ago the target may now hold the event twice (see oncekit ledger show)\n`,
    );
  }
}
