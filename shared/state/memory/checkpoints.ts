import type { CheckpointStore } from '../checkpoints.js';

/** Checkpoints in memory: for tests, and for a relay that accepts replaying from the stream's start after a restart. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly #positions = new Map<string, string>();

  async load(scope: string, stream: string): Promise<string | null> {
    return this.#positions.get(JSON.stringify([scope, stream])) ?? null;
  }

  async save(scope: string, stream: string, position: string): Promise<void> {
    this.#positions.set(JSON.stringify([scope, stream]), position);
  }
}
