import { describe, expect, it } from 'vitest';
import { MemoryIdempotencyStore, type MemoryRecords } from '../../../../shared/state/memory/idempotency.js';
import { describeIdempotencyStoreContract } from '../idempotency-contract.js';
import { openIdempotencyStore } from '../open-one.js';

describeIdempotencyStoreContract('memory', async () => {
  const records: MemoryRecords = new Map();
  return {
    open: async (clock) => new MemoryIdempotencyStore({ clock, records }),
    dispose: async () => {},
  };
});

describe('openIdempotencyStore(memory)', () => {
  it('opens a memory store', async () => {
    const store = await openIdempotencyStore({ kind: 'memory' });
    expect(store.kind).toBe('memory');
    expect(await store.claim({ tenant: 't', key: 'k' }, { owner: 'w', leaseMs: 1000 })).toMatchObject({ status: 'claimed' });
    await store.close();
  });
});
