import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { CachePersistenceLayer } from '@aws-lambda-powertools/idempotency/cache';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { Inbox } from '../shared/inbox/index.js';
import { connectRedis } from '../shared/state/redis/connection.js';
import { RedisIdempotencyStore } from '../shared/state/redis/idempotency.js';
import { type Figures, figure, interleave, pairedRatios, type Samples } from './interleave.js';
import { type BenchRow, measureRate, spreadRow } from './measure.js';
import { runId } from './run-id.js';
import { REDIS_URL, rateMs, repetitions } from './settings.js';

/** Operations in flight at once: a relay serves many webhook deliveries concurrently over one connection. */
const IN_FLIGHT = 50;
const LEASE_MS = 30_000;
/** Short, so what the bench writes leaves Redis soon even if the clean-up at the end does not run. */
const DONE_TTL_MS = 10 * 60 * 1000;
const DUPLICATE_POOL = 2000;

/**
 * Inbox decisions per second on one Redis, side by side over the same ioredis connection, interleaved: a bare
 * `SET NX PX` (one round trip, no lease and no safe release), `SET NX` then `SET` (the two-command minimum for a claim
 * that is later marked done), oncekit's store claim, inbox.deliver and inbox.acceptOnce (one script), and Powertools'
 * Redis persistence layer (CachePersistenceLayer, given the same connection through its small CacheClient interface).
 */
export async function runInboxBench(): Promise<BenchRow[]> {
  let client: Redis;
  try {
    client = await connectRedis(REDIS_URL, 1000);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return [{ name: 'inbox on Redis: skipped', value: 0, unit: '', note: `${reason}. Start Redis or set ONCEKIT_BENCH_REDIS_URL.` }];
  }
  const prefix = `oncekit-bench:${runId}:`;
  try {
    return await measureAll(client, prefix);
  } finally {
    await deleteKeys(client, prefix);
    await client.quit();
  }
}

type NewSubject = 'setNx' | 'setNxThenSet' | 'claim' | 'inbox' | 'acceptOnce' | 'powertools';
type DuplicateSubject = 'setNx' | 'inbox' | 'acceptOnce' | 'powertools';

