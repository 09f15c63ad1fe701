import { createHash, createHmac, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import type { QueuedFault, Sandbox, TenantSnapshot } from '../../sandbox/target/index.js';
import { choiceOption, EXIT_FAILURE, EXIT_OK, integerOption, printJson } from '../usage.js';

/** The sources the demo sends from; each has its own user-id domain, so the target's events can be told apart. */
const SOURCES = ['salesforce', 'salesforce-event', 'keygen', 'segment'] as const;
type DemoSource = (typeof SOURCES)[number];

const SOURCE_LABELS: Record<DemoSource, string> = {
  salesforce: 'Salesforce invocable',
  'salesforce-event': 'Salesforce Platform Events',
  keygen: 'Keygen webhooks',
  segment: 'Segment webhooks',
};

const TENANT = 'demo';
const REPLAYED_HEADER = 'idempotent-replayed';

/** Target faults scripted before the keyed traffic: each is consumed by one API request, in order. */
const SCRIPTED_FAULTS: readonly QueuedFault[] = [
  { kind: 'status', status: 500 },
  { kind: 'status', status: 503 },
  { kind: 'throttle', retryAfterSeconds: 1 },
  { kind: 'record-then-fail', failWith: 'status' },
  { kind: 'status', status: 500 },
];

export const PLATFORM_EVENTS_NOTE =
  'Salesforce is a local fake org on loopback (OAuth client credentials, REST for the Lead lookup, CometD with durable replay ' +
  'for Platform Events), driven by the real jsforce client; set ONCEKIT_SF_* and run `oncekit relay` for a real org.';

/** The fake org's connected app; loopback only. */
const DEMO_ORG_CLIENT = { clientId: 'oncekit-demo', clientSecret: randomBytes(18).toString('base64url') };
/** A Lead the by-lead call reads its user from, through jsforce. */
const DEMO_LEAD = { Id: '00Q000000000001EAA', Email: 'lee-2001@salesforce.demo', FirstName: 'Lee', LastName: 'Demo', Company: 'Demo' };

interface DemoCommandOptions {
  readonly json?: boolean;
  readonly store: 'memory' | 'sqlite';
  readonly timeout: number;
  readonly logLevel: 'silent' | 'error' | 'warn' | 'info' | 'debug';
}

export interface DemoSourceRow {
  readonly source: DemoSource;
  readonly label: string;
  /** Events the source sent, retries and redeliveries included. */
  readonly sent: number;
  /** Events the relay took in as new (records in its outbox). */
  readonly accepted: number;
  /** Events in Apex retries answered from request idempotency (Idempotent-Replayed), not processed again. */
  readonly replayed: number;
  /** Redeliveries and repeats the relay recognised (inbox or outbox) and did not take again. */
  readonly duplicates: number;
  /** Events refused by the relay (4xx). */
  readonly rejected: number;
  /** Accepted events whose key candidate was invalid: sent to the target without an idempotency key. */
  readonly keysDropped: number;
  /** Accepted events settled as 409 by the target: an earlier attempt had landed (record-then-fail). */
  readonly target409: number;
  /** Events the target holds for this source. */
  readonly recorded: number;
}

export interface DemoInvariant {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DemoReport {
  readonly ok: boolean;
  readonly sandbox: { readonly url: string; readonly tenant: string };
  readonly relay: { readonly url: string; readonly store: string };
  readonly sources: readonly DemoSourceRow[];
  readonly target: {
    readonly requests: number;
    readonly byStatus: Readonly<Record<string, number>>;
    readonly faultsInjected: Readonly<Record<string, number>>;
    readonly events: number;
  };
  readonly keyedEvents: number;
  readonly unkeyedEvents: number;
  readonly drainMs: number;
  readonly elapsedMs: number;
  readonly invariants: readonly DemoInvariant[];
  readonly notes: readonly string[];
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('start a sandbox and the relay in-process, send traffic from each source with target faults, and show what happened')
    .option('--json', 'print the report as JSON')
    .option(
      '--store <kind>',
      'the relay store: memory, or sqlite in a temporary directory',
      choiceOption(['memory', 'sqlite'] as const),
      'memory',
    )
    .option('--timeout <seconds>', 'how long to wait for the outbox to drain', integerOption(1, 600), 8)
    .option(
      '--log-level <level>',
      "the relay's JSON logs, on stderr",
      choiceOption(['silent', 'error', 'warn', 'info', 'debug'] as const),
      'silent',
    )
    .addHelpText(
      'after',
      `\n${PLATFORM_EVENTS_NOTE}\nExit status: 0 when every keyed event was recorded exactly once and nothing was lost, 1 otherwise.`,
    )
    .action(async (options: DemoCommandOptions) => {
      const report = await runDemo(options);
      if (options.json) printJson(report);
      else process.stdout.write(formatDemoReport(report));
      process.exitCode = report.ok ? EXIT_OK : EXIT_FAILURE;
    });
}

interface SentEvent {
  readonly key: string | null;
  readonly keyDecision: string;
}

/** What each source's sender saw: the events it sent and the relay's answers. */
interface Tally {
  sent: number;
  replayed: number;
  rejected: number;
  /** First takes, by the event's identity (its key, or its source id when unkeyed). */
  readonly events: Map<string, SentEvent>;
}

async function runDemo(options: DemoCommandOptions): Promise<DemoReport> {
  const started = performance.now();
  // Loaded here: the sandbox (graphql-js) and the relay (fastify, jsforce) are this command's alone.
  const { startSandbox, DEFAULT_SANDBOX_API_KEY } = await import('../../sandbox/target/index.js');
  const { readRelayConfig } = await import('../../connectors/relay/config.js');
  const { startRelay } = await import('../../connectors/relay/relay.js');
  const { startFakeOrg } = await import('../../sandbox/salesforce-org/index.js');
  const { DEFAULT_PLATFORM_EVENT_CHANNEL } = await import('../../connectors/salesforce/platform-event-mapping.js');
  // jsforce sends even loopback requests through a proxy when one is set; the demo's org is on loopback.
  for (const name of ['http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY']) delete process.env[name];

  const keygenKeys = generateKeyPairSync('ed25519');
  const keygenPublicKeyHex = keygenKeys.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
  const relaySecret = randomBytes(24).toString('base64url');
  const segmentSecret = randomBytes(24).toString('base64url');
  const tempDir = options.store === 'sqlite' ? await mkdtemp(join(tmpdir(), 'oncekit-demo-')) : null;
  const storeText = tempDir ? `sqlite:${join(tempDir, 'oncekit.db')}` : 'memory';

  const sandbox = await startSandbox({ host: '127.0.0.1', port: 0 });
  const org = await startFakeOrg({ clientCredentials: DEMO_ORG_CLIENT, records: { Lead: [DEMO_LEAD] }, bayeuxTimeoutSeconds: 5 });
  let relay: Awaited<ReturnType<typeof startRelay>> | null = null;
  try {
    // Only what the demo sets: a user's ONCEKIT_SF_* or target settings must not leak in.
    const env: Record<string, string> = {
      ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
      ONCEKIT_RELAY_SECRET: relaySecret,
      ONCEKIT_KEYGEN_PUBLIC_KEY: keygenPublicKeyHex,
      ONCEKIT_SEGMENT_SHARED_SECRET: segmentSecret,
      ONCEKIT_LOG_LEVEL: options.logLevel,
      ONCEKIT_SF_AUTH_FLOW: 'client-credentials',
      ONCEKIT_SF_CLIENT_ID: DEMO_ORG_CLIENT.clientId,
      ONCEKIT_SF_CLIENT_SECRET: DEMO_ORG_CLIENT.clientSecret,
      ONCEKIT_SF_LOGIN_URL: org.url,
    };
    const config = readRelayConfig({ host: '127.0.0.1', port: 0, targetUrl: sandbox.url, tenant: TENANT, store: storeText }, env);
    relay = await startRelay(config, {
      env,
      // Short backoff and polling, so the scripted faults are retried within the demo's few seconds.
      outbox: { backoffBaseMs: 50, backoffMaxMs: 1000, pollMs: 25 },
      logStream: options.logLevel === 'silent' ? discard() : process.stderr,
    });
    const running = relay;
    const tallies: Record<DemoSource, Tally> = {
      salesforce: newTally(),
      'salesforce-event': newTally(),
      keygen: newTally(),
      segment: newTally(),
    };
    const send = sender(running.url, relaySecret, segmentSecret, keygenKeys.privateKey, tallies);
    const deadline = Date.now() + options.timeout * 1000;

    // Phase 1: keyed traffic from every source, with the target faults scripted in front of it.
    sandbox.faults.enqueue(...SCRIPTED_FAULTS);
    const drainStarted = performance.now();
    // Invocable calls: a call, Apex's retry of it with the same Idempotency-Key, a second call, and a later call
    // that carries an event key already seen (a Flow that fired twice).
    const call1 = [1001, 1002, 1003].map((n) => invocableItem(`ada-${n}@salesforce.demo`, `sf-order-${n}`, n));
    await send.invocable('apex-call-1', call1);
    await send.invocable('apex-call-1', call1);
    await send.invocable(
      'apex-call-2',
      [1004, 1005].map((n) => invocableItem(`ada-${n}@salesforce.demo`, `sf-order-${n}`, n)),
    );
    await send.invocable('apex-call-3', [invocableItem('ada-1001@salesforce.demo', 'sf-order-1001', 1001)]);
    // A Flow on a Lead: the relay reads the Lead's Email through jsforce for userId and accountId.
    await send.invocable(
      'apex-call-5',
      [{ leadId: DEMO_LEAD.Id.slice(0, 15), key: 'signup', idempotencyKey: 'sf-lead-signup-2001' }],
      'by-lead',
    );
    // Platform Events: three published events keyed by their EventUuid, and one an Apex job published twice with the
    // same Idempotency_Key__c (a retried transaction), which is one event.
    const publish = async (n: number, idempotencyKey?: string): Promise<void> => {
      const email = `pat-${n}@salesforce-event.demo`;
      const payload = {
        User_Id__c: email,
        Account_Id__c: email,
        Event_Key__c: 'purchase',
        Fields__c: JSON.stringify({ orderId: `PE-${n}`, total: n }),
        ...(idempotencyKey ? { Idempotency_Key__c: idempotencyKey } : {}),
      };
      const eventUuid = randomUUID();
      await org.publish(DEFAULT_PLATFORM_EVENT_CHANNEL, payload, { eventUuid });
      const tally = tallies['salesforce-event'];
      tally.sent += 1;
      const key = idempotencyKey ?? eventUuid;
      if (!tally.events.has(key)) tally.events.set(key, { key, keyDecision: 'kept' });
    };
    for (const n of [3001, 3002, 3003]) await publish(n);
    await publish(3004, 'pe-order-3004');
    await publish(3004, 'pe-order-3004');
    await waitForEvents(running, 'salesforce-event', tallies['salesforce-event'].events.size, deadline);
    // Keygen: a delivery, its redelivery, Keygen's retry of the event (a new resource, same token), another event.
    const token1 = randomBytes(32).toString('hex');
    const token2 = randomBytes(32).toString('hex');
    const license1 = keygenEvent(`evt-${randomUUID()}`, token1, 'lic-1', 'linus@keygen.demo');
    await send.keygen(license1);
    await send.keygen(license1);
    await send.keygen(keygenEvent(`evt-${randomUUID()}`, token1, 'lic-1', 'linus@keygen.demo'));
    await send.keygen(keygenEvent(`evt-${randomUUID()}`, token2, 'lic-2', 'margaret@keygen.demo'));
    // Segment: three track events with analytics.js-style messageIds, and a redelivery of one of them.
    const tracks = [1, 2, 3].map((n) => segmentTrack(`grace-${n}@segment.demo`, `ajs-next-${randomUUID()}`, n));
    for (const track of tracks) await send.segment(track);
    await send.segment(tracks[0]);
    await waitForDrain(running, sandbox, deadline);

    // Phase 2, after the faults are spent: events whose key candidate is invalid go without a key. Under a
    // record-then-fail such an event would be recorded twice; that is what keys are for.
    await send.invocable('apex-call-4', [invocableItem('ada-1006@salesforce.demo', 'not a valid key!', 1006)]);
    await send.segment(segmentTrack('grace-4@segment.demo', 'order:1234', 4));
    const drained = await waitForDrain(running, sandbox, deadline);
    const drainMs = performance.now() - drainStarted;

    const snapshot = sandbox.inspect(TENANT);
    const rows: DemoSourceRow[] = [];
    for (const source of SOURCES) {
      const tally = tallies[source];
      const counts = await running.outbox.counts(TENANT, source);
      const accepted = Object.values(counts).reduce((sum, n) => sum + n, 0);
      rows.push({
        source,
        label: SOURCE_LABELS[source],
        sent: tally.sent,
        accepted,
        replayed: tally.replayed,
        duplicates: tally.sent - tally.replayed - tally.rejected - accepted,
        rejected: tally.rejected,
        keysDropped: [...tally.events.values()].filter((event) => event.keyDecision === 'dropped').length,
        target409: counts.duplicate,
        recorded: eventsOf(snapshot, source).length,
      });
    }
    const counts = await running.outbox.counts(TENANT);
    const invariants = checkInvariants(rows, tallies, snapshot, counts, drained);
    const events = SOURCES.flatMap((source) => [...tallies[source].events.values()]);
    return {
      ok: invariants.every((invariant) => invariant.ok),
      sandbox: { url: sandbox.url, tenant: TENANT },
      relay: { url: running.url, store: storeText },
      sources: rows,
      target: {
        requests: snapshot.requests.total,
        byStatus: snapshot.requests.byStatus,
        faultsInjected: Object.fromEntries(Object.entries(sandbox.faults.state().injected).filter(([, n]) => n > 0)),
        events: snapshot.events.length,
      },
      keyedEvents: events.filter((event) => event.key !== null).length,
      unkeyedEvents: events.filter((event) => event.key === null).length,
      drainMs: Math.round(drainMs),
      elapsedMs: Math.round(performance.now() - started),
      invariants,
      notes: [PLATFORM_EVENTS_NOTE],
    };
  } finally {
    await relay?.stop();
    await org.close();
    await sandbox.close();
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  }
}

function newTally(): Tally {
  return { sent: 0, replayed: 0, rejected: 0, events: new Map() };
}

function discard(): Writable {
  return new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
}

function invocableItem(email: string, idempotencyKey: string, n: number) {
  return { userId: email, accountId: email, key: 'purchase', fields: { orderId: `SO-${n}`, total: n % 97 }, idempotencyKey };
}

function keygenEvent(id: string, token: string, licenseId: string, email: string): string {
  const payload = {
    data: { id: licenseId, type: 'licenses', attributes: { name: 'Pro', metadata: { email } } },
  };
  return JSON.stringify({
    data: {
      id,
      type: 'webhook-events',
      meta: { idempotencyToken: token },
      attributes: { event: 'license.created', payload: JSON.stringify(payload), created: new Date().toISOString() },
    },
  });
}

function segmentTrack(userId: string, messageId: string, n: number): string {
  return JSON.stringify({
    type: 'track',
    event: 'Order Completed',
    userId,
    messageId,
    properties: { orderId: `web-${n}`, total: 10 * n },
    timestamp: new Date().toISOString(),
  });
}

/** The three senders, signing as each source does; every answer is tallied. */
function sender(
  relayUrl: string,
  relaySecret: string,
  segmentSecret: string,
  keygenPrivateKey: ReturnType<typeof generateKeyPairSync>['privateKey'],
  tallies: Record<DemoSource, Tally>,
) {
  const host = new URL(relayUrl).host;
  return {
    async invocable(callKey: string, items: readonly Readonly<Record<string, unknown>>[], route = 'by-id'): Promise<void> {
      const tally = tallies.salesforce;
      const response = await fetch(`${relayUrl}/salesforce/track-event/${route}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${relaySecret}`, 'content-type': 'application/json', 'idempotency-key': callKey },
        body: JSON.stringify({ usersEvents: items }),
      });
      const body = (await response.json()) as {
        results?: { ok: boolean; idempotencyKey?: string | null; keyDecision?: string; queued?: boolean }[];
      };
      tally.sent += items.length;
      if (response.headers.get(REPLAYED_HEADER) === 'true') {
        tally.replayed += items.length;
        return;
      }
      if (!response.ok || !body.results) {
        tally.rejected += items.length;
        return;
      }
      body.results.forEach((result, index) => {
        if (!result.ok) {
          tally.rejected += 1;
          return;
        }
        const key = result.idempotencyKey ?? null;
        const identity = key ?? `${callKey}.${index}`;
        if (!tally.events.has(identity)) tally.events.set(identity, { key, keyDecision: result.keyDecision ?? 'unknown' });
      });
    },

    async keygen(body: string): Promise<void> {
      const tally = tallies.keygen;
      const path = '/webhooks/keygen';
      const date = new Date().toUTCString();
      const digest = `sha-256=${createHash('sha256').update(body).digest('base64')}`;
      const signingString = [`(request-target): post ${path}`, `host: ${host}`, `date: ${date}`, `digest: ${digest}`].join('\n');
      const signature = sign(null, Buffer.from(signingString), keygenPrivateKey).toString('base64');
      const response = await fetch(`${relayUrl}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/vnd.api+json',
          date,
          digest,
          'keygen-signature': `keyid="demo-account", algorithm="ed25519", signature="${signature}", headers="(request-target) host date digest"`,
        },
        body,
      });
      const answer = (await response.json()) as { status?: string; idempotencyKey?: string | null; keyDecision?: string };
      tally.sent += 1;
      if (!response.ok) {
        tally.rejected += 1;
        return;
      }
      if (answer.status !== 'accepted') return;
      const token = (JSON.parse(body) as { data: { meta: { idempotencyToken: string } } }).data.meta.idempotencyToken;
      tally.events.set(token, { key: answer.idempotencyKey ?? null, keyDecision: answer.keyDecision ?? 'unknown' });
    },

    async segment(body: string | undefined): Promise<void> {
      if (body === undefined) return;
      const tally = tallies.segment;
      const response = await fetch(`${relayUrl}/segment`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-signature': createHmac('sha1', segmentSecret).update(body).digest('hex') },
        body,
      });
      const answer = (await response.json()) as { results?: { status: string; idempotencyKey?: string | null }[] };
      tally.sent += 1;
      const result = answer.results?.[0];
      if (!response.ok || result?.status !== 'accepted') {
        tally.rejected += 1;
        return;
      }
      const messageId = (JSON.parse(body) as { messageId: string }).messageId;
      const key = result.idempotencyKey ?? null;
      if (!tally.events.has(messageId)) tally.events.set(messageId, { key, keyDecision: key === null ? 'dropped' : 'kept' });
    },
  };
}

/** Waits until the outbox took `expected` events of `source` (Platform Events arrive asynchronously); false at the deadline. */
async function waitForEvents(
  relay: { readonly outbox: { counts(tenant: string, source?: string): Promise<Readonly<Record<string, number>>> } },
  source: DemoSource,
  expected: number,
  deadline: number,
): Promise<boolean> {
  for (;;) {
    const counts = await relay.outbox.counts(TENANT, source);
    if (Object.values(counts).reduce((sum, n) => sum + n, 0) >= expected) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until the outbox holds nothing pending or leased and the scripted faults are spent; false at the deadline. */
async function waitForDrain(
  relay: { readonly outbox: { counts(tenant: string): Promise<Readonly<Record<string, number>>> } },
  sandbox: Sandbox,
  deadline: number,
): Promise<boolean> {
  for (;;) {
    const counts = await relay.outbox.counts(TENANT);
    if ((counts.pending ?? 0) + (counts.leased ?? 0) === 0 && sandbox.faults.state().queued.length === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function eventsOf(snapshot: TenantSnapshot, source: DemoSource): TenantSnapshot['events'] {
  return snapshot.events.filter((event) => event.userId.endsWith(`@${source}.demo`));
}

function checkInvariants(
  rows: readonly DemoSourceRow[],
  tallies: Record<DemoSource, Tally>,
  snapshot: TenantSnapshot,
  counts: Readonly<Record<string, number>>,
  drained: boolean,
): DemoInvariant[] {
  const invariants: DemoInvariant[] = [];
  const waiting = (counts.pending ?? 0) + (counts.leased ?? 0);
  invariants.push({
    name: 'outbox drained',
    ok: drained && waiting === 0,
    detail: drained ? 'nothing pending or leased' : `${waiting} events still pending or leased at the deadline`,
  });
  const rejected = rows.reduce((sum, row) => sum + row.rejected, 0);
  // Everything the demo sends is valid: a refusal means a route or a mapping broke.
  invariants.push({ name: 'nothing refused', ok: rejected === 0, detail: `${rejected} events refused by the relay` });
  invariants.push({
    name: 'no dead letters',
    ok: (counts.dead ?? 0) === 0,
    detail: `${counts.dead ?? 0} dead letters`,
  });

  const byKey = new Map<string, number>();
  for (const event of snapshot.events)
    if (event.idempotencyKey) byKey.set(event.idempotencyKey, (byKey.get(event.idempotencyKey) ?? 0) + 1);
  const keys = SOURCES.flatMap((source) => [...tallies[source].events.values()].flatMap((event) => (event.key ? [event.key] : [])));
  const wrong = keys.filter((key) => byKey.get(key) !== 1).map((key) => `${key} ×${byKey.get(key) ?? 0}`);
  invariants.push({
    name: 'keyed events recorded exactly once',
    ok: wrong.length === 0 && keys.length > 0,
    detail: wrong.length === 0 ? `${keys.length} keys, each once` : `not exactly once: ${wrong.join(', ')}`,
  });

  for (const row of rows) {
    const distinct = tallies[row.source].events.size;
    invariants.push({
      name: `${row.label}: one outbox record per distinct event`,
      ok: row.accepted === distinct,
      detail: `${row.accepted} accepted for ${distinct} distinct events`,
    });
    invariants.push({
      name: `${row.label}: every accepted event recorded once`,
      ok: row.recorded === row.accepted,
      detail: `${row.recorded} recorded by the target for ${row.accepted} accepted`,
    });
  }
  const foreign = snapshot.events.filter((event) => !SOURCES.some((source) => event.userId.endsWith(`@${source}.demo`)));
  invariants.push({ name: 'nothing else recorded', ok: foreign.length === 0, detail: `${foreign.length} unexpected events` });
  return invariants;
}

/** The human report: one row per source, the target's side, and the verdict as the last line. */
export function formatDemoReport(report: DemoReport): string {
  const header = ['source', 'sent', 'accepted', 'replayed', 'duplicates', 'keys dropped', 'target 409', 'recorded by target'];
  const total = (pick: (row: DemoSourceRow) => number): string => String(report.sources.reduce((sum, row) => sum + pick(row), 0));
  const body = report.sources.map((row) => [
    row.label,
    String(row.sent),
    String(row.accepted),
    String(row.replayed),
    String(row.duplicates),
    String(row.keysDropped),
    String(row.target409),
    String(row.recorded),
  ]);
  const totals = [
    'total',
    total((row) => row.sent),
    total((row) => row.accepted),
    total((row) => row.replayed),
    total((row) => row.duplicates),
    total((row) => row.keysDropped),
    total((row) => row.target409),
    total((row) => row.recorded),
  ];
  const table = [header, ...body, totals];
  const widths = header.map((_, column) => Math.max(...table.map((cells) => (cells[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[0] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ');
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  const statuses = Object.entries(report.target.byStatus)
    .map(([status, n]) => `${status}×${n}`)
    .join(', ');
  const faults = Object.entries(report.target.faultsInjected)
    .map(([kind, n]) => `${kind}×${n}`)
    .join(', ');
  const failed = report.invariants.filter((invariant) => !invariant.ok);
  const lines = [
    `oncekit demo: sandbox ${report.sandbox.url} (tenant ${report.sandbox.tenant}), relay ${report.relay.url} (store ${report.relay.store})`,
    '',
    line(header),
    rule,
    ...body.map(line),
    rule,
    line(totals),
    '',
    `target: ${report.target.requests} API requests (${statuses}); faults injected: ${faults || 'none'}; ${report.target.events} events recorded`,
    `outbox drained ${(report.drainMs / 1000).toFixed(1)} s after the first event; demo took ${(report.elapsedMs / 1000).toFixed(1)} s`,
    ...report.notes,
    '',
    ...failed.map((invariant) => `FAILED ${invariant.name}: ${invariant.detail}`),
    report.ok
      ? `OK: every event with a key (${report.keyedEvents}) was recorded exactly once by the target; ${report.unkeyedEvents} without a key, once each; nothing lost.`
      : `NOT OK: ${failed.length} of ${report.invariants.length} checks failed.`,
  ];
  return `${lines.join('\n')}\n`;
}
