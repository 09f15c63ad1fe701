import { formatDuration } from '../duration.js';
import { describeFault } from '../keys/decide.js';
import type { AttemptRecord, LedgerEntry, OutboxState, UnmappableRaw } from './types.js';

const iso = (ms: number | null): string => (ms === null ? '-' : new Date(ms).toISOString());

const STATE_TEXT: Readonly<Record<OutboxState, string>> = {
  pending: 'pending: waiting to be sent',
  leased: 'leased: a worker is sending it',
  delivered: 'delivered: the target accepted it',
  duplicate: 'duplicate: the target already had this key (409), so an earlier attempt had landed; counts as delivered',
  dead: 'dead letter',
};

/** "HTTP 400 VALIDATION_FAILED: message", or "no answer: reason". */
export function describeAnswer(attempt: Pick<AttemptRecord, 'status' | 'apiErrorCode' | 'rsCode' | 'message'>): string {
  const codes = [attempt.apiErrorCode, attempt.rsCode].filter((code): code is string => code !== null).join(' ');
  const head = attempt.status === null ? 'no answer' : `HTTP ${attempt.status}${codes ? ` ${codes}` : ''}`;
  return attempt.message ? `${head}: ${attempt.message}` : head;
}

/**
 * Whether an attempt may have reached the target without us knowing: a lost lease, or a request of it whose outcome
 * was unknown (as the target client judged it, quick retries included). Only a 2xx, a 409, a 4xx rejection, a 429 or
 * a connection that never opened is certain.
 */
export function attemptMayHaveLanded(attempt: AttemptRecord): boolean {
  return attempt.outcome === 'abandoned' || attempt.uncertainRequests > 0;
}

/** Whether any attempt of the event may have reached the target without us knowing. */
export function mayHaveLanded(entry: Pick<LedgerEntry, 'attempts'>): boolean {
  return entry.attempts.some(attemptMayHaveLanded);
}

/**
 * A possible duplicate: the event went without an idempotency key and was delivered after an attempt or request that
 * may have landed, so the target may hold it twice and could not dedup it.
 */
export function isPossibleDuplicate(entry: Pick<LedgerEntry, 'key' | 'state' | 'attempts'>): boolean {
  return entry.key === null && entry.state === 'delivered' && mayHaveLanded(entry);
}

/** Why an event is a possible duplicate, in one line; null when it is not one. */
export function describePossibleDuplicate(entry: Pick<LedgerEntry, 'key' | 'state' | 'attempts'>): string | null {
  if (!isPossibleDuplicate(entry)) return null;
  const uncertain = entry.attempts.filter(attemptMayHaveLanded).map((attempt) => {
    if (attempt.outcome === 'abandoned') return `attempt #${attempt.number} ended without a result (its worker's lease ran out)`;
    const count = Math.max(1, attempt.uncertainRequests);
    return `attempt #${attempt.number} had ${count} request${count === 1 ? '' : 's'} without a definite answer`;
  });
  return (
    `may have been recorded more than once: it was sent without an idempotency key, and ${uncertain.join(', ')} ` +
    'before it was accepted; the target may have recorded those too and cannot tell a resend from the original'
  );
}

/** How long before the key window closes a resend is already refused: room for the send itself and clock skew. */
export const KEY_WINDOW_MARGIN_MS = 60 * 60 * 1000;

/**
 * The one rule for resending an event that may have landed: the target's key window for it opened no earlier than
 * `landedSince` (when the earliest attempt that may have landed was leased), so a resend from the returned time on,
 * the window less a margin, could find the key forgotten and record the event twice. (An event with nothing that may
 * have landed, landedSince null, may be resent at any time.)
 */
export function keyWindowClosesAt(landedSince: number, keyWindowMs: number): number {
  return landedSince + keyWindowMs - KEY_WINDOW_MARGIN_MS;
}

/**
 * When the event may first have landed, for the retry guard and what an operator reads: the store's landedSince, else
 * the earliest start among its attempts that may have landed. The second covers an event marked by an earlier version
 * that did not keep landedSince (the one-time upgrades fill in only what was there when they ran), and one resent with
 * --force-past-window that died again. Null when nothing may have landed.
 */
export function landingTimeOf(entry: Pick<LedgerEntry, 'landedSince' | 'attempts'>): number | null {
  if (entry.landedSince !== null) return entry.landedSince;
  const starts = entry.attempts.filter(attemptMayHaveLanded).map((attempt) => attempt.startedAt);
  return starts.length === 0 ? null : Math.min(...starts);
}

/** Until when a resend of the event is safe (see keyWindowClosesAt), as an operator is shown it; null: nothing may have landed. */
export function resendSafeUntil(entry: Pick<LedgerEntry, 'landedSince' | 'attempts'>, keyWindowMs: number): number | null {
  const landedSince = landingTimeOf(entry);
  return landedSince === null ? null : keyWindowClosesAt(landedSince, keyWindowMs);
}

/** Whether resending the event now could record it twice (see keyWindowClosesAt); when it may have landed, if so. */
export function landedPastKeyWindow(
  entry: Pick<LedgerEntry, 'landedSince' | 'attempts'>,
  now: number,
  keyWindowMs: number,
): { readonly landedSince: number } | null {
  const landedSince = landingTimeOf(entry);
  return landedSince === null || now < keyWindowClosesAt(landedSince, keyWindowMs) ? null : { landedSince };
}

