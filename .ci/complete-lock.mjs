#!/usr/bin/env node
// `npm ci` refuses a lock that lacks any optional dependency of a package. Biome ships one binary package per
// platform; a registry that serves only the Linux ones (this project's build machines) makes `npm install` write a
// lock without the others, which `npm ci` then rejects everywhere. This adds the missing entries (npm installs only the
// one matching the machine, exactly as from a complete lock). Run it after `npm install`; `--check` only reports.
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const packages = lock.packages;
const biome = packages['node_modules/@biomejs/biome'];
const platforms = {
  'android-arm64': ['android', 'arm64'],
  'android-x64': ['android', 'x64'],
  'darwin-arm64': ['darwin', 'arm64'],
  'darwin-x64': ['darwin', 'x64'],
  'linux-arm64': ['linux', 'arm64', 'glibc'],
  'linux-x64': ['linux', 'x64', 'glibc'],
  'linux-arm64-musl': ['linux', 'arm64', 'musl'],
  'linux-x64-musl': ['linux', 'x64', 'musl'],
  'win32-arm64': ['win32', 'arm64'],
  'win32-x64': ['win32', 'x64'],
};
const missing = Object.entries(biome?.optionalDependencies ?? {}).filter(([name]) => !(`node_modules/${name}` in packages));
if (process.argv.includes('--check')) {
  if (missing.length > 0) {
    console.error(`package-lock.json lacks ${missing.map(([name]) => name).join(', ')}: run node .ci/complete-lock.mjs`);
    process.exit(1);
  }
  process.exit(0);
}
const entries = Object.entries(packages);
for (const [name, version] of missing) {
  const [os, cpu, libc] = platforms[name.split('/cli-')[1]] ?? [];
  if (!os) throw new Error(`unknown Biome platform package ${name}`);
  const entry = {
    version,
    cpu: [cpu],
    dev: true,
    license: biome.license ?? 'MIT OR Apache-2.0',
    optional: true,
    os: [os],
    engines: biome.engines,
  };
  if (libc) entry.libc = [libc];
  // Next to the other @biomejs entries, in name order, as npm writes them.
  const at = entries.findIndex(([key]) => key.startsWith('node_modules/@biomejs/cli-') && key > `node_modules/${name}`);
  const after = at >= 0 ? at : entries.findLastIndex(([key]) => key.startsWith('node_modules/@biomejs/')) + 1;
  entries.splice(after, 0, [`node_modules/${name}`, entry]);
}
lock.packages = Object.fromEntries(entries);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(missing.length === 0 ? 'package-lock.json is complete' : `added ${missing.length} Biome platform entries to package-lock.json`);
