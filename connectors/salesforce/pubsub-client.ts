import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import avro from 'avsc';
import { InvalidInputError, messageOf, OncekitError } from '../../shared/errors.js';
import { type PubSubGrpcClient, pubSubService } from './pubsub-proto.js';

/**
 * The gRPC side of the Pub/Sub subscriber: where the API is, the session metadata Salesforce wants on every call, and
 * Avro decoding with schemas fetched by id (GetSchema) and cached. Loose gRPC and Avro values stay in this module.
 */

export const DEFAULT_PUBSUB_ENDPOINT = 'api.pubsub.salesforce.com:7443';

export interface PubSubEndpoint {
  /** `host:port` */
  readonly address: string;
  /** True only for a loopback host given as `http://…` (the fake org in tests and the demo). */
  readonly plaintext: boolean;
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

function isLoopback(host: string): boolean {
  if (LOOPBACK_NAMES.has(host)) return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/**
 * Reads `host:port`, `https://host:port` (TLS) or `http://127.0.0.1:port` (plaintext, refused for any host but
 * loopback: the access token would cross the network in clear). `field` names the setting in errors.
 */
export function parsePubSubEndpoint(text: string, field = 'ONCEKIT_SF_PUBSUB_ENDPOINT'): PubSubEndpoint {
  const trimmed = text.trim();
  const withScheme = /^[a-z]+:\/\//i.test(trimmed) ? trimmed : `https://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new InvalidInputError([{ field, reason: 'expected host:port, https://host:port or http://127.0.0.1:port' }]);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new InvalidInputError([{ field, reason: 'expected only a host and port' }]);
  }
  const port = url.port || (url.protocol === 'https:' ? '443' : '');
  if (!port) throw new InvalidInputError([{ field, reason: 'expected a port, e.g. api.pubsub.salesforce.com:7443' }]);
  if (url.protocol === 'http:') {
    if (!isLoopback(url.hostname)) {
      throw new InvalidInputError([
        { field, reason: 'plaintext (http://) is only for a loopback test server; use TLS for any other host' },
      ]);
    }
    return { address: `${url.hostname}:${port}`, plaintext: true };
  }
  if (url.protocol !== 'https:') throw new InvalidInputError([{ field, reason: 'expected https:// or a loopback http://' }]);
  return { address: `${url.hostname}:${port}`, plaintext: false };
}

/** What every Pub/Sub call carries: the session's token, instance URL and org id. */
export interface PubSubCredentials {
  readonly accessToken: string;
  readonly instanceUrl: string;
  readonly tenantId: string;
}

/** The parts of a Salesforce session the Pub/Sub subscriber needs (salesforce-auth's session, through pubSubSessionOf). */
export interface PubSubSession {
  credentials(): PubSubCredentials;
  refresh(): Promise<void>;
}

export class PubSubSessionError extends OncekitError {
  constructor(message: string) {
    super('salesforce_pubsub_session', message);
  }
}

/** Adapts salesforce-auth's session: its jsforce connection holds the current token and instance URL. */
export function pubSubSessionOf(session: {
  readonly connection: { readonly accessToken?: string | null | undefined; readonly instanceUrl: string };
  readonly orgId: string | null;
  refresh(): Promise<void>;
}): PubSubSession {
  return {
    credentials() {
      const accessToken = session.connection.accessToken;
      if (!accessToken) throw new PubSubSessionError('the Salesforce session has no access token');
      if (!session.orgId) throw new PubSubSessionError('the token endpoint gave no identity URL, so the org id (tenantid) is unknown');
      return { accessToken, instanceUrl: session.connection.instanceUrl, tenantId: session.orgId };
    },
    refresh: () => session.refresh(),
  };
}

export function metadataFor(credentials: PubSubCredentials): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('accesstoken', credentials.accessToken);
  metadata.set('instanceurl', credentials.instanceUrl);
  metadata.set('tenantid', credentials.tenantId);
  return metadata;
}

export interface PubSubClientOptions {
  /** HTTP/2 pings while idle, so a dead connection is noticed. Default 60 s. */
  readonly keepaliveMs?: number;
}