/** Why such a resend could record the event twice, in one sentence. */
export function describePastKeyWindow(landedSince: number, keyWindowMs: number): string {
  return (
    `an attempt that may have reached the target started at ${new Date(landedSince).toISOString()}, and the target's key window ` +
    `(${formatDuration(keyWindowMs)}, less ${formatDuration(KEY_WINDOW_MARGIN_MS)} for the send and clock skew) has passed since: ` +
    'the target no longer remembers the key, so a resend could record the event twice'
  );
}

/** Until when the event may be resent, for an operator deciding on a retry (see keyWindowClosesAt). */
export function describeResendWindow(landedSince: number, keyWindowMs: number, now: number): string {
  const closesAt = keyWindowClosesAt(landedSince, keyWindowMs);
  return now < closesAt
    ? `a resend is safe until ${new Date(closesAt).toISOString()} (the target's key window from then, less ${formatDuration(KEY_WINDOW_MARGIN_MS)})`
    : `the target's key window closed at ${new Date(closesAt).toISOString()} (less ${formatDuration(KEY_WINDOW_MARGIN_MS)}): a resend could ` +
        'record it twice, so a retry refuses it unless --force-past-window';
}

/** Why the event has the key it has, in one line. */
export function describeKey(entry: Pick<LedgerEntry, 'key' | 'keyDecision'>): string {
  const decision = entry.keyDecision;
  if (decision === null) return entry.key === null ? 'none (no key decision was recorded)' : `${entry.key}`;
  switch (decision.decision) {
    case 'kept':
      return `${entry.key} (from ${decision.source}, valid as given)`;
    case 'hashed':
      return decision.reason === null
        ? `${entry.key} (derived from ${decision.source} fields by hashing)`
        : `${entry.key} (hashed: the ${decision.source} candidate was not valid as given: ${describeFault(decision)})`;
    case 'dropped':
      return `none: sent without a key because ${describeFault(decision)} (${decision.reason}); the target cannot dedup it, so a retry after a lost answer may record it twice`;
    case 'rejected':
      return `none: the key was refused (${decision.reason}): ${describeFault(decision)}`;
  }
}

/** Why an unmappable dead letter is never retried, and what to do instead. */
export const UNMAPPABLE_ADVICE =
  'it could not be mapped, so it cannot be sent as it is: fix the mapping and resend it from the source, or send a corrected event with `oncekit send`';

/** An unmappable dead letter's raw payload as kept, saying when it is only the start. */
export function describeRawPayload(raw: UnmappableRaw): string {
  return raw.truncated ? `${raw.text} … (first ${Buffer.byteLength(raw.text, 'utf8')} of ${raw.bytes} bytes)` : raw.text;
}

/**
 * What happened to one event and why, for `oncekit ledger show`; `window`: the target's key window and the time now,
 * to say until when an event that may have landed can be resent.
 */
export function describeLedgerEntry(entry: LedgerEntry, window: { readonly keyWindowMs: number; readonly now: number }): string {
  const lines = [
    `event ${entry.id} (tenant ${entry.tenant})`,
    `  target:     ${entry.target === '' ? '(any: stored before targets were recorded)' : entry.target}`,
    `  source:     ${entry.source} ${entry.sourceId}`,
    `  key:        ${describeKey(entry)}`,
    `  state:      ${STATE_TEXT[entry.state]}${entry.state === 'dead' && entry.deadReason ? `: ${entry.deadReason}` : ''}`,
    `  enqueued:   ${iso(entry.enqueuedAt)}`,
  ];
  if (entry.state === 'pending') lines.push(`  next try:   ${iso(entry.dueAt)}`);
  if (entry.state === 'leased') lines.push(`  lease ends: ${iso(entry.leaseExpiresAt)}`);
  if (entry.state === 'dead') lines.push(`  died:       ${iso(entry.deadAt)}`);
  if (entry.input === null) {
    lines.push(`  unmappable: ${UNMAPPABLE_ADVICE}`, `  raw:        ${describeRawPayload(entry.unmappable)}`);
  } else {
    lines.push(
      `  event:      ${entry.input.events.map((event) => event.key).join(', ')} for user ${entry.input.userId} (account ${entry.input.accountId})`,
    );
  }
  lines.push(`  attempts:   ${entry.attempts.length === 0 ? 'none yet' : ''}`.trimEnd());
  for (const attempt of entry.attempts) {
    const unknown = attempt.uncertainRequests > 0 ? `, ${attempt.uncertainRequests} without a definite answer` : '';
    const requests = attempt.requests > 1 || unknown ? ` (${attempt.requests} request${attempt.requests === 1 ? '' : 's'}${unknown})` : '';
    lines.push(`    #${attempt.number} ${iso(attempt.startedAt)} ${attempt.outcome}${requests}: ${describeAnswer(attempt)}`);
  }
  const landedSince = landingTimeOf(entry);
  if (landedSince !== null) {
    lines.push(
      `  landed?:    maybe: an attempt that started at ${iso(landedSince)} got no definite answer, so the target may have ` +
        `recorded this event already; ${describeResendWindow(landedSince, window.keyWindowMs, window.now)}`,
    );
  }
  const duplicate = describePossibleDuplicate(entry);
  if (duplicate !== null) lines.push(`  duplicate?: ${duplicate}`);
  return lines.join('\n');
}
