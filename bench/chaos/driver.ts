import { z } from 'zod';
import { type RunningCommand, startOncekit } from '../../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY } from '../../sandbox/target/defaults.js';
import type { FaultState } from '../../sandbox/target/faults.js';
import type { TenantSnapshot } from '../../sandbox/target/state.js';
import { drained, json } from '../relay.js';
import {
  type ChaosCall,
  type ChaosRoute,
  callBody,
  chaosIdOf,
  chaosRoutes,
  planCalls,
  relaySourceEnv,
  type SourceSecrets,
  sourceRequest,
  sourceSecrets,
} from './sources.js';

/** The target's faults: 20 % 5xx, 5 % recorded then answered 503, 5 % connections reset before an answer. */
export const chaosFaults = (seed: number): string => `500=0.1,503=0.1,record-then-fail=0.05,drop=0.05,retry-after=0,seed=${seed}`;

export interface ChaosOptions {
  /** Names the run in its lines, e.g. `sqlite`. */
  readonly label: string;
  /** The relays' --store; every relay (and every restart) uses the same one. */
  readonly store: string;
  readonly events: number;
  readonly relays: number;
  /** SIGKILLs, spread over the run and over the relays; each killed relay is restarted on the same store. */
  readonly kills: number;
  readonly seed: number;
  /** Sources sending at once; default 12. */
  readonly senders?: number;
  /** How long the outbox may take to drain once every event is acknowledged; default 5 minutes. */
  readonly drainTimeoutMs?: number;
  /** More `oncekit relay` options, after the run's own (a later option wins). */
  readonly relayArgs?: readonly string[];
  /** Progress lines (kills, acknowledged counts); default none. */
  readonly progress?: (line: string) => void;
}

export interface ChaosResult {
  readonly label: string;
  readonly relays: number;
  readonly kills: number;
  /** At each SIGKILL: events acked so far, and the outbox's pending and leased events as the victim last saw them. */
  readonly killedAt: readonly { readonly acked: number; readonly pending: number; readonly leased: number }[];
  readonly events: number;
  /** Events a relay answered with a 2xx. */
  readonly acked: number;
  /** Acknowledged events the target recorded exactly once. */
  readonly recordedOnce: number;
  /** Acknowledged, never recorded. */
  readonly lost: readonly string[];
  /** Recorded more than once, with how often. */
  readonly doubled: readonly { readonly key: string; readonly times: number }[];
  /** Recorded events that were never acknowledged, or whose key is not the event's own. */
  readonly strays: number;
  /** Items a 2xx answer said were not taken (none are expected: every event is valid). */
  readonly refused: number;
  readonly calls: Readonly<Record<ChaosRoute, number>>;
  /** Source requests: all, answered with a non-2xx, and with no answer (reset, refused, timed out). */
  readonly requests: { readonly sent: number; readonly non2xx: Readonly<Record<string, number>>; readonly noAnswer: number };
  readonly target: { readonly requests: TenantSnapshot['requests']; readonly injected: FaultState['injected'] };
  /** The relays' outbox once drained (or when the drain timed out). */
  readonly outbox: Readonly<Record<string, number>>;
  readonly drained: boolean;
  readonly seconds: number;
}

/** Whether the run proved what it should: every acknowledged event recorded once, nothing else. */
export function chaosHeld(result: ChaosResult): boolean {
  return (
    result.acked === result.events &&
    result.lost.length === 0 &&
    result.doubled.length === 0 &&
    result.strays === 0 &&
    result.refused === 0 &&
    result.drained
  );
}

const TENANT = 'chaos';
const ATTEMPT_TIMEOUT_MS = 15_000;
const CALL_DEADLINE_MS = 10 * 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A relay position: killed and restarted, so whoever sends reads the current process each attempt. */
interface RelaySlot {
  current: RunningCommand | null;
  /** The restart under way after a kill; the slot's next kill waits for it. */
  restarted: Promise<void>;
}

