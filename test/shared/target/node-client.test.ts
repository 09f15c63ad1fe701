import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../../sandbox/target/index.js';
import { InvalidInputError } from '../../../shared/errors.js';
import type { UserEventInput } from '../../../shared/events/index.js';
import { createNodeTargetClient } from '../../../shared/target/node-client.js';
import { undiciTransport } from '../../../shared/target/transport-undici.js';

let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});

const event = (idempotencyKey: string): UserEventInput => ({
  userId: 'ann',
  accountId: 'ann',
  idempotencyKey,
  events: [{ key: 'purchase' }],
});

describe('createTargetClient on Node (the package entry)', () => {
  it('needs only baseUrl, tenant and apiKey: keep-alive undici by default, closed by close()', async () => {
    const tenant = `node_client_${process.pid}`;
    const client = createNodeTargetClient({ baseUrl: sandbox.url, tenant, apiKey: DEFAULT_SANDBOX_API_KEY });
    expect((await client.logUserEvent(event('node-client-1'))).outcome).toBe('accepted');
    expect((await client.logUserEvent(event('node-client-1'))).outcome).toBe('duplicate');
    expect(await client.checkCredentials()).toEqual({ ok: true });
    await client.close();
    expect(sandbox.inspect(tenant).events).toHaveLength(1);
  });

  it('leaves a transport the caller gave open', async () => {
    const transport = undiciTransport({ connections: 1 });
    try {
      const options = { baseUrl: sandbox.url, tenant: `node_client_given_${process.pid}`, apiKey: DEFAULT_SANDBOX_API_KEY };
      const first = createNodeTargetClient({ ...options, transport: transport.send });
      await first.close();
      const second = createNodeTargetClient({ ...options, transport: transport.send });
      expect((await second.logUserEvent(event('node-client-2'))).outcome).toBe('accepted');
    } finally {
      await transport.close();
    }
  });

  it('names a bad option and never shows the API key', () => {
    const attempt = () => createNodeTargetClient({ baseUrl: 'ftp://example.test', tenant: 't', apiKey: 'secret-key-123' });
    expect(attempt).toThrow(InvalidInputError);
    expect(attempt).toThrow(/baseUrl/);
    expect(attempt).not.toThrow(/secret-key-123/);
  });
});
