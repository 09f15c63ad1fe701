import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { Connection } from 'jsforce';
import { ServiceUnavailableError } from '../../shared/http/http-basics.js';
import type { DecideKeyOptions } from '../../shared/keys/decide.js';
import type { Ingest } from '../../shared/outbox/ingest.js';
import { type IdentityFields, SalesforceUnavailableError } from './identity.js';
import type { InboundAuthCheck } from './inbound-auth.js';
import { type TrackEventRoute, trackEventRoutes } from './invocable-input.js';
import { prepareTrackEventBatch, trackEventResponse } from './track-event-batch.js';

export interface InvocableRoutesOptions {
  readonly ingest: Ingest;
  readonly authenticate: (headers: Readonly<Record<string, string | string[] | undefined>>, rawBody: Buffer) => InboundAuthCheck;
  /** Null when Salesforce is not configured: items must then carry userId and accountId themselves. */
  readonly connection: () => Promise<Connection | null>;
  readonly identityFields?: IdentityFields;
  /** Per Salesforce lookup; a hung one answers 503 with Retry-After. Default 10 s. */
  readonly lookupTimeoutMs?: number;
  readonly keys: DecideKeyOptions;
}

/**
 * `POST /salesforce/track-event/by-id|by-lead|by-contact`: the calls the Apex invocable class makes through a Named
 * Credential. Each answers per item, in input order; ready items are persisted in the outbox before the answer.
 * Request idempotency (the plugin registered before these routes) makes an Apex retry with the same
 * Idempotency-Key replay the first answer.
 */
export const invocableRoutes: FastifyPluginAsync<InvocableRoutesOptions> = async (app, options) => {
  app.addHook('preHandler', async (request, reply) => {
    const check = options.authenticate(request.headers, request.rawBody ?? Buffer.alloc(0));
    if (!check.ok) {
      return reply.code(401).header('www-authenticate', 'Bearer realm="oncekit"').send({ error: 'unauthorized', message: check.reason });
    }
  });

  for (const route of trackEventRoutes) {
    app.post(`/salesforce/track-event/${route}`, async (request, reply) => {
      const outcomes = await prepare(route, request.body);
      // The call's identity for the ledger: the Apex Idempotency-Key when sent (stable across its retries), else a
      // fresh UUID (never Fastify's request id, which starts over when the process restarts).
      const header = request.headers['idempotency-key'];
      const callId = (typeof header === 'string' && header.length > 0 ? header : randomUUID()).slice(0, 255);
      const ready = outcomes.flatMap((outcome) =>
        outcome.ok
          ? [
              {
                outcome,
                event: {
                  source: 'salesforce',
                  // Which call and which item: the ledger lookup a Salesforce admin can do from the request id.
                  sourceId: outcome.record
                    ? `${outcome.record.type}/${outcome.record.id18}#${callId}.${outcome.index}`
                    : `${callId}.${outcome.index}`,
                  input: outcome.input,
                  decision: outcome.decision,
                },
              },
            ]
          : [],
      );
      const enqueued = await options.ingest.accept(ready.map((entry) => entry.event));
      const response = trackEventResponse(outcomes);
      return reply.code(200).send({
        results: response.results.map((result, index) => {
          const position = ready.findIndex((entry) => entry.outcome.index === index);
          const queued = position >= 0 ? enqueued[position] : undefined;
          return queued ? { ...result, outboxId: queued.id, queued: queued.outcome !== 'existing' } : result;
        }),
      });
    });
  }

  async function prepare(route: TrackEventRoute, body: unknown) {
    const connection = await options.connection();
    try {
      return await prepareTrackEventBatch(route, body, {
        connection,
        keys: options.keys,
        ...(options.identityFields ? { identityFields: options.identityFields } : {}),
        ...(options.lookupTimeoutMs === undefined ? {} : { lookupTimeoutMs: options.lookupTimeoutMs }),
      });
    } catch (error) {
      if (error instanceof SalesforceUnavailableError) {
        // 503 + Retry-After: the Apex caller (or its Queueable) retries; nothing was enqueued.
        throw new ServiceUnavailableError(`Salesforce could not be read: ${error.message}`, 30);
      }
      throw error;
    }
  }
};