export function openPubSubClient(endpoint: PubSubEndpoint, options: PubSubClientOptions = {}): PubSubGrpcClient {
  const { Client } = pubSubService();
  const credentials = endpoint.plaintext ? grpc.credentials.createInsecure() : grpc.credentials.createSsl();
  return new Client(endpoint.address, credentials, {
    'grpc.keepalive_time_ms': options.keepaliveMs ?? 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
    // A loopback server is never behind the user's proxy.
    ...(endpoint.plaintext ? { 'grpc.enable_http_proxy': 0 } : {}),
    // Salesforce sends up to 100 events of up to 1 MB each.
    'grpc.max_receive_message_length': 128 * 1024 * 1024,
  });
}

/** How a failed call or stream is handled; classified once, here. */
export type PubSubFailure =
  | { readonly kind: 'auth'; readonly reason: string }
  /** A CUSTOM replay id the server no longer has (past retention, or corrupt). */
  | { readonly kind: 'replay-id'; readonly reason: string }
  | { readonly kind: 'not-found'; readonly reason: string }
  | { readonly kind: 'failed'; readonly reason: string };

export function classifyGrpcError(error: unknown): PubSubFailure {
  const { code, details, metadata } = (error ?? {}) as { code?: unknown; details?: unknown; metadata?: unknown };
  const errorCode = metadata instanceof grpc.Metadata ? String(metadata.get('error-code')[0] ?? '') : '';
  const reason = `${typeof code === 'number' ? (grpc.status[code] ?? code) : 'ERROR'}: ${typeof details === 'string' && details ? details : messageOf(error)}${errorCode ? ` (${errorCode})` : ''}`;
  if (code === grpc.status.UNAUTHENTICATED || /auth\.error|authentication/i.test(errorCode)) return { kind: 'auth', reason };
  if (/replayid/i.test(errorCode)) return { kind: 'replay-id', reason };
  if (code === grpc.status.NOT_FOUND) return { kind: 'not-found', reason };
  return { kind: 'failed', reason };
}

/** Unary call as a promise. */
export function unary<Req, Res>(
  call: (request: Req, metadata: grpc.Metadata, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall,
  request: Req,
  metadata: grpc.Metadata,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    call(request, metadata, (error, response) => {
      if (error || response === undefined) reject(error ?? new Error('no response'));
      else resolve(response);
    });
  });
}

/** Why an event's payload could not be read; the event becomes a dead letter with this reason. */
export class UndecodableEventError extends OncekitError {
  constructor(message: string) {
    super('pubsub_event_undecodable', message);
  }
}

interface AvroField {
  readonly name: string;
  readonly type: unknown;
  readonly doc?: unknown;
}

/** An event schema, compiled; decode() turns Avro bytes into the payload the mapping reads (as CometD delivers it). */
export interface EventDecoder {
  decode(payload: Buffer): Record<string, unknown>;
}

const MAX_SCHEMA_FIELDS = 2000;

export function compileEventSchema(schemaJson: string): EventDecoder {
  let schema: { type?: unknown; fields?: unknown };
  let type: avro.Type;
  try {
    schema = JSON.parse(schemaJson) as { type?: unknown; fields?: unknown };
    type = avro.Type.forSchema(schema as avro.Schema);
  } catch (error) {
    throw new UndecodableEventError(`the event schema cannot be read: ${messageOf(error)}`);
  }
  if (schema.type !== 'record' || !Array.isArray(schema.fields) || schema.fields.length > MAX_SCHEMA_FIELDS) {
    throw new UndecodableEventError('the event schema is not a record of fields');
  }
  // DateTime fields are epoch milliseconds in Avro; CometD gives ISO-8601 text, which the mapping reads the same way.
  const dateTimes = (schema.fields as AvroField[]).filter((field) => isDateTime(field)).map((field) => field.name);
  return {
    decode(payload) {
      let record: Record<string, unknown>;
      try {
        record = { ...(type.fromBuffer(payload) as Record<string, unknown>) };
      } catch (error) {
        throw new UndecodableEventError(`the Avro payload does not decode: ${messageOf(error)}`);
      }
      for (const name of dateTimes) {
        const value = record[name];
        if (typeof value === 'number' && Number.isFinite(value)) record[name] = new Date(value).toISOString();
      }
      return record;
    },
  };
}

function isDateTime(field: AvroField): boolean {
  if (typeof field.doc === 'string' && /(^|:)DateTime(:|$)/.test(field.doc)) return true;
  const branches = Array.isArray(field.type) ? field.type : [field.type];
  return branches.some(
    (branch) =>
      branch !== null &&
      typeof branch === 'object' &&
      (branch as { type?: unknown }).type === 'long' &&
      (branch as { logicalType?: unknown }).logicalType === 'timestamp-millis',
  );
}
