import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { startOncekit } from '../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY } from '../sandbox/target/defaults.js';
import { figure, interleave, loadAverage, pairedRatios } from './interleave.js';
import type { BenchRow } from './measure.js';
import { spreadRow } from './measure.js';
import { json, nextEvent } from './relay.js';
import { runId } from './run-id.js';
import { quick } from './settings.js';

/** The target's capacity during the overload, in events per second (the sandbox's --max-rate). */
const CAP = 2000;
const SECONDS = quick ? 8 : 20;
const CONNECTIONS = quick ? 32 : 64;
const EVENTS_PER_REQUEST = 50;
/** How long the bench waits, after the load, for the outbox to drain before it counts "delivered in total". */
const DRAIN_LIMIT_S = quick ? 20 : 45;
const POLL_MS = 250;
/** Interleaved repetitions of each subject (one 20 s overload plus its drain is long). */
const REPETITIONS = quick ? 1 : 2;

type Subject = 'backpressure' | 'unbounded';

interface SenderCounts {
  acked: number;
  refused503: number;
  failed: number;
  waitedMs: number;
}

/**
 * One sender per connection, as Segment or an Apex callout would: each posts a batch, and on 503 waits the
 * Retry-After it was given and posts the same batch again (same idempotency keys), until the window ends.
 */
async function send(relayUrl: string, secret: string, until: number): Promise<SenderCounts> {
  const pool = new Pool(relayUrl, { connections: CONNECTIONS, pipelining: 1 });
  const counts: SenderCounts = { acked: 0, refused503: 0, failed: 0, waitedMs: 0 };
  const headers = { authorization: `Bearer ${secret}`, 'content-type': 'application/json' };
  const batch = () => JSON.stringify({ usersEvents: Array.from({ length: EVENTS_PER_REQUEST }, nextEvent) });
  try {
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        let body = batch();
        while (performance.now() < until) {
          let status = 0;
          let retryAfter: string | string[] | undefined;
          try {
            const answer = await pool.request({ method: 'POST', path: '/salesforce/track-event/by-id', headers, body });
            status = answer.statusCode;
            retryAfter = answer.headers['retry-after'];
            await answer.body.dump();
          } catch {
            status = 0;
          }
          if (status >= 200 && status < 300) {
            counts.acked += EVENTS_PER_REQUEST;
            body = batch();
            continue;
          }
          let waitMs = 100;
          if (status === 503) {
            counts.refused503 += 1;
            const seconds = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
            waitMs = Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 1000;
          } else counts.failed += 1;
          const wait = Math.max(0, Math.min(waitMs, until - performance.now()));
          counts.waitedMs += wait;
          await sleep(wait);
        }
      }),
    );
  } finally {
    await pool.close();
  }
  return counts;
}

async function backlogOf(relayUrl: string, auth: Record<string, string>): Promise<number> {
  const { outbox } = await json<{ outbox: Record<string, number> }>(`${relayUrl}/status/api/summary`, auth);
  return (outbox.pending ?? 0) + (outbox.leased ?? 0);
}

async function delivered(sandboxUrl: string, tenant: string): Promise<number> {
  const snapshot = await json<{ events: unknown[] }>(`${sandboxUrl}/__sandbox/tenants/${tenant}`);
  return snapshot.events.length;
}

/**
 * A 20 s overload: CONNECTIONS senders × EVENTS_PER_REQUEST events against the relay (SQLite), whose target is the
 * sandbox capped at CAP events/s (429 with Retry-After above it). With backpressure (ONCEKIT_MAX_BACKLOG, default
 * 10,000) the relay answers 503 once its backlog passes the limit and the senders wait Retry-After; the baseline
 * (ONCEKIT_MAX_BACKLOG=off) takes everything, so its backlog grows without bound. Interleaved, fresh relay, fresh
 * store and fresh tenant per run; the sandbox is reset (its bucket refilled) before each.
 */
