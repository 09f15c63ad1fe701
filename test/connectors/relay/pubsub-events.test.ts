import './helpers.js';
import * as grpc from '@grpc/grpc-js';
import avro from 'avsc';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_PLATFORM_EVENT_CHANNEL } from '../../../connectors/salesforce/platform-event-mapping.js';
import { metadataFor, unary } from '../../../connectors/salesforce/pubsub-client.js';
import { pubSubService } from '../../../connectors/salesforce/pubsub-proto.js';
import type { FakeOrg, FakePubSub } from '../../../sandbox/salesforce-org/index.js';
import { startSandbox } from '../../../sandbox/target/index.js';
import type { Sandbox } from '../../../sandbox/target/server.js';
import { clientCredentialsEnv, connectTo, startTestOrg } from '../salesforce/helpers.js';
import { RELAY_SECRET, startTestRelay, type TestRelay, tempDir, waitFor } from './helpers.js';

/** Platform Events through the relay over the Pub/Sub API (the default transport), against the fake org's server. */

const CHANNEL = DEFAULT_PLATFORM_EVENT_CHANNEL;
const API_KEY = 'ps-target-key-Qa3Ws5Ed7Rf9';

let org: FakeOrg;
let pubsub: FakePubSub;
let target: Sandbox;
let dir: ReturnType<typeof tempDir>;
const relays: TestRelay[] = [];

beforeAll(async () => {
  org = await startTestOrg({ pubsub: { keepaliveMs: 200 } });
  pubsub = org.pubsub as FakePubSub;
  target = await startSandbox({ port: 0, apiKey: API_KEY });
  dir = tempDir('oncekit-pubsub-');
});
afterEach(async () => {
  await Promise.all(relays.splice(0).map((running) => running.relay.stop()));
});
afterAll(async () => {
  await org.close();
  await target.close();
  dir.remove();
});

function payload(tag: string, n: number): Record<string, unknown> {
  return { User_Id__c: `${tag}-${n}@example.com`, Event_Key__c: 'purchase', Fields__c: JSON.stringify({ n }) };
}

async function startRelay(tenant: string, store = 'memory'): Promise<TestRelay> {
  const running = await startTestRelay(
    { ...clientCredentialsEnv(org), ONCEKIT_TARGET_URL: target.url, ONCEKIT_TENANT: tenant, ONCEKIT_API_KEY: API_KEY },
    store,
  );
  relays.push(running);
  return running;
}

const recorded = (tenant: string) => target.inspect(tenant).events;

