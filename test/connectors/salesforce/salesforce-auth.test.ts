import './helpers.js';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectSalesforce,
  createJwtAssertion,
  DEFAULT_API_VERSION,
  SalesforceAuthError,
  salesforceAuthConfigFromEnv,
  type TokenChange,
} from '../../../connectors/salesforce/salesforce-auth.js';
import type { FakeOrg } from '../../../sandbox/salesforce-org/index.js';
import { InvalidInputError } from '../../../shared/errors.js';
import { memoryLogger } from '../../../shared/log.js';
import { CLIENT_ID, CLIENT_SECRET, clientCredentialsEnv, jwtEnv, startTestOrg, testKeys, USERNAME } from './helpers.js';

const LEAD = { Id: '00Q5e00000AbCdEEAV', Email: 'ann@example.com' };
const SOQL = `SELECT Id, Email FROM Lead WHERE Id = '${LEAD.Id}'`;

function settingsError(env: Record<string, string | undefined>): InvalidInputError {
  try {
    salesforceAuthConfigFromEnv(env);
  } catch (error) {
    if (error instanceof InvalidInputError) return error;
    throw error;
  }
  throw new Error('expected InvalidInputError');
}

describe('salesforceAuthConfigFromEnv', () => {
  const base = { ONCEKIT_SF_CLIENT_ID: CLIENT_ID, ONCEKIT_SF_USERNAME: USERNAME };

  it('reads the JWT bearer flow with its defaults', () => {
    const config = salesforceAuthConfigFromEnv({ ...base, ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem });
    expect(config).toMatchObject({
      flow: 'jwt-bearer',
      loginUrl: 'https://login.salesforce.com',
      audience: 'https://login.salesforce.com',
      clientId: CLIENT_ID,
      username: USERNAME,
      apiVersion: DEFAULT_API_VERSION,
    });
    expect(DEFAULT_API_VERSION).toBe('59.0');
  });

  it('takes the key from a file, or as one line with literal \\n', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'oncekit-sf-')), 'server.key');
    writeFileSync(file, testKeys().privatePem);
    expect(salesforceAuthConfigFromEnv({ ...base, ONCEKIT_SF_PRIVATE_KEY_FILE: file }).flow).toBe('jwt-bearer');
    const oneLine = testKeys().privatePem.trim().replace(/\n/g, '\\n');
    expect(salesforceAuthConfigFromEnv({ ...base, ONCEKIT_SF_PRIVATE_KEY: oneLine }).flow).toBe('jwt-bearer');
    expect(settingsError({ ...base, ONCEKIT_SF_PRIVATE_KEY_FILE: `${file}.missing` }).issues).toEqual([
      { field: 'ONCEKIT_SF_PRIVATE_KEY_FILE', reason: expect.stringContaining('ENOENT') },
    ]);
  });

  it('refuses a key that is not an RSA PEM without quoting it', () => {
    const error = settingsError({
      ...base,
      ONCEKIT_SF_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----',
    });
    expect(error.issues).toEqual([{ field: 'ONCEKIT_SF_PRIVATE_KEY', reason: expect.stringContaining('is not a PEM private key') }]);
    expect(error.message).not.toContain('c2VjcmV0');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(settingsError({ ...base, ONCEKIT_SF_PRIVATE_KEY: ec }).issues[0]).toEqual({
      field: 'ONCEKIT_SF_PRIVATE_KEY',
      reason: expect.stringContaining('RSA'),
    });
  });

  it('names every missing variable', () => {
    expect(settingsError({}).issues.map((issue) => issue.field)).toEqual(['ONCEKIT_SF_AUTH_FLOW', 'ONCEKIT_SF_CLIENT_ID']);
    expect(settingsError({ ONCEKIT_SF_AUTH_FLOW: 'jwt-bearer' }).issues.map((issue) => issue.field)).toEqual([
      'ONCEKIT_SF_CLIENT_ID',
      'ONCEKIT_SF_USERNAME',
      'ONCEKIT_SF_PRIVATE_KEY',
    ]);
    expect(
      settingsError({ ONCEKIT_SF_AUTH_FLOW: 'client-credentials', ONCEKIT_SF_CLIENT_ID: CLIENT_ID }).issues.map((issue) => issue.field),
    ).toEqual(['ONCEKIT_SF_LOGIN_URL', 'ONCEKIT_SF_CLIENT_SECRET']);
    expect(settingsError({ ONCEKIT_SF_AUTH_FLOW: 'password' }).issues[0]?.field).toBe('ONCEKIT_SF_AUTH_FLOW');
  });

  it('asks for the flow when both a key and a secret are set, and takes it when given', () => {
    const both = {
      ...base,
      ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem,
      ONCEKIT_SF_CLIENT_SECRET: CLIENT_SECRET,
      ONCEKIT_SF_LOGIN_URL: 'https://acme.my.salesforce.com',
    };
    expect(settingsError(both).issues[0]?.field).toBe('ONCEKIT_SF_AUTH_FLOW');
    expect(salesforceAuthConfigFromEnv({ ...both, ONCEKIT_SF_AUTH_FLOW: 'client-credentials' }).flow).toBe('client-credentials');
  });

  it.each([
    ['50.0', /too old/],
    ['51.0', /too old/],
    ['latest', /expected a version/],
    ['59', /expected a version/],
  ])('refuses API version %s', (version, reason) => {
    const error = settingsError({ ...base, ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem, ONCEKIT_SF_API_VERSION: version });
    expect(error.issues).toEqual([{ field: 'ONCEKIT_SF_API_VERSION', reason: expect.stringMatching(reason) }]);
  });

  it('takes a newer API version', () => {
    expect(
      salesforceAuthConfigFromEnv({ ...base, ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem, ONCEKIT_SF_API_VERSION: '62.0' }).apiVersion,
    ).toBe('62.0');
  });

  it('checks the login URL', () => {
    const jwt = { ...base, ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem };
    expect(settingsError({ ...jwt, ONCEKIT_SF_LOGIN_URL: 'http://login.salesforce.com' }).issues[0]?.reason).toMatch(/https/);
    expect(settingsError({ ...jwt, ONCEKIT_SF_LOGIN_URL: 'https://login.salesforce.com/services' }).issues[0]?.reason).toMatch(
      /origin only/,
    );
    expect(settingsError({ ...jwt, ONCEKIT_SF_LOGIN_URL: 'not a url' }).issues[0]?.field).toBe('ONCEKIT_SF_LOGIN_URL');
    const cc = { ONCEKIT_SF_CLIENT_ID: CLIENT_ID, ONCEKIT_SF_CLIENT_SECRET: CLIENT_SECRET };
    expect(settingsError({ ...cc, ONCEKIT_SF_LOGIN_URL: 'https://login.salesforce.com' }).issues[0]?.reason).toMatch(/My Domain/);
  });

  it('uses test.salesforce.com as the audience for sandboxes, unless told otherwise', () => {
    const jwt = { ...base, ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem };
    const sandbox = salesforceAuthConfigFromEnv({ ...jwt, ONCEKIT_SF_LOGIN_URL: 'https://acme--uat.sandbox.my.salesforce.com' });
    expect(sandbox.flow === 'jwt-bearer' && sandbox.audience).toBe('https://test.salesforce.com');
    const site = salesforceAuthConfigFromEnv({ ...jwt, ONCEKIT_SF_JWT_AUDIENCE: 'https://acme.my.site.com/customers/' });
    expect(site.flow === 'jwt-bearer' && site.audience).toBe('https://acme.my.site.com/customers');
  });

  it('never shows the client secret or the key when the settings are printed', () => {
    const cc = salesforceAuthConfigFromEnv({
      ONCEKIT_SF_CLIENT_ID: CLIENT_ID,
      ONCEKIT_SF_CLIENT_SECRET: CLIENT_SECRET,
      ONCEKIT_SF_LOGIN_URL: 'https://acme.my.salesforce.com',
    });
    const jwt = salesforceAuthConfigFromEnv({ ...base, ONCEKIT_SF_PRIVATE_KEY: testKeys().privatePem });
    for (const printed of [
      JSON.stringify(cc),
      inspect(cc, { depth: 5 }),
      `${cc.flow === 'client-credentials' && cc.clientSecret}`,
      inspect(jwt, { depth: 5 }),
    ]) {
      expect(printed).not.toContain(CLIENT_SECRET);
      expect(printed).not.toContain('PRIVATE KEY');
    }
  });
});

