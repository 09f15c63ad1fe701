import { describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../../../../shared/state/idempotency.js';
import { PostgresIdempotencyStore } from '../../../../shared/state/postgres/idempotency.js';
import { describeIdempotencyStoreContract } from '../idempotency-contract.js';
import { openIdempotencyStore } from '../open-one.js';
import { dropTestSchema, postgresEnv, skipPostgresTests, testPostgresLocation, uniqueTestSchema } from './test-env.js';

describe.skipIf(skipPostgresTests)(`PostgreSQL at ${postgresEnv.url}`, () => {
  it('answers (ONCEKIT_REQUIRE_POSTGRES=1 makes a missing PostgreSQL fail here)', () => {
    expect(postgresEnv.answers, `no PostgreSQL answered at ${postgresEnv.url}`).toBe(true);
  });

  describeIdempotencyStoreContract('postgres', async () => {
    const schema = uniqueTestSchema('idem');
    return {
      // Each handle is its own pool, as separate processes would have.
      open: (clock) => PostgresIdempotencyStore.open(testPostgresLocation(), { clock, schema }),
      dispose: () => dropTestSchema(schema),
    };
  });

  describe('PostgreSQL store specifics', () => {
    it('opens from a StoreLocation, decides time on the server clock, and closes the pool it opened', async () => {
      const schema = uniqueTestSchema('open');
      try {
        const store = await openIdempotencyStore(testPostgresLocation({ schema }));
        expect(store.kind).toBe('postgres');
        const before = Date.now();
        const outcome = await store.claim({ tenant: 't', key: 'factory' }, { owner: 'w', leaseMs: 60_000 });
        if (outcome.status !== 'claimed') throw new Error('expected a claim');
        // No clock was injected: the server's clock stamped the record (this machine's clock, give or take).
        expect(Math.abs(outcome.record.createdAt - before)).toBeLessThan(5_000);
        expect(await store.get({ tenant: 't', key: 'factory' })).toEqual(outcome.record);
        await store.close();
        await expect(store.get({ tenant: 't', key: 'factory' })).rejects.toBeInstanceOf(StoreUnavailableError);
      } finally {
        await dropTestSchema(schema);
      }
    });

    it('applies its migrations once when several processes open the same schema at the same moment', async () => {
      const schema = uniqueTestSchema('migrate');
      try {
        const stores = await Promise.all(
          Array.from({ length: 4 }, () => PostgresIdempotencyStore.open(testPostgresLocation({ poolMax: 1 }), { schema })),
        );
        expect(await stores[0]?.claim({ tenant: 't', key: 'k' }, { owner: 'a', leaseMs: 1000 })).toMatchObject({ status: 'claimed' });
        expect(await stores[3]?.claim({ tenant: 't', key: 'k' }, { owner: 'b', leaseMs: 1000 })).toMatchObject({ status: 'in_progress' });
        await Promise.all(stores.map((store) => store.close()));
      } finally {
        await dropTestSchema(schema);
      }
    });
  });
});

describe('PostgreSQL store without a PostgreSQL', () => {
  it('fails to open with StoreUnavailableError, never showing the password', async () => {
    // Port 1 on loopback: nothing listens there.
    const location = {
      kind: 'postgres',
      url: 'postgres://oncekit:s3cret@127.0.0.1:1/oncekit',
      poolMax: 1,
      statementTimeoutMs: 1000,
    } as const;
    const failure = await openIdempotencyStore(location).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(StoreUnavailableError);
    expect(String((failure as Error).message)).not.toContain('s3cret');
  });
});