export async function runOverloadBench(): Promise<BenchRow[]> {
  const base = { PATH: process.env.PATH, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY };
  const sandbox = await startOncekit(['sandbox', '--port', '0', '--max-rate', String(CAP)], base);
  const sandboxUrl = sandbox.url ?? '';
  const dataDir = await mkdtemp(join(tmpdir(), 'oncekit-bench-overload-'));
  const loads: string[] = [];
  let runs = 0;
  try {
    const samples = await interleave(
      ['backpressure', 'unbounded'] as const satisfies readonly Subject[],
      async (subject) => {
        runs += 1;
        await fetch(`${sandboxUrl}/__sandbox/reset`, { method: 'POST' });
        const tenant = `overload-${subject}-${runId}-${runs}`;
        const secret = randomBytes(24).toString('base64url');
        const store = `sqlite:${join(dataDir, `relay-${runs}.db`)}`;
        const relay = await startOncekit(['relay', '--port', '0', '--target-url', sandboxUrl, '--tenant', tenant, '--store', store], {
          ...base,
          ONCEKIT_RELAY_SECRET: secret,
          ONCEKIT_LOG_LEVEL: 'warn',
          ...(subject === 'unbounded' ? { ONCEKIT_MAX_BACKLOG: 'off' } : {}),
        });
        try {
          const relayUrl = relay.url ?? '';
          const auth = { authorization: `Bearer ${secret}` };
          let peakBacklog = 0;
          let polling = true;
          const poller = (async () => {
            while (polling) {
              peakBacklog = Math.max(peakBacklog, await backlogOf(relayUrl, auth).catch(() => 0));
              await sleep(POLL_MS);
            }
          })();
          const started = performance.now();
          const counts = await send(relayUrl, secret, started + SECONDS * 1000);
          const windowSeconds = (performance.now() - started) / 1000;
          polling = false;
          await poller;
          const deliveredInWindow = await delivered(sandboxUrl, tenant);
          const backlogAtEnd = await backlogOf(relayUrl, auth);
          peakBacklog = Math.max(peakBacklog, backlogAtEnd);
          // Drain, bounded: the unbounded baseline may hold more than DRAIN_LIMIT_S × CAP.
          const drainStarted = performance.now();
          let backlogAfterDrain = backlogAtEnd;
          while (backlogAfterDrain > 0 && performance.now() - drainStarted < DRAIN_LIMIT_S * 1000) {
            await sleep(POLL_MS);
            backlogAfterDrain = await backlogOf(relayUrl, auth);
          }
          const drainSeconds = (performance.now() - drainStarted) / 1000;
          const deliveredTotal = await delivered(sandboxUrl, tenant);
          loads.push(`${subject} ${loadAverage()}`);
          return {
            acked: counts.acked,
            refused503: counts.refused503,
            failed: counts.failed,
            deliveredInWindow,
            deliveredTotal,
            ofCapacity: deliveredInWindow / (CAP * windowSeconds),
            peakBacklog,
            backlogAtEnd,
            backlogAfterDrain,
            drainSeconds,
          };
        } finally {
          await relay.stop();
        }
      },
      { repetitions: REPETITIONS, warmUp: false },
    );

    const rows: BenchRow[] = [];
    const capacityRows: Partial<Record<Subject, BenchRow>> = {};
    const label = { backpressure: 'backpressure (ONCEKIT_MAX_BACKLOG default)', unbounded: 'baseline (ONCEKIT_MAX_BACKLOG=off)' };
    for (const subject of ['backpressure', 'unbounded'] as const) {
      const of = (name: string) => figure(samples, subject, name);
      const baseline = capacityRows.unbounded;
      const capacityRow = spreadRow(
        `${label[subject]}: delivered ÷ (cap × seconds) in the window`,
        of('ofCapacity'),
        '×',
        subject === 'backpressure' || baseline === undefined
          ? undefined
          : { row: baseline, paired: pairedRatios(samples, subject, 'unbounded', 'ofCapacity') },
      );
      capacityRows[subject] = capacityRow;
      rows.push(
        spreadRow(`${label[subject]}: events acknowledged`, of('acked'), 'events'),
        spreadRow(`${label[subject]}: answers of 503`, of('refused503'), 'requests'),
        spreadRow(`${label[subject]}: delivered during the window`, of('deliveredInWindow'), 'events'),
        spreadRow(`${label[subject]}: delivered in total (window + drain ≤ ${DRAIN_LIMIT_S} s)`, of('deliveredTotal'), 'events'),
        capacityRow,
        spreadRow(`${label[subject]}: peak backlog`, of('peakBacklog'), 'events'),
        spreadRow(`${label[subject]}: backlog at the window's end`, of('backlogAtEnd'), 'events'),
        spreadRow(`${label[subject]}: backlog after the drain`, of('backlogAfterDrain'), 'events'),
        spreadRow(`${label[subject]}: drain after the window`, of('drainSeconds'), 's'),
      );
    }
    const withBackpressure = capacityRows.backpressure;
    const unbounded = capacityRows.unbounded;
    if (withBackpressure && unbounded)
      rows.push(
        spreadRow('delivered ÷ capacity: backpressure beside the baseline', figure(samples, 'backpressure', 'ofCapacity'), '×', {
          row: unbounded,
          paired: pairedRatios(samples, 'backpressure', 'unbounded', 'ofCapacity'),
        }),
      );
    const failed = [...samples.backpressure, ...samples.unbounded].reduce((sum, f) => sum + (f.failed ?? 0), 0);
    const first = rows[0];
    if (first)
      rows[0] = {
        ...first,
        note:
          `${CONNECTIONS} connections × ${EVENTS_PER_REQUEST} events/request for ${SECONDS} s, the sandbox capped at ${CAP.toLocaleString('en-US')} events/s ` +
          `(429 with Retry-After above it; its bucket starts full, so up to one extra second's worth can land); senders wait Retry-After on 503 and resend the same batch; ` +
          `${REPETITIONS} run(s) of each, interleaved, relay on SQLite; ${failed} requests failed otherwise; ` +
          `load average (1/5/15) after each run: ${loads.join('; ')}; processes share ${cpus().length} cores`,
      };
    return rows;
  } finally {
    await sandbox.stop().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
  }
}
