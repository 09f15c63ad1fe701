/**
 * `oncekit/fastify`: oncekit's HTTP side as Fastify plugins, for your own server. Request idempotency
 * (`idempotencyPlugin`), and the relay's inbound routes: Segment and Keygen webhooks and the Salesforce connector. The
 * routes hand their events to an `Ingest`, such as a durable sender's (`createSender(…).ingest` from `oncekit`).
 *
 * @module oncekit/fastify
 */

export { registerErrorHandler, registerRawJsonParser } from '../../shared/http/http-basics.js';
export {
  DEFAULT_TENANT,
  IDEMPOTENCY_PROBLEM_TYPES,
  type IdempotencyPluginOptions,
  type IdempotencyRouteConfig,
  idempotencyPlugin,
  type KeyPolicy,
  REPLAYED_HEADER,
  type StorePolicy,
} from '../../shared/http/idempotency-plugin.js';
export type { ReadinessCheck } from '../../shared/http/readiness.js';
export { Inbox, type InboxOptions, type InboxSettings } from '../../shared/inbox/inbox.js';
export type { Ingest, ReadyEvent } from '../../shared/outbox/ingest.js';
export type { CheckpointStore } from '../../shared/state/checkpoints.js';
export type { IdempotencyStore } from '../../shared/state/idempotency.js';
export { parseStoreLocation, type StoreLocation } from '../../shared/state/location.js';
export { type OpenStateOptions, openState, type State } from '../../shared/state/open-state.js';
export {
  type KeygenEventMapping,
  type KeygenWebhookOptions,
  keygenWebhookPlugin,
  parseKeygenEventMapping,
} from '../keygen/webhook-plugin.js';
export {
  createSalesforceConnector,
  type IdentityFields,
  identityFieldsFromEnv,
  type PlatformEventSubscriber,
  type SalesforceAuthConfig,
  type SalesforceConnector,
  type SalesforceConnectorOptions,
  salesforceAuthConfigFromEnv,
} from '../salesforce/relay-plugin.js';
export { type SegmentWebhookOptions, segmentWebhookPlugin } from '../segment/webhook-plugin.js';
