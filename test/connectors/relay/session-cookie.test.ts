import './helpers.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox } from '../../../sandbox/target/index.js';
import type { Sandbox } from '../../../sandbox/target/server.js';
import { RELAY_SECRET, request, startTestRelay, type TestRelay } from './helpers.js';

const API_KEY = 'target-api-key-Cookie7Qp2Wz';

let target: Sandbox;
let harness: TestRelay;
/** `name=value` of the session cookie the start-up link sets. */
let session: string;

beforeAll(async () => {
  target = await startSandbox({ port: 0, apiKey: API_KEY });
  harness = await startTestRelay({ ONCEKIT_TARGET_URL: target.url, ONCEKIT_TENANT: 'cookies', ONCEKIT_API_KEY: API_KEY }, 'memory');
  const link = await fetch(`${harness.relay.url}/?token=${RELAY_SECRET}`, { redirect: 'manual' });
  expect(link.status).toBe(303);
  const setCookie = link.headers.get('set-cookie') ?? '';
  expect(setCookie).toMatch(/^oncekit_session_[0-9a-f]{12}=[\w-]+; Path=\/; HttpOnly; SameSite=Strict$/);
  session = setCookie.split(';')[0] ?? '';
});
afterAll(async () => {
  await harness?.relay.stop();
  await target?.close();
});

const statusWith = async (cookie: string): Promise<number> =>
  (await request(`${harness.relay.url}/status/api/summary`, { headers: { cookie } })).status;

describe('the status page session cookie', () => {
  it('lets the page in, among other cookies', async () => {
    expect(await statusWith(session)).toBe(200);
    expect(await statusWith(`theme=dark; ${session}; other=1`)).toBe(200);
  });

  it('finds the session among several cookies of its name (other paths, a sibling subdomain), wherever it is', async () => {
    const name = session.split('=')[0] ?? '';
    expect(await statusWith(`${name}=stale-value; ${session}`)).toBe(200);
    expect(await statusWith(`${session}; ${name}=stale-value`)).toBe(200);
    expect(await statusWith(`${name}=stale-value; ${name}=another`)).toBe(401);
  });

  it('skips malformed values and headers: a 401 or the session that is there, never a 500', async () => {
    const name = session.split('=')[0] ?? '';
    for (const header of [`${name}=%E0%A4%A`, `${name}=`, `${name}`, ';;;', '=', `${name}=%`, `"${name}"="x"`]) {
      expect(await statusWith(header), header).toBe(401);
    }
    expect(await statusWith(`${name}=%E0%A4%A; ${session}`)).toBe(200);
    expect(await statusWith(`;; ${name}; ${session};`)).toBe(200);
  });

  it('is not the relay secret, and the secret is not a cookie', async () => {
    expect(session).not.toContain(RELAY_SECRET);
    const name = session.split('=')[0] ?? '';
    expect(await statusWith(`${name}=${RELAY_SECRET}`)).toBe(401);
  });
});
