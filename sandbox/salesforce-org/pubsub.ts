import { createHash, randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import avro from 'avsc';
import {
  type FetchRequest,
  type FetchResponse,
  type ManagedFetchRequest,
  type ManagedFetchResponse,
  type ProducerEvent,
  type PublishRequest,
  type PublishResponse,
  pubSubService,
  type SchemaInfo,
  type SchemaRequest,
  type TopicInfo,
  type TopicRequest,
} from '../../connectors/salesforce/pubsub-proto.js';

/**
 * The fake org's Pub/Sub API: a gRPC server on loopback (plaintext) speaking Salesforce's real `pubsub_api.proto`, for
 * the REAL @grpc/grpc-js client. Every call needs the metadata Salesforce wants (`accesstoken` of a token the org
 * issued, `instanceurl`, `tenantid`), else UNAUTHENTICATED. What it serves:
 * - `Subscribe`: pull-based, it sends only as many events as the client asked for (`num_requested`, added up over the
 *   stream's FetchRequests) from the retained log; LATEST, EARLIEST or CUSTOM (after a replay id it still has, else
 *   INVALID_ARGUMENT with Salesforce's `replayid` error code); while requested events wait for new ones, an empty
 *   FetchResponse with the subscription's position as a keepalive;
 * - `ManagedSubscribe` (Beta) for the managed subscriptions it is given: it starts after the position committed with
 *   `commit_replay_id_request` (or at the subscription's preset) and answers each commit with a `commit_response`;
 * - `GetSchema`, `GetTopic`, `Publish` (Avro payloads checked against the topic's schema);
 * - fault injection: stream errors, auth expiry (open streams end UNAUTHENTICATED, as when a session expires), a
 *   poison event (payload bytes that do not decode), and retention (dropping old events).
 * Replay ids are 8-byte big-endian numbers, as Salesforce's are.
 */

/** Avro, as Salesforce serves Platform Event schemas: system fields, then each custom field as a nullable union. */
export type AvroRecordSchema = {
  readonly type: 'record';
  readonly name: string;
  readonly namespace?: string;
  readonly fields: readonly { readonly name: string; readonly type: unknown; readonly doc?: string; readonly default?: unknown }[];
};

const nullable = (type: unknown, doc: string) => ({ type: ['null', type], doc, default: null });

/** SaaSquatch_User_Event__e as Salesforce describes it over Pub/Sub (its custom fields match force-app/…/fields). */
export const USER_EVENT_AVRO_SCHEMA: AvroRecordSchema = {
  type: 'record',
  name: 'SaaSquatch_User_Event__e',
  namespace: 'com.sforce.eventbus',
  fields: [
    { name: 'CreatedDate', type: 'long', doc: 'CreatedDate:DateTime' },
    { name: 'CreatedById', type: 'string', doc: 'CreatedBy:EntityId' },
    { name: 'User_Id__c', ...nullable('string', 'Data:Text:00N000000000001') },
    { name: 'Account_Id__c', ...nullable('string', 'Data:Text:00N000000000002') },
    { name: 'Event_Key__c', ...nullable('string', 'Data:Text:00N000000000003') },
    { name: 'Fields__c', ...nullable('string', 'Data:LongTextArea:00N000000000004') },
    { name: 'Date_Triggered__c', ...nullable({ type: 'long', logicalType: 'timestamp-millis' }, 'Data:DateTime:00N000000000005') },
    { name: 'Idempotency_Key__c', ...nullable('string', 'Data:Text:00N000000000006') },
  ],
};

export interface FakePubSubOptions {
  /** Whether an access token is one the org issued and has not invalidated. */
  readonly tokenIsValid: (token: string) => boolean;
  readonly instanceUrl: string;
  readonly tenantId: string;
  /** Topic name → Avro schema of its events. Default: /event/SaaSquatch_User_Event__e. */
  readonly topics?: Readonly<Record<string, AvroRecordSchema>>;
  /** How often an idle subscription gets an empty FetchResponse (Salesforce: within 270 s). Default 30 s. */
  readonly keepaliveMs?: number;
  /** Managed subscriptions by developer name (ManagedEventSubscription records): the topic and where a new one starts. */
  readonly managedSubscriptions?: Readonly<Record<string, { readonly topic: string; readonly replayPreset?: 'LATEST' | 'EARLIEST' }>>;
}

export interface PubSubPublished {
  readonly replayId: Buffer;
  /** The replay id as a number, for tests (Salesforce's are opaque). */
  readonly position: number;
  readonly eventUuid: string;
}

export interface RecordedFetchRequest {
  readonly topic: string;
  readonly replayPreset: string | null;
  /** The CUSTOM replay id as a number, on the first request of a stream. */
  readonly replayFrom: number | null;
  readonly numRequested: number;
}

export interface PubSubSubscriptionState {
  readonly topic: string;
  /** Events requested and not yet sent. */
  readonly pendingRequested: number;
  /** Events sent on this stream. */
  readonly sent: number;
  /** Retained events after this stream's position: what waits at the server for it. */
  readonly waiting: number;
}

export interface FakePubSub {
  /** `host:port` for a gRPC client. */
  readonly address: string;
  /** `http://127.0.0.1:port`: plaintext, loopback only. */
  readonly url: string;
  readonly fetchRequests: readonly RecordedFetchRequest[];
  /** Schema ids asked for with GetSchema, in order. */
  readonly schemaRequests: readonly string[];
  /** Encodes `payload` with the topic's schema (system fields filled in) and appends it to the topic's log. */
  publish(topic: string, payload: Readonly<Record<string, unknown>>, options?: { readonly eventUuid?: string }): PubSubPublished;
  /** Appends an event whose payload bytes do not decode with its schema. */
  publishPoison(topic: string, options?: { readonly eventUuid?: string }): PubSubPublished;
  /** Drops retained events up to and including `position`, as the 72-hour retention does. */
  expireEventsThrough(topic: string, position: number): void;
  /**
   * Writes an empty FetchResponse with these fields on every open stream of `topic`: as a response already on the wire
   * when the client's next FetchRequest crossed it, whose replay id and pending count predate that request.
   */
  sendEmptyResponse(topic: string, response: { readonly latestPosition: number; readonly pendingNumRequested: number }): void;
  /** Every open Subscribe stream ends with this status (default UNAVAILABLE), as when a server node goes away. */
  failStreams(code?: grpc.status, details?: string): void;
  /** Every open Subscribe stream ends UNAUTHENTICATED (the org's invalidateTokens calls this). */
  expireSessions(): void;
  subscriptions(): readonly PubSubSubscriptionState[];
  /** The replay position committed to a managed subscription (a number, for tests), or null. */
  committed(developerName: string): number | null;
  close(): Promise<void>;
}

interface Retained {
  readonly position: number;
  readonly event: ProducerEvent;
}

interface Topic {
  readonly name: string;
  readonly type: avro.Type;
  readonly schemaJson: string;
  readonly schemaId: string;
  readonly log: Retained[];
  /** Positions up to this one are gone (retention). */
  expiredThrough: number;
}

interface Managed {
  readonly id: string;
  readonly developerName: string;
  readonly topic: string;
  readonly replayPreset: 'LATEST' | 'EARLIEST';
  committed: number | null;
}

interface Subscription {
  readonly call: grpc.ServerDuplexStream<FetchRequest, FetchResponse> | grpc.ServerDuplexStream<ManagedFetchRequest, ManagedFetchResponse>;
  topic: Topic | null;
  position: number;
  pending: number;
  sent: number;
  ended: boolean;
}

const REPLAY_ID_ERROR = 'sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted';
/** Salesforce sends at most this many events in one FetchResponse. */
const MAX_EVENTS_PER_RESPONSE = 100;

export function replayIdOf(position: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(position));
  return buffer;
}

