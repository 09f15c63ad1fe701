import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/**
 * Salesforce's `pubsub_api.proto` (kept next to this module, unchanged), loaded for @grpc/grpc-js, and the shapes of
 * its messages as proto-loader hands them over (field names as in the proto, bytes as Buffers, enums as names). The
 * subscriber and the fake org's Pub/Sub server both speak it through here.
 */

export type ReplayPreset = 'LATEST' | 'EARLIEST' | 'CUSTOM';

export interface FetchRequest {
  readonly topic_name?: string;
  readonly replay_preset?: ReplayPreset;
  readonly replay_id?: Buffer;
  readonly num_requested?: number;
  readonly auth_refresh?: string;
}

export interface EventHeader {
  readonly key: string;
  readonly value: Buffer;
}

export interface ProducerEvent {
  readonly id: string;
  readonly schema_id: string;
  readonly payload: Buffer;
  readonly headers: readonly EventHeader[];
}

export interface ConsumerEvent {
  readonly event: ProducerEvent | null;
  readonly replay_id: Buffer;
}

export interface FetchResponse {
  readonly events: readonly ConsumerEvent[];
  readonly latest_replay_id: Buffer;
  readonly rpc_id: string;
  readonly pending_num_requested: number;
}

/** ManagedSubscribe (Beta): Salesforce keeps the subscription's position; the client commits replay ids to it. */
export interface ManagedFetchRequest {
  readonly subscription_id?: string;
  readonly developer_name?: string;
  readonly num_requested?: number;
  readonly auth_refresh?: string;
  readonly commit_replay_id_request?: { readonly commit_request_id: string; readonly replay_id: Buffer };
}

export interface ManagedFetchResponse extends FetchResponse {
  readonly commit_response?: {
    readonly commit_request_id: string;
    readonly replay_id: Buffer;
    readonly error: { readonly code: string; readonly msg: string } | null;
    readonly process_time: string;
  } | null;
}

export interface SchemaRequest {
  readonly schema_id: string;
}
export interface SchemaInfo {
  readonly schema_json: string;
  readonly schema_id: string;
  readonly rpc_id: string;
}
export interface TopicRequest {
  readonly topic_name: string;
}
export interface TopicInfo {
  readonly topic_name: string;
  readonly tenant_guid: string;
  readonly can_publish: boolean;
  readonly can_subscribe: boolean;
  readonly schema_id: string;
  readonly rpc_id: string;
}
export interface PublishRequest {
  readonly topic_name: string;
  readonly events: readonly Partial<ProducerEvent>[];
  readonly auth_refresh?: string;
}
export interface PublishResult {
  readonly replay_id: Buffer;
  readonly error: { readonly code: string; readonly msg: string } | null;
}
export interface PublishResponse {
  readonly results: readonly PublishResult[];
  readonly schema_id: string;
  readonly rpc_id: string;
}

/** The generated client's methods used here (grpc-js builds them from the proto at run time). */
export interface PubSubGrpcClient extends grpc.Client {
  Subscribe(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<FetchRequest, FetchResponse>;
  ManagedSubscribe(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<ManagedFetchRequest, ManagedFetchResponse>;
  GetSchema(request: SchemaRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<SchemaInfo>): grpc.ClientUnaryCall;
  GetTopic(request: TopicRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<TopicInfo>): grpc.ClientUnaryCall;
  Publish(request: PublishRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<PublishResponse>): grpc.ClientUnaryCall;
}

export type PubSubGrpcClientConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => PubSubGrpcClient;

let loaded: { service: grpc.ServiceDefinition; Client: PubSubGrpcClientConstructor } | null = null;

/** The PubSub service (for a server) and its client constructor, loaded once. */
export function pubSubService(): { service: grpc.ServiceDefinition; Client: PubSubGrpcClientConstructor } {
  if (loaded) return loaded;
  // `npm run build` copies the proto next to the compiled module.
  const definition = loadSync(fileURLToPath(new URL('./pubsub_api.proto', import.meta.url)), {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const service = definition['eventbus.v1.PubSub'] as grpc.ServiceDefinition | undefined;
  if (!service) throw new Error('pubsub_api.proto defines no eventbus.v1.PubSub service');
  loaded = { service, Client: grpc.makeClientConstructor(service, 'PubSub') as unknown as PubSubGrpcClientConstructor };
  return loaded;
}
