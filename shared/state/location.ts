import { isAbsolute, join } from 'node:path';
import { parseDuration } from '../duration.js';
import { InvalidInputError } from '../errors.js';

/**
 * Where durable state lives: `memory` (one process, tests), `sqlite:PATH` (embedded default), `redis://…` or
 * `postgres://…` (many instances).
 */
export type StoreLocation =
  | { readonly kind: 'memory' }
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'redis'; readonly url: string }
  | {
      readonly kind: 'postgres';
      /** The connection URL handed to pg, without oncekit's own query parameters. */
      readonly url: string;
      /** Most connections the pool opens (`?pool_max=`). */
      readonly poolMax: number;
      /** Longest a statement may run before the server cancels it, in ms; 0: no limit (`?statement_timeout=`). */
      readonly statementTimeoutMs: number;
      /** The schema oncekit's tables live in (`?schema=`); default `public`. */
      readonly schema?: string;
    };

export type PostgresStoreLocation = Extract<StoreLocation, { kind: 'postgres' }>;

export const DEFAULT_DATA_DIR = '.oncekit';
export const DEFAULT_SQLITE_FILE = 'oncekit.db';
export const DEFAULT_POSTGRES_POOL_MAX = 10;
export const DEFAULT_POSTGRES_STATEMENT_TIMEOUT_MS = 5000;
/** A plain lower-case identifier, so a schema name never needs quoting (and a channel name derived from it stays short). */
export const POSTGRES_SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,39}$/;

/** The default: one SQLite file in the data directory. */
export function defaultStoreLocation(dataDir: string = DEFAULT_DATA_DIR): StoreLocation {
  return { kind: 'sqlite', path: join(dataDir, DEFAULT_SQLITE_FILE) };
}

/**
 * Parses `memory`, `sqlite:PATH` (relative to `cwd`), `redis://…`/`rediss://…` or `postgres://…`/`postgresql://…`;
 * errors name the option.
 */
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
  if (/^postgres(ql)?:\/\//.test(text)) return parsePostgresLocation(text, field);
  throw new InvalidInputError([
    { field, reason: `expected memory, sqlite:PATH, redis://HOST:PORT or postgres://USER@HOST:PORT/DB, got ${JSON.stringify(text)}` },
  ]);
}

/**
 * `postgres://USER:PASSWORD@HOST:PORT/DB?pool_max=10&statement_timeout=5s&schema=oncekit`: oncekit's parameters are
 * taken out of the URL; any other parameter (e.g. `sslmode`) goes to pg unchanged.
 */
function parsePostgresLocation(text: string, field: string): PostgresStoreLocation {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidInputError([{ field, reason: 'not a valid postgres:// URL' }]);
  }
  const take = (name: string): string | undefined => {
    const value = url.searchParams.get(name);
    url.searchParams.delete(name);
    return value ?? undefined;
  };
  const poolText = take('pool_max');
  const timeoutText = take('statement_timeout');
  const schema = take('schema');
  let poolMax = DEFAULT_POSTGRES_POOL_MAX;
  if (poolText !== undefined) {
    poolMax = /^\d+$/.test(poolText) ? Number(poolText) : Number.NaN;
    if (!Number.isInteger(poolMax) || poolMax < 1 || poolMax > 1000) {
      throw new InvalidInputError([
        { field: `${field} pool_max`, reason: `expected a whole number from 1 to 1000, got ${JSON.stringify(poolText)}` },
      ]);
    }
  }
  const statementTimeoutMs =
    timeoutText === undefined ? DEFAULT_POSTGRES_STATEMENT_TIMEOUT_MS : parseDuration(timeoutText, `${field} statement_timeout`);
  if (schema !== undefined && !POSTGRES_SCHEMA_PATTERN.test(schema)) {
    throw new InvalidInputError([
      { field: `${field} schema`, reason: `expected a lower-case identifier of at most 40 characters, got ${JSON.stringify(schema)}` },
    ]);
  }
  return { kind: 'postgres', url: url.toString(), poolMax, statementTimeoutMs, ...(schema === undefined ? {} : { schema }) };
}

/** The location for display: a Redis or PostgreSQL URL's password is never shown. */
export function describeStoreLocation(location: StoreLocation): string {
  if (location.kind === 'memory') return 'memory';
  if (location.kind === 'sqlite') return `sqlite:${location.path}`;
  const url = new URL(location.url);
  if (url.password) url.password = '***';
  if (location.kind === 'postgres') {
    url.searchParams.set('pool_max', String(location.poolMax));
    url.searchParams.set('statement_timeout', `${location.statementTimeoutMs}ms`);
    if (location.schema !== undefined) url.searchParams.set('schema', location.schema);
  }
  return url.toString();
}
