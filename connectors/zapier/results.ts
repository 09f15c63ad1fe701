import type { ZObject } from 'zapier-platform-core';
import { type FieldIssue, InvalidInputError } from '../../shared/errors.js';
import type { UserEventInput } from '../../shared/events/index.js';
import { describeFault, type KeyDecision, KeyRejectedError } from '../../shared/keys/index.js';
import { type DeliveryFailure, type DeliveryResult, deliveryFailureOf } from '../../shared/target/index.js';
import { authFieldForClientOption } from './target.js';

/*
 * The one place where outcomes become Zapier results and errors:
 * - accepted and duplicate (409) are success: a replay of a step that already reached SaaSquatch must not error,
 *   count toward auto-pause, or be retried forever;
 * - throttled is a ThrottledError carrying the Retry-After delay, so Zapier waits and reruns the step;
 * - unavailable, timeout and no response are errors Autoreplay and manual replay retry, with the same data and so the
 *   same key;
 * - an invalid key is an auth error; other refusals name the API's message; bad input names the Zapier field.
 * Messages never include the API key: only statuses, the API's messages and our own texts go into them.
 */

/** How the idempotency key of an event was settled; `none` when the step was given no key and no fields to derive one. */
export type KeyDecisionLabel = 'kept' | 'hashed' | 'dropped' | 'none';

/** The output of Log User Event, and of each event of Log User Events. */
export interface LoggedUserEvent {
  readonly userId: string;
  readonly accountId: string;
  readonly eventKey: string;
  /** Ids SaaSquatch gave the recorded events; empty for a duplicate, which SaaSquatch answers without ids. */
  readonly eventIds: string[];
  readonly eventId: string | null;
  /** True when SaaSquatch answered 409: the key was already used, so the event had been recorded before. */
  readonly duplicate: boolean;
  readonly idempotencyKey: string | null;
  readonly idempotencyKeyDecision: KeyDecisionLabel;
  /** Why the given key was dropped (e.g. `too_short`), when it was; the event was then sent without a key. */
  readonly idempotencyKeyDropped: string | null;
  readonly idempotencyKeyDroppedDetail: string | null;
}

export function loggedUserEvent(input: UserEventInput, decision: KeyDecision | null, result: DeliveryResult): LoggedUserEvent {
  const dropped = decision?.decision === 'dropped';
  return {
    userId: input.userId,
    accountId: input.accountId,
    eventKey: input.events[0]?.key ?? '',
    eventIds: [...result.eventIds],
    eventId: result.eventIds[0] ?? null,
    duplicate: result.outcome === 'duplicate',
    idempotencyKey: input.idempotencyKey ?? null,
    // A rejected key never gets here (the step fails before sending); the type still allows it.
    idempotencyKeyDecision: decision === null || decision.decision === 'rejected' ? 'none' : decision.decision,
    idempotencyKeyDropped: dropped ? decision.reason : null,
    idempotencyKeyDroppedDetail: dropped ? describeFault(decision) : null,
  };
}

const httpPart = (result: DeliveryResult): string => {
  // One line: a gateway's HTML page can carry newlines.
  const message = result.message?.replace(/\s+/g, ' ').trim() || null;
  if (result.status === null) return `no response: ${message ?? 'the request failed'}`;
  const status = `HTTP ${result.status}`;
  const code = result.apiErrorCode ?? result.rsCode;
  // A body that is not the API's JSON comes as "HTTP 502: <html>…" already.
  const detail = message?.startsWith(status) ? message.slice(status.length).replace(/^: /, '') : message;
  return `${status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''}`;
};

/** Whole seconds, rounded up so Zapier never comes back before the target said it may. */
export const delaySeconds = (retryAfterMs: number | null): number | undefined =>
  retryAfterMs === null ? undefined : Math.ceil(retryAfterMs / 1000);

type Throttled = Extract<DeliveryFailure, { kind: 'throttled' }>;
const throttledOf = (result: DeliveryResult): Throttled | null => {
  const failure = deliveryFailureOf(result);
  return failure?.kind === 'throttled' ? failure : null;
};
// A 403 (forbidden) is not one: reconnecting with the same key would not help, so it stays an EventRejected.
export const isInvalidKey = (failure: DeliveryFailure | null): failure is Extract<DeliveryFailure, { kind: 'auth' }> =>
  failure?.kind === 'auth' && failure.reason === 'invalid-key';
const isAuthFailure = (result: DeliveryResult): boolean => isInvalidKey(deliveryFailureOf(result));

/** The text of every authentication failure, from the connection test and from the actions alike. */
export function authFailureMessage(tenant: string, detail: string): string {
  return (
    `SaaSquatch did not accept the API key for tenant "${tenant}" (${detail}). ` +
    'Check the tenant alias and use an API key of that tenant (Portal → Settings → API), then reconnect.'
  );
}

function throttledError(z: ZObject, throttled: readonly [Throttled, ...Throttled[]]): Error {
  const delays = throttled.flatMap((failure) => (failure.retryAfterMs === null ? [] : [failure.retryAfterMs]));
  const delay = delaySeconds(delays.length > 0 ? Math.max(...delays) : null);
  const when = delay === undefined ? 'after a delay' : `after ${delay} s`;
  return new z.errors.ThrottledError(
    `SaaSquatch is rate limiting requests (HTTP ${throttled[0].status}); Zapier reruns this step ${when} with the same idempotency key.`,
    delay,
  );
}

