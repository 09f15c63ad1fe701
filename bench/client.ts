import { Agent, request } from 'undici';
import { startOncekit } from '../cli/spawn-self.js';
import { DEFAULT_SANDBOX_API_KEY } from '../sandbox/target/index.js';
import type { UserEventInput } from '../shared/events/index.js';
import { createTargetClient, trackEventUrl } from '../shared/target/index.js';
import { basicAuthHeader } from '../shared/target/saasquatch-api.js';
import { undiciTransport } from '../shared/target/transport-undici.js';
import { type BenchRow, compared, measureRate } from './measure.js';

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
    const raw = await measureRate(async () => {
      const input = nextInput();
      const response = await request(trackEventUrl(baseUrl, TENANT, input), {
        method: 'POST',
        headers,
        body: JSON.stringify(input),
        dispatcher: rawAgent,
      });
      await response.body.text();
    }, 1);
    const fetchRate = await measureRate(async () => {
      const input = nextInput();
      const response = await fetch(trackEventUrl(baseUrl, TENANT, input), { method: 'POST', headers, body: JSON.stringify(input) });
      await response.text();
    }, 1);
    const sequential = await measureRate(async () => {
      await client.logUserEvent(nextInput());
    }, 1);
    const concurrent = await measureRate(async () => {
      await Promise.all(Array.from({ length: 16 }, () => client.logUserEvent(nextInput())));
    }, 16);
    const batched = await measureRate(async () => {
      await client.logUserEvents(Array.from({ length: 100 }, nextInput));
    }, 100);

    const rawRow = compared('raw undici POST, one at a time (baseline)', raw.perSecond, 'events/s');
    const sequentialRow = compared(
      'client REST, one at a time',
      sequential.perSecond,
      'events/s',
      rawRow,
      'key, classification and retry loop on top of the same transport',
    );
    return [
      rawRow,
      compared('global fetch POST, one at a time', fetchRate.perSecond, 'events/s', rawRow, 'why the client uses undici'),
      sequentialRow,
      compared('client REST, 16 concurrent', concurrent.perSecond, 'events/s', sequentialRow),
      compared('client GraphQL logUserEvents, batches of 100', batched.perSecond, 'events/s', sequentialRow),
    ];
  } finally {
    await transport.close();
    await rawAgent.close();
    await sandbox.stop();
  }
}
