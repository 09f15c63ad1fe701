import pg from 'pg';
import { inject } from 'vitest';
import { type PostgresStoreLocation, parseStoreLocation } from '../../../../shared/state/location.js';

/** What test/setup/postgres.ts found when the run started. */
export const postgresEnv = inject('postgres');
/** Skip PostgreSQL tests only when none answers and none is required (ONCEKIT_REQUIRE_POSTGRES=1 turns this off). */
export const skipPostgresTests = !postgresEnv.answers && !postgresEnv.required;

const runId = `${process.pid}_${Date.now().toString(36)}`;
let schemas = 0;

/** A schema no other test or run uses; drop it with dropTestSchema. */
export function uniqueTestSchema(label: string): string {
  schemas += 1;
  return `oncekit_test_${runId}_${label}_${schemas}`.toLowerCase().slice(0, 40);
}

/** The test database as a StoreLocation, with a small pool. */
export function testPostgresLocation(overrides: Partial<Omit<PostgresStoreLocation, 'kind'>> = {}): PostgresStoreLocation {
  const location = parseStoreLocation(postgresEnv.url, 'ONCEKIT_POSTGRES_URL');
  if (location.kind !== 'postgres') throw new Error(`ONCEKIT_POSTGRES_URL is not a postgres:// URL: ${postgresEnv.url}`);
  return { ...location, poolMax: 4, ...overrides };
}

/** Drops `schema` and everything in it. */
export async function dropTestSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: testPostgresLocation().url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** The test database's URL with oncekit's `schema` parameter, as a relay or the CLI takes it in --store. */
export function testPostgresUrl(schema: string): string {
  const url = new URL(postgresEnv.url);
  url.searchParams.set('schema', schema);
  url.searchParams.set('pool_max', '4');
  return url.toString();
}
