import { describe, expect, it } from 'vitest';
import {
  type ChaosOptions,
  type ChaosResult,
  chaosHeld,
  compareRecords,
  formatChaosResult,
  runChaos,
} from '../../../bench/chaos/driver.js';
import { tempDir } from '../../connectors/relay/helpers.js';
import { dropTestSchema, postgresEnv, skipPostgresTests, testPostgresUrl, uniqueTestSchema } from '../../shared/state/postgres/test-env.js';

// The same driver as `npm run chaos`, small: a few hundred keyed events, one SIGKILL.
const EVENTS = 300;

function expectEveryAckedEventRecordedOnce(result: ChaosResult): void {
  console.log(formatChaosResult(result));
  expect({
    acked: result.acked,
    recordedOnce: result.recordedOnce,
    lost: result.lost,
    doubled: result.doubled,
    strays: result.strays,
    refused: result.refused,
    drained: result.drained,
    kills: result.kills,
  }).toEqual({ acked: EVENTS, recordedOnce: EVENTS, lost: [], doubled: [], strays: 0, refused: 0, drained: true, kills: 1 });
  expect(chaosHeld(result)).toBe(true);
  // The run went through what it claims: target faults of each kind, and retries by the sources.
  expect(result.target.injected.status).toBeGreaterThan(0);
  expect(result.target.injected['record-then-fail'] + result.target.injected.drop).toBeGreaterThan(0);
  expect(Object.values(result.calls).every((calls) => calls > 0)).toBe(true);
}

/** A chaos run on a fresh SQLite file, removed afterwards. */
async function runOnSqlite(options: Omit<ChaosOptions, 'store'>): Promise<ChaosResult> {
  const dir = tempDir('oncekit-chaos-');
  try {
    return await runChaos({ ...options, store: `sqlite:${dir.dir}/oncekit.db` });
  } finally {
    dir.remove();
  }
}

describe('chaos: keyed events over the relay routes, target faults, a SIGKILL mid-run', () => {
  it('SQLite, one relay killed and restarted: every acknowledged event recorded once', async () => {
    expectEveryAckedEventRecordedOnce(await runOnSqlite({ label: 'sqlite', events: EVENTS, relays: 1, kills: 1, seed: 7 }));
  }, 120_000);

  describe.skipIf(skipPostgresTests)(`PostgreSQL at ${postgresEnv.url}`, () => {
    it('three relays on one database, one killed and restarted: every acknowledged event recorded once', async () => {
      const schema = uniqueTestSchema('chaos');
      try {
        const result = await runChaos({ label: 'postgres', store: testPostgresUrl(schema), events: EVENTS, relays: 3, kills: 1, seed: 8 });
        expectEveryAckedEventRecordedOnce(result);
      } finally {
        await dropTestSchema(schema);
      }
    }, 120_000);
  });
});

describe('chaos: the proof fails when the relay loses events', () => {
  it('a relay whose retry horizon (1 ms) passes before it sends dead-letters every event: the proof counts them lost', async () => {
    const result = await runOnSqlite({
      label: 'sqlite, 1 ms horizon',
      events: 200,
      relays: 1,
      kills: 0,
      seed: 7,
      relayArgs: ['--horizon', '1ms'],
    });
    console.log(formatChaosResult(result));
    expect(result.acked).toBe(200);
    expect(result.lost.length).toBeGreaterThan(0);
    expect(result.outbox.dead).toBeGreaterThan(0);
    expect(chaosHeld(result)).toBe(false);
  }, 120_000);
});

describe('the chaos comparison', () => {
  const recorded = (id: string | null, key: string | null = id) => ({
    id: `e-${id}`,
    userId: 'u',
    accountId: 'u',
    key: 'purchase',
    fields: id === null ? {} : { chaosId: id },
    dateTriggered: 0,
    dateReceived: 0,
    idempotencyKey: key,
    via: 'rest' as const,
  });
  const snapshot = (events: ReturnType<typeof recorded>[]) => ({
    tenant: 'chaos',
    events,
    keys: [],
    users: [],
    requests: { total: 0, byStatus: {}, dropped: 0 },
  });

  it('counts an acknowledged event never recorded as lost, one recorded twice as doubled, and others as strays', () => {
    const acked = new Set(['chaos-a', 'chaos-b', 'chaos-c']);
    const result = compareRecords(
      acked,
      snapshot([recorded('chaos-a'), recorded('chaos-b'), recorded('chaos-b', null), recorded('chaos-z'), recorded(null)]),
    );
    expect(result).toEqual({
      acked: 3,
      recordedOnce: 1,
      lost: ['chaos-c'],
      doubled: [{ key: 'chaos-b', times: 2 }],
      // chaos-b without its key, chaos-z never acknowledged, one without an identity
      strays: 3,
    });
    expect(compareRecords(acked, snapshot([recorded('chaos-a'), recorded('chaos-b'), recorded('chaos-c')]))).toEqual({
      acked: 3,
      recordedOnce: 3,
      lost: [],
      doubled: [],
      strays: 0,
    });
  });
});
