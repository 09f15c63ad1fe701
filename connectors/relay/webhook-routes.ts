import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { InvalidInputError } from '../../shared/errors.js';
import type { Inbox } from '../../shared/inbox/inbox.js';
import { type DecideKeyOptions, decideKey, KeyRejectedError, segmentCandidate } from '../../shared/keys/index.js';
import { readTrackEvent, SegmentEventError, trackToUserEventInput } from '../segment/mapping.js';
import type { SegmentSettings } from '../segment/settings.js';
import { type KeygenEventMapping, keygenWebhookToUserEvent, parseKeygenWebhook } from '../webhooks/keygen-event.js';
import type { KeygenSignatureInput, SignatureCheck } from '../webhooks/keygen-signature.js';
import { verifySegmentSignature } from '../webhooks/segment-signature.js';
import type { Ingest, ReadyEvent } from './ingest.js';

export interface WebhookRoutesOptions {
  readonly tenant: string;
  readonly ingest: Ingest;
  readonly inbox: Inbox;
  readonly keys: DecideKeyOptions;
  /** Null when ONCEKIT_KEYGEN_PUBLIC_KEY is unset: the route answers 503, so Keygen keeps the events and retries. */
  readonly keygen: {
    readonly verify: (input: KeygenSignatureInput) => SignatureCheck;
    readonly host: string | null;
    readonly mapping: KeygenEventMapping;
  } | null;
  /** Null when ONCEKIT_SEGMENT_SHARED_SECRET is unset. */
  readonly segment: { readonly sharedSecret: string; readonly settings: SegmentSettings } | null;
}

function notConfigured(reply: FastifyReply, what: string, variable: string) {
  // 503 rather than 404: the sender keeps the events and retries, so nothing is lost while the relay is set up.
  return reply
    .code(503)
    .header('retry-after', '300')
    .send({ error: 'not_configured', message: `${what} are not configured on this relay: set ${variable}` });
}

/** `POST /webhooks/keygen` and `POST /segment`: signed webhooks, verified over the raw body before anything else. */
export const webhookRoutes: FastifyPluginAsync<WebhookRoutesOptions> = async (app, options) => {
  app.post('/webhooks/keygen', async (request, reply) => {
    const keygen = options.keygen;
    if (!keygen) return notConfigured(reply, 'Keygen webhooks', 'ONCEKIT_KEYGEN_PUBLIC_KEY');
    const check = keygen.verify({
      method: request.method,
      path: request.url,
      host: keygen.host ?? request.headers.host ?? '',
      headers: request.headers,
      rawBody: request.rawBody ?? Buffer.alloc(0),
    });
    if (!check.valid) return reply.code(401).send({ error: 'bad_signature', message: check.reason });

    const webhook = parseKeygenWebhook(request.body);
    const mapped = keygenWebhookToUserEvent(webhook, keygen.mapping, options.keys);
    if (mapped.kind === 'skipped') return reply.code(200).send({ status: 'skipped', reason: mapped.reason });
    // A redelivery, or Keygen's retry of the event (a new resource with the same token), is processed once.
    const outcome = await options.inbox.deliver({ source: 'keygen', tenant: options.tenant, token: webhook.idempotencyToken }, async () => {
      const [queued] = await options.ingest.accept([
        { source: 'keygen', sourceId: webhook.idempotencyToken, input: mapped.input, decision: mapped.decision },
      ]);
      return queued;
    });
    if (outcome.status === 'in_flight') {
      return reply
        .code(409)
        .header('retry-after', String(Math.ceil(outcome.retryAfterMs / 1000)))
        .send({ status: 'in_flight', message: 'this event is being processed; retry later' });
    }
    if (outcome.status === 'duplicate') return reply.code(200).send({ status: 'duplicate', idempotencyToken: webhook.idempotencyToken });
    return reply.code(200).send({
      status: 'accepted',
      outboxId: outcome.value?.id ?? null,
      idempotencyKey: mapped.decision.key,
      keyDecision: mapped.decision.decision,
    });
  });

  app.post('/segment', async (request, reply) => {
    const segment = options.segment;
    if (!segment) return notConfigured(reply, 'Segment webhooks', 'ONCEKIT_SEGMENT_SHARED_SECRET');
    const header = request.headers['x-signature'];
    const check = verifySegmentSignature(
      request.rawBody ?? Buffer.alloc(0),
      Array.isArray(header) ? header[0] : header,
      segment.sharedSecret,
    );
    if (!check.valid) return reply.code(401).send({ error: 'bad_signature', message: check.reason });

    // The Webhooks destination posts one event; Webhooks (Actions) can batch them into an array.
    if (!Array.isArray(request.body) && !isObject(request.body)) {
      throw new InvalidInputError([{ field: 'body', reason: 'expected a Segment event (a JSON object) or a list of them' }]);
    }
    const events: unknown[] = Array.isArray(request.body) ? request.body : [request.body];
    const ready: ReadyEvent[] = [];
    const results: { index: number; status: string; message?: string; idempotencyKey?: string | null }[] = [];
    events.forEach((event, index) => {
      if (!isObject(event)) {
        results.push({ index, status: 'rejected', message: `[${index}]: expected a Segment event (a JSON object)` });
        return;
      }
      const type = (event as { type?: unknown }).type;
      if (type !== 'track') {
        results.push({
          index,
          status: 'skipped',
          message: `${String(type)} events are not forwarded; only track calls become user events`,
        });
        return;
      }
      try {
        const parts = readTrackEvent(event, segment.settings);
        // The same mapping and key rules as the Segment function: messageId is the candidate.
        const decision = decideKey(segmentCandidate(event as { messageId?: unknown }), options.keys);
        if (decision.decision === 'rejected') throw new KeyRejectedError(decision);
        const input = trackToUserEventInput(parts, decision, segment.settings);
        const messageId = (event as { messageId?: unknown }).messageId;
        ready.push({
          source: 'segment',
          sourceId: typeof messageId === 'string' ? messageId : `batch-${request.id}.${index}`,
          input,
          decision,
        });
        results.push({ index, status: 'accepted', idempotencyKey: decision.key });
      } catch (error) {
        if (error instanceof SegmentEventError || error instanceof KeyRejectedError || error instanceof InvalidInputError) {
          results.push({ index, status: 'rejected', message: error.message });
          return;
        }
        throw error;
      }
    });
    await options.ingest.accept(ready);
    const rejected = results.filter((result) => result.status === 'rejected');
    // One event that cannot be forwarded is a 400 (Segment discards it); a batch answers per event with 200.
    if (!Array.isArray(request.body) && rejected.length === 1)
      return reply.code(400).send({ error: 'invalid_event', message: rejected[0]?.message });
    return reply.code(200).send({ results });
  });
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
