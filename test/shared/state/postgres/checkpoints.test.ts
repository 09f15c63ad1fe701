import { describe } from 'vitest';
import { describeCheckpointContract } from '../checkpoints-contract.js';
import { dropTestSchema, postgresEnv, skipPostgresTests, testPostgresLocation, uniqueTestSchema } from './test-env.js';

describe.skipIf(skipPostgresTests)(`on PostgreSQL at ${postgresEnv.url}`, () => {
  describeCheckpointContract('postgres', { durable: true }, async () => {
    const schema = uniqueTestSchema('checkpoints');
    return { location: testPostgresLocation({ schema }), dispose: () => dropTestSchema(schema) };
  });
});