function replayNote(key: string | null): string {
  return key === null
    ? 'It was sent without an idempotency key: if SaaSquatch did record it, a replay records it again.'
    : `Replaying this step (Autoreplay or by hand) resends it with the same idempotency key "${key}", so SaaSquatch records it once.`;
}

/** Returns for accepted and duplicate; throws the Zapier error of any other outcome. */
export function throwUnlessDelivered(z: ZObject, tenant: string, result: DeliveryResult): void {
  if (result.outcome === 'accepted' || result.outcome === 'duplicate') return;
  const throttled = throttledOf(result);
  if (throttled) throw throttledError(z, [throttled]);
  if (isAuthFailure(result)) throw new z.errors.ExpiredAuthError(authFailureMessage(tenant, httpPart(result)));
  if (result.outcome === 'rejected') {
    throw new z.errors.Error(`SaaSquatch rejected the event (${httpPart(result)}).`, 'EventRejected', result.status ?? undefined);
  }
  throw new z.errors.Error(
    `SaaSquatch did not confirm the event (${httpPart(result)}). ${replayNote(result.key)}`,
    'TargetUnavailable',
    result.status ?? undefined,
  );
}

/**
 * Log User Events: returns when every event was accepted or a duplicate, else throws one error for the batch.
 * Retryable failures win over rejections, because a replay resends every event: those recorded come back as duplicates.
 */
export function throwUnlessAllDelivered(z: ZObject, tenant: string, results: readonly DeliveryResult[]): void {
  const failed = results.flatMap((result, index) =>
    result.outcome === 'failed' || result.outcome === 'rejected' ? [{ result, index }] : [],
  );
  if (failed.length === 0) return;
  const recorded = results.filter((result) => result.outcome === 'accepted' || result.outcome === 'duplicate').length;
  const listing = failed.map(({ result, index }) => `event ${index + 1}: ${httpPart(result)}`).join('; ');
  const was = (count: number): string => (count === 1 ? 'was' : 'were');
  const summary = `${failed.length} of ${results.length} events ${was(failed.length)} not recorded (${listing}); ${recorded} ${was(recorded)}.`;

  const [firstThrottled, ...moreThrottled] = results.flatMap((result) => throttledOf(result) ?? []);
  if (firstThrottled) throw throttledError(z, [firstThrottled, ...moreThrottled]);
  const firstAuthFailure = results.find(isAuthFailure);
  if (firstAuthFailure) throw new z.errors.ExpiredAuthError(authFailureMessage(tenant, httpPart(firstAuthFailure)));

  const retryable = failed.some(({ result }) => result.outcome === 'failed');
  const unkeyedRecorded = results.flatMap((result, index) => (result.outcome === 'accepted' && result.key === null ? [index + 1] : []));
  const one = unkeyedRecorded.length === 1;
  const unkeyedNote =
    unkeyedRecorded.length === 0
      ? ''
      : ` Event${one ? '' : 's'} ${unkeyedRecorded.join(', ')} ${was(unkeyedRecorded.length)} recorded without an idempotency key; a replay records ${one ? 'it' : 'them'} again.`;
  if (retryable) {
    throw new z.errors.Error(
      `SaaSquatch did not confirm every event: ${summary} A replay resends them all with the same idempotency keys; those already recorded come back as duplicates.${unkeyedNote}`,
      'TargetUnavailable',
    );
  }
  throw new z.errors.Error(`SaaSquatch rejected events: ${summary}${unkeyedNote}`, 'EventRejected');
}

/** The editor sends an unset optional field as "" (createAppTester and some paths skip cleanInputData). */
export const unlessEmpty = (value: unknown): unknown => (value === '' || value === null ? undefined : value);

/**
 * Names the Zapier input behind a path of the shared layer: `events[0].key` → `eventKey`, `events[0].fields.x` →
 * `fields.x`, and the target client's options by their auth fields (`baseUrl` → `apiBaseUrl`).
 */
export function zapierFieldOf(path: string): string {
  const eventPath = /^events\[0\]\.(.*)$/.exec(path);
  if (eventPath) {
    const rest = eventPath[1] ?? '';
    return rest === 'key' || rest.startsWith('key.') ? `eventKey${rest.slice('key'.length)}` : rest;
  }
  return authFieldForClientOption[path] ?? path;
}

export interface InputErrorWording {
  /** What did not happen, e.g. "The event was not sent". */
  readonly lead?: string;
  /** The user-facing name of a shared-layer path; zapierFieldOf by default. */
  readonly fieldName?: (path: string) => string;
}

/** Maps an input problem to a Zapier error that names the field as the user sees it; rethrows anything else. */
export function throwInputError(z: ZObject, error: unknown, wording: InputErrorWording = {}): never {
  const lead = wording.lead ?? 'The event was not sent';
  const fieldName = wording.fieldName ?? zapierFieldOf;
  if (error instanceof KeyRejectedError) {
    throw new z.errors.Error(`${lead}: ${error.message}. Fix the key or choose another Invalid Key Policy.`, 'IdempotencyKeyRejected');
  }
  if (error instanceof InvalidInputError) {
    const issues = error.issues.map((issue: FieldIssue) => `${fieldName(issue.field)}: ${issue.reason}`).join('; ');
    throw new z.errors.Error(`${lead}: ${issues}`, 'InvalidInput');
  }
  throw error;
}
