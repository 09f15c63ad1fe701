/**
 * `oncekit`: the key rules, the event model, the target client and the durable sender.
 *
 * @module oncekit
 */

export { type FieldIssue, InvalidInputError, OncekitError, StateLostError } from './errors.js';
export {
  buildUserEventInput,
  type UserEventData,
  type UserEventDraft,
  type UserEventInput,
  userEventInputSchema,
} from './events/user-event.js';
export { fieldsCandidate, type KeyCandidate, type KeySource, rawCandidate } from './keys/candidates.js';
export {
  type DecideKeyOptions,
  decideKey,
  describeFault,
  type InvalidKeyPolicy,
  invalidKeyPolicies,
  type KeyDecision,
  type KeyOutcome,
  KeyRejectedError,
} from './keys/decide.js';
export {
  checkKey,
  deriveKey,
  idempotencyKeyHeaderProfile,
  type KeyCheck,
  type KeyFaultReason,
  type KeyProfileName,
  keyProfiles,
  saasquatchKeyProfile,
  type TargetKeyProfile,
} from './keys/profiles.js';
export { jsonLineLogger, type Logger, silentLogger } from './log.js';
export { defaultOutboxDeliveryConfig, type OutboxDeliveryConfig } from './outbox/config.js';
export type { Ingest, ReadyEvent } from './outbox/ingest.js';
export type { AttemptRecord, EnqueueResult, LedgerEntry, OutboxCounts, OutboxState } from './outbox/types.js';
export type { SettledEvent } from './outbox/worker.js';
export {
  createSender,
  type DrainReport,
  type Sender,
  SenderClosedError,
  type SenderEvent,
  type SenderOptions,
  type SenderTarget,
  type SendOptions,
  type SendReceipt,
} from './sender/sender.js';
export {
  type BatchDeliveryResult,
  type CallOptions,
  type CredentialCheck,
  TargetCheckError,
  type TargetClient,
  type UserUpsert,
} from './target/client.js';
export {
  createNodeTargetClient as createTargetClient,
  type NodeTargetClient,
  type NodeTargetClientOptions as TargetClientOptions,
} from './target/node-client.js';
export {
  type DeliveryFailure,
  type DeliveryFailureKind,
  type DeliveryOutcome,
  type DeliveryResult,
  isSuccess,
  type NoAnswer,
  type TargetApiError,
} from './target/outcome.js';
export { defaultRetryPolicy, type RetryPolicy } from './target/retry.js';
export { DEFAULT_TARGET_URL, type TargetApi, targetApis } from './target/saasquatch-api.js';
export {
  type HttpRequest,
  type HttpResponse,
  type HttpTransport,
  TransportError,
  type TransportFailure,
} from './target/transport.js';
export { type FetchLike, type FetchLikeResponse, fetchTransport } from './target/transport-fetch.js';
