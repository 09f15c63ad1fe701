/**
 * Where a consumer of an ordered, replayable stream keeps its position (e.g. the replay id of the last event it handed
 * to the outbox), next to the rest of oncekit's state, so a restart resumes right after it. A position is saved only
 * after what came before it is durable. Positions live per scope (a tenant) and stream (a channel name), as opaque text.
 */
export interface CheckpointStore {
  load(scope: string, stream: string): Promise<string | null>;
  /** Replaces the position of `stream` in `scope`; resolves once it is durable. */
  save(scope: string, stream: string, position: string): Promise<void>;
  /** Every stream of `scope` with its position, by stream name; at most `limit` (default 1000). */
  list(scope: string, limit?: number): Promise<SavedPosition[]>;
}

export interface SavedPosition {
  readonly stream: string;
  readonly position: string;
  /**
   * How long ago the position was saved, on the store's clock (so writers on hosts whose clocks disagree compare
   * alike); null for a position saved before the store kept the time.
   */
  readonly savedAgoMs: number | null;
}
