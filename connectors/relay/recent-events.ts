import type { KeyDecision } from '../../shared/keys/decide.js';
import type { EnqueueOutcome } from '../../shared/outbox/types.js';

/** One row of the status page's "last events": what came in, which key it got and why, and where it is now. */
export interface RecentEvent {
  readonly id: string;
  readonly at: number;
  readonly source: string;
  readonly sourceId: string;
  readonly eventKey: string;
  readonly key: string | null;
  readonly keyDecision: KeyDecision['decision'] | 'none';
  readonly keyReason: string | null;
  /** queued, already-queued (a redelivery), delivered, duplicate, retrying, dead. */
  state: string;
  detail: string | null;
}

export interface RecentEvents {
  accepted(
    id: string,
    event: { source: string; sourceId: string; input: { events: readonly { key: string }[] }; decision: KeyDecision | null },
    outcome: EnqueueOutcome,
  ): void;
  settled(id: string, state: string, detail: string | null): void;
  list(): readonly RecentEvent[];
}

/** A bounded, newest-first list kept in memory: the page shows live activity, the ledger keeps the history. */
export function recentEvents(capacity = 50, now: () => number = Date.now): RecentEvents {
  const rows: RecentEvent[] = [];
  const byId = new Map<string, RecentEvent>();
  return {
    accepted(id, event, outcome) {
      const row: RecentEvent = {
        id,
        at: now(),
        source: event.source,
        sourceId: event.sourceId,
        eventKey: event.input.events[0]?.key ?? '',
        key: event.decision?.key ?? null,
        keyDecision: event.decision?.decision ?? 'none',
        keyReason: event.decision?.reason ?? null,
        state: outcome === 'existing' ? 'already-queued' : 'queued',
        detail: null,
      };
      rows.unshift(row);
      byId.set(id, row);
      while (rows.length > capacity) {
        const dropped = rows.pop();
        if (dropped && byId.get(dropped.id) === dropped) byId.delete(dropped.id);
      }
    },
    settled(id, state, detail) {
      const row = byId.get(id);
      if (row) {
        row.state = state;
        row.detail = detail;
      }
    },
    list: () => rows.map((row) => ({ ...row })),
  };
}
