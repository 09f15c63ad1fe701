import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidInputError, OncekitError, StateLostError } from '../errors.js';
import { OutboxStoreError } from '../outbox/store-support.js';
import { StoreUnavailableError } from '../state/idempotency.js';

/** Something the relay depends on is down: 503 with Retry-After, so the sender retries later. */
export class ServiceUnavailableError extends OncekitError {
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds: number) {
    super('unavailable', message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The body exactly as received: signatures and HMACs are computed over these bytes. */
    rawBody?: Buffer;
  }
}

/**
 * A route whose connector is not set up: 503 rather than 404, so the sender keeps the events and retries, and nothing
 * is lost while the relay is being configured. `setting` names what to set.
 */
export function replyNotConfigured(reply: FastifyReply, what: string, setting: string): FastifyReply {
  return reply
    .code(503)
    .header('retry-after', '300')
    .send({ error: 'not_configured', message: `${what} are not configured on this relay: set ${setting}` });
}

/** JSON bodies are parsed here, keeping the raw bytes for signature checks; bad JSON is a 400 naming the body. */
export function registerRawJsonParser(app: FastifyInstance): void {
  // Only JSON is taken: any other content type (text/plain included, which Fastify parses by default) is a 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(['application/json', 'application/vnd.api+json'], { parseAs: 'buffer' }, (request, body, done) => {
    const raw = body as Buffer;
    request.rawBody = raw;
    if (raw.length === 0) return done(null, undefined);
    try {
      done(null, JSON.parse(raw.toString('utf8')));
    } catch (error) {
      const invalid = new InvalidInputError([
        { field: 'body', reason: `not valid JSON (${error instanceof Error ? error.message : 'parse error'})` },
      ]);
      done(invalid, undefined);
    }
  });
}

/** The one error answer: bad input is a 400 naming each field; nothing internal leaks into a response. */
export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | Error, request: FastifyRequest, reply: FastifyReply) => {
    if (error instanceof InvalidInputError) {
      return reply.code(400).send({ error: 'invalid_input', message: error.message, issues: error.issues });
    }
    if (error instanceof ServiceUnavailableError) {
      return reply.code(503).header('retry-after', String(error.retryAfterSeconds)).send({ error: 'unavailable', message: error.message });
    }
    if (error instanceof StateLostError) {
      // The store's data is gone (see StateLostError): nothing was done; the sender keeps the event and retries.
      return reply.code(503).header('retry-after', '60').send({
        error: 'state_lost',
        message: "the relay's store lost its data; nothing was done and an operator has to look; retry later",
      });
    }
    if (error instanceof StoreUnavailableError || error instanceof OutboxStoreError) {
      // A transient fault: the sender retries (and request idempotency never stores a 5xx), so nothing is lost.
      request.log.error({ err: error }, 'a store failed; answering 503');
      return reply.code(503).header('retry-after', '5').send({ error: 'unavailable', message: 'a store of the relay failed; retry later' });
    }
    if ('code' in error && error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      const given = request.headers['content-type'] ?? 'none';
      return reply
        .code(415)
        .send({ error: 'unsupported_media_type', message: `content-type: send the body as application/json (got ${given})` });
    }
    const status = 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (status < 500) {
      // Fastify's own 4xx (unsupported media type, body too large, …) carry safe messages.
      return reply.code(status).send({ error: 'bad_request', message: error.message });
    }
    request.log.error({ err: error }, 'request failed');
    return reply.code(500).send({ error: 'internal_error', message: 'the relay failed to handle the request; it was logged' });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );
}
