import { afterEach, describe, expect, it } from 'vitest';
import { type InstanceHeartbeat, instanceRegistry } from '../../../connectors/relay/instances.js';
import type { CheckpointStore, SavedPosition } from '../../../shared/state/checkpoints.js';
import { MemoryCheckpointStore } from '../../../shared/state/memory/checkpoints.js';
import { openState, type State } from '../../../shared/state/open-state.js';
import { tempDir } from '../../shared/state/temp-dir.js';

const HOUR = 3_600_000;
const TENANT = 'instances';
const SCOPE = `oncekit-instances:${TENANT}`;

const heartbeat = (id: string, lastSeenAt: number, stoppedAt: number | null = null): InstanceHeartbeat => ({
  id,
  version: '0.1.0',
  host: `host-${id}`,
  pid: 1,
  target: 'https://target.test',
  startedAt: lastSeenAt - 60_000,
  lastSeenAt,
  delivered: 0,
  duplicate: 0,
  dead: 0,
  stoppedAt,
});

/** The same positions as `saved`, each listed as saved `savedAgoMs` ago on the store's clock. */
function listedAs(saved: CheckpointStore, savedAgoMs: number | null): CheckpointStore {
  return {
    load: (scope, stream) => saved.load(scope, stream),
    save: (scope, stream, position) => saved.save(scope, stream, position),
    list: async (scope, limit): Promise<SavedPosition[]> => (await saved.list(scope, limit)).map((row) => ({ ...row, savedAgoMs })),
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('instance registry', () => {
  it('judges liveness by how long ago the store saved the heartbeat, whatever the writer’s clock said', async () => {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const state: State = await openState({ kind: 'sqlite', path: `${dir.path}/oncekit.db` });
    cleanups.push(() => state.close());
    // Writers whose clocks run 2 h behind and 2 h ahead, both saved just now; and one that stopped.
    await state.checkpoints.save(SCOPE, 'behind', JSON.stringify(heartbeat('behind', Date.now() - 2 * HOUR)));
    await state.checkpoints.save(SCOPE, 'ahead', JSON.stringify(heartbeat('ahead', Date.now() + 2 * HOUR)));
    await state.checkpoints.save(SCOPE, 'stopped', JSON.stringify(heartbeat('stopped', Date.now(), Date.now())));
    const listed = await instanceRegistry(state.checkpoints, TENANT).list();
    expect(Object.fromEntries(listed.map((instance) => [instance.id, instance.alive]))).toEqual({
      behind: true,
      ahead: true,
      stopped: false,
    });
    for (const instance of listed) expect(instance.seenAgoMs).toBeLessThan(60_000);
  });

  it('a heartbeat the store saved long ago is silent, however recent its own stamp', async () => {
    const saved = new MemoryCheckpointStore();
    await saved.save(SCOPE, 'gone', JSON.stringify(heartbeat('gone', Date.now())));
    // A store that saved it 20 s ago (on its clock).
    const [gone] = await instanceRegistry(listedAs(saved, 20_000), TENANT).list();
    expect(gone).toMatchObject({ id: 'gone', alive: false, seenAgoMs: 20_000 });
  });

  it('falls back to the writer’s stamp for a heartbeat saved before the store kept the time', async () => {
    const saved = new MemoryCheckpointStore();
    await saved.save(SCOPE, 'old-recent', JSON.stringify(heartbeat('old-recent', Date.now() - 1000)));
    await saved.save(SCOPE, 'old-silent', JSON.stringify(heartbeat('old-silent', Date.now() - 60_000)));
    const listed = await instanceRegistry(listedAs(saved, null), TENANT).list();
    expect(Object.fromEntries(listed.map((instance) => [instance.id, instance.alive]))).toEqual({
      'old-recent': true,
      'old-silent': false,
    });
  });

  it('leaves out what is stored under the scope but is not a heartbeat, instead of showing it or failing the list', async () => {
    const saved = new MemoryCheckpointStore();
    await saved.save(SCOPE, 'good', JSON.stringify(heartbeat('good', Date.now())));
    await saved.save(SCOPE, 'not-json', '{"id":');
    await saved.save(SCOPE, 'other-shape', JSON.stringify({ id: 'other-shape', lastSeenAt: 'yesterday' }));
    await saved.save(SCOPE, 'negative', JSON.stringify({ ...heartbeat('negative', Date.now()), delivered: -1 }));
    const listed = await instanceRegistry(listedAs(saved, 0), TENANT).list();
    expect(listed.map((instance) => instance.id)).toEqual(['good']);
  });
});
