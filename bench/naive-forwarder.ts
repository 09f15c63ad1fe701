import { pathToFileURL } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { Agent, request as undiciRequest } from 'undici';
import { basicAuthHeader, trackEventUrl } from '../shared/target/saasquatch-api.js';

/**
 * The baseline the relay is benchmarked against: a pass-through forwarder with the relay's invocable route, built the
 * obvious way, and as fast as that goes: Fastify plus undici with keep-alive (global fetch is about 2.4× slower on
 * loopback, which would flatter the relay). No dedup, no outbox, no key checks: each item is POSTed to the target's REST
 * events endpoint while the caller waits, and the answer is the target's. Whatever the target does not dedup, it records.
 */
export interface NaiveForwarderOptions {
  readonly targetUrl: string;
  readonly tenant: string;
  readonly apiKey: string;
  readonly host?: string;
  readonly port?: number;
}

interface InvocableItem {
  readonly userId?: string;
  readonly accountId?: string;
  readonly key?: string;
  readonly fields?: Record<string, unknown>;
  readonly dateTriggered?: number;
  readonly idempotencyKey?: string;
}

export async function startNaiveForwarder(options: NaiveForwarderOptions): Promise<{ url: string; app: FastifyInstance }> {
  const app = Fastify({ logger: false });
  const authorization = basicAuthHeader(options.apiKey);
  const agent = new Agent({ connections: 128, keepAliveTimeout: 10_000 });
  app.addHook('onClose', async () => {
    await agent.close();
  });
  app.post('/salesforce/track-event/by-id', async (request, reply) => {
    const items = ((request.body as { usersEvents?: InvocableItem[] } | null)?.usersEvents ?? []).filter(
      (item) => typeof item.userId === 'string' && typeof item.accountId === 'string' && typeof item.key === 'string',
    );
    const results = await Promise.all(
      items.map(async (item) => {
        const input = {
          userId: item.userId as string,
          accountId: item.accountId as string,
          ...(item.idempotencyKey ? { idempotencyKey: item.idempotencyKey } : {}),
          events: [
            {
              key: item.key,
              ...(item.fields ? { fields: item.fields } : {}),
              ...(item.dateTriggered ? { dateTriggered: item.dateTriggered } : {}),
            },
          ],
        };
        const response = await undiciRequest(trackEventUrl(options.targetUrl, options.tenant, input), {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/json' },
          body: JSON.stringify(input),
          dispatcher: agent,
        });
        await response.body.dump();
        const ok = response.statusCode >= 200 && response.statusCode < 300;
        return { ok, status: response.statusCode };
      }),
    );
    return reply.code(results.every((result) => result.ok) ? 200 : 502).send({ results });
  });
  await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 0);
  return { url: `http://${options.host ?? '127.0.0.1'}:${port}`, app };
}

// Run as a script (its own process in the benchmark): `node dist/bench/naive-forwarder.js`, configured like the relay.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const targetUrl = process.env.ONCEKIT_TARGET_URL;
  const tenant = process.env.ONCEKIT_TENANT;
  const apiKey = process.env.ONCEKIT_API_KEY;
  if (!targetUrl || !tenant || !apiKey) {
    process.stderr.write('naive forwarder: set ONCEKIT_TARGET_URL, ONCEKIT_TENANT and ONCEKIT_API_KEY\n');
    process.exit(2);
  }
  const { url, app } = await startNaiveForwarder({ targetUrl, tenant, apiKey, port: Number(process.env.ONCEKIT_PORT ?? 0) });
  process.stdout.write(`naive forwarder listening on ${url}\n`);
  process.once('SIGTERM', () => {
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