/**
 * Runs the chaos proof: a sandbox target with faults (its own process), `relays` relay processes (the built CLI) on
 * one store, sources sending every event over the relays' real routes until a 2xx, SIGKILLs mid-run with restarts;
 * then waits for the outbox to drain and compares the sandbox's records with what was acknowledged.
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const started = performance.now();
  const say = options.progress ?? (() => {});
  const secrets = sourceSecrets();
  const sandbox = await startOncekit(['sandbox', '--port', '0', '--faults', chaosFaults(options.seed)], {
    PATH: process.env.PATH,
    ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
  });
  const slots: RelaySlot[] = [];
  try {
    const targetUrl = sandbox.url ?? '';
    const startRelay = () => startRelayProcess(options.store, targetUrl, secrets, options.relayArgs ?? []);
    // One after the other: the first runs the migrations, the others find them done.
    for (let n = 0; n < options.relays; n++) slots.push({ current: await startRelay(), restarted: Promise.resolve() });

    const auth = { authorization: `Bearer ${secrets.relaySecret}` };
    const calls = planCalls(options.events, options.seed);
    const sending = sendAll(calls, slots, secrets, options);
    // Awaited below; this keeps a failure from being unhandled should a kill or restart throw first.
    sending.finished.catch(() => {});
    const killedAt: ChaosResult['killedAt'][number][] = [];
    for (let kill = 0; kill < options.kills; kill++) {
      const at = Math.ceil((options.events * (kill + 1)) / (options.kills + 1));
      while (sending.tally.acked.size < at && !sending.done) await sleep(10);
      const slot = slots[kill % slots.length] as RelaySlot;
      await slot.restarted;
      const victim = slot.current;
      // What the victim holds as it dies: evidence the kill hit work in flight, not an idle process.
      const outbox = await outboxOf(victim?.url ?? '', auth).catch(() => ({}) as Record<string, number>);
      slot.current = null;
      await victim?.stop('SIGKILL');
      killedAt.push({ acked: sending.tally.acked.size, pending: outbox.pending ?? 0, leased: outbox.leased ?? 0 });
      say(
        `${options.label}: SIGKILL ${killedAt.length} of ${options.kills} (relay ${(kill % slots.length) + 1}) at ${killedAt.at(-1)?.acked} acked`,
      );
      // Restarted in the background, so the next kill (of another relay) keeps its place in the run.
      slot.restarted = startRelay().then((relay) => {
        slot.current = relay;
      });
    }
    await Promise.all(slots.map((slot) => slot.restarted));
    await sending.finished;
    say(`${options.label}: ${sending.tally.acked.size} acked; waiting for the outbox to drain`);

    const live = slots.find((slot) => slot.current !== null)?.current;
    let outbox: Record<string, number> = {};
    let isDrained = true;
    try {
      outbox = await drained(live?.url ?? '', auth, options.drainTimeoutMs ?? 5 * 60_000);
    } catch {
      isDrained = false;
      outbox = await outboxOf(live?.url ?? '', auth);
    }
    const snapshot = await json<TenantSnapshot>(`${targetUrl}/__sandbox/tenants/${TENANT}`);
    const faults = await json<FaultState>(`${targetUrl}/__sandbox/faults`);
    return {
      ...compareRecords(sending.tally.acked, snapshot),
      label: options.label,
      relays: options.relays,
      kills: killedAt.length,
      killedAt,
      events: options.events,
      refused: sending.tally.refused,
      calls: Object.fromEntries(chaosRoutes.map((route) => [route, calls.filter((call) => call.route === route).length])) as Record<
        ChaosRoute,
        number
      >,
      requests: { sent: sending.tally.sent, non2xx: sending.tally.non2xx, noAnswer: sending.tally.noAnswer },
      target: { requests: snapshot.requests, injected: faults.injected },
      outbox,
      drained: isDrained,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await Promise.allSettled(slots.map((slot) => slot.restarted));
    await Promise.all(slots.map((slot) => slot.current?.stop('SIGKILL')));
    await sandbox.stop();
  }
}

async function outboxOf(relayUrl: string, auth: Record<string, string>): Promise<Record<string, number>> {
  return (await json<{ outbox: Record<string, number> }>(`${relayUrl}/status/api/summary`, auth)).outbox;
}

function startRelayProcess(
  store: string,
  targetUrl: string,
  secrets: SourceSecrets,
  extraArgs: readonly string[],
): Promise<RunningCommand> {
  const args = ['relay', '--port', '0', '--store', store, '--target-url', targetUrl, '--tenant', TENANT];
  // A short lease, so a killed relay's events come back within seconds; small batches, so the target's faults hit
  // many requests (record-then-fail included) rather than a few large ones.
  args.push('--lease', '2s', '--backoff-base', '50ms', '--backoff-max', '1s', '--batch-size', '10', ...extraArgs);
  return startOncekit(args, {
    PATH: process.env.PATH,
    ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
    ONCEKIT_LOG_LEVEL: 'error',
    ...relaySourceEnv(secrets),
  });
}

interface SendTally {
  readonly acked: Set<string>;
  refused: number;
  sent: number;
  /** Non-2xx answers by status. */
  readonly non2xx: Record<string, number>;
  noAnswer: number;
}

