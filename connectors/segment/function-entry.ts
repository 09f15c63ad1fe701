import type { FetchLike } from '../../shared/target/index.js';
import { createSegmentHandlers, type SegmentHandlers } from './handlers.js';
import type { BatchEventStatus, SegmentErrorClass } from './segment-runtime.js';

// Segment's runtime provides these as globals of the function script (segment.md §1.2, §1.5). They are declared here,
// in this module only, so the rest of the connector gets them passed in and stays runnable in plain Node.
declare const fetch: FetchLike;
declare const RetryError: SegmentErrorClass;
declare const ValidationError: SegmentErrorClass;
declare const InvalidEventPayload: SegmentErrorClass;
declare const EventNotSupported: SegmentErrorClass;

let handlers: SegmentHandlers | undefined;

/** Built on first use, so the globals are read when Segment has installed them, not when the script loads. */
function segmentHandlers(): SegmentHandlers {
  handlers ??= createSegmentHandlers({
    fetch: (url, init) => fetch(url, init),
    errors: { RetryError, ValidationError, InvalidEventPayload, EventNotSupported },
    warn: (line) => console.warn(line),
  });
  return handlers;
}

// The build wraps this module and declares top-level `async function onTrack(event, settings)` etc. that call these.
export const onTrack = (event: unknown, settings: unknown): Promise<void> => segmentHandlers().onTrack(event, settings);
export const onIdentify = (event: unknown, settings: unknown): Promise<void> => segmentHandlers().onIdentify(event, settings);
export const onBatch = (events: unknown, settings: unknown): Promise<BatchEventStatus[]> => segmentHandlers().onBatch(events, settings);
export const onPage = (event: unknown, settings: unknown): Promise<void> => segmentHandlers().onPage(event, settings);
export const onScreen = (event: unknown, settings: unknown): Promise<void> => segmentHandlers().onScreen(event, settings);
export const onGroup = (event: unknown, settings: unknown): Promise<void> => segmentHandlers().onGroup(event, settings);
export const onAlias = (event: unknown, settings: unknown): Promise<void> => segmentHandlers().onAlias(event, settings);
export const onDelete = (event: unknown, settings: unknown): Promise<void> => segmentHandlers().onDelete(event, settings);
