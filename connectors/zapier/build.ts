import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, parse, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const CORE = 'zapier-platform-core';

/** The nearest folder with a package.json: the repository, from dist/connectors/zapier/ (after tsc) as from the source. */
function repositoryRootFrom(start: string): string {
  for (let dir = start; dir !== parse(dir).root; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${start}`);
}
const repositoryRoot = repositoryRootFrom(here);

export interface ZapierBuildOutput {
  readonly outDir: string;
  readonly version: string;
  readonly coreVersion: string;
  readonly bundleBytes: number;
}

/** The zapier-platform-core version oncekit pins, so the pushed app runs on the core the tests ran on. */
async function pinnedCoreVersion(): Promise<string> {
  const manifest: unknown = JSON.parse(await readFile(join(repositoryRoot, 'package.json'), 'utf8'));
  const version = (manifest as { dependencies?: Record<string, unknown> }).dependencies?.[CORE];
  if (typeof version !== 'string') throw new Error(`package.json has no dependency on ${CORE}`);
  return version;
}

/**
 * Writes a folder `zapier-platform push` can upload: `index.js`, one CommonJS file exporting the app definition with
 * zapier-platform-core left external (Zapier installs it from package.json), and that `package.json`.
 */
export async function buildZapierApp(outDir: string = join(repositoryRoot, 'dist', 'zapier')): Promise<ZapierBuildOutput> {
  const outfile = join(outDir, 'index.js');
  await mkdir(outDir, { recursive: true });
  const result = await build({
    // Zapier requires the app as `module.exports`, not as an ES module's default export.
    stdin: { contents: "module.exports = require('./index.js').default;", resolveDir: here, sourcefile: 'zapier-entry.cjs', loader: 'js' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    // Zapier runs apps on Node 22; oncekit's tests run them on Node 20.
    target: 'node20',
    external: [CORE],
    outfile,
    logLevel: 'warning',
    metafile: true,
  });
  const bundleBytes = result.metafile.outputs[Object.keys(result.metafile.outputs)[0] ?? '']?.bytes ?? 0;

  const coreVersion = await pinnedCoreVersion();
  const { ZAPIER_APP_VERSION: version } = await import('./index.js');
  const manifest = {
    name: 'oncekit-zapier',
    version,
    description: 'oncekit for Zapier: log SaaSquatch user events once, through Autoreplay and replays.',
    private: true,
    main: 'index.js',
    license: 'MIT',
    dependencies: { [CORE]: coreVersion },
  };
  // Without "type": "module" here the bundle is CommonJS, whatever the repository's package.json says.
  await writeFile(join(outDir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);

  // Loading the bundle as Zapier will proves it exports the app definition.
  const app: unknown = createRequire(join(outDir, 'package.json'))(outfile);
  if ((app as { version?: unknown } | null)?.version !== version) throw new Error(`${outfile} does not export the Zapier app ${version}`);
  return { outDir, version, coreVersion, bundleBytes };
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const outDir = process.argv[2] === undefined ? undefined : resolve(process.argv[2]);
  const output = await buildZapierApp(outDir);
  process.stdout.write(
    `zapier app ${output.version} (core ${output.coreVersion}) written to ${output.outDir} (${output.bundleBytes} bytes)\n`,
  );
}