/** The sources: `senders` loops take the calls in order, each resent until a 2xx. */
function sendAll(
  calls: readonly ChaosCall[],
  slots: readonly RelaySlot[],
  secrets: SourceSecrets,
  options: ChaosOptions,
): { readonly tally: SendTally; readonly finished: Promise<void>; readonly done: boolean } {
  const tally: SendTally = { acked: new Set(), refused: 0, sent: 0, non2xx: {}, noAnswer: 0 };
  let next = 0;
  let lastReport = performance.now();
  const sender = async (): Promise<void> => {
    while (next < calls.length) {
      const call = calls[next++] as ChaosCall;
      await sendUntilAcked(call, slots, secrets, options.seed, tally);
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        options.progress?.(`${options.label}: ${tally.acked.size} of ${options.events} acked`);
      }
    }
  };
  const state = { tally, done: false, finished: Promise.resolve() };
  // Done also when a call never got its 2xx: the kills stop waiting, and `finished` carries the error.
  state.finished = Promise.all(Array.from({ length: options.senders ?? 12 }, sender))
    .then(() => undefined)
    .finally(() => {
      state.done = true;
    });
  return state;
}

const salesforceAnswer = z.object({ results: z.array(z.object({ outboxId: z.string().optional() })) });
const segmentAnswer = z.object({ results: z.array(z.object({ status: z.string() })) });
const keygenAnswer = z.object({ status: z.string() });

/** Items of a 2xx answer that the relay says it did not take. */
function refusedItems(route: ChaosRoute, text: string): number {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return 1;
  }
  switch (route) {
    case 'salesforce': {
      const answer = salesforceAnswer.safeParse(body);
      return answer.success ? answer.data.results.filter((result) => result.outboxId === undefined).length : 1;
    }
    case 'segment': {
      const answer = segmentAnswer.safeParse(body);
      return answer.success ? answer.data.results.filter((result) => result.status !== 'accepted').length : 1;
    }
    case 'keygen': {
      const answer = keygenAnswer.safeParse(body);
      return answer.success && (answer.data.status === 'accepted' || answer.data.status === 'duplicate') ? 0 : 1;
    }
  }
}

/** One source's call: resent, at whichever relay is next, until one answers 2xx; only then are its events acked. */
async function sendUntilAcked(call: ChaosCall, slots: readonly RelaySlot[], secrets: SourceSecrets, seed: number, tally: SendTally) {
  const body = callBody(call);
  const deadline = Date.now() + CALL_DEADLINE_MS;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const relay = (slots[(call.index + attempt) % slots.length] as RelaySlot).current;
    let retryAfterMs = 0;
    if (relay?.url) {
      const request = sourceRequest(call, body, relay.url, secrets, seed);
      tally.sent += 1;
      try {
        const answer = await fetch(request.url, {
          method: 'POST',
          headers: request.headers,
          body: request.body,
          signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        });
        const text = await answer.text();
        if (answer.status >= 200 && answer.status < 300) {
          tally.refused += refusedItems(call.route, text);
          for (const event of call.events) tally.acked.add(event.key);
          return;
        }
        tally.non2xx[answer.status] = (tally.non2xx[answer.status] ?? 0) + 1;
        // As real sources do, a Retry-After (409 in progress, 503) sets the wait; capped so the run keeps moving.
        retryAfterMs = Math.min(2000, Number(answer.headers.get('retry-after') ?? 0) * 1000 || 0);
      } catch {
        // A killed relay (reset, refused) or no answer in time: the source tries again.
        tally.noAnswer += 1;
      }
    }
    await sleep(Math.max(retryAfterMs, Math.min(500, 20 * (attempt + 1))));
  }
  throw new Error(`call ${call.index} (${call.route}) got no 2xx in ${CALL_DEADLINE_MS / 60_000} minutes`);
}

