import { afterEach, describe, expect, it } from 'vitest';
import { checkpointReplayId, openReplayCheckpointStore } from '../../../connectors/salesforce/replay-checkpoint-store.js';
import type { StoreLocation } from '../../../shared/store/location.js';
import {
  dropTestSchema,
  postgresEnv,
  skipPostgresTests,
  testPostgresLocation,
  uniqueTestSchema,
} from '../../shared/store/postgres-test-env.js';
import { tempDir } from '../../shared/store/temp-dir.js';

const CHANNEL = '/event/Oncekit_Event__e';

/** The checkpoint rules every durable location meets: saved per tenant and channel, kept across a reopen. */
function describeCheckpoints(name: string, location: () => Promise<{ location: StoreLocation; dispose: () => Promise<void> }>): void {
  describe(`replay checkpoints: ${name}`, () => {
    const disposers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const dispose of disposers.splice(0)) await dispose();
    });

    it('saves the last replayId per tenant and channel, overwriting, and keeps it across a reopen', async () => {
      const where = await location();
      disposers.push(where.dispose);
      const acme = await openReplayCheckpointStore(where.location, 'acme');
      const globex = await openReplayCheckpointStore(where.location, 'globex');
      expect(await acme.load(CHANNEL)).toBeNull();
      await acme.save(CHANNEL, 41);
      await acme.save(CHANNEL, '42');
      await globex.save(CHANNEL, 7);
      expect(checkpointReplayId(CHANNEL, await acme.load(CHANNEL))).toBe(42);
      await acme.close();
      await globex.close();
      const reopened = await openReplayCheckpointStore(where.location, 'acme');
      expect(checkpointReplayId(CHANNEL, await reopened.load(CHANNEL))).toBe(42);
      expect(await reopened.load('/event/Other__e')).toBeNull();
      await reopened.close();
    });
  });
}

describeCheckpoints('sqlite', async () => {
  const dir = tempDir();
  return { location: { kind: 'sqlite', path: `${dir.path}/oncekit.db` }, dispose: async () => dir.remove() };
});

describe.skipIf(skipPostgresTests)(`on PostgreSQL at ${postgresEnv.url}`, () => {
  describeCheckpoints('postgres', async () => {
    const schema = uniqueTestSchema('replay');
    return { location: testPostgresLocation({ schema }), dispose: () => dropTestSchema(schema) };
  });
});
