import type { Redis } from 'ioredis';
import { DEFAULT_REDIS_LISTING_SCAN, RedisOutboxStore } from '../../../../shared/state/redis/outbox.js';

/**
 * One `import` event (source id `s-0`), then DEFAULT_REDIS_LISTING_SCAN `segment` events a millisecond later, under
 * `keyPrefix`: a listing by source has to go past its scan limit to find the import.
 */
export async function enqueueImportBehindScanLimit(client: Redis, keyPrefix: string, tenant: string, target: string): Promise<void> {
  const outbox = new RedisOutboxStore({ client, keyPrefix });
  const event = (n: number, source: string) => ({
    tenant,
    target,
    source,
    sourceId: `s-${n}`,
    dedupKey: `d-${n}`,
    input: { userId: 'ann', accountId: 'ann', events: [{ key: 'purchase' }] },
    keyDecision: null,
  });
  await outbox.enqueue([event(0, 'import')]);
  // A millisecond later, so the import is older than every one of them.
  await new Promise((resolve) => setTimeout(resolve, 2));
  for (let from = 1; from <= DEFAULT_REDIS_LISTING_SCAN; from += 1000) {
    await outbox.enqueue(Array.from({ length: 1000 }, (_, at) => event(from + at, 'segment')));
  }
}
