import { basename } from 'node:path';
import type { Clock } from '../clock.js';
import type { InvalidKeyPolicy } from '../keys/index.js';
import { type Logger, silentLogger } from '../log.js';
import type { OutboxDeliveryConfig } from '../outbox/config.js';
import { attemptMayHaveLanded, isPossibleDuplicate } from '../outbox/ledger.js';
import type { LeasedEvent, LedgerEntry, NewOutboxEvent, OutboxStore, Settlement } from '../outbox/types.js';
import { capRawPayload } from '../outbox/unmappable.js';
import {
  createOutboxWorker,
  type DeliveryRetry,
  type OutboxTarget,
  type OutboxWorker,
  outboxTargetId,
  waitUntilDrained,
} from '../outbox/worker.js';
import { defaultErrorsFilePath, ErrorsFile } from './errors-file.js';
import { type ImportFormat, importFormatOf, openRecordSource, type RawRecord } from './records.js';
import { type ConvertedRow, createRowConverter, IMPORT_SOURCE } from './rows.js';

export interface ImportDelivery {
  readonly store: OutboxStore;
  /** The tenant is `target.tenant`. */
  readonly target: OutboxTarget;
  readonly config?: Partial<OutboxDeliveryConfig>;
  readonly clock?: Clock;
}

export interface ImportOptions {
  readonly file: string;
  /** Default: from the file's extension. */
  readonly format?: ImportFormat;
  /** Columns to derive a deterministic key from, for rows without one. */
  readonly keyFrom?: readonly string[];
  readonly policy?: InvalidKeyPolicy;
  /** Default: `{file}.errors.csv` for CSV, `{file}.errors.jsonl` for JSONL; written in the file's format. */
  readonly errorsFile?: string;
  /** Null for a dry run: every row is validated and its key decided, nothing is stored or sent. */
  readonly delivery: ImportDelivery | null;
  /** Stops reading and lets in-flight batches settle; everything else stays in the outbox for the next run. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: ImportProgress) => void;
  /** Each failed batch that waits for its retry (the target cannot be reached, or failed): never a silent spin. */
  readonly onRetry?: (retry: DeliveryRetry) => void;
  readonly logger?: Logger;
}

export interface ImportProgress {
  /** Bytes of the file behind the rows read so far. */
  readonly bytesRead: number;
  readonly totalBytes: number;
  /** Rows read so far. */
  readonly rows: number;
  readonly invalid: number;
  readonly enqueued: number;
  readonly skipped: number;
  /** Rows of this file that reached a final outcome (accepted, duplicate or dead letter). */
  readonly settled: number;
  /** Rows done with: settled, or invalid (a dry run: every row read). What a progress bar follows. */
  readonly done: number;
  /** The rows of the file: counted once it is read to the end (`totalExact`), estimated from the bytes read before. */
  readonly total: number;
  readonly totalExact: boolean;
}

/** The end of a run. Outcomes are those of this file's rows as known at the end, earlier runs' included. */
export interface ImportSummary {
  readonly file: string;
  readonly format: ImportFormat;
  readonly dryRun: boolean;
  readonly tenant: string | null;
  readonly rows: number;
  readonly valid: number;
  /** Rows refused before sending (bad shape, bad values, a key refused under --policy reject): see the errors file. */
  readonly invalid: number;
  /** Rows persisted to the outbox by this run. */
  readonly enqueued: number;
  /** Rows the ledger already had (an earlier run, or the same key earlier in the file): not enqueued again. */
  readonly skipped: number;
  readonly accepted: number;
  /** The target already had the key (409): an earlier attempt had landed. Success. */
  readonly duplicate: number;
  /** Dead letters the target refused (4xx); also counted in deadLetters. */
  readonly rejected: number;
  readonly deadLetters: number;
  /**
   * Accepted rows sent without an idempotency key after an attempt or request whose outcome was unknown (a lost answer,
   * a timeout, a 5xx): the target may have recorded them twice and could not dedup them. Also counted in accepted.
   */
  readonly possibleDuplicates: number;
  readonly keysKept: number;
  readonly keysHashed: number;
  readonly keysDropped: number;
  /** Import events still pending or leased in the outbox when the run ended (an interrupted run). */
  readonly pending: number;
  readonly interrupted: boolean;
  /** Null when no row failed. */
  readonly errorsFile: string | null;
  readonly elapsedMs: number;
}

/**
 * SQLite page cache (KiB) for a store opened for an import: reading stays a window ahead of delivery, so the pages it
 * touches are few and recent. With 8 MB a million-row import ran at the rate it had with the 64 MB default.
 */
export const IMPORT_SQLITE_CACHE_KIB = 8192;

