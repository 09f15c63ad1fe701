/**
 * `oncekit/segment`: the Segment connector's parts, to build or extend a destination function or a webhook receiver.
 * `createSegmentHandlers` is the whole function (track, identify, batch) over a runtime you pass in; the mapping and
 * the settings are the same ones the relay's `POST /segment` uses (`segmentWebhookPlugin` in `oncekit/fastify`).
 *
 * @module oncekit/segment
 */

export {
  createSegmentHandlers,
  defaultInvocationTiming,
  FunctionConfigurationError,
  type InvocationTiming,
  MAX_SEGMENT_BATCH,
  type SegmentHandlerOptions,
  type SegmentHandlers,
} from './handlers.js';
export {
  eventKeyFor,
  identifyToUserUpsert,
  type KeyDecider,
  mapTrackEvent,
  readTrackEvent,
  SegmentEventError,
  segmentCandidate,
  type TrackEventParts,
  trackToUserEventInput,
} from './mapping.js';
export {
  type BatchEventStatus,
  handlerNameByType,
  type SegmentErrorClass,
  type SegmentErrorClasses,
  type SegmentEventType,
  type SegmentHandlerName,
  type SegmentRuntime,
} from './segment-runtime.js';
export { DEFAULT_EVENT_KEY_MAP, InvalidSettingsError, parseSegmentSettings, type SegmentSettings } from './settings.js';
export { verifySegmentSignature } from './webhook-signature.js';
