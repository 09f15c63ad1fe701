/**
 * A package-lock.json for a fresh project that installs the packed tarball, made from the repository's own lock: the
 * same versions and integrity hashes `npm ci` installed here, so `npm ci --offline` takes every package from npm's
 * cache (which that `npm ci` filled) and the test talks to no registry.
 */

interface LockEntry {
  readonly version?: string;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly optionalDependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly peerDependenciesMeta?: Readonly<Record<string, { readonly optional?: boolean }>>;
  readonly link?: boolean;
  readonly [field: string]: unknown;
}

export interface Lock {
  readonly lockfileVersion: number;
  readonly packages: Readonly<Record<string, LockEntry>>;
}

/** Where Node would find `name` from the package at `from` ('' is the project), as the lock lays the tree out. */
function resolveIn(packages: Lock['packages'], from: string, name: string): string | undefined {
  let base = from;
  for (;;) {
    const candidate = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`;
    if (packages[candidate]) return candidate;
    if (base === '') return undefined;
    const parent = base.lastIndexOf('/node_modules/');
    base = parent === -1 ? '' : base.slice(0, parent);
  }
}

/**
 * The consumer's lock: the package from `tarball` as `name`, with its dependencies, and `extra` packages (e.g.
 * typescript), each with everything it needs, copied from the repository's lock (no dev flags: here they are needed).
 */
export function consumerLock(options: {
  readonly repositoryLock: Lock;
  readonly name: string;
  readonly version: string;
  readonly tarball: string;
  readonly dependencies: Readonly<Record<string, string>>;
  readonly extra: Readonly<Record<string, string>>;
}): { readonly lock: object; readonly dependencies: Record<string, string> } {
  const source = options.repositoryLock.packages;
  const packages: Record<string, LockEntry> = {};
  const pending: { readonly from: string; readonly name: string; readonly optional: boolean }[] = [];
  const want = (from: string, deps: Readonly<Record<string, string>> | undefined, optional: boolean): void => {
    for (const name of Object.keys(deps ?? {})) pending.push({ from, name, optional });
  };
  want('', options.dependencies, false);
  want('', options.extra, false);
  // Bounded: each lock entry is copied once, so the walk ends after at most as many steps as the lock has entries.
  while (pending.length > 0) {
    const next = pending.pop() as (typeof pending)[number];
    const at = resolveIn(source, next.from, next.name);
    if (at === undefined) {
      if (next.optional) continue;
      throw new Error(`the repository's lock has no ${next.name} for ${next.from || 'the project'}`);
    }
    if (packages[at]) continue;
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...entry } = source[at] as LockEntry;
    packages[at] = entry;
    want(at, entry.dependencies, false);
    want(at, entry.optionalDependencies, true);
    const optionalPeers = entry.peerDependenciesMeta ?? {};
    for (const name of Object.keys(entry.peerDependencies ?? {}))
      pending.push({ from: at, name, optional: optionalPeers[name]?.optional === true });
  }
  const dependencies = { [options.name]: `file:${options.tarball}`, ...options.extra };
  return {
    dependencies,
    lock: {
      name: 'oncekit-consumer',
      version: '1.0.0',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'oncekit-consumer', version: '1.0.0', dependencies },
        [`node_modules/${options.name}`]: {
          version: options.version,
          resolved: `file:${options.tarball}`,
          dependencies: options.dependencies,
        },
        ...packages,
      },
    },
  };
}
