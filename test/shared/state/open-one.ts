import type { OutboxStore } from '../../../shared/outbox/types.js';
import type { IdempotencyStore } from '../../../shared/state/idempotency.js';
import type { StoreLocation } from '../../../shared/state/location.js';
import { type OpenStateOptions, openState } from '../../../shared/state/open-state.js';

/** `store`, whose close() runs `close` instead; methods stay bound to the store (its private fields need it). */
function closingWith<T extends object>(store: T, close: () => Promise<void>): T {
  return new Proxy(store, {
    get(target, property) {
      if (property === 'close') return close;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** One store of the state at `location`, for tests about that store: closing it closes the whole state. */
export async function openIdempotencyStore(location: StoreLocation, options: OpenStateOptions = {}): Promise<IdempotencyStore> {
  const state = await openState(location, options);
  return closingWith(state.idempotency, () => state.close());
}

export async function openOutboxStore(location: StoreLocation, options: OpenStateOptions = {}): Promise<OutboxStore> {
  const state = await openState(location, options);
  return closingWith(state.outbox, () => state.close());
}
