import { describePastKeyWindow, landedPastKeyWindow } from './ledger.js';
import type { EventListQuery, LedgerEntry, OutboxStore } from './types.js';

/** Which dead letters to retry: these ids, or every dead letter matching a listing filter (all of them when empty). */
export type DeadLetterSelection =
  | { readonly ids: readonly string[] }
  | { readonly matching: Omit<EventListQuery, 'state' | 'limit' | 'offset'> };

export interface RetryDeadRequest {
  readonly tenant: string;
  /** Only this target's dead letters (and legacy ones stored before targets were recorded); every target's when absent. */
  readonly target?: string;
  readonly select: DeadLetterSelection;
  /** The target's key window: a retry of an event that may have landed longer ago could record it twice. */
  readonly keyWindowMs: number;
  /** Resend even those (the caller warns); default false. */
  readonly forcePastWindow?: boolean;
  readonly now?: number;
  /** The most dead letters a `matching` selection takes; default MAX_RETRY_SELECTION. */
  readonly maxSelection?: number;
}

/** An event the window guard kept back (or, when forced, let through): why, in one sentence. */
export interface PastWindow {
  readonly id: string;
  readonly key: string | null;
  /** When the earliest attempt that may have landed started (LedgerEntry.landedSince). */
  readonly landedSince: number;
  readonly why: string;
}

export interface RetryDeadResult {
  /** Made pending again, due now, with a fresh retry horizon (forced ones included). */
  readonly requeued: readonly string[];
  /** Kept back by the window guard. */
  readonly refused: readonly PastWindow[];
  /** Resent although past the window (forcePastWindow). */
  readonly forced: readonly PastWindow[];
  /** Unmappable dead letters: nothing to send, never requeued. */
  readonly unmappable: readonly LedgerEntry[];
  /** Named ids that are not dead letters of the tenant (or of the target): left alone. */
  readonly notRequeued: readonly string[];
  /** More dead letters match than one retry takes (MAX_RETRY_SELECTION): retry again for the rest. */
  readonly moreMatching: boolean;
}

/** The most dead letters one "all matching" retry takes (pages of the listing, so the walk is bounded). */
export const MAX_RETRY_SELECTION = 100_000;

/**
 * Retries dead letters, the one way every caller does (the CLI's `dead-letters retry`, the console): unmappable dead
 * letters are never requeued, and an event that may have landed longer ago than the key window is not resent unless
 * forced, since the target no longer remembers its key. The rest are requeued in one call to the store.
 */
export async function retryDeadLetters(store: OutboxStore, request: RetryDeadRequest): Promise<RetryDeadResult> {
  const { tenant, target } = request;
  const now = request.now ?? Date.now();
  const selection =
    'ids' in request.select ? { entries: await entriesOf(store, tenant, request.select.ids), more: false } : await matching(store, request);
  const found = selection.entries;
  const inTarget = (entry: LedgerEntry): boolean => target === undefined || entry.target === target || entry.target === '';
  const dead = found.filter((entry) => entry.state === 'dead' && inTarget(entry));
  const unmappable = dead.filter((entry) => entry.input === null);
  const refused: PastWindow[] = [];
  const forced: PastWindow[] = [];
  const resend: string[] = [];
  for (const entry of dead) {
    if (entry.input === null) continue;
    const past = landedPastKeyWindow(entry, now, request.keyWindowMs);
    if (past === null) {
      resend.push(entry.id);
      continue;
    }
    const item = {
      id: entry.id,
      key: entry.key,
      landedSince: past.landedSince,
      why: describePastKeyWindow(past.landedSince, request.keyWindowMs),
    };
    if (request.forcePastWindow === true) forced.push(item);
    else refused.push(item);
  }
  // The safe ones keep their landedSince, so a worker still stops before their window closes; the forced ones forget it.
  const requeue = async (ids: readonly string[], forcePastWindow: boolean): Promise<string[]> =>
    ids.length === 0 ? [] : store.requeueDead({ tenant, ...(target === undefined ? {} : { target }), ids, forcePastWindow });
  const requeued = [
    ...(await requeue(resend, false)),
    ...(await requeue(
      forced.map((item) => item.id),
      true,
    )),
  ];
  const handled = new Set([...requeued, ...refused.map((item) => item.id), ...unmappable.map((entry) => entry.id)]);
  const notRequeued = 'ids' in request.select ? request.select.ids.filter((id) => !handled.has(id)) : [];
  return { requeued, refused, forced, unmappable, notRequeued, moreMatching: selection.more };
}

async function entriesOf(store: OutboxStore, tenant: string, ids: readonly string[]): Promise<LedgerEntry[]> {
  return (await Promise.all(ids.map((id) => store.get(tenant, id)))).filter((entry): entry is LedgerEntry => entry !== undefined);
}

/** Every dead letter matching the filter, at most MAX_RETRY_SELECTION: pages of the listing, on past a search that stopped. */
async function matching(store: OutboxStore, request: RetryDeadRequest): Promise<{ entries: LedgerEntry[]; more: boolean }> {
  const filter = 'matching' in request.select ? request.select.matching : {};
  const found = new Map<string, LedgerEntry>();
  const cap = request.maxSelection ?? MAX_RETRY_SELECTION;
  const limit = Math.min(200, cap);
  let until = filter.until;
  let offset = 0;
  for (;;) {
    const page = await store.listEvents(request.tenant, {
      ...filter,
      ...(until === undefined ? {} : { until }),
      state: 'dead',
      limit,
      offset,
    });
    // Entries of the millisecond a stopped search resumes at are listed twice.
    for (const entry of page.entries) found.set(entry.id, entry);
    if (found.size >= cap)
      return { entries: [...found.values()].slice(0, cap), more: found.size > cap || page.hasMore || page.searchStopped !== undefined };
    if (page.hasMore) offset += limit;
    else if (page.searchStopped !== undefined) {
      // A store's resume point moves back each time; one that did not would repeat the same page for ever.
      if (until !== undefined && page.searchStopped.resumeUntil >= until) return { entries: [...found.values()], more: true };
      until = page.searchStopped.resumeUntil;
      offset = 0;
    } else return { entries: [...found.values()], more: false };
  }
}
