import { mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * Bundles a TypeScript entry into one ESM file that a worker thread or child process can run (Node 20 cannot run .ts).
 * The output sits under node_modules/.cache so that native packages left external (better-sqlite3) still resolve.
 */
export async function bundleForWorker(entry: string): Promise<string> {
  const outdir = join(repoRoot, 'node_modules', '.cache', 'oncekit-test-workers');
  mkdirSync(outdir, { recursive: true });
  const outfile = join(outdir, `${basename(entry, '.ts')}-${process.pid}.mjs`);
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'silent',
  });
  return outfile;
}
