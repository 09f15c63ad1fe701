import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { InvalidInputError } from '../../shared/errors.js';
import { replyNotConfigured } from '../../shared/http/http-basics.js';
import type { InvalidKeyPolicy } from '../../shared/keys/index.js';
import type { Logger } from '../../shared/log.js';
import type { Ingest, ReadyEvent, UnmappableIntake } from '../../shared/outbox/ingest.js';
import { rawPayloadText, unmappableDedupKey, unmappableReason } from '../../shared/outbox/unmappable.js';
import { mapTrackEvent, SegmentEventError } from './mapping.js';
import { parseSegmentSettings } from './settings.js';
import { verifySegmentSignature } from './webhook-signature.js';

export interface SegmentWebhookOptions {
  readonly ingest: Ingest;
  /** Receives the one warning logged for a dropped key. */
  readonly logger: Logger;
  /** Null when no shared secret is set: the route answers 503, so Segment keeps the events and retries. */
  readonly webhook: {
    readonly sharedSecret: string;
    /** Where the events go, as the destination function's settings say it. */
    readonly target: { readonly apiBaseUrl: string; readonly tenantAlias: string; readonly apiKey: string };
    readonly invalidKeyPolicy: InvalidKeyPolicy;
  } | null;
  /** Named in the 503 while the webhook is not configured. */
  readonly sharedSecretSetting: string;
}

interface EventResult {
  readonly index: number;
  /** dead-lettered: it could not be mapped for a reason other than its input; it is a dead letter, not to be sent again. */
  readonly status: 'accepted' | 'skipped' | 'rejected' | 'dead-lettered';
  readonly message?: string;
  readonly idempotencyKey?: string | null;
}

/**
 * `POST /segment`: Segment's Webhooks destinations, HMAC-SHA1 signed over the raw body. Track calls become user events
 * through the same mapping and key rules as the destination function; they are in the outbox before the answer.
 */
export const segmentWebhookPlugin: FastifyPluginAsync<SegmentWebhookOptions> = async (app, options) => {
  const webhook = options.webhook;
  // The same settings the destination function takes, so both map events alike.
  const settings = webhook ? parseSegmentSettings({ ...webhook.target, invalidKeyPolicy: webhook.invalidKeyPolicy }) : null;
  app.post('/segment', async (request, reply) => {
    if (!webhook || !settings) return replyNotConfigured(reply, 'Segment webhooks', options.sharedSecretSetting);
    const header = request.headers['x-signature'];
    const check = verifySegmentSignature(
      request.rawBody ?? Buffer.alloc(0),
      Array.isArray(header) ? header[0] : header,
      webhook.sharedSecret,
    );
    if (!check.valid) return reply.code(401).send({ error: 'bad_signature', message: check.reason });

    // The Webhooks destination posts one event; Webhooks (Actions) can batch them into an array.
    if (!Array.isArray(request.body) && !isObject(request.body)) {
      throw new InvalidInputError([{ field: 'body', reason: 'expected a Segment event (a JSON object) or a list of them' }]);
    }
    const batch = Array.isArray(request.body);
    const events: unknown[] = Array.isArray(request.body) ? request.body : [request.body];
    const ready: ReadyEvent[] = [];
    const results: EventResult[] = [];
    // Every event that cannot be mapped is recorded as a dead letter, with its reason and the event as received.
    const unmappable: UnmappableIntake[] = [];
    const deadLetter = (event: unknown, index: number, reason: string): void => {
      const raw = batch ? batchEventText(event, index, request.rawBody) : (request.rawBody?.toString('utf8') ?? rawPayloadText(event));
      const messageId = isObject(event) && typeof event.messageId === 'string' && event.messageId !== '' ? event.messageId : null;
      const dedupKey = unmappableDedupKey(messageId === null ? null : `segment:${messageId}`, raw);
      unmappable.push({ source: 'segment', sourceId: messageId ?? dedupKey, dedupKey, reason, raw });
    };
    events.forEach((event, index) => {
      if (!isObject(event)) {
        const message = `[${index}]: expected a Segment event (a JSON object)`;
        results.push({ index, status: 'rejected', message });
        deadLetter(event, index, message);
        return;
      }
      const type = event.type;
      if (typeof type !== 'string') {
        // Never String(type): a null-prototype object or a throwing toString would turn one bad event into a 500.
        const got = type === null ? 'null' : Array.isArray(type) ? 'a list' : typeof type;
        const message = `[${index}].type: expected a string such as "track", got ${got}`;
        results.push({ index, status: 'rejected', message });
        deadLetter(event, index, message);
        return;
      }
      if (type !== 'track') {
        results.push({
          index,
          status: 'skipped',
          message: `${type.slice(0, 64)} events are not forwarded; only track calls become user events`,
        });
        return;
      }
      try {
        const { input, decision } = mapTrackEvent(event, settings, { logger: options.logger });
        const messageId = event.messageId;
        ready.push({
          source: 'segment',
          // Without a messageId the event gets an id of its own, fresh in every process (a request id restarts at
          // each start, so it would match an older event in the outbox and the new one would never be sent).
          sourceId: typeof messageId === 'string' && messageId !== '' ? messageId : randomUUID(),
          input,
          decision,
        });
        results.push({ index, status: 'accepted', idempotencyKey: decision.key });
      } catch (error) {
        const reason = unmappableReason(error);
        deadLetter(event, index, reason);
        // Bad input is the sender's to fix: it is told which field. Anything else is ours: the event is a dead letter
        // (durable before the answer), acknowledged as such, so Segment does not retry it for hours.
        if (error instanceof SegmentEventError || error instanceof InvalidInputError) {
          results.push({ index, status: 'rejected', message: error.message });
        } else {
          results.push({ index, status: 'dead-lettered', message: reason });
        }
      }
    });
    await options.ingest.deadLetter(unmappable);
    await options.ingest.accept(ready);
    const rejected = results.filter((result) => result.status === 'rejected');
    // One event that cannot be forwarded is a 400 (Segment discards it); a batch answers per event with 200.
    if (!Array.isArray(request.body) && rejected.length === 1) {
      return reply.code(400).send({ error: 'invalid_event', message: rejected[0]?.message });
    }
    return reply.code(200).send({ results });
  });
};

/**
 * One event of a batch as text, for its dead letter: as JSON, or, when it cannot be serialised again (too deep), the
 * whole body with the event's position, so its identity still differs from its neighbours' and stays the same on redelivery.
 */
function batchEventText(event: unknown, index: number, body: Buffer | undefined): string {
  try {
    const text = JSON.stringify(event);
    if (text !== undefined) return text;
  } catch {
    // falls through to the body
  }
  return `[event ${index} of the batch below, which cannot be serialised again] ${body?.toString('utf8') ?? ''}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
