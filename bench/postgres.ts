import pg from 'pg';
import { runId } from './run-id.js';

/**
 * The PostgreSQL database the benchmarks and the chaos run use: ONCEKIT_BENCH_POSTGRES_URL, else ONCEKIT_POSTGRES_URL,
 * else the local default. Each run works in schemas of its own, named ONCEKIT_BENCH_POSTGRES_SCHEMA_PREFIX (default
 * `oncekit_bench`), the run's id and a label, and drops them when done.
 */
export const POSTGRES_URL =
  process.env.ONCEKIT_BENCH_POSTGRES_URL || process.env.ONCEKIT_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const SCHEMA_PREFIX = process.env.ONCEKIT_BENCH_POSTGRES_SCHEMA_PREFIX || 'oncekit_bench';
if (!/^[a-z_][a-z0-9_]{0,20}$/.test(SCHEMA_PREFIX)) {
  throw new Error('ONCEKIT_BENCH_POSTGRES_SCHEMA_PREFIX must be a lower-case SQL identifier of at most 21 characters');
}

let schemas = 0;
/** A schema of this run only (dropped with dropSchema). */
export function uniqueSchema(label: string): string {
  schemas += 1;
  return `${SCHEMA_PREFIX}_${runId}_${label}_${schemas}`.slice(0, 48);
}

/** POSTGRES_URL with oncekit's `schema` parameter, as a relay takes it in --store. */
export function postgresUrl(schema: string): string {
  const url = new URL(POSTGRES_URL);
  url.searchParams.set('schema', schema);
  return url.toString();
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** Whether a PostgreSQL answers `SELECT 1` at `url` within a second. */
export async function postgresAnswers(url = POSTGRES_URL): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}
