import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { InvalidInputError } from '../../shared/errors.js';
import { replyNotConfigured } from '../../shared/http/http-basics.js';
import type { InvalidKeyPolicy } from '../../shared/keys/index.js';
import type { Logger } from '../../shared/log.js';
import type { Ingest, ReadyEvent } from '../../shared/outbox/ingest.js';
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
  readonly status: 'accepted' | 'skipped' | 'rejected';
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
    const events: unknown[] = Array.isArray(request.body) ? request.body : [request.body];
    const ready: ReadyEvent[] = [];
    const results: EventResult[] = [];
    events.forEach((event, index) => {
      if (!isObject(event)) {
        results.push({ index, status: 'rejected', message: `[${index}]: expected a Segment event (a JSON object)` });
        return;
      }
      const type = event.type;
      if (typeof type !== 'string') {
        // Never String(type): a null-prototype object or a throwing toString would turn one bad event into a 500.
        const got = type === null ? 'null' : Array.isArray(type) ? 'a list' : typeof type;
        results.push({ index, status: 'rejected', message: `[${index}].type: expected a string such as "track", got ${got}` });
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
        if (error instanceof SegmentEventError || error instanceof InvalidInputError) {
          results.push({ index, status: 'rejected', message: error.message });
          return;
        }
        throw error;
      }
    });
    await options.ingest.accept(ready);
    const rejected = results.filter((result) => result.status === 'rejected');
    // One event that cannot be forwarded is a 400 (Segment discards it); a batch answers per event with 200.
    if (!Array.isArray(request.body) && rejected.length === 1) {
      return reply.code(400).send({ error: 'invalid_event', message: rejected[0]?.message });
    }
    return reply.code(200).send({ results });
  });
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
