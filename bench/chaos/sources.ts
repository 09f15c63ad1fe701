import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { signKeygenWebhook } from '../../connectors/keygen/keygen-signature.js';
import { segmentSignature } from '../../connectors/segment/webhook-signature.js';
import { seededRandom } from '../../sandbox/target/faults.js';

/** The sources the chaos run plays, each over the relay route it really uses. */
export type ChaosRoute = 'salesforce' | 'segment' | 'keygen';
export const chaosRoutes = ['salesforce', 'segment', 'keygen'] as const satisfies readonly ChaosRoute[];

/** One event: its identity (also carried in the event's fields as `chaosId`) is its idempotency key. */
export interface ChaosEvent {
  readonly key: string;
}

/** One request a source makes, and keeps making until a 2xx: an Apex call, a Segment delivery, a Keygen webhook. */
export interface ChaosCall {
  readonly index: number;
  readonly route: ChaosRoute;
  readonly events: readonly ChaosEvent[];
}

/** The relay settings the sources need: the shared secrets they sign with, and where Keygen's event id lands. */
export interface SourceSecrets {
  readonly relaySecret: string;
  readonly segmentSecret: string;
  readonly keygenPrivateKey: KeyObject;
  /** Hex, as the relay reads ONCEKIT_KEYGEN_PUBLIC_KEY. */
  readonly keygenPublicKeyHex: string;
}

export function sourceSecrets(): SourceSecrets {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    relaySecret: 'chaos-relay-secret-7Qm2Zx9Lp4',
    segmentSecret: 'chaos-segment-secret-Vb8Nc3',
    keygenPrivateKey: privateKey,
    keygenPublicKeyHex: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex'),
  };
}

/** The relay's environment for these sources; Keygen's mapping carries the event's identity into its fields. */
export function relaySourceEnv(secrets: SourceSecrets): Record<string, string> {
  return {
    ONCEKIT_RELAY_SECRET: secrets.relaySecret,
    ONCEKIT_SEGMENT_SHARED_SECRET: secrets.segmentSecret,
    ONCEKIT_KEYGEN_PUBLIC_KEY: secrets.keygenPublicKeyHex,
    ONCEKIT_KEYGEN_EVENT_MAPPING: JSON.stringify({ fields: { chaosId: 'data.attributes.metadata.chaosId' } }),
  };
}

/**
 * `events` keyed events split into calls: Salesforce invocable calls of 1 to 10 items (40 %), Segment deliveries of
 * one event or a batch of up to 5 (35 %), single Keygen webhooks (25 %). Keys are valid target keys, unique per seed.
 */
export function planCalls(events: number, seed: number): ChaosCall[] {
  const random = seededRandom(seed);
  const calls: ChaosCall[] = [];
  let next = 0;
  while (next < events) {
    const draw = random();
    const route: ChaosRoute = draw < 0.4 ? 'salesforce' : draw < 0.75 ? 'segment' : 'keygen';
    const most = route === 'salesforce' ? 10 : route === 'segment' ? 5 : 1;
    const size = Math.min(events - next, 1 + Math.floor(random() * most));
    const members = Array.from({ length: size }, (_, offset) => ({ key: `chaos-${seed}-${String(next + offset).padStart(6, '0')}` }));
    calls.push({ index: calls.length, route, events: members });
    next += size;
  }
  return calls;
}

/** One HTTP request as the source sends it to `relayUrl`; built per attempt, since Keygen signs each delivery. */
export interface SourceRequest {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

const userOf = (event: ChaosEvent): string => `${event.key}@example.com`;

/** The body of a call: the same on every attempt, as a real source resends it. */
export function callBody(call: ChaosCall): string {
  switch (call.route) {
    case 'salesforce':
      return JSON.stringify({
        usersEvents: call.events.map((event) => ({
          userId: userOf(event),
          accountId: userOf(event),
          key: 'purchase',
          fields: { chaosId: event.key },
          idempotencyKey: event.key,
        })),
      });
    case 'segment': {
      const tracks = call.events.map((event) => ({
        type: 'track',
        event: 'purchase',
        userId: userOf(event),
        messageId: event.key,
        properties: { chaosId: event.key },
        timestamp: '2026-01-02T03:04:05.000Z',
      }));
      // The Webhooks destination posts one event; Webhooks (Actions) batch them into an array.
      return JSON.stringify(tracks.length === 1 ? tracks[0] : tracks);
    }
    case 'keygen': {
      const [event] = call.events as [ChaosEvent];
      const payload = {
        data: {
          type: 'licenses',
          id: `lic-${event.key}`,
          attributes: { name: 'Pro license', metadata: { email: userOf(event), chaosId: event.key } },
        },
      };
      return JSON.stringify({
        data: {
          id: `whe-${event.key}`,
          type: 'webhook-events',
          meta: { idempotencyToken: event.key },
          attributes: { event: 'license.created', payload: JSON.stringify(payload), created: '2026-01-02T03:04:05.000Z' },
        },
      });
    }
  }
}

/** The request for one attempt of `call` at the relay `relayUrl`. */
export function sourceRequest(call: ChaosCall, body: string, relayUrl: string, secrets: SourceSecrets, seed: number): SourceRequest {
  switch (call.route) {
    case 'salesforce':
      return {
        url: `${relayUrl}/salesforce/track-event/by-id`,
        // As Apex retries: the same call with the same Idempotency-Key, at whichever instance answers.
        headers: {
          authorization: `Bearer ${secrets.relaySecret}`,
          'content-type': 'application/json',
          'idempotency-key': `chaos-call-${seed}-${call.index}`,
        },
        body,
      };
    case 'segment':
      return {
        url: `${relayUrl}/segment`,
        headers: { 'content-type': 'application/json', 'x-signature': segmentSignature(body, secrets.segmentSecret) },
        body,
      };
    case 'keygen':
      return {
        url: `${relayUrl}/webhooks/keygen`,
        headers: signKeygenWebhook({ body, host: new URL(relayUrl).host, privateKey: secrets.keygenPrivateKey }),
        body,
      };
  }
}

/** The event identity a recorded event carries in its fields, whichever route brought it. */
export function chaosIdOf(fields: Readonly<Record<string, unknown>> | undefined): string | null {
  const id = fields?.chaosId;
  return typeof id === 'string' ? id : null;
}