function positionOf(replayId: Buffer): number | null {
  if (replayId.length !== 8) return null;
  const value = replayId.readBigUInt64BE();
  return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : null;
}

function schemaIdOf(schemaJson: string): string {
  return createHash('sha256').update(schemaJson).digest('base64url').slice(0, 22);
}

export async function startFakePubSub(options: FakePubSubOptions): Promise<FakePubSub> {
  const { service } = pubSubService();
  const topics = new Map<string, Topic>();
  for (const [name, schema] of Object.entries(options.topics ?? { '/event/SaaSquatch_User_Event__e': USER_EVENT_AVRO_SCHEMA })) {
    const schemaJson = JSON.stringify(schema);
    topics.set(name, {
      name,
      type: avro.Type.forSchema(schema as avro.Schema),
      schemaJson,
      schemaId: schemaIdOf(schemaJson),
      log: [],
      expiredThrough: 0,
    });
  }
  const schemas = new Map([...topics.values()].map((topic) => [topic.schemaId, topic]));
  const managed = new Map<string, Managed>();
  for (const [developerName, settings] of Object.entries(options.managedSubscriptions ?? {})) {
    if (!topics.has(settings.topic)) throw new Error(`managed subscription ${developerName}: no topic ${settings.topic}`);
    const entry: Managed = {
      id: `0Xa${String(managed.size + 1).padStart(12, '0')}`,
      developerName,
      topic: settings.topic,
      replayPreset: settings.replayPreset ?? 'LATEST',
      committed: null,
    };
    managed.set(developerName, entry);
    managed.set(entry.id, entry);
  }
  let lastPosition = 5000;
  const fetchRequests: RecordedFetchRequest[] = [];
  const schemaRequests: string[] = [];
  const open = new Set<Subscription>();

  const unauthenticated = (): grpc.ServiceError => {
    const metadata = new grpc.Metadata();
    metadata.set('error-code', 'sfdc.platform.eventbus.grpc.service.auth.error');
    return Object.assign(new Error('An error occurred while getting the metadata for the session'), {
      code: grpc.status.UNAUTHENTICATED,
      details: 'An error occurred while getting the metadata for the session',
      metadata,
    });
  };
  const authorized = (metadata: grpc.Metadata): boolean => {
    const [token] = metadata.get('accesstoken');
    const [instanceUrl] = metadata.get('instanceurl');
    const [tenantId] = metadata.get('tenantid');
    return (
      typeof token === 'string' &&
      options.tokenIsValid(token) &&
      String(instanceUrl ?? '').replace(/\/+$/, '') === options.instanceUrl &&
      tenantId === options.tenantId
    );
  };
  const failure = (code: grpc.status, details: string, errorCode?: string): grpc.ServiceError => {
    const metadata = new grpc.Metadata();
    if (errorCode) metadata.set('error-code', errorCode);
    return Object.assign(new Error(details), { code, details, metadata });
  };

  function end(subscription: Subscription, error: grpc.ServiceError | null): void {
    if (subscription.ended) return;
    subscription.ended = true;
    open.delete(subscription);
    if (error) subscription.call.emit('error', error);
    else subscription.call.end();
  }

  /** Registers an open stream: keepalives while it is idle, and cleanup when it ends. */
  function watch(subscription: Subscription): void {
    const { call } = subscription;
    open.add(subscription);
    // As Salesforce does: only while requested events wait for the bus (pending > 0, so every retained event has been
    // sent), with the subscription's own position; never the topic's tip while unrequested events wait behind it.
    const keepalive = setInterval(() => {
      if (subscription.ended || !subscription.topic || subscription.pending === 0) return;
      call.write({
        events: [],
        latest_replay_id: replayIdOf(subscription.position),
        rpc_id: randomUUID(),
        pending_num_requested: subscription.pending,
      });
    }, options.keepaliveMs ?? 30_000);
    keepalive.unref();
    const cleanup = (): void => {
      clearInterval(keepalive);
      subscription.ended = true;
      open.delete(subscription);
    };
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
    call.on('error', cleanup);
    call.on('end', () => {
      cleanup();
      call.end();
    });
  }

  /** Sends what the subscription asked for, from its position on. */
  function pump(subscription: Subscription): void {
    const topic = subscription.topic;
    if (!topic || subscription.ended) return;
    while (subscription.pending > 0) {
      const start = topic.log.findIndex((retained) => retained.position > subscription.position);
      if (start < 0) return;
      const batch = topic.log.slice(start, start + Math.min(subscription.pending, MAX_EVENTS_PER_RESPONSE));
      const last = batch.at(-1) as Retained;
      subscription.position = last.position;
      subscription.pending -= batch.length;
      subscription.sent += batch.length;
      subscription.call.write({
        events: batch.map((retained) => ({ event: retained.event, replay_id: replayIdOf(retained.position) })),
        latest_replay_id: replayIdOf(last.position),
        rpc_id: randomUUID(),
        pending_num_requested: subscription.pending,
      });
    }
  }

  function startPosition(topic: Topic, request: FetchRequest): number | grpc.ServiceError {
    const preset = request.replay_preset ?? 'LATEST';
    if (preset === 'EARLIEST') return topic.expiredThrough > 0 ? topic.expiredThrough : (topic.log[0]?.position ?? lastPosition + 1) - 1;
    if (preset === 'CUSTOM') {
      const position = positionOf(request.replay_id ?? Buffer.alloc(0));
      if (position === null || position <= topic.expiredThrough || position > lastPosition) {
        return failure(
          grpc.status.INVALID_ARGUMENT,
          'The Replay ID validation failed. Ensure that the Replay ID is valid.',
          REPLAY_ID_ERROR,
        );
      }
      return position;
    }
    return topic.log.at(-1)?.position ?? lastPosition;
  }

  const implementation: grpc.UntypedServiceImplementation = {
    Subscribe(call: grpc.ServerDuplexStream<FetchRequest, FetchResponse>) {
      const subscription: Subscription = { call, topic: null, position: 0, pending: 0, sent: 0, ended: false };
      if (!authorized(call.metadata)) {
        call.emit('error', unauthenticated());
        return;
      }
      watch(subscription);
      call.on('data', (request: FetchRequest) => {
        if (subscription.ended) return;
        const first = subscription.topic === null;
        const name = request.topic_name ?? '';
        if (first || name !== '') {
          fetchRequests.push({
            topic: name,
            replayPreset: first ? (request.replay_preset ?? 'LATEST') : null,
            replayFrom: first && request.replay_preset === 'CUSTOM' ? positionOf(request.replay_id ?? Buffer.alloc(0)) : null,
            numRequested: request.num_requested ?? 0,
          });
        } else {
          fetchRequests.push({
            topic: subscription.topic?.name ?? '',
            replayPreset: null,
            replayFrom: null,
            numRequested: request.num_requested ?? 0,
          });
        }
        if (first) {
          const topic = topics.get(name);
          if (!topic)
            return end(
              subscription,
              failure(grpc.status.NOT_FOUND, `topic ${name} does not exist`, 'sfdc.platform.eventbus.grpc.topic.not.found'),
            );
          const start = startPosition(topic, request);
          if (typeof start !== 'number') return end(subscription, start);
          subscription.topic = topic;
          subscription.position = start;
          // The response headers tell the client the subscription is accepted before any event exists.
          call.sendMetadata(new grpc.Metadata());
        } else if (name !== '' && name !== subscription.topic?.name) {
          return end(subscription, failure(grpc.status.INVALID_ARGUMENT, 'topic_name differs from the first FetchRequest'));
        }
        subscription.pending += Math.max(0, request.num_requested ?? 0);
        pump(subscription);
      });
    },

    ManagedSubscribe(call: grpc.ServerDuplexStream<ManagedFetchRequest, ManagedFetchResponse>) {
      const subscription: Subscription = { call, topic: null, position: 0, pending: 0, sent: 0, ended: false };
      if (!authorized(call.metadata)) {
        call.emit('error', unauthenticated());
        return;
      }
      let entry: Managed | null = null;
      watch(subscription);
      call.on('data', (request: ManagedFetchRequest) => {
        if (subscription.ended) return;
        if (entry === null) {
          const name = request.subscription_id || request.developer_name || '';
          const found = managed.get(name);
          if (!found)
            return end(
              subscription,
              failure(grpc.status.NOT_FOUND, `no managed subscription ${name}`, 'sfdc.platform.eventbus.grpc.subscription.not.found'),
            );
          entry = found;
          const topic = topicNamed(found.topic);
          subscription.topic = topic;
          subscription.position = found.committed ?? (startPosition(topic, { replay_preset: found.replayPreset }) as number);
          call.sendMetadata(new grpc.Metadata());
        }
        fetchRequests.push({ topic: entry.topic, replayPreset: null, replayFrom: null, numRequested: request.num_requested ?? 0 });
        const commit = request.commit_replay_id_request;
        if (commit) {
          const position = positionOf(commit.replay_id ?? Buffer.alloc(0));
          const valid = position !== null && position <= lastPosition;
          if (valid) entry.committed = position;
          (call as grpc.ServerDuplexStream<ManagedFetchRequest, ManagedFetchResponse>).write({
            events: [],
            latest_replay_id: replayIdOf(subscription.position),
            rpc_id: randomUUID(),
            pending_num_requested: subscription.pending,
            commit_response: {
              commit_request_id: commit.commit_request_id,
              replay_id: commit.replay_id,
              error: valid ? null : { code: 'COMMIT', msg: 'the replay id is not valid' },
              process_time: String(Date.now()),
            },
          });
        }
        subscription.pending += Math.max(0, request.num_requested ?? 0);
        pump(subscription);
      });
    },

    GetSchema(call: grpc.ServerUnaryCall<SchemaRequest, SchemaInfo>, callback: grpc.sendUnaryData<SchemaInfo>) {
      if (!authorized(call.metadata)) return callback(unauthenticated());
      schemaRequests.push(call.request.schema_id);
      const topic = schemas.get(call.request.schema_id);
      if (!topic)
        return callback(
          failure(grpc.status.NOT_FOUND, `no schema ${call.request.schema_id}`, 'sfdc.platform.eventbus.grpc.schema.not.found'),
        );
      callback(null, { schema_json: topic.schemaJson, schema_id: topic.schemaId, rpc_id: randomUUID() });
    },

    GetTopic(call: grpc.ServerUnaryCall<TopicRequest, TopicInfo>, callback: grpc.sendUnaryData<TopicInfo>) {
      if (!authorized(call.metadata)) return callback(unauthenticated());
      const topic = topics.get(call.request.topic_name);
      if (!topic)
        return callback(
          failure(grpc.status.NOT_FOUND, `topic ${call.request.topic_name} does not exist`, 'sfdc.platform.eventbus.grpc.topic.not.found'),
        );
      callback(null, {
        topic_name: topic.name,
        tenant_guid: options.tenantId,
        can_publish: true,
        can_subscribe: true,
        schema_id: topic.schemaId,
        rpc_id: randomUUID(),
      });
    },

    Publish(call: grpc.ServerUnaryCall<PublishRequest, PublishResponse>, callback: grpc.sendUnaryData<PublishResponse>) {
      if (!authorized(call.metadata)) return callback(unauthenticated());
      const topic = topics.get(call.request.topic_name);
      if (!topic)
        return callback(
          failure(grpc.status.NOT_FOUND, `topic ${call.request.topic_name} does not exist`, 'sfdc.platform.eventbus.grpc.topic.not.found'),
        );
      const results = call.request.events.map((event) => {
        const payload = event.payload ?? Buffer.alloc(0);
        if (event.schema_id !== topic.schemaId || !decodes(topic.type, payload)) {
          return { replay_id: Buffer.alloc(0), error: { code: 'PUBLISH', msg: 'the payload does not match the topic schema' } };
        }
        const appended = append(topic, { id: event.id || randomUUID(), schema_id: topic.schemaId, payload, headers: [] });
        return { replay_id: appended.replayId, error: null };
      });
      callback(null, { results, schema_id: topic.schemaId, rpc_id: randomUUID() });
    },
  };

  function append(topic: Topic, event: ProducerEvent): PubSubPublished {
    const position = ++lastPosition;
    topic.log.push({ position, event });
    for (const subscription of open) if (subscription.topic === topic) pump(subscription);
    return { replayId: replayIdOf(position), position, eventUuid: event.id };
  }

  function topicNamed(name: string): Topic {
    const topic = topics.get(name);
    if (!topic) throw new Error(`the fake Pub/Sub server has no topic ${name}`);
    return topic;
  }

  const server = new grpc.Server();
  server.addService(service, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  const address = `127.0.0.1:${port}`;

  return {
    address,
    url: `http://${address}`,
    fetchRequests,
    schemaRequests,
    publish(name, payload, publishOptions = {}) {
      const topic = topicNamed(name);
      const record = { CreatedDate: Date.now(), CreatedById: '005000000000001AAA', ...avroDefaults(topic), ...payload };
      return append(topic, {
        id: publishOptions.eventUuid ?? randomUUID(),
        schema_id: topic.schemaId,
        payload: topic.type.toBuffer(record),
        headers: [],
      });
    },
    publishPoison(name, publishOptions = {}) {
      const topic = topicNamed(name);
      // A long that never ends: every byte has its continuation bit set.
      return append(topic, {
        id: publishOptions.eventUuid ?? randomUUID(),
        schema_id: topic.schemaId,
        payload: Buffer.from([0xff, 0xff, 0xff]),
        headers: [],
      });
    },
    expireEventsThrough(name, position) {
      const topic = topicNamed(name);
      topic.expiredThrough = Math.max(topic.expiredThrough, position);
      const keep = topic.log.filter((retained) => retained.position > position);
      topic.log.splice(0, topic.log.length, ...keep);
    },
    sendEmptyResponse(name, response) {
      const topic = topicNamed(name);
      for (const subscription of open) {
        if (subscription.topic !== topic) continue;
        subscription.call.write({
          events: [],
          latest_replay_id: replayIdOf(response.latestPosition),
          rpc_id: randomUUID(),
          pending_num_requested: response.pendingNumRequested,
        });
      }
    },
    failStreams(code = grpc.status.UNAVAILABLE, details = 'the Pub/Sub server closed the stream') {
      for (const subscription of [...open]) end(subscription, failure(code, details));
    },
    expireSessions() {
      for (const subscription of [...open]) end(subscription, unauthenticated());
    },
    subscriptions() {
      return [...open].map((subscription) => ({
        topic: subscription.topic?.name ?? '',
        pendingRequested: subscription.pending,
        sent: subscription.sent,
        waiting: subscription.topic ? subscription.topic.log.filter((retained) => retained.position > subscription.position).length : 0,
      }));
    },
    committed(developerName) {
      return managed.get(developerName)?.committed ?? null;
    },
    async close() {
      for (const subscription of [...open]) end(subscription, failure(grpc.status.UNAVAILABLE, 'the server is shutting down'));
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      server.forceShutdown();
    },
  };
}

function decodes(type: avro.Type, payload: Buffer): boolean {
  try {
    type.fromBuffer(payload);
    return true;
  } catch {
    return false;
  }
}

/** Every nullable field null, so a test's payload names only the fields it sets. */
function avroDefaults(topic: Topic): Record<string, unknown> {
  const schema = JSON.parse(topic.schemaJson) as AvroRecordSchema;
  return Object.fromEntries(schema.fields.filter((field) => 'default' in field).map((field) => [field.name, field.default]));
}
