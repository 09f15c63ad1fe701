import { InvalidInputError } from '../../shared/errors.js';
import type { CheckpointStore } from '../../shared/state/checkpoints.js';

/**
 * Where the Platform Event subscriber keeps, per channel, the replayId of the last event its sink took. Saved only
 * after the sink resolved, so a restart resumes right after it (within Salesforce's 72-hour retention). The relay keeps them in
 * its state's checkpoint store (`replayCheckpointsIn`).
 */
export interface ReplayCheckpointStore {
  load(channel: string): Promise<string | number | null>;
  save(channel: string, replayId: string | number): Promise<void>;
}

/** A stored checkpoint as the replay extension wants it: a whole number. */
export function checkpointReplayId(channel: string, value: string | number | null): number | null {
  if (value === null) return null;
  const replayId = typeof value === 'number' ? value : /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
  if (!Number.isSafeInteger(replayId) || replayId < 0) {
    throw new InvalidInputError([
      { field: `checkpoint(${channel})`, reason: `expected a stored replayId (a whole number ≥ 0), got ${JSON.stringify(value)}` },
    ]);
  }
  return replayId;
}

export interface MemoryReplayCheckpointStore extends ReplayCheckpointStore {
  /** Every save, in order, for tests and status pages. */
  readonly saves: readonly { readonly channel: string; readonly replayId: string | number }[];
  current(channel: string): string | number | null;
}

/** Keeps checkpoints in memory: for tests, and for a relay that accepts replaying from -1/-2 after a restart. */
export function memoryReplayCheckpointStore(initial: Readonly<Record<string, string | number>> = {}): MemoryReplayCheckpointStore {
  const checkpoints = new Map<string, string | number>(Object.entries(initial));
  const saves: { channel: string; replayId: string | number }[] = [];
  return {
    saves,
    current: (channel) => checkpoints.get(channel) ?? null,
    async load(channel) {
      return checkpoints.get(channel) ?? null;
    },
    async save(channel, replayId) {
      checkpoints.set(channel, replayId);
      saves.push({ channel, replayId });
    },
  };
}

/** The subscriber's checkpoints of one tenant, kept in the state's checkpoint store (one stream per channel). */
export function replayCheckpointsIn(store: CheckpointStore, tenant: string): ReplayCheckpointStore {
  return {
    load: (channel) => store.load(tenant, channel),
    save: (channel, replayId) => store.save(tenant, channel, String(replayId)),
  };
}
