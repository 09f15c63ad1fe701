import type { CheckpointStore, SavedPosition } from '../checkpoints.js';
import { keyPart, LuaScript, markerGuardLua, REDIS_NOW_LUA, type RedisStateGuard } from './connection.js';

// KEYS[1] the checkpoint, KEYS[2] the marker; ARGV[1] the marker id. Both check the marker (see connection.ts).
const LOAD = new LuaScript(`${markerGuardLua('KEYS[2]', 'ARGV[1]')}return redis.call('GET', KEYS[1])`);
// ARGV[2] the position; KEYS[3] the scope's set of streams (for list), ARGV[3] the stream; KEYS[4] the scope's save
// times (the server's TIME in ms, by stream).
const SAVE = new LuaScript(`${markerGuardLua('KEYS[2]', 'ARGV[1]')}${REDIS_NOW_LUA}
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[3], oncekit_text(oncekit_now('')))
return redis.call('SET', KEYS[1], ARGV[2])`);

/**
 * `{prefix}checkpoint:{scope}:{stream}` (both parts encoded), and `{prefix}checkpoint-streams:{scope}` the set of the
 * scope's streams saved since it existed (for list), behind the same marker as the other Redis stores. */
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
    await this.#guard.run(SAVE, [...this.#keys(scope, stream), this.#streamsKey(scope), this.#savedKey(scope)], [position, stream]);
  }

  async list(scope: string, limit = 1000): Promise<SavedPosition[]> {
    const [streams] = (await this.#guard.read((multi) => multi.smembers(this.#streamsKey(scope)))) as [string[]];
    const chosen = streams.sort().slice(0, limit);
    if (chosen.length === 0) return [];
    // The save times and the server's TIME in the same MULTI: ages on the server's clock.
    const [positions, savedAt, [seconds, micros]] = (await this.#guard.read((multi) =>
      multi
        .mget(...chosen.map((stream) => `${this.#prefix}checkpoint:${keyPart(scope)}:${keyPart(stream)}`))
        .hmget(this.#savedKey(scope), ...chosen)
        .time(),
    )) as [(string | null)[], (string | null)[], [string, string]];
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    return chosen.flatMap((stream, at) => {
      const position = positions[at];
      if (typeof position !== 'string') return [];
      const saved = savedAt[at];
      // A position saved before the times were kept has none.
      return [{ stream, position, savedAgoMs: typeof saved === 'string' ? Math.max(0, now - Number(saved)) : null }];
    });
  }

  #savedKey(scope: string): string {
    return `${this.#prefix}checkpoint-saved:${keyPart(scope)}`;
  }

  #streamsKey(scope: string): string {
    return `${this.#prefix}checkpoint-streams:${keyPart(scope)}`;
  }

  #keys(scope: string, stream: string): string[] {
    return [`${this.#prefix}checkpoint:${keyPart(scope)}:${keyPart(stream)}`, this.#guard.markerKey];
  }
}
