import type { FetchLike } from '../../shared/target/index.js';

/**
 * What the function needs from Segment's runtime, passed in rather than read from globals so that the handlers can
 * run in Node (tests, benchmarks) and in the bundle, where function-entry.ts fills it from Segment's globals.
 */

/** Segment's error classes are plain globals constructed with a message. */
export type SegmentErrorClass = new (message: string) => Error;

export interface SegmentErrorClasses {
  /** Segment retries the event (for up to 4 hours). */
  readonly RetryError: SegmentErrorClass;
  /** Discarded; Event Delivery shows "Message Rejected". */
  readonly ValidationError: SegmentErrorClass;
  /** Discarded; Event Delivery shows "Message Rejected". */
  readonly InvalidEventPayload: SegmentErrorClass;
  /** Discarded; Event Delivery shows "Unsupported Event Type". */
  readonly EventNotSupported: SegmentErrorClass;
}

export interface SegmentRuntime {
  /** Segment's global fetch (node-fetch v2). */
  readonly fetch: FetchLike;
  readonly errors: SegmentErrorClasses;
  /** One line per call; in the bundle this is console.warn, which Segment shows beside errored events. */
  readonly warn: (line: string) => void;
}

/** One entry of onBatch's answer: Segment retries the entries with a retryable status and discards other failures. */
export interface BatchEventStatus {
  readonly status: number;
  readonly errormessage?: string;
}

/** The event types of Segment's spec and the handler each one is dispatched to. */
export const handlerNameByType = {
  track: 'onTrack',
  identify: 'onIdentify',
  page: 'onPage',
  screen: 'onScreen',
  group: 'onGroup',
  alias: 'onAlias',
  delete: 'onDelete',
} as const;

export type SegmentEventType = keyof typeof handlerNameByType;
export type SegmentHandlerName = (typeof handlerNameByType)[SegmentEventType];
