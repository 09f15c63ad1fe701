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

  async list(scope: string, limit = 1000): Promise<{ stream: string; position: string }[]> {
    const found: { stream: string; position: string }[] = [];
    for (const [name, position] of this.#positions) {
      const [s, stream] = JSON.parse(name) as [string, string];
      if (s === scope) found.push({ stream, position });
    }
    return found.sort((a, b) => (a.stream < b.stream ? -1 : 1)).slice(0, limit);
  }
}
