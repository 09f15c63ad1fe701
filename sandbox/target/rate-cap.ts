import { InvalidInputError } from '../../shared/errors.js';
import type { ApiRoute } from './routes.js';

/**
 * A capacity cap in events per second, as a token bucket on the sandbox's clock: it holds at most one second's worth
 * of events and refills continuously. A request takes one token per event it carries; when the bucket holds fewer,
 * the whole request is refused (the caller answers 429 with Retry-After), as a rate-limited API does.
 */
export interface RateCap {
  /** Takes `events` tokens and returns 0, or takes none and returns the whole seconds until they will be there. */
  take(events: number, nowMs: number): number;
  readonly eventsPerSecond: number;
}

export function createRateCap(eventsPerSecond: number, startMs: number): RateCap {
  if (!Number.isFinite(eventsPerSecond) || eventsPerSecond <= 0) {
    throw new InvalidInputError([{ field: 'maxEventsPerSecond', reason: `expected events per second > 0, got ${eventsPerSecond}` }]);
  }
  const capacity = eventsPerSecond;
  let tokens = capacity;
  let refilledAt = startMs;
  return {
    eventsPerSecond,
    take(events, nowMs) {
      if (nowMs > refilledAt) {
        tokens = Math.min(capacity, tokens + ((nowMs - refilledAt) / 1000) * eventsPerSecond);
        refilledAt = nowMs;
      }
      // A batch larger than the bucket could never pass: it waits for a full bucket instead.
      const cost = Math.min(Math.max(1, events), capacity);
      if (tokens >= cost) {
        tokens -= cost;
        return 0;
      }
      return Math.max(1, Math.ceil((cost - tokens) / eventsPerSecond));
    },
  };
}

const field = (value: unknown, name: string): unknown =>
  typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[name] : undefined;

/**
 * How many events a request carries: a REST event request's `events` list (at least one), logUserEvents' input list
 * for GraphQL, none for anything else (user reads and upserts are not capped). A body that does not parse counts one
 * REST event or no GraphQL one; validation answers it later.
 */
export function eventsInRequest(routeKind: ApiRoute['kind'], body: string): number {
  if (routeKind !== 'track-event' && routeKind !== 'graphql') return 0;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return routeKind === 'track-event' ? 1 : 0;
  }
  if (routeKind === 'track-event') {
    const events = field(parsed, 'events');
    return Array.isArray(events) ? Math.max(1, events.length) : 1;
  }
  const inputs = field(field(parsed, 'variables'), 'userEventInputs');
  return Array.isArray(inputs) ? inputs.length : 0;
}