/** Compares the sandbox's records with the acknowledged events, by the identity each event carries in its fields. */
export function compareRecords(
  acked: ReadonlySet<string>,
  snapshot: TenantSnapshot,
): Pick<ChaosResult, 'acked' | 'recordedOnce' | 'lost' | 'doubled' | 'strays'> {
  const times = new Map<string, number>();
  let strays = 0;
  for (const event of snapshot.events) {
    const id = chaosIdOf(event.fields);
    if (id === null || !acked.has(id) || event.idempotencyKey !== id) strays += 1;
    if (id !== null) times.set(id, (times.get(id) ?? 0) + 1);
  }
  const lost = [...acked].filter((key) => !times.has(key));
  const doubled = [...times].filter(([, count]) => count > 1).map(([key, count]) => ({ key, times: count }));
  const recordedOnce = [...acked].filter((key) => times.get(key) === 1).length;
  return { acked: acked.size, recordedOnce, lost, doubled, strays };
}

/** The run's result line (`N acked, N recorded once, 0 lost, 0 doubled`) and a line of what it went through. */
export function formatChaosResult(result: ChaosResult): string {
  const relays = `${result.relays} relay${result.relays === 1 ? '' : 's'}`;
  const head =
    `${result.label} (${relays}, ${result.kills} SIGKILL${result.kills === 1 ? '' : 's'}): ` +
    `${result.acked} acked, ${result.recordedOnce} recorded once, ${result.lost.length} lost, ${result.doubled.length} doubled`;
  const injected = result.target.injected;
  const lines = [
    head,
    `  sources: ${chaosRoutes.map((route) => `${result.calls[route]} ${route}`).join(', ')} calls; ${result.requests.sent} requests, ` +
      `${Object.entries(result.requests.non2xx)
        .map(([status, count]) => `${count} answered ${status}`)
        .join(', ')}${Object.keys(result.requests.non2xx).length > 0 ? ', ' : ''}${result.requests.noAnswer} without an answer`,
    `  SIGKILLs at ${result.killedAt.map((kill) => `${kill.acked} acked (${kill.pending} pending, ${kill.leased} leased)`).join(', ') || 'none'}`,
    `  target: ${result.target.requests.total} requests; injected ${injected.status} 5xx, ${injected['record-then-fail']} record-then-fail, ` +
      `${injected.drop} resets; outbox ${Object.entries(result.outbox)
        .map(([state, count]) => `${state} ${count}`)
        .join(', ')}; ${result.seconds.toFixed(0)} s`,
  ];
  if (!result.drained) lines.push('  the outbox did NOT drain in time');
  if (result.refused > 0) lines.push(`  ${result.refused} items refused in a 2xx answer`);
  if (result.strays > 0) lines.push(`  ${result.strays} recorded events not acked or with another key`);
  if (result.lost.length > 0) lines.push(`  lost: ${result.lost.slice(0, 10).join(', ')}${result.lost.length > 10 ? ', …' : ''}`);
  if (result.doubled.length > 0)
    lines.push(
      `  doubled: ${result.doubled
        .slice(0, 10)
        .map((entry) => `${entry.key} ×${entry.times}`)
        .join(', ')}${result.doubled.length > 10 ? ', …' : ''}`,
    );
  return lines.join('\n');
}
