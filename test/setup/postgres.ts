import type { TestProject } from 'vitest/node';
import { postgresAnswers } from '../../bench/postgres.js';

export interface PostgresTestEnvironment {
  readonly url: string;
  /** A PostgreSQL answered `SELECT 1` when the run started. */
  readonly answers: boolean;
  /** ONCEKIT_REQUIRE_POSTGRES=1: a missing PostgreSQL fails the PostgreSQL tests instead of skipping them. */
  readonly required: boolean;
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgres: PostgresTestEnvironment;
  }
}

export const DEFAULT_TEST_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Asks once per run whether a PostgreSQL answers, and prints the one line that says the PostgreSQL tests are skipped. */
export default async function setup(project: TestProject): Promise<void> {
  const url = process.env.ONCEKIT_POSTGRES_URL || DEFAULT_TEST_POSTGRES_URL;
  const required = process.env.ONCEKIT_REQUIRE_POSTGRES === '1';
  const answers = await postgresAnswers(url);
  if (!answers && !required) {
    console.log(
      `PostgreSQL tests skipped: no PostgreSQL answered at ${url} (ONCEKIT_POSTGRES_URL); ONCEKIT_REQUIRE_POSTGRES=1 makes this a failure.`,
    );
  }
  project.provide('postgres', { url, answers, required });
}
