import type { SettledEvent } from '../../shared/outbox/worker.js';
import type { RelayMetrics } from './metrics.js';
import type { RecentEvents } from './recent-events.js';

/** What the relay shows of each settlement: the metrics and the status page's last events. */
export function recordSettlement(settled: SettledEvent, metrics: RelayMetrics, recent: RecentEvents): void {
  const { event, settlement } = settled;
  const source = event.source;
  const latency = Math.max(0, (settlement.attempt?.finishedAt ?? Date.now()) - event.firstAttemptAt) / 1000;
  switch (settlement.to) {
    case 'delivered':
      metrics.settled.inc({ source, outcome: 'forwarded' });
      metrics.deliveryLatency.observe({ source, outcome: 'forwarded' }, latency);
      recent.settled(event.id, 'delivered', null);
      return;
    case 'duplicate':
      metrics.settled.inc({ source, outcome: 'duplicate' });
      metrics.deliveryLatency.observe({ source, outcome: 'duplicate' }, latency);
      recent.settled(event.id, 'duplicate', 'the target had it already (409)');
      return;
    case 'dead':
      metrics.settled.inc({ source, outcome: 'dead' });
      metrics.deadLetters.inc({ source, reason: settlement.attempt?.outcome === 'rejected' ? 'rejected' : 'horizon' });
      recent.settled(event.id, 'dead', settlement.reason);
      return;
    case 'pending':
      metrics.retries.inc({ source });
      recent.settled(event.id, 'retrying', settlement.attempt?.message ?? null);
      return;
  }
}
