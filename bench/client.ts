import { Agent, request } from 'undici';
import { startOncekit } from '../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY } from '../sandbox/target/index.js';
import type { UserEventInput } from '../shared/events/index.js';
import { createTargetClient, trackEventUrl } from '../shared/target/index.js';
import { basicAuthHeader } from '../shared/target/saasquatch-api.js';
import { undiciTransport } from '../shared/target/transport-undici.js';
import { figure, interleave, pairedRatios } from './interleave.js';
import { type BenchRow, measureRate, spreadRow } from './measure.js';
import { rateMs, repetitions } from './settings.js';

const TENANT = 'bench';
let sequence = 0;

function nextInput(): UserEventInput {
  sequence += 1;
  return {
    userId: `user-${sequence % 1000}`,
    accountId: `account-${sequence % 1000}`,
    idempotencyKey: `bench-${process.pid}-${sequence}`,
    events: [{ key: 'purchase', fields: { revenue: 42, currency: 'USD', orderId: `o-${sequence}` } }],
  };
}

/** Events per second from the client to the sandbox, which runs in its own process as it would in a demo. */
export async function runClientBench(): Promise<BenchRow[]> {
  const env = { ...process.env, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY };
  const sandbox = await startOncekit(['sandbox', '--port', '0'], env);
  const baseUrl = sandbox.url ?? '';
  const transport = undiciTransport({ connections: 16 });
  const client = createTargetClient({ baseUrl, tenant: TENANT, apiKey: DEFAULT_SANDBOX_API_KEY, transport: transport.send });
  const rawAgent = new Agent({ connections: 16 });
  const headers = { authorization: basicAuthHeader(DEFAULT_SANDBOX_API_KEY), 'content-type': 'application/json' };
  try {
    const subjects = {
      raw: async () => {
        const input = nextInput();
        const response = await request(trackEventUrl(baseUrl, TENANT, input), {
          method: 'POST',
          headers,
          body: JSON.stringify(input),
          dispatcher: rawAgent,
        });
        await response.body.text();
      },
      fetch: async () => {
        const input = nextInput();
        const response = await fetch(trackEventUrl(baseUrl, TENANT, input), { method: 'POST', headers, body: JSON.stringify(input) });
        await response.text();
      },
      sequential: async () => {
        await client.logUserEvent(nextInput());
      },
      concurrent: async () => {
        await Promise.all(Array.from({ length: 16 }, () => client.logUserEvent(nextInput())));
      },
      batched: async () => {
        await client.logUserEvents(Array.from({ length: 100 }, nextInput));
      },
    } as const;
    const sizes = { raw: 1, fetch: 1, sequential: 1, concurrent: 16, batched: 100 } as const;
    type Subject = keyof typeof subjects;
    // Interleaved, after a warm-up round, so no figure is measured on a colder process than its baseline.
    const samples = await interleave<Subject>(
      ['raw', 'fetch', 'sequential', 'concurrent', 'batched'],
      async (subject) => ({ perSecond: (await measureRate(subjects[subject], sizes[subject], rateMs)).perSecond }),
      { repetitions },
    );
    const row = (subject: Subject, name: string, baseline?: { row: BenchRow; subject: Subject }, note?: string) =>
      spreadRow(
        name,
        figure(samples, subject, 'perSecond'),
        'events/s',
        baseline ? { row: baseline.row, paired: pairedRatios(samples, subject, baseline.subject, 'perSecond') } : undefined,
        note,
      );
    const rawRow = row('raw', 'raw undici POST, one at a time (baseline)');
    const sequentialRow = row(
      'sequential',
      'client REST, one at a time',
      { row: rawRow, subject: 'raw' },
      'key, classification and retry loop on top of the same transport',
    );
    return [
      rawRow,
      row('fetch', 'global fetch POST, one at a time', { row: rawRow, subject: 'raw' }, 'why the client uses undici'),
      sequentialRow,
      row('concurrent', 'client REST, 16 concurrent', { row: sequentialRow, subject: 'sequential' }),
      row('batched', 'client GraphQL logUserEvents, batches of 100', { row: sequentialRow, subject: 'sequential' }),
    ];
  } finally {
    await transport.close();
    await rawAgent.close();
    await sandbox.stop();
  }
}
