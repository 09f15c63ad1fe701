import { isAbsolute, join } from 'node:path';
import { InvalidInputError } from '../errors.js';

/** Where durable state lives: `memory` (one process, tests), `sqlite:PATH` (embedded default), `redis://…` (many instances). */
export type StoreLocation =
  | { readonly kind: 'memory' }
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'redis'; readonly url: string };

export const DEFAULT_DATA_DIR = '.oncekit';
export const DEFAULT_SQLITE_FILE = 'oncekit.db';

/** The default: one SQLite file in the data directory. */
export function defaultStoreLocation(dataDir: string = DEFAULT_DATA_DIR): StoreLocation {
  return { kind: 'sqlite', path: join(dataDir, DEFAULT_SQLITE_FILE) };
}

/** Parses `memory`, `sqlite:PATH` (relative to `cwd`) or `redis://…`/`rediss://…`; errors name the option. */
export function parseStoreLocation(text: string, field = '--store', cwd: string = process.cwd()): StoreLocation {
  if (text === 'memory') return { kind: 'memory' };
  if (text.startsWith('sqlite:')) {
    const path = text.slice('sqlite:'.length);
    if (path.length === 0) throw new InvalidInputError([{ field, reason: 'sqlite: needs a file path, e.g. sqlite:.oncekit/oncekit.db' }]);
    return { kind: 'sqlite', path: isAbsolute(path) ? path : join(cwd, path) };
  }
  if (/^rediss?:\/\//.test(text)) {
    try {
      new URL(text);
    } catch {
      throw new InvalidInputError([{ field, reason: 'not a valid redis:// URL' }]);
    }
    return { kind: 'redis', url: text };
  }
  throw new InvalidInputError([{ field, reason: `expected memory, sqlite:PATH or redis://HOST:PORT, got ${JSON.stringify(text)}` }]);
}

/** The location for display: a Redis URL's password is never shown. */
export function describeStoreLocation(location: StoreLocation): string {
  if (location.kind === 'memory') return 'memory';
  if (location.kind === 'sqlite') return `sqlite:${location.path}`;
  const url = new URL(location.url);
  if (url.password) url.password = '***';
  return url.toString();
}
