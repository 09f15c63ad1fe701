import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { createAppHandler } from '../../../connectors/zapier/handler.js';
import App from '../../../connectors/zapier/index.js';

const root = resolve(import.meta.dirname, '../../..');
const buildScript = resolve(root, 'dist/connectors/zapier/build.js');
const outDir = resolve(root, 'dist/zapier');
const run = promisify(execFile);

describe('dist/zapier, the folder `zapier-platform push` uploads', () => {
  let buildOutput = '';
  beforeAll(async () => {
    // The command `npm run build` runs, on the tsc output `pretest` just wrote.
    if (!existsSync(buildScript))
      throw new Error(`${buildScript} is missing: run \`npx tsc -p tsconfig.build.json\` (npm run build) first`);
    buildOutput = (await run(process.execPath, [buildScript], { cwd: root })).stdout;
  }, 60_000);

  it('has a package.json that depends on the pinned zapier-platform-core and points at index.js', async () => {
    const manifest = JSON.parse(await readFile(resolve(outDir, 'package.json'), 'utf8'));
    const rootManifest = JSON.parse(await readFile(resolve(root, 'package.json'), 'utf8'));

    expect(manifest).toMatchObject({ name: 'oncekit-zapier', version: App.version, main: 'index.js', private: true });
    expect(manifest.dependencies).toEqual({ 'zapier-platform-core': rootManifest.dependencies['zapier-platform-core'] });
    expect(manifest.type).toBeUndefined();
    expect(buildOutput).toContain(`zapier app ${App.version} (core 19.1.0) written to ${outDir}`);
  });

  it('is one CommonJS file with zapier-platform-core left out of the bundle', async () => {
    const bundle = await readFile(resolve(outDir, 'index.js'), 'utf8');

    expect(bundle).toContain('module.exports =');
    expect(bundle).toContain('require("zapier-platform-core")');
    expect(bundle).not.toContain('node_modules/zapier-platform-core/');
    expect(bundle).not.toMatch(/^\s*(import|export)\s/m);
  });

  it('validates, loaded by path as Zapier loads it, and defines the same app as the source', async () => {
    const handler = createAppHandler(resolve(outDir, 'index.js'));

    expect(await handler({ command: 'validate' })).toEqual({ results: [], status: 'SUCCESS' });
    const built = await handler({ command: 'definition' });
    const source = await createAppHandler(App)({ command: 'definition' });
    expect(built.results).toEqual(source.results);
  });
});