async function measureAll(client: Redis, prefix: string): Promise<BenchRow[]> {
  let sequence = 0;
  const nextToken = (): string => `t${++sequence}`;
  const inFlight = (operation: () => Promise<unknown>) => async (): Promise<void> => {
    await Promise.all(Array.from({ length: IN_FLIGHT }, operation));
  };

  const store = new RedisIdempotencyStore({ client, keyPrefix: `${prefix}oncekit:` });
  const inbox = new Inbox({ store, leaseMs: LEASE_MS, doneTtlMs: DONE_TTL_MS });
  const noop = async (): Promise<string> => 'ok';
  const powertools = powertoolsReceiver(client, `${prefix}powertools`);
  const rawKey = (token: string): string => `${prefix}raw:${token}`;
  // A fresh tenant (and so fresh keys) for every measurement.
  let runs = 0;
  const rate = async (operation: () => Promise<unknown>): Promise<Figures> => ({
    perSecond: (await measureRate(inFlight(operation), IN_FLIGHT, rateMs)).perSecond,
  });

  // New deliveries: every token is seen for the first time.
  const newOperations = (tenant: string): Record<NewSubject, () => Promise<unknown>> => ({
    setNx: () => client.set(rawKey(`${tenant}:${nextToken()}`), '1', 'PX', DONE_TTL_MS, 'NX'),
    setNxThenSet: async () => {
      const key = rawKey(`${tenant}:${nextToken()}`);
      await client.set(key, 'in-progress', 'PX', LEASE_MS, 'NX');
      await client.set(key, 'done', 'PX', DONE_TTL_MS);
    },
    claim: () => store.claim({ tenant, key: nextToken() }, { owner: 'bench', leaseMs: LEASE_MS }),
    inbox: () => inbox.deliver({ source: 'bench', tenant, token: nextToken() }, noop),
    acceptOnce: () => inbox.acceptOnce({ source: 'bench', tenant, token: nextToken() }, 'ok'),
    powertools: () => powertools({ token: `${tenant}:${nextToken()}` }),
  });
  const newSamples = await interleave<NewSubject>(
    ['setNx', 'setNxThenSet', 'claim', 'inbox', 'acceptOnce', 'powertools'],
    async (subject) => {
      runs += 1;
      const figures = await rate(newOperations(`new-${runs}`)[subject]);
      // Each measurement starts on the same small keyspace: otherwise whichever subject runs while Redis rehashes a
      // growing keyspace (a million keys by the last round) pays for the keys the others wrote.
      await deleteKeys(client, prefix, { keep: (key) => key.endsWith('marker') });
      return figures;
    },
    { repetitions },
  );

  // Duplicates: every token was already processed (by the same tenant's receiver).
  const tenant = 'duplicates';
  const done = Array.from({ length: DUPLICATE_POOL }, nextToken);
  for (const token of done) {
    await client.set(rawKey(`${tenant}:${token}`), '1', 'PX', DONE_TTL_MS, 'NX');
    await inbox.deliver({ source: 'bench', tenant, token }, noop);
    await powertools({ token: `${tenant}:${token}` });
  }
  let cursor = 0;
  const doneToken = (): string => done[cursor++ % done.length] as string;
  const duplicateOperations: Record<DuplicateSubject, () => Promise<unknown>> = {
    setNx: () => client.set(rawKey(`${tenant}:${doneToken()}`), '1', 'PX', DONE_TTL_MS, 'NX'),
    inbox: () => inbox.deliver({ source: 'bench', tenant, token: doneToken() }, noop),
    acceptOnce: () => inbox.acceptOnce({ source: 'bench', tenant, token: doneToken() }, 'ok'),
    powertools: () => powertools({ token: `${tenant}:${doneToken()}` }),
  };
  const duplicateSamples = await interleave<DuplicateSubject>(
    ['setNx', 'inbox', 'acceptOnce', 'powertools'],
    (subject) => rate(duplicateOperations[subject]),
    { repetitions },
  );

  const unit = 'deliveries/s';
  const row = (
    samples: Samples<NewSubject>,
    subject: NewSubject,
    name: string,
    baseline?: { row: BenchRow; subject: NewSubject },
    note?: string,
  ) =>
    spreadRow(
      name,
      figure(samples, subject, 'perSecond'),
      unit,
      baseline ? { row: baseline.row, paired: pairedRatios(samples, subject, baseline.subject, 'perSecond') } : undefined,
      note,
    );
  const setNx = row(
    newSamples,
    'setNx',
    'new token: bare SET NX PX (baseline)',
    undefined,
    '1 round trip; no lease, no owner, no done mark',
  );
  const setNxThenSet = row(
    newSamples,
    'setNxThenSet',
    'new token: SET NX PX, then SET (two-command minimum)',
    { row: setNx, subject: 'setNx' },
    '2 round trips: claim, then done mark',
  );
  const powertoolsNew = row(
    newSamples,
    'powertools',
    'new token: Powertools CachePersistenceLayer (SET NX EX, then SET)',
    { row: setNx, subject: 'setNx' },
    '@aws-lambda-powertools/idempotency 2.35.0 on the same ioredis client; hashes the payload (md5)',
  );
  const inboxName = 'new token: oncekit inbox.deliver (claim, process, done mark)';
  const acceptName = 'new token: oncekit inbox.acceptOnce (claim + done mark in one script)';
  const duplicateRow = (subject: DuplicateSubject, name: string, baseline?: { row: BenchRow; subject: DuplicateSubject }, note?: string) =>
    spreadRow(
      name,
      figure(duplicateSamples, subject, 'perSecond'),
      unit,
      baseline ? { row: baseline.row, paired: pairedRatios(duplicateSamples, subject, baseline.subject, 'perSecond') } : undefined,
      note,
    );
  const duplicateSetNx = duplicateRow('setNx', 'duplicate: bare SET NX PX, refused (baseline)');
  const duplicatePowertools = duplicateRow('powertools', 'duplicate: Powertools (SET NX refused, then GET, replay)', {
    row: duplicateSetNx,
    subject: 'setNx',
  });
  return [
    setNx,
    setNxThenSet,
    row(
      newSamples,
      'claim',
      'new token: oncekit store.claim (Lua, lease + owner)',
      { row: setNx, subject: 'setNx' },
      '1 round trip (EVALSHA)',
    ),
    row(newSamples, 'inbox', inboxName, { row: setNx, subject: 'setNx' }),
    row(newSamples, 'inbox', `${inboxName}, against SET NX + SET`, { row: setNxThenSet, subject: 'setNxThenSet' }),
    powertoolsNew,
    row(newSamples, 'inbox', `${inboxName}, against Powertools`, { row: powertoolsNew, subject: 'powertools' }),
    row(newSamples, 'acceptOnce', acceptName, { row: setNx, subject: 'setNx' }, '1 round trip (EVALSHA); synchronous handler'),
    row(newSamples, 'acceptOnce', `${acceptName}, against SET NX + SET`, { row: setNxThenSet, subject: 'setNxThenSet' }),
    row(newSamples, 'acceptOnce', `${acceptName}, against Powertools`, { row: powertoolsNew, subject: 'powertools' }),
    duplicateSetNx,
    duplicateRow('inbox', 'duplicate: oncekit inbox.deliver, acknowledged', { row: duplicateSetNx, subject: 'setNx' }),
    duplicatePowertools,
    duplicateRow('inbox', 'duplicate: oncekit inbox.deliver, against Powertools', { row: duplicatePowertools, subject: 'powertools' }),
    duplicateRow('acceptOnce', 'duplicate: oncekit inbox.acceptOnce, against Powertools', {
      row: duplicatePowertools,
      subject: 'powertools',
    }),
  ];
}

