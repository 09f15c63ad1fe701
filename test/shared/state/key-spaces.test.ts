import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { idempotencyPlugin } from '../../../shared/http/idempotency-plugin.js';
import { Inbox } from '../../../shared/inbox/index.js';
import { MemoryIdempotencyStore } from '../../../shared/state/memory/idempotency.js';

describe('key spaces on one idempotency store', () => {
  it('an HTTP Idempotency-Key shaped like an inbox key does not make that webhook delivery look processed', async () => {
    const store = new MemoryIdempotencyStore();
    const app = Fastify();
    await app.register(idempotencyPlugin, { store, resolveTenant: () => 'acme' });
    app.post('/calls', async () => ({ ok: true }));
    const call = await app.inject({
      method: 'POST',
      url: '/calls',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'inbox:keygen:tok-0123456789' },
      payload: '{}',
    });
    expect(call.statusCode).toBe(200);

    const inbox = new Inbox({ store });
    let processed = 0;
    const outcome = await inbox.deliver({ source: 'keygen', tenant: 'acme', token: 'tok-0123456789' }, async () => {
      processed += 1;
    });
    expect(outcome.status).toBe('processed');
    expect(processed).toBe(1);
    await app.close();
  });
});
