import type { EnqueueOptions, EnqueueResult, NewOutboxEvent, OutboxStore } from './types.js';

export interface GroupCommitOptions {
  /** Most events in one transaction; a caller's events are never split, so a group may pass it by one caller's count. */
  readonly maxGroupEvents?: number;
  /**
   * How long a group may wait for more callers once one is waiting and the store is idle. 0 (the default) commits as
   * soon as the requests read in the same turn of the event loop are in (setImmediate); callers that arrive while a
   * commit runs form the next group by themselves, so waiting longer buys little.
   */
  readonly maxDelayMs?: number;
}

export type Enqueue = (events: readonly NewOutboxEvent[]) => Promise<EnqueueResult[]>;

interface Waiting<I, O> {
  readonly items: readonly I[];
  resolve(results: O[]): void;
  reject(error: unknown): void;
}

/**
 * Runs the items of concurrent callers through `run` together: one call (one store transaction) for everything that
 * arrived while the previous one ran, or in the same turn of the event loop. `run` returns one result per item, in
 * order; each caller gets its own slice, only after the call that holds its items has finished. A caller's items are
 * never split across calls; a failed call fails every caller in it.
 */
export function coalesced<I, O>(
  run: (items: I[]) => Promise<O[]>,
  settings: GroupCommitOptions = {},
): (items: readonly I[]) => Promise<O[]> {
  const maxGroupItems = settings.maxGroupEvents ?? 1000;
  const maxDelayMs = settings.maxDelayMs ?? 0;
  const queue: Waiting<I, O>[] = [];
  let running = false;
  let scheduled = false;

  const takeGroup = (): Waiting<I, O>[] => {
    const group: Waiting<I, O>[] = [];
    let size = 0;
    while (queue.length > 0 && (group.length === 0 || size + (queue[0] as Waiting<I, O>).items.length <= maxGroupItems)) {
      const next = queue.shift() as Waiting<I, O>;
      group.push(next);
      size += next.items.length;
    }
    return group;
  };

  async function drain(): Promise<void> {
    scheduled = false;
    running = true;
    try {
      while (queue.length > 0) {
        const group = takeGroup();
        try {
          const results = await run(group.flatMap((waiting) => waiting.items));
          let offset = 0;
          for (const waiting of group) {
            waiting.resolve(results.slice(offset, offset + waiting.items.length));
            offset += waiting.items.length;
          }
        } catch (error) {
          for (const waiting of group) waiting.reject(error);
        }
      }
    } finally {
      running = false;
    }
  }

  return (items) => {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise<O[]>((resolve, reject) => {
      queue.push({ items, resolve, reject });
      if (running || scheduled) return; // the running or scheduled call takes this caller too
      scheduled = true;
      if (maxDelayMs === 0) setImmediate(() => void drain());
      else setTimeout(() => void drain(), maxDelayMs);
    });
  };
}

/**
 * Group commit: enqueues from concurrent callers are coalesced into one store transaction, and each caller is answered
 * only after the transaction that holds its events has committed. One durable write (an fsync on SQLite) then serves
 * many senders. Each caller's events stay together in one group, so its enqueue is still atomic; a failed commit
 * fails every caller of that group and acknowledges none.
 */
export function groupCommit(store: OutboxStore, options: EnqueueOptions = {}, settings: GroupCommitOptions = {}): Enqueue {
  return coalesced((events: NewOutboxEvent[]) => store.enqueue(events, options), settings);
}
