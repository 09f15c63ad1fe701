import type { FastifyPluginAsync } from 'fastify';
import { replyNotConfigured } from '../../shared/http/http-basics.js';
import type { Inbox } from '../../shared/inbox/inbox.js';
import type { DecideKeyOptions } from '../../shared/keys/index.js';
import type { Ingest } from '../../shared/outbox/ingest.js';
import { type KeygenEventMapping, keygenWebhookToUserEvent, parseKeygenWebhook } from './keygen-event.js';
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

    const webhook = parseKeygenWebhook(request.body);
    const mapped = keygenWebhookToUserEvent(webhook, keygen.mapping, options.keys);
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
