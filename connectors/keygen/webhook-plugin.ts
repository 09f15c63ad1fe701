import type { FastifyPluginAsync } from 'fastify';
import { InvalidInputError } from '../../shared/errors.js';
import { replyNotConfigured } from '../../shared/http/http-basics.js';
import type { Inbox } from '../../shared/inbox/inbox.js';
import { type DecideKeyOptions, KeyRejectedError } from '../../shared/keys/index.js';
import type { Ingest } from '../../shared/outbox/ingest.js';
import type { RecordUnmappableResult } from '../../shared/outbox/types.js';
import { unmappableReason } from '../../shared/outbox/unmappable.js';
import {
  type KeygenEventMapping,
  type KeygenMappingResult,
  type KeygenWebhookEvent,
  keygenWebhookToUserEvent,
  parseKeygenWebhook,
} from './keygen-event.js';
import { keygenWebhookVerifier } from './keygen-signature.js';

// What the relay reads from its environment for this connector.
export { KEYGEN_MAPPING_ENV, type KeygenEventMapping, parseKeygenEventMapping } from './keygen-event.js';

export interface KeygenWebhookOptions {
  readonly tenant: string;
  readonly ingest: Ingest;
  readonly inbox: Inbox;
  readonly keys: DecideKeyOptions;
  /** Null when no public key is set: the route answers 503, so Keygen keeps the events and retries. */
  readonly webhook: {
    /** The account's Ed25519 public key, hex (as Keygen's dashboard shows it) or PEM. */
    readonly publicKey: string;
    /** The endpoint's public host behind a proxy; else the Host header. */
    readonly host: string | null;
    readonly mapping: KeygenEventMapping;
  } | null;
  /** Named in the 503 while the webhook is not configured. */
  readonly publicKeySetting: string;
}

/**
 * `POST /webhooks/keygen`: Ed25519-signed webhook events, verified over the raw body before anything else. A
 * redelivery, or Keygen's retry of the event (a new resource with the same token), is processed once through the inbox.
 */
export const keygenWebhookPlugin: FastifyPluginAsync<KeygenWebhookOptions> = async (app, options) => {
  const keygen = options.webhook;
  const verify = keygen ? keygenWebhookVerifier({ publicKey: keygen.publicKey }) : null;
  app.post('/webhooks/keygen', async (request, reply) => {
    if (!keygen || !verify) return replyNotConfigured(reply, 'Keygen webhooks', options.publicKeySetting);
    const check = verify({
      method: request.method,
      path: request.url,
      host: keygen.host ?? request.headers.host ?? '',
      headers: request.headers,
      rawBody: request.rawBody ?? Buffer.alloc(0),
    });
    if (!check.valid) return reply.code(401).send({ error: 'bad_signature', message: check.reason });

    // An event that cannot be mapped (any error) is a dead letter, with its reason and the body as received, durable
    // before the answer. Its identity is Keygen's idempotency token, so a redelivery or a retry records nothing new.
    const deadLetter = async (token: string, error: unknown): Promise<RecordUnmappableResult | undefined> => {
      const [recorded] = await options.ingest.deadLetter([
        {
          source: 'keygen',
          sourceId: token,
          dedupKey: `keygen:${token}`,
          reason: unmappableReason(error),
          raw: request.rawBody?.toString('utf8') ?? request.body,
        },
      ]);
      return recorded;
    };
    // Bad input is answered 400 naming the field (Keygen does not retry a 4xx); anything else is acknowledged as
    // dead-lettered, so Keygen does not retry for hours an event that would fail the same way every time.
    const answerUnmappable = async (token: string, error: unknown) => {
      const recorded = await deadLetter(token, error);
      if (error instanceof InvalidInputError) throw error;
      if (error instanceof KeyRejectedError) {
        throw new InvalidInputError([{ field: 'data.meta.idempotencyToken', reason: error.message }], 'invalid Keygen webhook event');
      }
      return reply.code(200).send({ status: 'dead-lettered', outboxId: recorded?.id ?? null, reason: unmappableReason(error) });
    };

    let webhook: KeygenWebhookEvent;
    try {
      webhook = parseKeygenWebhook(request.body);
    } catch (error) {
      // Without a token there is no event to speak of: just the 400.
      const token = idempotencyTokenOf(request.body);
      if (token === null) throw error;
      return answerUnmappable(token, error);
    }
    let mapped: KeygenMappingResult;
    try {
      mapped = keygenWebhookToUserEvent(webhook, keygen.mapping, options.keys);
    } catch (error) {
      return answerUnmappable(webhook.idempotencyToken, error);
    }
    if (mapped.kind === 'skipped') return reply.code(200).send({ status: 'skipped', reason: mapped.reason });
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
};

/** The webhook event's idempotency token, when the body has one where Keygen puts it; null otherwise. */
function idempotencyTokenOf(body: unknown): string | null {
  const data = isRecord(body) ? body.data : undefined;
  const meta = isRecord(data) ? data.meta : undefined;
  const token = isRecord(meta) ? meta.idempotencyToken : undefined;
  return typeof token === 'string' && token !== '' ? token : null;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
