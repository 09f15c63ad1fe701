import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDEMPOTENCY_PROBLEM_TYPES, idempotencyPlugin, REPLAYED_HEADER } from '../../../shared/http/idempotency-plugin.js';
import { MemoryIdempotencyStore } from '../../../shared/state/memory/idempotency.js';

const agent = new Agent({ connections: 50, pipelining: 0 });
let app: FastifyInstance;
let url = '';
/** Handler runs per Idempotency-Key. */
const executions = new Map<string, number>();

beforeAll(async () => {
  app = Fastify();
  await app.register(idempotencyPlugin, { store: new MemoryIdempotencyStore() });
  app.post('/orders', async (req, reply) => {
    const key = String(req.headers['idempotency-key']);
    executions.set(key, (executions.get(key) ?? 0) + 1);
    // A short pause, so requests of one wave overlap.
    await new Promise((resolve) => setTimeout(resolve, 3));
    return reply.code(201).send({ key, payload: req.body });
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  url = `http://127.0.0.1:${address.port}`;
});
afterAll(async () => {
  await app.close();
  await agent.close();
});

interface Sent {
  readonly key: string;
  readonly payload: number;
  readonly wave: number;
  readonly status: number;
  readonly replayed: boolean;
  readonly body: { key?: string; payload?: { p: number }; type?: string };
}

let run = 0;

describe('request idempotency properties (memory store, real Fastify over loopback)', () => {
  it('for any interleaving: one execution per key, identical retries replay, another payload with the key is refused', async () => {
    // Waves of requests sent together; a request is (key, payload), from small sets so that keys and payloads repeat.
    const waves = fc.array(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 1 })), { minLength: 1, maxLength: 5 }),
      {
        minLength: 1,
        maxLength: 5,
      },
    );
    await fc.assert(
      fc.asyncProperty(waves, async (plan) => {
        run += 1;
        const sent: Sent[] = [];
        for (const [wave, requests] of plan.entries()) {
          const answers = await Promise.all(
            requests.map(async ([k, payload]) => {
              const key = `run-${run}-key-${k}`;
              const response = await request(`${url}/orders`, {
                method: 'POST',
                dispatcher: agent,
                headers: { 'content-type': 'application/json', 'idempotency-key': key },
                body: JSON.stringify({ p: payload }),
              });
              const body = (await response.body.json()) as Sent['body'];
              return { key, payload, wave, status: response.statusCode, replayed: response.headers[REPLAYED_HEADER] === 'true', body };
            }),
          );
          sent.push(...answers);
        }
        for (const key of new Set(sent.map((entry) => entry.key))) {
          const forKey = sent.filter((entry) => entry.key === key);
          const firsts = forKey.filter((entry) => entry.status === 201 && !entry.replayed);
          expect(firsts.length).toBeLessThanOrEqual(1);
          expect(executions.get(key) ?? 0).toBe(firsts.length);
          const executed = firsts[0];
          for (const entry of forKey) {
            expect([201, 400, 409]).toContain(entry.status);
            if (entry.status === 201) expect(entry.body.payload).toEqual({ p: entry.payload });
            if (entry.status === 400) {
              expect(entry.body.type).toBe(IDEMPOTENCY_PROBLEM_TYPES.keyReused);
              if (executed) expect(entry.payload).not.toBe(executed.payload);
            }
            // In progress only while a request with the same key and payload ran in the same wave.
            if (entry.status === 409)
              expect(forKey.some((other) => other !== entry && other.wave === entry.wave && other.payload === entry.payload)).toBe(true);
            // Once the key's request finished in an earlier wave, the answer is certain.
            if (executed && executed.wave < entry.wave) {
              if (entry.payload === executed.payload)
                expect({ status: entry.status, replayed: entry.replayed }).toEqual({ status: 201, replayed: true });
              else expect(entry.status).toBe(400);
            }
          }
          // Every key whose requests all finished got executed exactly once.
          expect(firsts.length).toBe(1);
        }
      }),
      { numRuns: 60 },
    );
  });
});
