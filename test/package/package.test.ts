import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, startSandbox } from '../../sandbox/target/index.js';
import { consumerLock, type Lock } from './consumer-lock.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  readonly name: string;
  readonly version: string;
  readonly dependencies: Record<string, string>;
  readonly devDependencies: Record<string, string>;
  readonly overrides?: Record<string, string>;
};

/** The README's "Use it from code" example: the block after the marker, so the docs and the test are one text. */
function readmeExample(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const match = /<!-- package-test: example\.ts -->\n```ts\n([\s\S]*?)\n```/.exec(readme);
  if (!match?.[1]) throw new Error('README.md has no ```ts block after <!-- package-test: example.ts -->');
  return match[1];
}

const MB = 1024 * 1024;
const MINUTES = 60_000;
let work: string;
let consumer: string;
let packed: {
  readonly filename: string;
  readonly size: number;
  readonly unpackedSize: number;
  readonly files: readonly { path: string }[];
};
let sandbox: Sandbox;

async function npm(args: readonly string[], cwd: string): Promise<string> {
  // Offline and without audit: the test talks to no registry; every package comes from npm's cache.
  const { stdout } = await run('npm', [...args], { cwd, maxBuffer: 64 * MB, env: { ...process.env, npm_config_offline: 'true' } });
  return stdout;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'oncekit-package-'));
  consumer = join(work, 'consumer');
  mkdirSync(consumer);
  sandbox = await startSandbox({ port: 0 });
  // The API docs the package ships, from the doc comments.
  await npm(['run', 'docs'], root);
  // dist/ is already built (pretest): --ignore-scripts, so packing does not rebuild it under the other tests' feet.
  const [result] = JSON.parse(await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], root));
  packed = result;

  // A fresh project that depends on the tarball only, plus TypeScript and Node's types to check a file against it.
  const extra = { typescript: manifest.devDependencies.typescript ?? '', '@types/node': manifest.devDependencies['@types/node'] ?? '' };
  const { lock, dependencies } = consumerLock({
    repositoryLock: JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as Lock,
    name: manifest.name,
    version: manifest.version,
    tarball: `../${packed.filename}`,
    dependencies: manifest.dependencies,
    extra,
  });
  writeFileSync(
    join(consumer, 'package.json'),
    // The same overrides as ours: they keep npm from pulling versions that need a newer Node than 20.
    JSON.stringify({
      name: 'oncekit-consumer',
      version: '1.0.0',
      private: true,
      type: 'module',
      dependencies,
      overrides: manifest.overrides ?? {},
    }),
  );
  writeFileSync(join(consumer, 'package-lock.json'), JSON.stringify(lock));
  // Install scripts off: better-sqlite3's would try to download a prebuilt binary, then compile SQLite for minutes. The
  // addon it would build is the one `npm ci` built for this repository, of the same version, on the same Node.
  await npm(['ci', '--ignore-scripts', '--no-audit', '--no-fund'], consumer);
  const addon = join('node_modules', 'better-sqlite3', 'build', 'Release');
  mkdirSync(join(consumer, addon), { recursive: true });
  copyFileSync(join(root, addon, 'better_sqlite3.node'), join(consumer, addon, 'better_sqlite3.node'));

  writeFileSync(join(consumer, 'example.ts'), readmeExample());
  writeFileSync(
    join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2023',
        lib: ['ES2023'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        types: ['node'],
        strict: true,
        exactOptionalPropertyTypes: true,
        noUncheckedIndexedAccess: true,
        // Third-party declarations (jsforce, @types/node under TypeScript 7) have errors of their own.
        skipLibCheck: true,
        outDir: 'out',
        rootDir: '.',
      },
      files: ['example.ts'],
    }),
  );
}, 10 * MINUTES);

afterAll(async () => {
  await sandbox?.close();
  if (work) await rm(work, { recursive: true, force: true });
}, 2 * MINUTES);

describe('the npm package', () => {
  it('ships dist/ and the API docs only, well under 5 MB', () => {
    const paths = packed.files.map((file) => file.path);
    const outside = paths.filter(
      (path) => !/^(dist\/(?!zapier\/)|docs\/api\/)/.test(path) && !['package.json', 'README.md', 'LICENSE'].includes(path),
    );
    expect(outside).toEqual([]);
    expect(paths.filter((path) => path.startsWith('dist/bench/') || path.endsWith('.map'))).toEqual([]);
    for (const entry of ['dist/shared/index.js', 'dist/shared/index.d.ts', 'dist/connectors/relay/index.d.ts', 'docs/api/index.html']) {
      expect(paths).toContain(entry);
    }
    expect(packed.size).toBeLessThan(2 * MB);
    expect(packed.unpackedSize).toBeLessThan(5 * MB);
  });

  it('has four entry points and keeps its internal modules private', async () => {
    const script = `
      const names = {};
      for (const entry of ['oncekit', 'oncekit/fastify', 'oncekit/segment', 'oncekit/zapier']) names[entry] = Object.keys(await import(entry)).length;
      let deep = 'importable';
      try { await import('oncekit/dist/shared/log.js'); } catch (error) { deep = error.code; }
      console.log(JSON.stringify({ names, deep }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: consumer });
    const { names, deep } = JSON.parse(stdout) as { names: Record<string, number>; deep: string };
    for (const count of Object.values(names)) expect(count).toBeGreaterThan(3);
    expect(Object.keys(names)).toHaveLength(4);
    expect(deep).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');
  });

  it(
    "type-checks the README's example (strict, NodeNext) and runs it against the sandbox: accepted, then duplicate",
    async () => {
      await run(join(consumer, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { cwd: consumer });
      const tenant = `package_${process.pid}`;
      const env = { ...process.env, ONCEKIT_TARGET_URL: sandbox.url, ONCEKIT_TENANT: tenant, ONCEKIT_API_KEY: DEFAULT_SANDBOX_API_KEY };
      const example = async (): Promise<Record<string, Record<string, unknown>>> => {
        const { stdout } = await run(process.execPath, ['out/example.js'], { cwd: consumer, env, timeout: 2 * MINUTES });
        const lines = stdout
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as { step: string });
        return Object.fromEntries(lines.map(({ step, ...fields }) => [step, fields]));
      };

      const first = await example();
      expect(first.client).toEqual({ outcome: 'accepted' });
      expect(first['client again']).toEqual({ outcome: 'duplicate' });
      // The durable sender with its default store: send, close, reopen; the same key again is a duplicate.
      expect(first.sender).toEqual({ outcome: 'enqueued' });
      expect(first['sender again']).toEqual({ outcome: 'duplicate' });
      expect(first['sender flushed']).toMatchObject({ drained: true, left: 0 });
      expect(first['http again']).toEqual({ replayed: 'true' });
      expect(first.done).toMatchObject({ drained: true, left: 0 });
      const keysOf = (): string[] => sandbox.inspect(tenant).events.map((event) => event.idempotencyKey ?? '(none)');
      expect(keysOf().sort()).toEqual(['order-1234', 'order-1235', 'order-1236']);

      // A second run on the same store and target: nothing is recorded twice.
      const second = await example();
      expect(second.client).toEqual({ outcome: 'duplicate' });
      expect(second.sender).toEqual({ outcome: 'duplicate' });
      expect(keysOf().sort()).toEqual(['order-1234', 'order-1235', 'order-1236']);
    },
    5 * MINUTES,
  );
});
