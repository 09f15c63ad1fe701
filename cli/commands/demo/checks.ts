import type { TenantSnapshot } from '../../../sandbox/target/index.js';
import type { DemoInvariant, DemoSourceRow } from './report.js';
import { type DemoSource, SOURCE_LABELS, SOURCES, TENANT } from './sources.js';
import type { RelayOutbox, Tallies } from './traffic.js';

/** One row per source: what it sent, what the relay took and what the target recorded. */
export async function sourceRows(relay: RelayOutbox, tallies: Tallies, snapshot: TenantSnapshot): Promise<DemoSourceRow[]> {
  const rows: DemoSourceRow[] = [];
  for (const source of SOURCES) {
    const tally = tallies[source];
    const counts = await relay.outbox.counts(TENANT, { source });
    const accepted = Object.values(counts).reduce((sum, n) => sum + n, 0);
    rows.push({
      source,
      label: SOURCE_LABELS[source],
      sent: tally.sent,
      accepted,
      replayed: tally.replayed,
      duplicates: tally.sent - tally.replayed - tally.rejected - accepted,
      rejected: tally.rejected,
      keysDropped: [...tally.events.values()].filter((event) => event.keyDecision === 'dropped').length,
      target409: counts.duplicate,
      recorded: eventsOf(snapshot, source).length,
    });
  }
  return rows;
}

function eventsOf(snapshot: TenantSnapshot, source: DemoSource): TenantSnapshot['events'] {
  return snapshot.events.filter((event) => event.userId.endsWith(`@${source}.demo`));
}

/** The demo's verdict: nothing lost, nothing refused, and every event recorded exactly once. */
export function checkInvariants(
  rows: readonly DemoSourceRow[],
  tallies: Tallies,
  snapshot: TenantSnapshot,
  counts: Readonly<Record<string, number>>,
  drained: boolean,
): DemoInvariant[] {
  const invariants: DemoInvariant[] = [];
  const waiting = (counts.pending ?? 0) + (counts.leased ?? 0);
  invariants.push({
    name: 'outbox drained',
    ok: drained && waiting === 0,
    detail: drained ? 'nothing pending or leased' : `${waiting} events still pending or leased at the deadline`,
  });
  const rejected = rows.reduce((sum, row) => sum + row.rejected, 0);
  // Everything the demo sends is valid: a refusal means a route or a mapping broke.
  invariants.push({ name: 'nothing refused', ok: rejected === 0, detail: `${rejected} events refused by the relay` });
  invariants.push({
    name: 'no dead letters',
    ok: (counts.dead ?? 0) === 0,
    detail: `${counts.dead ?? 0} dead letters`,
  });

  const byKey = new Map<string, number>();
  for (const event of snapshot.events)
    if (event.idempotencyKey) byKey.set(event.idempotencyKey, (byKey.get(event.idempotencyKey) ?? 0) + 1);
  const keys = SOURCES.flatMap((source) => [...tallies[source].events.values()].flatMap((event) => (event.key ? [event.key] : [])));
  const wrong = keys.filter((key) => byKey.get(key) !== 1).map((key) => `${key} ×${byKey.get(key) ?? 0}`);
  invariants.push({
    name: 'keyed events recorded exactly once',
    ok: wrong.length === 0 && keys.length > 0,
    detail: wrong.length === 0 ? `${keys.length} keys, each once` : `not exactly once: ${wrong.join(', ')}`,
  });

  for (const row of rows) {
    const distinct = tallies[row.source].events.size;
    invariants.push({
      name: `${row.label}: one outbox record per distinct event`,
      ok: row.accepted === distinct,
      detail: `${row.accepted} accepted for ${distinct} distinct events`,
    });
    invariants.push({
      name: `${row.label}: every accepted event recorded once`,
      ok: row.recorded === row.accepted,
      detail: `${row.recorded} recorded by the target for ${row.accepted} accepted`,
    });
  }
  const foreign = snapshot.events.filter((event) => !SOURCES.some((source) => event.userId.endsWith(`@${source}.demo`)));
  invariants.push({ name: 'nothing else recorded', ok: foreign.length === 0, detail: `${foreign.length} unexpected events` });
  return invariants;
}
