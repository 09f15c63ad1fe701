import type { CheckpointStore, SavedPosition } from '../checkpoints.js';

/** Checkpoints in memory: for tests, and for a relay that accepts replaying from the stream's start after a restart. */
export class MemoryCheckpointStore implements CheckpointStore {
  readonly #positions = new Map<string, { readonly position: string; readonly savedAt: number }>();

  async load(scope: string, stream: string): Promise<string | null> {
    return this.#positions.get(JSON.stringify([scope, stream]))?.position ?? null;
  }

  async save(scope: string, stream: string, position: string): Promise<void> {
    this.#positions.set(JSON.stringify([scope, stream]), { position, savedAt: Date.now() });
  }

  async list(scope: string, limit = 1000): Promise<SavedPosition[]> {
    const now = Date.now();
    const found: SavedPosition[] = [];
    for (const [name, { position, savedAt }] of this.#positions) {
      const [s, stream] = JSON.parse(name) as [string, string];
      if (s === scope) found.push({ stream, position, savedAgoMs: Math.max(0, now - savedAt) });
    }
    return found.sort((a, b) => (a.stream < b.stream ? -1 : 1)).slice(0, limit);
  }
}
