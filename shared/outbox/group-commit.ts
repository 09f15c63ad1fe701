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

interface Waiting {
  readonly events: readonly NewOutboxEvent[];
  resolve(results: EnqueueResult[]): void;
  reject(error: unknown): void;
}

/**
 * Group commit: enqueues from concurrent callers are coalesced into one store transaction, and each caller is answered
 * only after the transaction that holds its events has committed. One durable write (an fsync on SQLite) then serves
 * many senders. Each caller's events stay together in one group, so its enqueue is still atomic; a failed commit
 * fails every caller of that group and acknowledges none.
 */
export function groupCommit(store: OutboxStore, options: EnqueueOptions = {}, settings: GroupCommitOptions = {}): Enqueue {
  const maxGroupEvents = settings.maxGroupEvents ?? 1000;
  const maxDelayMs = settings.maxDelayMs ?? 0;
  const queue: Waiting[] = [];
  let committing = false;
  let scheduled = false;

  const takeGroup = (): Waiting[] => {
    const group: Waiting[] = [];
    let size = 0;
    while (queue.length > 0 && (group.length === 0 || size + (queue[0] as Waiting).events.length <= maxGroupEvents)) {
      const next = queue.shift() as Waiting;
      group.push(next);
      size += next.events.length;
    }
    return group;
  };

  async function commit(): Promise<void> {
    scheduled = false;
    committing = true;
    try {
      while (queue.length > 0) {
        const group = takeGroup();
        try {
          const results = await store.enqueue(
            group.flatMap((waiting) => waiting.events),
            options,
          );
          let offset = 0;
          for (const waiting of group) {
            waiting.resolve(results.slice(offset, offset + waiting.events.length));
            offset += waiting.events.length;
          }
        } catch (error) {
          for (const waiting of group) waiting.reject(error);
        }
      }
    } finally {
      committing = false;
    }
  }

  return (events) => {
    if (events.length === 0) return Promise.resolve([]);
    return new Promise<EnqueueResult[]>((resolve, reject) => {
      queue.push({ events, resolve, reject });
      if (committing || scheduled) return; // the running or scheduled commit takes this caller too
      scheduled = true;
      if (maxDelayMs === 0) setImmediate(() => void commit());
      else setTimeout(() => void commit(), maxDelayMs);
    });
  };
}
