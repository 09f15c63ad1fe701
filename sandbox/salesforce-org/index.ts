export type { ClientCredentialsApp, JwtBearerApp, TokenGrant } from './oauth.js';
export {
  type AvroRecordSchema,
  type FakePubSub,
  type PubSubPublished,
  type RecordedFetchRequest,
  USER_EVENT_AVRO_SCHEMA,
} from './pubsub.js';
export type { FakeRecord, FakeRecordType, RecordedQuery } from './rest.js';
export { type FakeOrg, type FakeOrgOptions, type RecordedRequest, startFakeOrg } from './server.js';
export type { PublishedEvent, RecordedBayeuxMessage } from './streaming.js';