const setOptions = z.object({ EX: z.number().int().positive().optional(), NX: z.boolean().optional() }).optional();

/** A Keygen-style receiver made idempotent with Powertools, on the given connection. */
function powertoolsReceiver(client: Redis, keyPrefix: string): (event: { token: string }) => Promise<string> {
  // Powertools' CacheClient is node-redis shaped (`set(name, value, {EX, NX})`); this maps it onto ioredis.
  const cacheClient = {
    get: (name: string) => client.get(name),
    set: async (name: string | Uint8Array, value: unknown, options?: unknown): Promise<string | null> => {
      const parsed = setOptions.parse(options);
      const args: (string | number)[] = [typeof name === 'string' ? name : Buffer.from(name).toString(), String(value)];
      if (parsed?.EX !== undefined) args.push('EX', parsed.EX);
      if (parsed?.NX) args.push('NX');
      const reply = await client.call('SET', ...args);
      return typeof reply === 'string' ? reply : null;
    },
    del: (keys: string[]) => client.del(...keys),
  };
  const config = new IdempotencyConfig({ eventKeyJmesPath: 'token', expiresAfterSeconds: DONE_TTL_MS / 1000 });
  // Gives Powertools the same 30 s lease the inbox uses (it takes the lease from a Lambda context).
  config.registerLambdaContext({ getRemainingTimeInMillis: () => LEASE_MS });
  const persistenceStore = new CachePersistenceLayer({ client: cacheClient });
  return makeIdempotent(async (_event: { token: string }) => 'ok', { persistenceStore, config, keyPrefix });
}

/** Unlinks the keys under `prefix` (but those `keep` names, e.g. a store's marker, which its handle checks). */
async function deleteKeys(client: Redis, prefix: string, options: { keep?: (key: string) => boolean } = {}): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    const doomed = options.keep ? keys.filter((key) => !options.keep?.(key)) : keys;
    if (doomed.length > 0) await client.unlink(...doomed);
    cursor = next;
  } while (cursor !== '0');
}
