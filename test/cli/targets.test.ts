import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRelayConfig } from '../../connectors/relay/config.js';
import { startRelay } from '../../connectors/relay/relay.js';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import { postJson, RELAY_SECRET, waitFor } from '../connectors/relay/helpers.js';
import { runCli } from './run-cli.js';

// The same tenant name on two targets: only the target tells their events apart.
const TENANT = `shared_${process.pid}`;
const RELAY_EVENTS = 40;
const IMPORT_ROWS = 300;

let relayTarget: Sandbox;
let importTarget: Sandbox;
let dir: string;

beforeAll(async () => {
  relayTarget = await startSandbox({ port: 0 });
  importTarget = await startSandbox({ port: 0 });
  dir = mkdtempSync(join(tmpdir(), 'oncekit-targets-'));
});
afterAll(async () => {
  await relayTarget.close();
  await importTarget.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('events bound to their target', () => {
  it('a relay and an import with different targets on one SQLite file each deliver only their own events', async () => {
    const store = `sqlite:${join(dir, 'shared.db')}`;
    const config = readRelayConfig(
      { port: 0, store, targetUrl: relayTarget.url, tenant: TENANT },
      { ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY, ONCEKIT_RELAY_SECRET: RELAY_SECRET, ONCEKIT_LOG_LEVEL: 'silent' },
    );
    if (!config.target) throw new Error('expected a configured target');
    const relay = await startRelay({ ...config, target: config.target }, { outbox: { pollMs: 20, backoffBaseMs: 10, backoffMaxMs: 50 } });
    try {
      const rows = Array.from({ length: IMPORT_ROWS }, (_, n) =>
        JSON.stringify({ userId: `i${n}`, accountId: `i${n}`, event: { key: 'imported', fields: { n } } }),
      );
      const path = join(dir, 'rows.jsonl');
      writeFileSync(path, `${rows.join('\n')}\n`);
      // The import runs while the relay's worker polls the same file for its own events.
      const importing = runCli(['import', path, '--json', '--no-progress'], {
        env: {
          ONCEKIT_TARGET_URL: importTarget.url,
          ONCEKIT_TENANT: TENANT,
          ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY,
          ONCEKIT_STORE: store,
        },
      });
      for (let n = 0; n < RELAY_EVENTS; n++) {
        const answer = await postJson(`${relay.url}/salesforce/track-event/by-id`, {
          usersEvents: [{ userId: `r${n}`, accountId: `r${n}`, key: 'relayed', idempotencyKey: `relay-event-${process.pid}-${n}` }],
        });
        expect(answer.status).toBe(200);
      }
      const run = await importing;
      expect(run.code, run.stderr).toBe(0);
      const summary = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, number>;
      expect(summary).toMatchObject({ rows: IMPORT_ROWS, accepted: IMPORT_ROWS, pending: 0, deadLetters: 0 });

      await waitFor('the relay to deliver its events', () => relayTarget.inspect(TENANT).events.length >= RELAY_EVENTS);
      const atRelayTarget = relayTarget.inspect(TENANT).events;
      const atImportTarget = importTarget.inspect(TENANT).events;
      expect(atRelayTarget).toHaveLength(RELAY_EVENTS);
      expect(atRelayTarget.every((event) => event.key === 'relayed')).toBe(true);
      expect(atImportTarget).toHaveLength(IMPORT_ROWS);
      expect(atImportTarget.every((event) => event.key === 'imported')).toBe(true);
    } finally {
      await relay.stop();
    }
  });
});
