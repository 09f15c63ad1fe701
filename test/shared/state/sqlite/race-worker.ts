// Runs in a worker thread: opens its own connection to the SQLite file, waits at the start gate, then races.
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { SqliteIdempotencyStore } from '../../../../shared/state/sqlite/idempotency.js';

export interface RaceJob {
  readonly path: string;
  readonly tenant: string;
  readonly keys: readonly string[];
  readonly operation: 'claim' | 'takeOver';
  readonly nowMs: number;
  readonly leaseMs: number;
  /** Int32 [0] = start flag, [1] = workers ready. */
  readonly gate: SharedArrayBuffer;
}

export interface RaceResult {
  readonly key: string;
  readonly owner: string;
  readonly status: string;
  readonly takenOverFrom?: string;
}

const job = workerData as RaceJob;
const store = SqliteIdempotencyStore.open(job.path, { clock: { now: () => job.nowMs } });
const gate = new Int32Array(job.gate);
Atomics.add(gate, 1, 1);
Atomics.wait(gate, 0, 0);
const results: RaceResult[] = [];
for (const key of job.keys) {
  const owner = `thread-${threadId}`;
  const outcome = await store[job.operation]({ tenant: job.tenant, key }, { owner, leaseMs: job.leaseMs });
  results.push({
    key,
    owner,
    status: outcome.status,
    ...(outcome.status === 'claimed' && outcome.takenOverFrom !== undefined ? { takenOverFrom: outcome.takenOverFrom } : {}),
  });
}
await store.close();
parentPort?.postMessage(results);
