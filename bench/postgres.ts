import pg from 'pg';
import { runId } from './run-id.js';

/** The PostgreSQL benchmarks and the chaos run use: ONCEKIT_POSTGRES_URL, else the local default. */
export const POSTGRES_URL = process.env.ONCEKIT_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';

let schemas = 0;
/** A schema of this run only (dropped with dropSchema). */
export function uniqueSchema(label: string): string {
  schemas += 1;
  return `oncekit_bench_${runId}_${label}_${schemas}`.slice(0, 40);
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