/** How many import events may be persisted but not yet settled, per batch in flight: reading stays this close to delivery. */
const WINDOW_BATCHES = 4;
const MIN_WINDOW = 1000;
/** Longest an enqueue call gets: one transaction or one script per slice. */
const ENQUEUE_SLICE = 500;
/** Ledger reads in flight at once when the end of a run reads back rows another worker settled. */
const READ_BACK_SLICE = 50;

/**
 * `oncekit import`: streams a JSONL or CSV file of user events into the outbox and delivers it. Each row is validated,
 * its key decided and the event persisted before the row counts as taken; rows the ledger already has are skipped,
 * so a re-run after a crash resumes. Memory stays flat: reading pauses while the outbox is a window ahead of delivery.
 */
export async function runImport(options: ImportOptions): Promise<ImportSummary> {
  const started = performance.now();
  const format = importFormatOf(options.file, options.format);
  const source = await openRecordSource(options.file, format);
  const fileName = basename(options.file);
  const sourcePrefix = `${fileName}:`;
  const logger = options.logger ?? silentLogger;
  let convert: (record: Parameters<ReturnType<typeof createRowConverter>>[0]) => ConvertedRow;
  try {
    convert = createRowConverter({
      format,
      header: source.header,
      keyFrom: options.keyFrom ?? [],
      policy: options.policy ?? 'drop',
      fileName,
    });
  } catch (error) {
    source.close();
    throw error;
  }
  const errors = new ErrorsFile(options.errorsFile ?? defaultErrorsFilePath(options.file, format), format, source.header);
  const delivery = options.delivery;
  const tenant = delivery?.target.tenant ?? null;
  // The import's events are bound to its target: another target's worker on the same store never sends them.
  const target = delivery ? outboxTargetId(delivery.target) : '';
  const signal = options.signal;
  const n = {
    rows: 0,
    valid: 0,
    invalid: 0,
    enqueued: 0,
    skipped: 0,
    accepted: 0,
    duplicate: 0,
    rejected: 0,
    deadLetters: 0,
    possibleDuplicates: 0,
    keysKept: 0,
    keysHashed: 0,
    keysDropped: 0,
  };
  // Set once the last record was read: the row count is known from then on.
  let readToEnd = false;
  const progress = (): void => {
    if (!options.onProgress) return;
    const bytesRead = source.bytesConsumed();
    const settled = n.accepted + n.duplicate + n.deadLetters;
    const done = delivery ? settled + n.invalid : n.rows;
    // Until the end of the file, the rows so far scaled by the bytes so far: rows are about the same size throughout.
    const estimate = bytesRead > 0 ? Math.round((n.rows * source.totalBytes) / bytesRead) : n.rows;
    // Every byte behind a row handed out: the rows are all counted, even before the reader learns the file ended.
    const exact = readToEnd || bytesRead >= source.totalBytes;
    const total = exact ? Math.max(n.rows, done) : Math.max(n.rows, done, estimate);
    options.onProgress({
      bytesRead,
      totalBytes: source.totalBytes,
      rows: n.rows,
      invalid: n.invalid,
      enqueued: n.enqueued,
      skipped: n.skipped,
      settled,
      done,
      total,
      totalExact: exact,
    });
  };

  /**
   * A row of this file reached `to` (in this run, or in an earlier one for a skipped row), whichever worker settled it.
   * A dead one goes to the errors file as it was read; `record` is null for a row not read yet (a leftover of an earlier
   * run that this run's worker settled first): the line waits in `settledEarly` until the reader meets the row.
   */
  const countOutcome = (
    recordNumber: number,
    record: RawRecord | null,
    to: Settlement['to'],
    deadReason: string | null,
    last: LedgerEntry['attempts'][number] | null,
    possibleDuplicate = false,
  ): string | null => {
    if (to === 'delivered') {
      n.accepted += 1;
      if (possibleDuplicate) n.possibleDuplicates += 1;
    } else if (to === 'duplicate') n.duplicate += 1;
    else if (to === 'dead') {
      n.deadLetters += 1;
      if (last?.outcome === 'rejected') n.rejected += 1;
      const message = deadReason ?? 'dead letter';
      if (record === null) return message;
      errors.write({ recordNumber, message, record });
    }
    return null;
  };

  // Rows that cannot be mapped, waiting to be recorded as dead letters (only when delivering).
  const unmappable: Extract<ConvertedRow, { ok: false }>[] = [];
  // Rows of this file whose event was on its way when the reader met it, by event id: counted when this run's worker
  // settles the event, else read back from the store at the end (another worker, e.g. a relay on the same store, may
  // have settled it).
  const awaiting = new Map<string, RawRecord[]>();
  const awaitRow = (id: string, record: RawRecord): void => {
    const rows = awaiting.get(id);
    if (rows) rows.push(record);
    else awaiting.set(id, [record]);
  };
  // Leftovers of an interrupted run that this run's worker settled before the reader met their row: counted then, and
  // for a dead letter, its errors-file line waits for the row (its record number and reason).
  const settledEarly = new Map<string, { readonly recordNumber: number; readonly deadReason: string | null }>();

  // Import events persisted and not yet settled for good, leftovers of interrupted runs included.
  let outstanding = 0;
  const wakers = new Set<() => void>();
  const wake = (): void => {
    for (const resume of [...wakers]) resume();
  };
  signal?.addEventListener('abort', wake, { once: true });

  let worker: OutboxWorker | null = null;
  try {
    if (delivery && tenant !== null) {
      const store = delivery.store;
      worker = createOutboxWorker({
        store,
        target: delivery.target,
        config: delivery.config ?? {},
        label: 'import',
        logger,
        maxConsecutiveErrors: 5,
        ...(delivery.clock ? { clock: delivery.clock } : {}),
        ...(options.onRetry ? { onRetry: options.onRetry } : {}),
        onSettled: ({ event, settlement }) => {
          if (event.source !== IMPORT_SOURCE) return;
          if (settlement.to !== 'pending') {
            outstanding -= 1;
            wake();
          }
          if (settlement.to !== 'pending') {
            const reason = settlement.to === 'dead' ? settlement.reason : null;
            const landed = event.mayHaveLanded || (settlement.attempt !== null && attemptMayHaveLanded(settlement.attempt));
            const possibleDuplicate = event.input.idempotencyKey === undefined && landed;
            const rows = awaiting.get(event.id);
            if (rows) {
              awaiting.delete(event.id);
              for (const record of rows) {
                countOutcome(record.recordNumber, record, settlement.to, reason, settlement.attempt, possibleDuplicate);
              }
            } else if (event.sourceId.startsWith(sourcePrefix)) {
              const recordNumber = Number(event.sourceId.slice(sourcePrefix.length));
              const deadReason = countOutcome(recordNumber, null, settlement.to, reason, settlement.attempt, possibleDuplicate);
              settledEarly.set(event.id, { recordNumber, deadReason });
            }
          }
          progress();
        },
      });
      const initial = await store.counts(tenant, { source: IMPORT_SOURCE, target });
      outstanding = initial.pending + initial.leased;
      worker.start();
      const running = worker;
      const window = Math.max(MIN_WINDOW, running.config.batchSize * running.config.concurrency * WINDOW_BATCHES);

      const waitForRoom = async (): Promise<void> => {
        while (outstanding >= window && !signal?.aborted) {
          if (running.failure) throw running.failure;
          const woken = await new Promise<boolean>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              wakers.delete(done);
              resolve(true);
            };
            const timer = setTimeout(() => {
              wakers.delete(done);
              resolve(false);
            }, 1000);
            wakers.add(done);
          });
          // Nothing settled for a second: recount, in case another process delivered some of these events.
          if (!woken) {
            const counts = await store.counts(tenant, { source: IMPORT_SOURCE, target });
            outstanding = counts.pending + counts.leased;
          }
        }
      };

      const enqueueRows = async (rows: readonly Extract<ConvertedRow, { ok: true }>[]): Promise<void> => {
        const events: NewOutboxEvent[] = rows.map((row) => ({
          tenant,
          target,
          source: IMPORT_SOURCE,
          sourceId: row.sourceId,
          dedupKey: row.dedupKey,
          input: row.input,
          keyDecision: row.decision,
        }));
        // Persisted already leased to our worker, which sends them straight away; if this process dies, the lease
        // runs out and the next run (or any worker) picks them up.
        // When the lease was asked for: a batch sent within a third of it needs no renewal first.
        const leaseRequestedAt = performance.now();
        const results = await store.enqueue(events, { lease: { owner: running.owner, leaseMs: running.config.leaseMs } });
        const leased: LeasedEvent[] = [];
        const deadRows: { record: RawRecord; id: string }[] = [];
        for (const [index, result] of results.entries()) {
          const row = rows[index];
          if (result.outcome !== 'existing') {
            n.enqueued += 1;
            outstanding += 1;
            if (result.leased) leased.push(result.leased);
            if (row) awaitRow(result.id, row.record);
            continue;
          }
          n.skipped += 1;
          if (!row) continue;
          // Still on its way: counted when it settles, by whichever worker.
          if (result.state === 'pending' || result.state === 'leased') awaitRow(result.id, row.record);
          else if (settledEarly.has(result.id)) {
            // A leftover this run's worker settled and counted already: a dead one's line can be written now.
            const early = settledEarly.get(result.id);
            settledEarly.delete(result.id);
            if (early?.deadReason != null) errors.write({ recordNumber: row.recordNumber, message: early.deadReason, record: row.record });
          } else if (result.state === 'dead') deadRows.push({ record: row.record, id: result.id });
          else {
            const possibleDuplicate = result.state === 'delivered' && row.input.idempotencyKey === undefined && result.mayHaveLanded;
            countOutcome(row.recordNumber, row.record, result.state, null, null, possibleDuplicate);
          }
        }
        for (const { record, id } of deadRows) {
          const entry = await store.get(tenant, id);
          countOutcome(record.recordNumber, record, 'dead', entry?.deadReason ?? null, entry?.attempts.at(-1) ?? null);
        }
        await running.submit(leased, { leaseRequestedAt });
      };

      // Each is in the errors file and the summary (invalid) too; a re-run records nothing new (same identity).
      const recordUnmappable = async (failed: readonly Extract<ConvertedRow, { ok: false }>[]): Promise<void> => {
        if (failed.length === 0) return;
        await store.recordUnmappable(
          failed.map((row) => ({
            tenant,
            target,
            source: IMPORT_SOURCE,
            sourceId: row.sourceId,
            dedupKey: row.dedupKey,
            reason: row.message,
            raw: capRawPayload(row.raw),
          })),
        );
      };

      for await (const records of source.records()) {
        if (signal?.aborted) break;
        const rows = convertAll(records);
        await recordUnmappable(unmappable.splice(0));
        for (let start = 0; start < rows.length; start += ENQUEUE_SLICE) await enqueueRows(rows.slice(start, start + ENQUEUE_SLICE));
        progress();
        await waitForRoom();
      }
      readToEnd = !signal?.aborted;
      progress();
      if (!signal?.aborted) await waitUntilDrained({ store, worker: running, source: IMPORT_SOURCE, ...(signal ? { signal } : {}) });
      await running.stop();
      await countSettledElsewhere(store, tenant);
      // Dead leftovers whose row this run did not reach (it was interrupted): listed without the row.
      for (const { recordNumber, deadReason } of settledEarly.values()) {
        if (deadReason !== null) errors.write({ recordNumber, message: deadReason, record: null });
      }
    } else {
      for await (const records of source.records()) {
        if (signal?.aborted) break;
        convertAll(records);
        progress();
      }
      readToEnd = !signal?.aborted;
    }
  } finally {
    signal?.removeEventListener('abort', wake);
    await worker?.stop();
    source.close();
    await errors.close();
  }

  /** Rows whose event another worker settled (or this one, with its settlement lost to a lease) are read back. */
  async function countSettledElsewhere(store: OutboxStore, tenant: string): Promise<void> {
    const ids = [...awaiting.keys()];
    for (let start = 0; start < ids.length; start += READ_BACK_SLICE) {
      const slice = ids.slice(start, start + READ_BACK_SLICE);
      const entries = await Promise.all(slice.map((id) => store.get(tenant, id)));
      entries.forEach((entry, index) => {
        const id = slice[index] as string;
        if (entry === undefined || entry.state === 'pending' || entry.state === 'leased') return;
        const rows = awaiting.get(id) ?? [];
        awaiting.delete(id);
        for (const record of rows) {
          countOutcome(
            record.recordNumber,
            record,
            entry.state,
            entry.deadReason,
            entry.attempts.at(-1) ?? null,
            isPossibleDuplicate(entry),
          );
        }
      });
    }
  }

  function convertAll(records: Parameters<typeof convert>[0][]): Extract<ConvertedRow, { ok: true }>[] {
    const rows: Extract<ConvertedRow, { ok: true }>[] = [];
    for (const record of records) {
      n.rows += 1;
      const row = convert(record);
      if (!row.ok) {
        n.invalid += 1;
        errors.write({ recordNumber: row.recordNumber, message: row.message, record: row.record });
        if (delivery) unmappable.push(row);
        continue;
      }
      n.valid += 1;
      if (row.decision.decision === 'kept') n.keysKept += 1;
      else if (row.decision.decision === 'hashed') n.keysHashed += 1;
      else n.keysDropped += 1;
      rows.push(row);
    }
    return rows;
  }

  let pending = 0;
  if (delivery && tenant !== null) {
    const counts = await delivery.store.counts(tenant, { source: IMPORT_SOURCE, target });
    pending = counts.pending + counts.leased;
  }
  progress();
  return {
    file: options.file,
    format,
    dryRun: delivery === null,
    tenant,
    ...n,
    pending,
    interrupted: signal?.aborted === true,
    errorsFile: errors.rows > 0 ? errors.path : null,
    elapsedMs: Math.round(performance.now() - started),
  };
}
