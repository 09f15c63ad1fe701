import { createHash, createHmac, type KeyObject, randomBytes, randomUUID, sign } from 'node:crypto';
import { DEFAULT_PLATFORM_EVENT_CHANNEL } from '../../../connectors/salesforce/platform-event-mapping.js';
import type { FakeOrg } from '../../../sandbox/salesforce-org/index.js';
import type { QueuedFault, Sandbox } from '../../../sandbox/target/index.js';
import type { OutboxStore } from '../../../shared/outbox/types.js';
import { type DemoSource, TENANT } from './sources.js';

const REPLAYED_HEADER = 'idempotent-replayed';

/** Target faults scripted before the keyed traffic: each is consumed by one API request, in order. */
export const SCRIPTED_FAULTS: readonly QueuedFault[] = [
  { kind: 'status', status: 500 },
  { kind: 'status', status: 503 },
  { kind: 'throttle', retryAfterSeconds: 1 },
  { kind: 'record-then-fail', failWith: 'status' },
  { kind: 'status', status: 500 },
];

/** The fake org's connected app; loopback only. */
export const DEMO_ORG_CLIENT = { clientId: 'oncekit-demo', clientSecret: randomBytes(18).toString('base64url') };
/** A Lead the by-lead call reads its user from, through jsforce. */
export const DEMO_LEAD = {
  Id: '00Q000000000001EAA',
  Email: 'lee-2001@salesforce.demo',
  FirstName: 'Lee',
  LastName: 'Demo',
  Company: 'Demo',
};

export interface SentEvent {
  readonly key: string | null;
  readonly keyDecision: string;
}

/** What each source's sender saw: the events it sent and the relay's answers. */
export interface Tally {
  sent: number;
  replayed: number;
  rejected: number;
  /** First takes, by the event's identity (its key, or its source id when unkeyed). */
  readonly events: Map<string, SentEvent>;
}

export type Tallies = Record<DemoSource, Tally>;

/** The relay as the demo watches it: its outbox's counts. */
export interface RelayOutbox {
  readonly outbox: Pick<OutboxStore, 'counts'>;
}

export type Sender = ReturnType<typeof sender>;

export function newTallies(): Tallies {
  return {
    salesforce: newTally(),
    'salesforce-event': newTally(),
    keygen: newTally(),
    segment: newTally(),
  };
}

function newTally(): Tally {
  return { sent: 0, replayed: 0, rejected: 0, events: new Map() };
}

/** Phase 1: keyed traffic from every source, meant to meet the scripted target faults. */
export async function sendKeyedTraffic(send: Sender, org: FakeOrg, relay: RelayOutbox, tallies: Tallies, deadline: number): Promise<void> {
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
  // Platform Events, published through the fake org's Pub/Sub API: three keyed by their EventUuid, and one an Apex job
  // published twice with the same Idempotency_Key__c (a retried transaction), which is one event.
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
    if (!org.pubsub) throw new Error('the demo org runs without its Pub/Sub API');
    org.pubsub.publish(DEFAULT_PLATFORM_EVENT_CHANNEL, payload, { eventUuid });
    const tally = tallies['salesforce-event'];
    tally.sent += 1;
    const key = idempotencyKey ?? eventUuid;
    if (!tally.events.has(key)) tally.events.set(key, { key, keyDecision: 'kept' });
  };
  for (const n of [3001, 3002, 3003]) await publish(n);
  await publish(3004, 'pe-order-3004');
  await publish(3004, 'pe-order-3004');
  await waitForEvents(relay, 'salesforce-event', tallies['salesforce-event'].events.size, deadline);
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
}

/**
 * Phase 2, after the faults are spent: events whose key candidate is invalid go without a key. Under a
 * record-then-fail such an event would be recorded twice; that is what keys are for.
 */
export async function sendUnkeyedTraffic(send: Sender): Promise<void> {
  await send.invocable('apex-call-4', [invocableItem('ada-1006@salesforce.demo', 'not a valid key!', 1006)]);
  await send.segment(segmentTrack('grace-4@segment.demo', 'order:1234', 4));
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
export function sender(relayUrl: string, relaySecret: string, segmentSecret: string, keygenPrivateKey: KeyObject, tallies: Tallies) {
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
async function waitForEvents(relay: RelayOutbox, source: DemoSource, expected: number, deadline: number): Promise<boolean> {
  for (;;) {
    const counts = await relay.outbox.counts(TENANT, { source });
    if (Object.values(counts).reduce((sum, n) => sum + n, 0) >= expected) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until the outbox holds nothing pending or leased and the scripted faults are spent; false at the deadline. */
export async function waitForDrain(relay: RelayOutbox, sandbox: Sandbox, deadline: number): Promise<boolean> {
  for (;;) {
    const counts = await relay.outbox.counts(TENANT);
    if ((counts.pending ?? 0) + (counts.leased ?? 0) === 0 && sandbox.faults.state().queued.length === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
