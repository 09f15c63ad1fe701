import { describe, expect, it } from 'vitest';
import { readRelayConfig } from '../../../connectors/relay/config.js';
import { InvalidInputError } from '../../../shared/errors.js';

function failure(options: Parameters<typeof readRelayConfig>[0], env: Record<string, string>): InvalidInputError {
  try {
    readRelayConfig(options, env);
  } catch (error) {
    if (error instanceof InvalidInputError) return error;
    throw error;
  }
  throw new Error('expected readRelayConfig to fail');
}

const fields = (error: InvalidInputError) => error.issues.map((issue) => issue.field);

describe('readRelayConfig', () => {
  it('defaults: loopback, the sandbox, a generated secret, drop policy', () => {
    const config = readRelayConfig({}, {});
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      target: null,
      relaySecretGenerated: true,
      invalidKeyPolicy: 'drop',
      keygen: null,
      segmentSharedSecret: null,
      salesforceConfigured: false,
      platformEventChannel: null,
      logLevel: 'info',
    });
    expect(config.relaySecret.length).toBeGreaterThanOrEqual(24);
    expect(readRelayConfig({}, {}).relaySecret).not.toBe(config.relaySecret);
  });

  it('reads a full configuration from the environment; options win', () => {
    const config = readRelayConfig(
      { port: 9090, tenant: 'from-option' },
      {
        ONCEKIT_PORT: '7000',
        ONCEKIT_TARGET_URL: 'https://app.referralsaasquatch.com',
        ONCEKIT_TENANT: 'from-env',
        ONCEKIT_API_KEY: 'live-key-1234',
        ONCEKIT_STORE: 'memory',
        ONCEKIT_RELAY_SECRET: 'a-secret-of-sixteen-plus',
        ONCEKIT_INVALID_KEY_POLICY: 'reject',
        ONCEKIT_KEYGEN_PUBLIC_KEY: 'ab'.repeat(32),
        ONCEKIT_KEYGEN_HOST: 'relay.example.com',
        ONCEKIT_SEGMENT_SHARED_SECRET: 'segment',
        ONCEKIT_SF_CLIENT_ID: 'client',
        ONCEKIT_SF_CLIENT_SECRET: 'client-secret',
        ONCEKIT_SF_LOGIN_URL: 'https://acme.my.salesforce.com',
        ONCEKIT_SF_EVENT_CHANNEL: '/event/Other__e',
        ONCEKIT_LOG_LEVEL: 'warn',
      },
    );
    expect(config).toMatchObject({
      port: 9090,
      target: { url: 'https://app.referralsaasquatch.com', tenant: 'from-option', apiKey: 'live-key-1234' },
      relaySecret: 'a-secret-of-sixteen-plus',
      relaySecretGenerated: false,
      invalidKeyPolicy: 'reject',
      keygen: { publicKey: 'ab'.repeat(32), host: 'relay.example.com' },
      segmentSharedSecret: 'segment',
      salesforceConfigured: true,
      platformEventChannel: '/event/Other__e',
      logLevel: 'warn',
    });
  });

  it.each([
    ['only the URL', { ONCEKIT_TARGET_URL: 'http://127.0.0.1:1' }, ['--tenant (or ONCEKIT_TENANT)', 'ONCEKIT_API_KEY']],
    ['only the API key', { ONCEKIT_API_KEY: 'key-only' }, ['--target-url (or ONCEKIT_TARGET_URL)', '--tenant (or ONCEKIT_TENANT)']],
    ['URL and tenant', { ONCEKIT_TARGET_URL: 'http://127.0.0.1:1', ONCEKIT_TENANT: 't' }, ['ONCEKIT_API_KEY']],
  ])('half a target (%s) names each missing variable', (_name, env, missing) => {
    const error = failure({}, env);
    expect(fields(error)).toEqual(missing);
    expect(error.message).toContain(missing[0]);
  });

  it.each([
    ['an empty ONCEKIT_TARGET_URL', { ONCEKIT_TARGET_URL: '' }, '--target-url (or ONCEKIT_TARGET_URL)'],
    [
      'a blank ONCEKIT_TARGET_URL beside a whole target',
      { ONCEKIT_TARGET_URL: ' ', ONCEKIT_TENANT: 't', ONCEKIT_API_KEY: 'k' },
      '--target-url (or ONCEKIT_TARGET_URL)',
    ],
    ['an empty ONCEKIT_TENANT', { ONCEKIT_TENANT: '' }, '--tenant (or ONCEKIT_TENANT)'],
  ])('%s is an error, not the built-in sandbox', (_name, env, field) => {
    const error = failure({}, env);
    expect(fields(error)).toContain(field);
    expect(error.message).toContain(`${field}: is set but empty`);
  });

  it('a short relay secret names ONCEKIT_RELAY_SECRET and does not echo it', () => {
    const error = failure({}, { ONCEKIT_RELAY_SECRET: 'short-Zx81' });
    expect(fields(error)).toEqual(['ONCEKIT_RELAY_SECRET']);
    expect(error.message).toMatch(/at least 16/);
    expect(error.message).not.toContain('short-Zx81');
  });

  it.each([
    ['an unknown scheme', 'mysql://localhost/db'],
    ['sqlite without a path', 'sqlite:'],
    ['nonsense', 'somewhere'],
  ])('a bad store (%s) names --store (or ONCEKIT_STORE)', (_name, store) => {
    const fromEnv = failure({}, { ONCEKIT_STORE: store });
    expect(fields(fromEnv)).toEqual(['--store (or ONCEKIT_STORE)']);
    const fromOption = failure({ store }, {});
    expect(fields(fromOption)).toEqual(['--store (or ONCEKIT_STORE)']);
  });

  it.each([
    ['ONCEKIT_PORT', { ONCEKIT_PORT: 'eighty' }, '--port (or ONCEKIT_PORT)'],
    ['ONCEKIT_PORT', { ONCEKIT_PORT: '70000' }, '--port (or ONCEKIT_PORT)'],
    [
      'ONCEKIT_TARGET_URL',
      { ONCEKIT_TARGET_URL: 'ftp://x', ONCEKIT_TENANT: 't', ONCEKIT_API_KEY: 'k' },
      '--target-url (or ONCEKIT_TARGET_URL)',
    ],
    ['ONCEKIT_INVALID_KEY_POLICY', { ONCEKIT_INVALID_KEY_POLICY: 'ignore' }, 'ONCEKIT_INVALID_KEY_POLICY'],
    ['ONCEKIT_LOG_LEVEL', { ONCEKIT_LOG_LEVEL: 'loud' }, 'ONCEKIT_LOG_LEVEL'],
    ['ONCEKIT_SF_EVENT_CHANNEL', { ONCEKIT_SF_EVENT_CHANNEL: 'not a channel' }, 'ONCEKIT_SF_EVENT_CHANNEL'],
  ])('a bad %s is named', (_name, env, field) => {
    expect(fields(failure({}, env))).toContain(field);
  });

  it('an API key is never echoed in an error', () => {
    const error = failure({}, { ONCEKIT_API_KEY: 'live-key-Mn4Bv7Cx2Za9' });
    expect(JSON.stringify({ message: error.message, issues: error.issues })).not.toContain('live-key-Mn4Bv7Cx2Za9');
  });

  it('Redis settings: a volatile Redis only with ONCEKIT_REDIS_ALLOW_VOLATILE=1, the prefix from ONCEKIT_REDIS_PREFIX', () => {
    expect(readRelayConfig({}, {}).redis).toEqual({ keyPrefix: 'oncekit:', allowVolatile: false });
    expect(readRelayConfig({}, { ONCEKIT_REDIS_ALLOW_VOLATILE: '0' }).redis.allowVolatile).toBe(false);
    expect(readRelayConfig({}, { ONCEKIT_REDIS_ALLOW_VOLATILE: '1', ONCEKIT_REDIS_PREFIX: 'acme:' }).redis).toEqual({
      keyPrefix: 'acme:',
      allowVolatile: true,
    });
  });
  it('group commit: on by default, off with ONCEKIT_GROUP_COMMIT=off (diagnostic), anything else refused', () => {
    expect(readRelayConfig({}, {}).groupCommit).toBe(true);
    expect(readRelayConfig({}, { ONCEKIT_GROUP_COMMIT: 'on' }).groupCommit).toBe(true);
    expect(readRelayConfig({}, { ONCEKIT_GROUP_COMMIT: '' }).groupCommit).toBe(true);
    expect(readRelayConfig({}, { ONCEKIT_GROUP_COMMIT: 'off' }).groupCommit).toBe(false);
    expect(fields(failure({}, { ONCEKIT_GROUP_COMMIT: 'no' }))).toEqual(['ONCEKIT_GROUP_COMMIT']);
  });
  it('Platform Events: the Pub/Sub API by default, CometD on request; plaintext only to a loopback Pub/Sub endpoint', () => {
    expect(readRelayConfig({}, {})).toMatchObject({
      platformEventTransport: 'pubsub',
      pubSubEndpoint: { address: 'api.pubsub.salesforce.com:7443', plaintext: false },
    });
    expect(readRelayConfig({}, { ONCEKIT_SF_EVENT_TRANSPORT: 'cometd' }).platformEventTransport).toBe('cometd');
    expect(readRelayConfig({}, { ONCEKIT_SF_PUBSUB_ENDPOINT: 'http://127.0.0.1:7011' }).pubSubEndpoint).toEqual({
      address: '127.0.0.1:7011',
      plaintext: true,
    });
    expect(fields(failure({}, { ONCEKIT_SF_EVENT_TRANSPORT: 'grpc' }))).toEqual(['ONCEKIT_SF_EVENT_TRANSPORT']);
    const plaintext = failure({}, { ONCEKIT_SF_PUBSUB_ENDPOINT: 'http://pubsub.example.com:7443' });
    expect(fields(plaintext)).toEqual(['ONCEKIT_SF_PUBSUB_ENDPOINT']);
    expect(plaintext.message).toMatch(/only for a loopback/);
    expect(readRelayConfig({}, {}).managedSubscription).toBeNull();
    expect(readRelayConfig({}, { ONCEKIT_SF_MANAGED_SUBSCRIPTION: 'Oncekit_Events' }).managedSubscription).toBe('Oncekit_Events');
    const managedOverCometd = { ONCEKIT_SF_MANAGED_SUBSCRIPTION: 'Oncekit_Events', ONCEKIT_SF_EVENT_TRANSPORT: 'cometd' };
    expect(fields(failure({}, managedOverCometd))).toEqual(['ONCEKIT_SF_MANAGED_SUBSCRIPTION']);
  });

  it('backpressure: 10000 undelivered events by default, ONCEKIT_MAX_BACKLOG=off for none; delivery lag off unless set', () => {
    expect(readRelayConfig({}, {})).toMatchObject({ maxBacklog: 10_000, maxDeliveryLagMs: null });
    expect(readRelayConfig({}, { ONCEKIT_MAX_BACKLOG: '500', ONCEKIT_MAX_DELIVERY_LAG: '2m' })).toMatchObject({
      maxBacklog: 500,
      maxDeliveryLagMs: 120_000,
    });
    expect(readRelayConfig({}, { ONCEKIT_MAX_BACKLOG: 'off', ONCEKIT_MAX_DELIVERY_LAG: 'off' })).toMatchObject({
      maxBacklog: null,
      maxDeliveryLagMs: null,
    });
    for (const bad of ['0', '-5', '1.5', 'lots']) {
      expect(fields(failure({}, { ONCEKIT_MAX_BACKLOG: bad })), bad).toEqual(['ONCEKIT_MAX_BACKLOG']);
    }
    expect(() => readRelayConfig({}, { ONCEKIT_MAX_DELIVERY_LAG: 'soon' })).toThrow(/ONCEKIT_MAX_DELIVERY_LAG/);
  });
});
