import type { CheckpointStore } from '../checkpoints.js';
import { keyPart, LuaScript, markerGuardLua, type RedisStateGuard } from './connection.js';

// KEYS[1] the checkpoint, KEYS[2] the marker; ARGV[1] the marker id. Both check the marker (see connection.ts).
const LOAD = new LuaScript(`${markerGuardLua('KEYS[2]', 'ARGV[1]')}return redis.call('GET', KEYS[1])`);
// ARGV[2] the position.
const SAVE = new LuaScript(`${markerGuardLua('KEYS[2]', 'ARGV[1]')}return redis.call('SET', KEYS[1], ARGV[2])`);

/** `{prefix}checkpoint:{scope}:{stream}` (both parts encoded), behind the same marker as the other Redis stores. */
export class RedisCheckpointStore implements CheckpointStore {
  readonly #guard: RedisStateGuard;
  readonly #prefix: string;

  constructor(guard: RedisStateGuard, prefix: string) {
    this.#guard = guard;
    this.#prefix = prefix;
  }

  async load(scope: string, stream: string): Promise<string | null> {
    const value = await this.#guard.run(LOAD, this.#keys(scope, stream), []);
    return typeof value === 'string' ? value : null;
  }

  async save(scope: string, stream: string, position: string): Promise<void> {
    await this.#guard.run(SAVE, this.#keys(scope, stream), [position]);
  }

  #keys(scope: string, stream: string): string[] {
    return [`${this.#prefix}checkpoint:${keyPart(scope)}:${keyPart(stream)}`, this.#guard.markerKey];
  }
}
