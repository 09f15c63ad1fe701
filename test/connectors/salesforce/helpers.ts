import '../../fakes/no-proxy.js';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { connectSalesforce, type SalesforceSession, salesforceAuthConfigFromEnv } from '../../../connectors/salesforce/salesforce-auth.js';
import { type FakeOrg, type FakeOrgOptions, startFakeOrg } from '../../../sandbox/salesforce-org/index.js';

export const CLIENT_ID = '3MVG9fakeConsumerKey.forOncekitTests';
export const USERNAME = 'integration@oncekit.example';
/** Distinctive, so a leak into an error or a log line cannot hide among other text. */
export const CLIENT_SECRET = 'sf-secret-Zq8Wv3Lp1Xr6Tb';

let keys: { privateKey: KeyObject; publicKey: KeyObject; privatePem: string } | null = null;

/** One RSA key pair per test file (generating one takes a moment). */
export function testKeys(): { privateKey: KeyObject; publicKey: KeyObject; privatePem: string } {
  if (keys === null) {
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    keys = { ...pair, privatePem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
  }
  return keys;
}

/** A fake org that accepts both grants for the test credentials, with its Pub/Sub API unless `pubsub: false`. */
export function startTestOrg(options: FakeOrgOptions = {}): Promise<FakeOrg> {
  return startFakeOrg({
    jwt: { clientId: CLIENT_ID, username: USERNAME, publicKey: testKeys().publicKey },
    clientCredentials: { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET },
    pubsub: true,
    ...options,
  });
}

export function jwtEnv(org: FakeOrg, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ONCEKIT_SF_LOGIN_URL: org.url,
    ONCEKIT_SF_CLIENT_ID: CLIENT_ID,
    ONCEKIT_SF_USERNAME: USERNAME,
    ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem,
    ...pubSubEnv(org),
    ...extra,
  };
}

export function clientCredentialsEnv(org: FakeOrg, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ONCEKIT_SF_LOGIN_URL: org.url,
    ONCEKIT_SF_CLIENT_ID: CLIENT_ID,
    ONCEKIT_SF_CLIENT_SECRET: CLIENT_SECRET,
    ...pubSubEnv(org),
    ...extra,
  };
}

/** The fake org's Pub/Sub API for a relay (the subscriber's default transport); none without it. */
function pubSubEnv(org: FakeOrg): Record<string, string> {
  return org.pubsub ? { ONCEKIT_SF_PUBSUB_ENDPOINT: org.pubsub.url } : {};
}

export function connectTo(org: FakeOrg, flow: 'jwt-bearer' | 'client-credentials' = 'client-credentials'): Promise<SalesforceSession> {
  const env = flow === 'jwt-bearer' ? jwtEnv(org) : clientCredentialsEnv(org);
  return connectSalesforce(salesforceAuthConfigFromEnv(env));
}

/** Polls until `check` holds; fails with `what` after `timeoutMs`. Polling, not sleeping: it returns as soon as it holds. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
