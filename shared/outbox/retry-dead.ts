import { landedPastKeyWindow } from './ledger.js';
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
}

/** An event the window guard kept back (or, when forced, let through): why, in one sentence. */
export interface PastWindow {
  readonly id: string;
  readonly key: string | null;
  readonly firstAttemptAt: number;
  readonly why: string;
}

export interface RetryDeadResult {
  /** Made pending again, due now, with a fresh retry horizon. */
  readonly requeued: readonly string[];
  /** Kept back by the window guard. */
  readonly refused: readonly PastWindow[];
  /** Resent although past the window (forcePastWindow). */
  readonly forced: readonly PastWindow[];
  /** Unmappable dead letters: nothing to send, never requeued. */
  readonly unmappable: readonly LedgerEntry[];
  /** Named ids that are not dead letters of the tenant (or of the target): left alone. */
  readonly notRequeued: readonly string[];
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
  const found = 'ids' in request.select ? await entriesOf(store, tenant, request.select.ids) : await matching(store, request);
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
    const why =
      `an attempt may have landed, and the first one started at ${new Date(past.firstAttemptAt).toISOString()}, longer ago than ` +
      "the target's key window allows; the target no longer remembers the key, so a resend could record the event twice";
    const item = { id: entry.id, key: entry.key, firstAttemptAt: past.firstAttemptAt, why };
    if (request.forcePastWindow === true) {
      forced.push(item);
      resend.push(entry.id);
    } else refused.push(item);
  }
  const requeued = resend.length === 0 ? [] : await store.requeueDead({ tenant, ...(target === undefined ? {} : { target }), ids: resend });
  const handled = new Set([...requeued, ...refused.map((item) => item.id), ...unmappable.map((entry) => entry.id)]);
  const notRequeued = 'ids' in request.select ? request.select.ids.filter((id) => !handled.has(id)) : [];
  return { requeued, refused, forced, unmappable, notRequeued };
}

async function entriesOf(store: OutboxStore, tenant: string, ids: readonly string[]): Promise<LedgerEntry[]> {
  return (await Promise.all(ids.map((id) => store.get(tenant, id)))).filter((entry): entry is LedgerEntry => entry !== undefined);
}

async function matching(store: OutboxStore, request: RetryDeadRequest): Promise<LedgerEntry[]> {
  const filter = 'matching' in request.select ? request.select.matching : {};
  const all: LedgerEntry[] = [];
  const limit = 200;
  for (let offset = 0; offset < MAX_RETRY_SELECTION; offset += limit) {
    const page = await store.listEvents(request.tenant, { ...filter, state: 'dead', limit, offset });
    all.push(...page.entries);
    if (!page.hasMore) break;
  }
  return all;
}