describe('createJwtAssertion', () => {
  it('signs RS256 claims Salesforce checks, expiring within 3 minutes', () => {
    const assertion = createJwtAssertion({
      clientId: CLIENT_ID,
      username: USERNAME,
      audience: 'https://login.salesforce.com',
      privateKey: testKeys().privateKey,
      nowMs: 1_700_000_000_000,
    });
    const [header, claims] = assertion
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as unknown);
    expect(header).toEqual({ alg: 'RS256' });
    expect(claims).toEqual({ iss: CLIENT_ID, sub: USERNAME, aud: 'https://login.salesforce.com', exp: 1_700_000_180 });
  });
});

describe('connectSalesforce against the fake org', () => {
  let org: FakeOrg;
  beforeAll(async () => {
    org = await startTestOrg({ records: { Lead: [LEAD] } });
  });
  afterAll(async () => {
    await org.close();
  });

  it('logs in with the JWT bearer flow (the fake verifies the signature) and reads records', async () => {
    const session = await connectSalesforce(salesforceAuthConfigFromEnv(jwtEnv(org)));
    expect(session.connection.instanceUrl).toBe(org.url);
    expect(session.connection.version).toBe('59.0');
    const result = await session.connection.query(SOQL);
    expect(result.records).toMatchObject([{ Id: LEAD.Id, Email: LEAD.Email }]);
    expect(org.tokenGrants.at(-1)).toEqual({ grantType: 'urn:ietf:params:oauth:grant-type:jwt-bearer', ok: true });
    expect(org.requests.at(-1)?.path).toBe('/services/data/v59.0/query');
  });

  it('fails the JWT flow with a key the org does not know, without leaking it', async () => {
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const attempt = connectSalesforce(salesforceAuthConfigFromEnv(jwtEnv(org, { ONCEKIT_SF_PRIVATE_KEY: otherKey })));
    await expect(attempt).rejects.toThrow(SalesforceAuthError);
    await expect(attempt).rejects.toMatchObject({
      oauthError: 'invalid_grant',
      message: expect.stringContaining('signature does not verify'),
    });
    await expect(attempt).rejects.not.toMatchObject({ message: expect.stringContaining('PRIVATE KEY') });
  });

  it('logs in with client credentials, and a wrong secret fails without appearing in the error', async () => {
    const session = await connectSalesforce(salesforceAuthConfigFromEnv(clientCredentialsEnv(org)));
    expect((await session.connection.query(SOQL)).totalSize).toBe(1);
    const wrong = 'sf-wrong-secret-Qm4Tn7';
    const error = await connectSalesforce(
      salesforceAuthConfigFromEnv(clientCredentialsEnv(org, { ONCEKIT_SF_CLIENT_SECRET: wrong })),
    ).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SalesforceAuthError);
    expect(error).toMatchObject({ oauthError: 'invalid_client' });
    expect(inspect(error, { depth: 5 })).not.toContain(wrong);
  });

  it('on an expired token mints a new one, retries the request, and announces the change', async () => {
    const logger = memoryLogger();
    const session = await connectSalesforce(salesforceAuthConfigFromEnv(jwtEnv(org)), { logger });
    const changes: TokenChange[] = [];
    session.onTokenChange((change) => changes.push(change));
    const firstToken = session.connection.accessToken;
    const grantsBefore = org.tokenGrants.length;
    const queriesBefore = org.requests.filter((request) => request.path.endsWith('/query')).length;

    org.invalidateTokens();
    const result = await session.connection.query(SOQL);

    expect(result.records).toHaveLength(1);
    expect(org.tokenGrants.length).toBe(grantsBefore + 1);
    expect(org.requests.filter((request) => request.path.endsWith('/query')).length).toBe(queriesBefore + 2);
    expect(session.connection.accessToken).not.toBe(firstToken);
    expect(changes).toEqual([{ reason: 'refresh', instanceUrl: org.url, mintedAt: expect.any(Number) }]);
    const logged = JSON.stringify(logger.lines);
    expect(logged).toContain('salesforce_token_minted');
    expect(logged).not.toContain(String(firstToken));
    expect(logged).not.toContain(String(session.connection.accessToken));
  });

  it('shares one token request between concurrent refreshes', async () => {
    const session = await connectSalesforce(salesforceAuthConfigFromEnv(clientCredentialsEnv(org)));
    const before = org.tokenGrants.length;
    await Promise.all([session.refresh(), session.refresh(), session.refresh()]);
    expect(org.tokenGrants.length).toBe(before + 1);
  });

  it('fails the request when no new token can be minted, without the secret in the error', async () => {
    const session = await connectSalesforce(salesforceAuthConfigFromEnv(clientCredentialsEnv(org)));
    org.invalidateTokens();
    org.failTokenRequests(1);
    const error = await session.connection.query(SOQL).then(
      () => null,
      (caught: unknown) => caught,
    );
    expect(String(error)).toMatch(/Unable to refresh session.*invalid_grant/);
    expect(inspect(error, { depth: 5 })).not.toContain(CLIENT_SECRET);
  });

  it('stops minting when Salesforce keeps refusing fresh tokens', async () => {
    const session = await connectSalesforce(salesforceAuthConfigFromEnv(clientCredentialsEnv(org)), {
      refreshLimit: { count: 2, windowMs: 60_000 },
    });
    await session.refresh();
    await session.refresh();
    const before = org.tokenGrants.length;
    await expect(session.refresh()).rejects.toThrow(/refused 2 fresh tokens within 60 s/);
    expect(org.tokenGrants.length).toBe(before);
  });
});
