import { describe, expect, it } from 'vitest';
import { startOncekit } from '../../cli/spawn-self.js';
import { runCli } from './run-cli.js';

describe('oncekit sandbox', () => {
  it('prints its address first, serves the API, and stops on SIGTERM', async () => {
    const running = await startOncekit(['sandbox', '--port', '0'], { PATH: process.env.PATH ?? '' });
    try {
      expect(running.firstLine).toMatch(/^oncekit sandbox listening on http:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${running.url}/api/v1/t/open/account/a/user/u/events`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(':sandbox-key').toString('base64')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ userId: 'u', accountId: 'a', events: [{ key: 'signup' }] }),
      });
      expect(response.status).toBe(200);
      const tenants = (await (await fetch(`${running.url}/__sandbox/tenants`)).json()) as unknown;
      expect(JSON.stringify(tenants)).toContain('"t"');
    } finally {
      expect(await running.stop('SIGTERM')).toBe(0);
    }
  });

  it('--max-rate caps the events it takes per second: over it, 429 with Retry-After', async () => {
    const running = await startOncekit(['sandbox', '--port', '0', '--max-rate', '2'], { PATH: process.env.PATH ?? '' });
    try {
      const post = () =>
        fetch(`${running.url}/api/v1/t/open/account/a/user/u/events`, {
          method: 'POST',
          headers: { authorization: `Basic ${Buffer.from(':sandbox-key').toString('base64')}`, 'content-type': 'application/json' },
          body: JSON.stringify({ userId: 'u', accountId: 'a', events: [{ key: 'signup' }, { key: 'purchase' }] }),
        });
      // Ten requests of two events at once: all ten would need 10 s of refill at 2 events/s.
      const answers = await Promise.all(Array.from({ length: 10 }, post));
      const statuses = answers.map((answer) => answer.status);
      expect(statuses).toContain(200);
      const refused = answers.find((answer) => answer.status === 429);
      expect(refused?.headers.get('retry-after')).toBe('1');
    } finally {
      expect(await running.stop('SIGTERM')).toBe(0);
    }
  });

  it('exits 2 for a --max-rate that is not a positive whole number', async () => {
    const run = await runCli(['sandbox', '--port', '0', '--max-rate', '0']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('max-rate');
  });

  it('exits 2 for a bad fault spec, naming the part', async () => {
    const run = await runCli(['sandbox', '--port', '0', '--faults', '500=2']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('500');
  });
});
