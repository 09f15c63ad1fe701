import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { KeyDecision } from '../../shared/keys/decide.js';

/**
 * The relay's Prometheus metrics, on a registry of its own so several relays can live in one process (tests). Names
 * follow Prometheus' conventions: `oncekit_` first, the unit last (`_seconds`, `_events`), `_total` on counters, and
 * no empty label value (a label that does not apply is left out). Node's default process metrics (`process_*`,
 * `nodejs_*`) are on the same registry under their usual names, so stock Node.js dashboards read them.
 */
export interface RelayMetrics {
  readonly registry: Registry;
  readonly received: Counter<'source'>;
  readonly keyDecisions: Counter<'source' | 'decision' | 'reason'>;
  readonly settled: Counter<'source' | 'outcome'>;
  readonly retries: Counter<'source'>;
  readonly deadLetters: Counter<'source' | 'reason'>;
  readonly unmappable: Counter<'source'>;
  readonly outboxEvents: Gauge<'state'>;
  readonly possibleDuplicates: Gauge;
  readonly httpDuration: Histogram<'route' | 'method' | 'status'>;
  readonly deliveryLatency: Histogram<'source' | 'outcome'>;
  countKeyDecision(source: string, decision: KeyDecision | null): void;
}

/** What the metrics read from the store when scraped, so every instance on one store reports the same numbers. */
export interface RelayMetricsSources {
  readonly outboxEvents: () => Promise<Readonly<Record<string, number>>>;
  readonly possibleDuplicates: () => Promise<number>;
}

export function createRelayMetrics(sources: RelayMetricsSources): RelayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const received = new Counter({
    name: 'oncekit_events_received_total',
    help: 'Events accepted into the outbox, per source',
    labelNames: ['source'],
    registers: [registry],
  });
  const keyDecisions = new Counter({
    name: 'oncekit_key_decisions_total',
    help: 'Idempotency key decisions: kept, hashed, dropped, rejected (with the reason), none (no key given)',
    labelNames: ['source', 'decision', 'reason'],
    registers: [registry],
  });
  const settled = new Counter({
    name: 'oncekit_events_settled_total',
    help: 'Events settled by the outbox: forwarded (accepted), duplicate (409), dead',
    labelNames: ['source', 'outcome'],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'oncekit_delivery_retries_total',
    help: 'Delivery attempts that will be retried',
    labelNames: ['source'],
    registers: [registry],
  });
  const deadLetters = new Counter({
    name: 'oncekit_dead_letters_total',
    help: 'Events that became dead letters',
    labelNames: ['source', 'reason'],
    registers: [registry],
  });
  const unmappable = new Counter({
    name: 'oncekit_unmappable_events_total',
    help: 'Events that could not be mapped and were recorded as dead letters (a redelivery is not counted again)',
    labelNames: ['source'],
    registers: [registry],
  });
  const outboxEvents = new Gauge({
    name: 'oncekit_outbox_events',
    help: "Events of the relay's tenant and target in the outbox and its ledger, by state (read from the store)",
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      const counts = await sources.outboxEvents();
      for (const [state, count] of Object.entries(counts)) this.set({ state }, count);
    },
  });
  const possibleDuplicates = new Gauge({
    name: 'oncekit_possible_duplicate_events',
    help:
      'Events sent without an idempotency key and delivered after an attempt or request whose outcome was unknown ' +
      '(a lost answer, a timeout, a 5xx): the target may have recorded them twice. Read from the store (its retention)',
    registers: [registry],
    async collect() {
      this.set(await sources.possibleDuplicates());
    },
  });
  const httpDuration = new Histogram({
    name: 'oncekit_http_request_duration_seconds',
    help: 'Inbound HTTP request latency',
    labelNames: ['route', 'method', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const deliveryLatency = new Histogram({
    name: 'oncekit_delivery_latency_seconds',
    help: 'From the first delivery attempt of an event to its settlement',
    labelNames: ['source', 'outcome'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600, 3600],
    registers: [registry],
  });
  return {
    registry,
    received,
    keyDecisions,
    settled,
    retries,
    deadLetters,
    unmappable,
    outboxEvents,
    possibleDuplicates,
    httpDuration,
    deliveryLatency,
    countKeyDecision(source, decision) {
      // A kept key (or none at all) has no reason: the label is left out rather than empty.
      const reason = decision?.reason;
      keyDecisions.inc({ source, decision: decision?.decision ?? 'none', ...(reason ? { reason } : {}) });
    },
  };
}