describe('Platform Events over the Pub/Sub API through the relay', () => {
  it('records each event once at the target, keyed by its EventUuid, including one published with the Publish RPC', async () => {
    const tenant = 'pubsub_once';
    const running = await startRelay(tenant);
    expect(running.relay.subscriber?.state).toBe('subscribed');
    const published = [1, 2, 3].map((n) => pubsub.publish(CHANNEL, payload('once', n)));

    // A publisher using the API itself: GetTopic for the schema id, GetSchema for the schema, Publish.
    const session = await connectTo(org);
    const { Client } = pubSubService();
    const client = new Client(pubsub.address, grpc.credentials.createInsecure());
    const metadata = metadataFor({
      accessToken: session.connection.accessToken ?? '',
      instanceUrl: session.connection.instanceUrl,
      tenantId: session.orgId ?? '',
    });
    const topic = await unary(client.GetTopic.bind(client), { topic_name: CHANNEL }, metadata);
    const schema = await unary(client.GetSchema.bind(client), { schema_id: topic.schema_id }, metadata);
    const type = avro.Type.forSchema(JSON.parse(schema.schema_json) as avro.Schema);
    const record = {
      CreatedDate: Date.now(),
      CreatedById: '005000000000001AAA',
      ...payload('once', 4),
      Account_Id__c: null,
      Date_Triggered__c: null,
      Idempotency_Key__c: null,
    };
    const answer = await unary(
      client.Publish.bind(client),
      {
        topic_name: CHANNEL,
        events: [{ id: 'e2b7c9c0-5b7e-4c55-9d0e-4f1b0c7f0004', schema_id: topic.schema_id, payload: type.toBuffer(record) }],
      },
      metadata,
    );
    client.close();
    expect(answer.results[0]?.error).toBeNull();

    await waitFor('four events recorded', () => recorded(tenant).length === 4);
    const keys = recorded(tenant).map((event) => event.idempotencyKey);
    expect(keys.sort()).toEqual([...published.map((event) => event.eventUuid), 'e2b7c9c0-5b7e-4c55-9d0e-4f1b0c7f0004'].sort());
    expect(recorded(tenant).find((event) => event.userId === 'once-2@example.com')).toMatchObject({ key: 'purchase', fields: { n: 2 } });
    await waitFor('the outbox settled', async () => (await running.relay.outbox.counts(tenant)).delivered === 4);
  });

  it('a poison event (bytes that do not decode) becomes a dead letter with its reason, and the events after it are delivered', async () => {
    const tenant = 'pubsub_poison';
    const running = await startRelay(tenant);
    pubsub.publish(CHANNEL, payload('poison', 1));
    const poison = pubsub.publishPoison(CHANNEL);
    const after = [2, 3].map((n) => pubsub.publish(CHANNEL, payload('poison', n)));
    await waitFor('the events around the poison recorded', () => recorded(tenant).length === 3);
    expect(recorded(tenant).map((event) => event.idempotencyKey)).toEqual(expect.arrayContaining(after.map((event) => event.eventUuid)));
    await waitFor('the dead letter', async () => (await running.relay.outbox.counts(tenant)).dead === 1);
    const [dead] = await running.relay.outbox.listDead(tenant);
    expect(dead).toMatchObject({ sourceId: poison.eventUuid, input: null, attempts: [] });
    expect(dead?.deadReason).toMatch(/could not be mapped: .*payload.*cannot be decoded/);
    expect(running.relay.subscriber?.state).toBe('subscribed');
  });

  it('recovers from a stream error and an expired session on its own: every event recorded once', async () => {
    const tenant = 'pubsub_faults';
    const running = await startRelay(tenant);
    const published = [pubsub.publish(CHANNEL, payload('faults', 1))];
    await waitFor('the first event', () => recorded(tenant).length === 1);
    pubsub.failStreams(grpc.status.INTERNAL, 'stream reset by the server');
    published.push(pubsub.publish(CHANNEL, payload('faults', 2)));
    await waitFor('the second event after the stream error', () => recorded(tenant).length === 2, 10_000);
    org.invalidateTokens();
    published.push(pubsub.publish(CHANNEL, payload('faults', 3)));
    await waitFor('the third event after the session expired', () => recorded(tenant).length === 3, 10_000);
    expect(
      recorded(tenant)
        .map((event) => event.idempotencyKey)
        .sort(),
    ).toEqual(published.map((event) => event.eventUuid).sort());
    const lines = running.logs.lines();
    expect(lines.some((line) => line.event === 'platform_events_reconnecting' && /UNAUTHENTICATED/.test(String(line.reason)))).toBe(true);
    expect(lines.some((line) => line.event === 'salesforce_token_minted' && line.reason === 'refresh')).toBe(true);
    await waitFor('subscribed again', () => running.relay.subscriber?.state === 'subscribed');
  });

  it('a channel the org does not have stops the relay at start, naming it', async () => {
    const start = startTestRelay(
      {
        ...clientCredentialsEnv(org),
        ONCEKIT_SF_EVENT_CHANNEL: '/event/Not_There__e',
        ONCEKIT_TARGET_URL: target.url,
        ONCEKIT_TENANT: 'pubsub_unknown',
        ONCEKIT_API_KEY: API_KEY,
      },
      'memory',
    );
    await expect(start).rejects.toThrow(/no topic \/event\/Not_There__e/);
  });

  it('reports the subscription on /readyz and the status page', async () => {
    const running = await startRelay('pubsub_ready');
    const ready = await fetch(`${running.relay.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { salesforce: 'ok' } });
    const status = await fetch(`${running.relay.url}/status/api/summary`, { headers: { authorization: `Bearer ${RELAY_SECRET}` } });
    expect(JSON.stringify(await status.json())).toContain(`${CHANNEL} (pubsub): subscribed`);
  });

  it('with a managed subscription, the relay commits replay ids to Salesforce after the outbox has the events', async () => {
    const managedOrg = await startTestOrg({ pubsub: { managedSubscriptions: { Oncekit_Relay_Events: { topic: CHANNEL } } } });
    const tenant = 'pubsub_managed';
    try {
      const running = await startTestRelay(
        {
          ...clientCredentialsEnv(managedOrg),
          ONCEKIT_SF_MANAGED_SUBSCRIPTION: 'Oncekit_Relay_Events',
          ONCEKIT_TARGET_URL: target.url,
          ONCEKIT_TENANT: tenant,
          ONCEKIT_API_KEY: API_KEY,
        },
        'memory',
      );
      relays.push(running);
      const server = managedOrg.pubsub as FakePubSub;
      const published = [1, 2].map((n) => server.publish(CHANNEL, payload('managed', n)));
      await waitFor('both recorded', () => recorded(tenant).length === 2);
      await waitFor('the commit', () => server.committed('Oncekit_Relay_Events') === published[1]?.position);
      expect(
        recorded(tenant)
          .map((event) => event.idempotencyKey)
          .sort(),
      ).toEqual(published.map((event) => event.eventUuid).sort());
      await running.relay.stop();
    } finally {
      await managedOrg.close();
    }
  });

  it('a restarted relay resumes from its checkpoint in the store: nothing lost, nothing doubled', async () => {
    const tenant = 'pubsub_restart';
    const store = `sqlite:${dir.dir}/restart.db`;
    const first = await startRelay(tenant, store);
    const published = [1, 2, 3].map((n) => pubsub.publish(CHANNEL, payload('restart', n)));
    await waitFor('three recorded', () => recorded(tenant).length === 3);
    const stopping = first.relay.stop();
    for (let n = 4; n <= 6; n++) published.push(pubsub.publish(CHANNEL, payload('restart', n)));
    await stopping;
    for (let n = 7; n <= 9; n++) published.push(pubsub.publish(CHANNEL, payload('restart', n)));
    const requestsBefore = pubsub.fetchRequests.length;
    const second = await startRelay(tenant, store);
    await waitFor('all nine recorded', () => recorded(tenant).length >= 9, 10_000);
    await waitFor('the outbox settled', async () => {
      const counts = await second.relay.outbox.counts(tenant);
      return counts.pending === 0 && counts.leased === 0;
    });
    expect(
      recorded(tenant)
        .map((event) => event.idempotencyKey)
        .sort(),
    ).toEqual(published.map((event) => event.eventUuid).sort());
    const resumed = pubsub.fetchRequests.slice(requestsBefore).find((request) => request.replayPreset !== null);
    expect(resumed?.replayPreset).toBe('CUSTOM');
    // From at least the third event's replay id: what the first relay had checkpointed.
    expect(resumed?.replayFrom ?? 0).toBeGreaterThanOrEqual(published[2]?.position ?? Number.POSITIVE_INFINITY);
  });
});
