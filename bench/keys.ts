import { segmentCandidate } from '../connectors/segment/mapping.js';
import { decideKey, saasquatchKeyProfile } from '../shared/keys/index.js';
import { type BenchRow, compared, measureRate } from './measure.js';

/** A realistic mix: mostly valid analytics ids, some custom ids that get dropped or hashed. */
function candidates(): string[] {
  const out: string[] = [];
  for (let i = 0; i < 1000; i++) {
    if (i % 10 === 0) out.push(`order:${i}`);
    else if (i % 25 === 1) out.push(`node-9dd4e461268c8034f5c8564e155c67a6-${crypto.randomUUID()}`);
    else out.push(`node-next-${1668208232027 + i}-${crypto.randomUUID()}`);
  }
  return out;
}

export async function runKeyBench(): Promise<BenchRow[]> {
  const ids = candidates();
  const pattern = /^[A-Za-z0-9._-]{8,64}$/;
  let sink = 0;
  const bare = await measureRate(() => {
    for (const id of ids) if (pattern.test(id)) sink++;
  }, ids.length);
  const drop = await measureRate(() => {
    for (const id of ids) if (decideKey(segmentCandidate({ messageId: id }), { profile: saasquatchKeyProfile }).key) sink++;
  }, ids.length);
  const hash = await measureRate(() => {
    for (const id of ids) if (decideKey(segmentCandidate({ messageId: id }), { policy: 'hash' }).key) sink++;
  }, ids.length);
  if (sink < 0) console.log(sink);
  const baseline = compared('bare regex test (baseline)', bare.perSecond, 'checks/s');
  return [
    baseline,
    compared('decideKey, drop policy', drop.perSecond, 'decisions/s', baseline, '10% invalid ids, dropped (no logger)'),
    compared('decideKey, hash policy', hash.perSecond, 'decisions/s', baseline, '10% invalid ids, hashed with SHA-256'),
  ];
}
