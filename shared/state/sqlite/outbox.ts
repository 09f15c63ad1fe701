import { type Clock, systemClock } from '../../clock.js';
import { settledAtOf, summarizeActivity } from '../../outbox/activity.js';
import { attemptMayHaveLanded } from '../../outbox/ledger.js';
import {
  abandonedAttempt,
  canRevive,
  checkOutboxArgs,
  countsFrom,
  leasedOnEnqueue,
  type OutboxStoreOptions,
  outboxStoreFailure,
  storedInput,
  UNMAPPABLE_OUTCOME,
  UNMAPPABLE_STORED_INPUT,
} from '../../outbox/store-support.js';
import {
  type ActivityQuery,
  type ActivitySeries,
  type AttemptRecord,
  type EnqueueOptions,
  type EnqueueResult,
  type EventFilter,
  type EventListQuery,
  type EventPage,
  type LeasedEvent,
  type LeaseRequest,
  type LedgerEntry,
  MAX_ACTIVITY_ROWS,
  type NewOutboxEvent,
  type OutboxCountFilter,
  type OutboxCounts,
  type OutboxState,
  type OutboxStore,
  type RecordUnmappableResult,
  type RequeueRequest,
  type Settlement,
  type TenantTarget,
  type UnmappableEvent,
} from '../../outbox/types.js';
import {
  attemptOfRow,
  eventFilterSql,
  type LeasedEventRow,
  type LedgerAttemptRow,
  leasedEventOfRow,
  ledgerEntryOfRow,
  type OutboxEventRow,
  outboxIdOfSeq,
  outboxSeqOfId,
} from '../outbox-rows.js';
import { migrate, openSqliteDatabase, type SqliteDatabase } from './database.js';

const SCHEMA_VERSION = 4;
/** Version 5 adds the `unmappable` column after the schema statements ran (see upgradeToVersion5). */
const UNMAPPABLE_SCHEMA_VERSION = 5;
/** Version 6 indexes events by enqueue time, for the ledger's listing and the activity charts (see upgradeToVersion6). */
const LISTING_SCHEMA_VERSION = 6;
/** Version 7 keeps when an attempt that may have landed was leased (see upgradeToVersion7). */
const LANDED_SINCE_SCHEMA_VERSION = 7;
/** Version 8 indexes events by source and enqueue time, for the ledger's listing of one source (see upgradeToVersion8). */
const SOURCE_LISTING_SCHEMA_VERSION = 8;
/** Page cache of a connection the store opens itself, in KiB. */
export const OUTBOX_CACHE_KIB = 65_536;

const eventsTable = (name: string): string => `CREATE TABLE IF NOT EXISTS ${name} (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    source_id TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    idempotency_key TEXT,
    key_decision TEXT,
    input TEXT NOT NULL,
    state TEXT NOT NULL,
    enqueued_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    due_at INTEGER,
    owner TEXT,
    leased_at INTEGER,
    lease_expires_at INTEGER,
    first_attempt_at INTEGER,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT,
    dead_reason TEXT,
    dead_at INTEGER,
    may_have_landed INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant, target, dedup_key)
  )`;

const EVENT_INDEXES = [
  `CREATE INDEX IF NOT EXISTS outbox_events_due ON outbox_events (tenant, target, due_at, seq) WHERE state = 'pending'`,
  `CREATE INDEX IF NOT EXISTS outbox_events_leased ON outbox_events (tenant, target, lease_expires_at, seq) WHERE state = 'leased'`,
  `CREATE INDEX IF NOT EXISTS outbox_events_dead ON outbox_events (tenant, dead_at, seq) WHERE state = 'dead'`,
  `CREATE INDEX IF NOT EXISTS outbox_events_key ON outbox_events (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL`,
  'CREATE INDEX IF NOT EXISTS outbox_events_source_id ON outbox_events (tenant, source_id)',
  // Pruning takes the oldest settled events first.
  `CREATE INDEX IF NOT EXISTS outbox_events_settled ON outbox_events (updated_at, seq) WHERE state IN ('delivered', 'duplicate', 'dead')`,
  // Possible duplicates are counted from this index: it holds only keyless delivered events that may have landed twice.
  `CREATE INDEX IF NOT EXISTS outbox_events_possible_duplicates ON outbox_events (tenant, target, source)
     WHERE state = 'delivered' AND idempotency_key IS NULL AND may_have_landed = 1`,
];

// Counts kept beside the events, updated in the same transactions: cheaper than an index on the state column.
const COUNTS_TABLE = `CREATE TABLE IF NOT EXISTS outbox_counts (
    tenant TEXT NOT NULL,
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    state TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (tenant, target, source, state)
  ) WITHOUT ROWID`;

// Tables live in the same file as the idempotency store's; the prefixes keep the two modules apart.
const SCHEMA = [
  eventsTable('outbox_events'),
  ...EVENT_INDEXES,
  COUNTS_TABLE,
  `CREATE TABLE IF NOT EXISTS ledger_attempts (
    event_seq INTEGER NOT NULL REFERENCES outbox_events (seq) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    status INTEGER,
    message TEXT,
    api_error_code TEXT,
    rs_code TEXT,
    requests INTEGER NOT NULL,
    event_ids TEXT NOT NULL,
    uncertain_requests INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (event_seq, number)
  ) WITHOUT ROWID`,
];

/**
 * Counts possible duplicates off their partial index, which holds only those. Named: left to itself, SQLite's planner
 * (with no statistics) took the enqueue-time index and counted by reading every event of the tenant, 56 ms at 90,000
 * events, on every metrics scrape and console refresh, blocking the relay meanwhile.
 */
export const POSSIBLE_DUPLICATES_SQL = `SELECT count(*) AS n FROM outbox_events INDEXED BY outbox_events_possible_duplicates
  WHERE tenant = ? AND state = 'delivered' AND idempotency_key IS NULL AND may_have_landed = 1
    AND (? IS NULL OR source = ?) AND (? IS NULL OR target = ?)`;

/**
 * The activity window's rows: the events received in it, settled in it, or still waiting, as four disjoint index
 * ranges. A single query over "enqueued before until" read every event the ledger keeps (15 ms at 77,000 events for an
 * empty window, seconds at millions, blocking the relay). Parameters: `where`'s, since, since, since, then `where`'s
 * and since for each of the other three, then the limit.
 */
export function activitySql(where: string): string {
  const columns = 'SELECT state, enqueued_at, updated_at, dead_at FROM outbox_events';
  return `${[
    `${columns} WHERE ${where} AND enqueued_at >= ? AND (state IN ('pending', 'leased') OR updated_at >= ?)`,
    `${columns} INDEXED BY outbox_events_settled WHERE state IN ('delivered', 'duplicate', 'dead') AND updated_at >= ? AND ${where} AND enqueued_at < ?`,
    `${columns} INDEXED BY outbox_events_due WHERE state = 'pending' AND ${where} AND enqueued_at < ?`,
    `${columns} INDEXED BY outbox_events_leased WHERE state = 'leased' AND ${where} AND enqueued_at < ?`,
  ].join(' UNION ALL ')} LIMIT ?`;
}

/** The partial index holding only the events in a state, for the states that are few next to the delivered ones. */
const STATE_INDEXES: Partial<Record<OutboxState, string>> = {
  pending: 'outbox_events_due',
  leased: 'outbox_events_leased',
  dead: 'outbox_events_dead',
};

/**
 * A page of the ledger, newest first. Filtered to a key or a source id, it reads that column's index (a handful of
 * events) and sorts them; filtered to a state that has its own partial index (pending, leased, dead), that index; to a
 * source, the source's events newest first, already in order. Left to itself (no statistics), the planner walked every
 * event of the tenant newest first, checking each against the filter, to spare itself the sort: 113 ms for dead letters
 * at 77,000 events, 15 ms for a key at 100,000, 18 ms for a source with a few events among 100,000, blocking the relay
 * meanwhile.
 */
export function listEventsSql(where: string, filter: EventFilter): string {
  const stateIndex = filter.state === undefined ? undefined : STATE_INDEXES[filter.state];
  const index =
    filter.key !== undefined
      ? 'outbox_events_key'
      : filter.sourceId !== undefined
        ? 'outbox_events_source_id'
        : (stateIndex ?? (filter.source !== undefined ? 'outbox_events_source' : undefined));
  const from = index ? `outbox_events INDEXED BY ${index}` : 'outbox_events';
  // The literal, as the partial index's WHERE has it (a bound parameter alone does not let SQLite use the index); only
  // the three states of STATE_INDEXES get here.
  const state = index !== undefined && index === stateIndex ? ` AND state = '${filter.state}'` : '';
  return `SELECT * FROM ${from} WHERE ${where}${state} ORDER BY enqueued_at DESC, seq DESC LIMIT ? OFFSET ?`;
}

const EVENT_COLUMNS =
  'seq, tenant, source, source_id, dedup_key, idempotency_key, key_decision, input, state, enqueued_at, updated_at, due_at, owner, ' +
  'leased_at, lease_expires_at, first_attempt_at, attempt_count, last_outcome, dead_reason, dead_at';

/**
 * Version 1 had no target: its events are rebuilt into the new table with target '' (a worker of any target of their
 * tenant may lease them, as before), keeping their ids and the id sequence, and the counts are recounted. Foreign keys
 * are off meanwhile, so dropping the old table does not cascade to the ledger's attempts.
 */
function upgradeFromVersion1(db: SqliteDatabase): void {
  db.pragma('foreign_keys = OFF');
  try {
    db.transaction(() => {
      const current = db.prepare<[], { version: number }>("SELECT version FROM oncekit_schema WHERE module = 'outbox'").get();
      if (current === undefined || current.version !== 1) return; // another process upgraded it meanwhile
      const sequence = db.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'outbox_events'").get()?.seq ?? 0;
      db.exec(eventsTable('outbox_events_v2'));
      db.exec(`INSERT INTO outbox_events_v2 (${EVENT_COLUMNS.replace('tenant,', 'tenant, target,')})
               SELECT ${EVENT_COLUMNS.replace('tenant,', "tenant, '',")} FROM outbox_events`);
      db.exec('DROP TABLE outbox_events');
      db.exec('ALTER TABLE outbox_events_v2 RENAME TO outbox_events');
      db.exec("DELETE FROM sqlite_sequence WHERE name IN ('outbox_events', 'outbox_events_v2')");
      db.prepare(
        "INSERT INTO sqlite_sequence (name, seq) VALUES ('outbox_events', max(?, (SELECT coalesce(max(seq), 0) FROM outbox_events)))",
      ).run(sequence);
      for (const index of EVENT_INDEXES) db.exec(index);
      db.exec('DROP TABLE outbox_counts');
      db.exec(COUNTS_TABLE);
      db.exec(`INSERT INTO outbox_counts (tenant, target, source, state, count)
               SELECT tenant, target, source, state, count(*) FROM outbox_events GROUP BY tenant, target, source, state`);
      db.prepare("UPDATE oncekit_schema SET version = 2 WHERE module = 'outbox'").run();
    }).immediate();
  } finally {
    db.pragma('foreign_keys = ON');
  }
}

/**
 * Version 4 counts requests whose outcome is unknown (ledger_attempts.uncertain_requests) and marks events an attempt
 * of which may have landed (outbox_events.may_have_landed). Older attempts count their final answer, as
 * uncertainFinalRequests does (a failure other than a 429); events with such an attempt, or an abandoned one, are marked.
 */
function upgradeToVersion4(db: SqliteDatabase): void {
  db.transaction(() => {
    const current = db.prepare<[], { version: number }>("SELECT version FROM oncekit_schema WHERE module = 'outbox'").get();
    if (current === undefined || current.version >= 4) return; // another process upgraded it meanwhile
    addColumn(db, 'outbox_events', 'may_have_landed', 'INTEGER NOT NULL DEFAULT 0');
    addColumn(db, 'ledger_attempts', 'uncertain_requests', 'INTEGER NOT NULL DEFAULT 0');
    db.exec(`UPDATE ledger_attempts SET uncertain_requests = 1 WHERE outcome = 'failed' AND (status IS NULL OR status <> 429)`);
    db.exec(`UPDATE outbox_events SET may_have_landed = 1 WHERE seq IN (
               SELECT event_seq FROM ledger_attempts WHERE outcome = 'abandoned' OR uncertain_requests > 0)`);
  }).immediate();
}

/**
 * Runs `apply` once, in an IMMEDIATE transaction that re-reads the version first and then records `version`: ALTER TABLE
 * is not idempotent, and two processes may open the file at once.
 */
function upgradeTo(db: SqliteDatabase, version: number, apply: () => void): void {
  db.transaction(() => {
    const current = db.prepare<[], { version: number }>("SELECT version FROM oncekit_schema WHERE module = 'outbox'").get();
    if (current !== undefined && current.version >= version) return;
    apply();
    db.prepare("UPDATE oncekit_schema SET version = ? WHERE module = 'outbox'").run(version);
  }).immediate();
}

/** Adds a column unless the table has it already (a file an earlier attempt left half way). */
function addColumn(db: SqliteDatabase, table: string, column: string, type: string): void {
  const columns = db.prepare<[], { name: string }>(`PRAGMA table_info(${table})`).all();
  if (!columns.some((existing) => existing.name === column)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`);
}

/** Version 5: unmappable dead letters keep their raw payload in a new column (null for every mapped event). */
function upgradeToVersion5(db: SqliteDatabase): void {
  upgradeTo(db, UNMAPPABLE_SCHEMA_VERSION, () => addColumn(db, 'outbox_events', 'unmappable', 'TEXT'));
}

/**
 * Version 6: the listing (newest first, per tenant) and the activity window read events by enqueue time, and each
 * attempt records the worker that made it (ledger_attempts.handled_by; null for older attempts).
 */
function upgradeToVersion6(db: SqliteDatabase): void {
  upgradeTo(db, LISTING_SCHEMA_VERSION, () => {
    db.exec('CREATE INDEX IF NOT EXISTS outbox_events_enqueued ON outbox_events (tenant, enqueued_at, seq)');
    addColumn(db, 'ledger_attempts', 'handled_by', 'TEXT');
  });
}

/**
 * Version 7: landed_since, when the earliest attempt that may have landed was leased (LeasedEvent.landedSince). Events
 * already marked take the earliest start among their attempts that may have landed: an abandoned attempt's start is
 * its lease time; another's is its worker's clock, the closest there is.
 */
function upgradeToVersion7(db: SqliteDatabase): void {
  upgradeTo(db, LANDED_SINCE_SCHEMA_VERSION, () => {
    addColumn(db, 'outbox_events', 'landed_since', 'INTEGER');
    db.exec(`UPDATE outbox_events SET landed_since = (
               SELECT min(started_at) FROM ledger_attempts
               WHERE event_seq = outbox_events.seq AND (outcome = 'abandoned' OR uncertain_requests > 0))
             WHERE may_have_landed = 1 AND landed_since IS NULL`);
  });
}

/**
 * Version 8: the ledger's listing of one source (newest first) reads the source's events in order. Inserts add to the
 * end of their source's range, so the index costs an enqueue about one page per source, not a page per event.
 */
function upgradeToVersion8(db: SqliteDatabase): void {
  upgradeTo(db, SOURCE_LISTING_SCHEMA_VERSION, () => {
    db.exec('CREATE INDEX IF NOT EXISTS outbox_events_source ON outbox_events (tenant, source, enqueued_at, seq)');
  });
}

export type SqliteOutboxStoreOptions = OutboxStoreOptions & ({ readonly path: string } | { readonly db: SqliteDatabase });

/** State changes of one transaction, summed per (tenant, target, source, state) and written to outbox_counts once. */
class CountDeltas {
  readonly #deltas = new Map<string, { tenant: string; target: string; source: string; state: OutboxState; delta: number }>();
  move(
    row: { readonly tenant: string; readonly target: string; readonly source: string },
    from: OutboxState | null,
    to: OutboxState | null,
  ): void {
    if (from !== null) this.#add(row, from, -1);
    if (to !== null) this.#add(row, to, 1);
  }
  #add(row: { readonly tenant: string; readonly target: string; readonly source: string }, state: OutboxState, delta: number): void {
    const name = `${row.tenant}\u0000${row.target}\u0000${row.source}\u0000${state}`;
    const entry = this.#deltas.get(name);
    if (entry) entry.delta += delta;
    else this.#deltas.set(name, { tenant: row.tenant, target: row.target, source: row.source, state, delta });
  }
  entries(): Iterable<{ tenant: string; target: string; source: string; state: OutboxState; delta: number }> {
    return this.#deltas.values();
  }
}

/**
 * The embedded default: one SQLite file (WAL), shared safely by several processes on one machine. Each method is one
 * IMMEDIATE transaction, so a lease, a settle or an enqueue is all-or-nothing and survives `kill -9` once returned.
 */
export class SqliteOutboxStore implements OutboxStore {
  readonly kind = 'sqlite' as const;
  readonly #db: SqliteDatabase;
  readonly #ownsDb: boolean;
  readonly #clock: Clock;
  readonly #sql;
  /**
   * Settlements commit with synchronous = NORMAL: in WAL mode that survives `kill -9` (the commit is in the WAL, in
   * the OS's cache) and skips the fsync, the costliest part of a small commit. Only a power cut or an OS crash before
   * the next synced commit (the next enqueue, lease or checkpoint; the WAL is synced in order) could undo one, and
   * nothing was promised on it: the event is found leased with its lease run out, an abandoned attempt that "may have
   * landed", and is resent under the same key (the target answers 409) or counted as a possible duplicate. Leases stay
   * synced: a lost lease would lose the first attempt's time, which the retry horizon counts from. This holds the level
   * to restore after; null when the connection is not a WAL file synced FULL (settlements then sync as the rest does).
   */
  readonly #syncLevelAfterUnsynced: number | null;

  constructor(options: SqliteOutboxStoreOptions) {
    this.#clock = options.clock ?? systemClock;
    this.#ownsDb = 'path' in options;
    this.#db = 'path' in options ? openSqliteDatabase(options.path) : options.db;
    // A big outbox outgrows SQLite's 2 MB default page cache; 64 MB kept a million-row import 40% faster (npm run bench).
    if ('path' in options) this.#db.pragma(`cache_size = -${OUTBOX_CACHE_KIB}`);
    const installed = this.#db
      .prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'oncekit_schema'")
      .get();
    const version = installed?.n
      ? this.#db.prepare<[], { version: number }>("SELECT version FROM oncekit_schema WHERE module = 'outbox'").get()?.version
      : undefined;
    if (version === 1) upgradeFromVersion1(this.#db);
    if (version !== undefined && version < 4) upgradeToVersion4(this.#db);
    // Every schema statement is idempotent, so later versions (new indexes) apply them all again.
    migrate(this.#db, 'outbox', SCHEMA_VERSION, SCHEMA);
    // Each upgrade takes the write lock to re-read the version; a file already at the latest one (every open but the
    // first after an update) skips them, so opening a store never waits behind a busy writer for nothing.
    if (version === undefined || version < SOURCE_LISTING_SCHEMA_VERSION) {
      for (const upgrade of [upgradeToVersion5, upgradeToVersion6, upgradeToVersion7, upgradeToVersion8]) upgrade(this.#db);
    }
    const db = this.#db;
    const syncLevel = Number(db.pragma('synchronous', { simple: true }));
    const fullSyncWal = !db.memory && String(db.pragma('journal_mode', { simple: true })).toLowerCase() === 'wal' && syncLevel >= 2;
    this.#syncLevelAfterUnsynced = fullSyncWal ? syncLevel : null;
    this.#sql = {
      insert: db.prepare<unknown[], { seq: number }>(
        `INSERT INTO outbox_events (tenant, target, source, source_id, dedup_key, idempotency_key, key_decision, input, state, enqueued_at,
           updated_at, due_at, owner, leased_at, lease_expires_at, first_attempt_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, target, dedup_key) DO NOTHING RETURNING seq`,
      ),
      insertUnmappable: db.prepare<unknown[], { seq: number }>(
        `INSERT INTO outbox_events (tenant, target, source, source_id, dedup_key, input, state, enqueued_at, updated_at,
           last_outcome, dead_reason, dead_at, unmappable)
         VALUES (?, ?, ?, ?, ?, '${UNMAPPABLE_STORED_INPUT}', 'dead', ?, ?, '${UNMAPPABLE_OUTCOME}', ?, ?, ?)
         ON CONFLICT (tenant, target, dedup_key) DO NOTHING RETURNING seq`,
      ),
      byDedupKey: db.prepare<[string, string, string], OutboxEventRow>(
        'SELECT * FROM outbox_events WHERE tenant = ? AND target = ? AND dedup_key = ?',
      ),
      revive: db.prepare(
        `UPDATE outbox_events SET input = ?, idempotency_key = ?, key_decision = ?, source_id = ?, state = ?, due_at = ?, owner = ?,
           leased_at = ?, lease_expires_at = ?, first_attempt_at = ?, dead_reason = NULL, dead_at = NULL, unmappable = NULL, updated_at = ?
         WHERE seq = ?`,
      ),
      // target '' holds events stored before targets were recorded (see upgradeFromVersion1).
      expiredLeases: db.prepare<[string, string, number, number], OutboxEventRow>(
        `SELECT * FROM outbox_events WHERE tenant = ? AND target IN (?, '') AND state = 'leased' AND lease_expires_at <= ?
         ORDER BY lease_expires_at, seq LIMIT ?`,
      ),
      // Read from the due index alone (it holds both columns): a row is read once, by the update that leases it.
      dueEvents: db.prepare<[string, string, number, number], { seq: number; due_at: number }>(
        `SELECT seq, due_at FROM outbox_events WHERE tenant = ? AND target IN (?, '') AND state = 'pending' AND due_at <= ?
         ORDER BY due_at, seq LIMIT ?`,
      ),
      takeLease: db.prepare(
        `UPDATE outbox_events SET state = 'leased', owner = ?, leased_at = ?, lease_expires_at = ?, due_at = NULL,
           first_attempt_at = COALESCE(first_attempt_at, ?), updated_at = ? WHERE seq = ?`,
      ),
      takeDueLease: db.prepare<unknown[], LeasedEventRow>(
        `UPDATE outbox_events SET state = 'leased', owner = ?, leased_at = ?, lease_expires_at = ?, due_at = NULL,
           first_attempt_at = COALESCE(first_attempt_at, ?), updated_at = ? WHERE seq = ? AND state = 'pending'
         RETURNING seq, tenant, target, source, source_id, input, first_attempt_at, attempt_count, may_have_landed, landed_since, leased_at`,
      ),
      settle: db.prepare<unknown[], { attempt_count: number; tenant: string; target: string; source: string }>(
        `UPDATE outbox_events SET state = ?, owner = NULL, leased_at = NULL, lease_expires_at = NULL, due_at = ?,
           dead_reason = COALESCE(?, dead_reason), dead_at = COALESCE(?, dead_at), updated_at = ?,
           attempt_count = attempt_count + ?, last_outcome = COALESCE(?, last_outcome), may_have_landed = max(may_have_landed, ?),
           landed_since = COALESCE(landed_since, CASE WHEN ? = 1 THEN leased_at END)
         WHERE seq = ? AND state = 'leased' AND owner = ? RETURNING attempt_count, tenant, target, source`,
      ),
      addAttempt: db.prepare(
        `INSERT INTO ledger_attempts (event_seq, number, started_at, finished_at, outcome, status, message, api_error_code, rs_code, requests,
           event_ids, uncertain_requests, handled_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      abandon: db.prepare(
        `UPDATE outbox_events SET attempt_count = attempt_count + 1, last_outcome = 'abandoned', may_have_landed = 1,
           landed_since = COALESCE(landed_since, leased_at) WHERE seq = ?`,
      ),
      requeueOne: db.prepare<unknown[], { seq: number; tenant: string; target: string; source: string }>(
        `UPDATE outbox_events SET state = 'pending', due_at = ?, first_attempt_at = NULL, dead_reason = NULL, dead_at = NULL, updated_at = ?,
           landed_since = CASE WHEN ? = 1 THEN NULL ELSE landed_since END
         WHERE tenant = ? AND seq = ? AND state = 'dead' AND unmappable IS NULL AND (? IS NULL OR target = ?) RETURNING seq, tenant, target, source`,
      ),
      requeueAll: db.prepare<unknown[], { seq: number; tenant: string; target: string; source: string }>(
        `UPDATE outbox_events SET state = 'pending', due_at = ?, first_attempt_at = NULL, dead_reason = NULL, dead_at = NULL, updated_at = ?,
           landed_since = CASE WHEN ? = 1 THEN NULL ELSE landed_since END
         WHERE tenant = ? AND state = 'dead' AND unmappable IS NULL AND (? IS NULL OR target = ?) RETURNING seq, tenant, target, source`,
      ),
      renew: db.prepare(`UPDATE outbox_events SET lease_expires_at = ? WHERE seq = ? AND state = 'leased' AND owner = ?`),
      prune: db.prepare<[number, number], { tenant: string; target: string; source: string; state: OutboxState }>(
        `DELETE FROM outbox_events WHERE seq IN (
           SELECT seq FROM outbox_events WHERE state IN ('delivered', 'duplicate', 'dead') AND updated_at < ? ORDER BY updated_at, seq LIMIT ?)
         RETURNING tenant, target, source, state`,
      ),
      addCount: db.prepare(
        `INSERT INTO outbox_counts (tenant, target, source, state, count) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT DO UPDATE SET count = count + excluded.count`,
      ),
      get: db.prepare<[string, number], OutboxEventRow>('SELECT * FROM outbox_events WHERE tenant = ? AND seq = ?'),
      byKey: db.prepare<[string, string], OutboxEventRow>(
        'SELECT * FROM outbox_events WHERE tenant = ? AND idempotency_key = ? ORDER BY seq',
      ),
      bySourceId: db.prepare<[string, string], OutboxEventRow>(
        'SELECT * FROM outbox_events WHERE tenant = ? AND source_id = ? ORDER BY seq',
      ),
      dead: db.prepare<[string, number, number], OutboxEventRow>(
        `SELECT * FROM outbox_events WHERE tenant = ? AND state = 'dead' ORDER BY dead_at, seq LIMIT ? OFFSET ?`,
      ),
      attempts: db.prepare<[number], LedgerAttemptRow>('SELECT * FROM ledger_attempts WHERE event_seq = ? ORDER BY number'),
      counts: db.prepare<[string, string | null, string | null, string | null, string | null], { state: string; count: number }>(
        `SELECT state, sum(count) AS count FROM outbox_counts
         WHERE tenant = ? AND (? IS NULL OR source = ?) AND (? IS NULL OR target = ?) GROUP BY state`,
      ),
      sourceHasEvents: db.prepare<[string, string, string | null, string | null, string | null, string | null], { found: number }>(
        `SELECT 1 AS found FROM outbox_counts
         WHERE tenant = ? AND source = ? AND (? IS NULL OR state = ?) AND (? IS NULL OR target = ?) AND count > 0 LIMIT 1`,
      ),
      possibleDuplicates: db.prepare<[string, string | null, string | null, string | null, string | null], { n: number }>(
        POSSIBLE_DUPLICATES_SQL,
      ),
      nextDue: db.prepare<[string, string], { at: number | null }>(
        `SELECT min(due_at) AS at FROM outbox_events WHERE tenant = ? AND target IN (?, '') AND state = 'pending'`,
      ),
      nextExpiry: db.prepare<[string, string], { at: number | null }>(
        `SELECT min(lease_expires_at) AS at FROM outbox_events WHERE tenant = ? AND target IN (?, '') AND state = 'leased'`,
      ),
    };
  }

  /** One IMMEDIATE transaction that also applies the count changes it collected. */
  #run<T>(operation: string, work: (counts: CountDeltas) => T, sync: 'full' | 'unsynced' = 'full'): Promise<T> {
    const restoreTo = sync === 'unsynced' ? this.#syncLevelAfterUnsynced : null;
    const transaction = this.#db.transaction(() => {
      const counts = new CountDeltas();
      const value = work(counts);
      for (const { tenant, target, source, state, delta } of counts.entries()) {
        if (delta !== 0) this.#sql.addCount.run(tenant, target, source, state, delta);
      }
      return value;
    });
    // The switches fail as the transaction does (a closed or broken file): as an OutboxStoreError, never raw.
    try {
      if (restoreTo === null) return Promise.resolve(transaction.immediate());
      // A PRAGMA that sets takes effect when it is compiled: each switch is executed, never a prepared statement kept.
      this.#db.exec('PRAGMA synchronous = NORMAL');
      try {
        return Promise.resolve(transaction.immediate());
      } finally {
        this.#db.exec(`PRAGMA synchronous = ${restoreTo}`);
      }
    } catch (error) {
      return Promise.reject(outboxStoreFailure('sqlite', operation, error));
    }
  }

  async enqueue(events: readonly NewOutboxEvent[], options?: EnqueueOptions): Promise<EnqueueResult[]> {
    checkOutboxArgs.events(events);
    const lease = checkOutboxArgs.enqueueLease(options);
    const now = this.#clock.now();
    // How a new or revived event starts: pending and due now, or leased to the caller.
    const state: OutboxState = lease === undefined ? 'pending' : 'leased';
    const start =
      lease === undefined ? ([now, null, null, null, null] as const) : ([null, lease.owner, now, now + lease.leaseMs, now] as const);
    const leasedView = (
      seq: number,
      event: NewOutboxEvent,
      previousAttempts: number,
      mayHaveLanded: boolean,
      landedSince: number | null,
    ): LeasedEvent | undefined =>
      lease === undefined
        ? undefined
        : leasedOnEnqueue(outboxIdOfSeq(seq), event, lease, now, previousAttempts, mayHaveLanded, landedSince);
    return this.#run('enqueue', (counts) =>
      events.map((event): EnqueueResult => {
        const input = storedInput(event.input);
        const key = event.input.idempotencyKey ?? null;
        const decision = event.keyDecision === null ? null : JSON.stringify(event.keyDecision);
        const inserted = this.#sql.insert.get(
          event.tenant,
          event.target,
          event.source,
          event.sourceId,
          event.dedupKey,
          key,
          decision,
          input,
          state,
          now,
          now,
          ...start,
        );
        if (inserted !== undefined) {
          counts.move(event, null, state);
          const leased = leasedView(inserted.seq, event, 0, false, null);
          const created = { id: outboxIdOfSeq(inserted.seq), outcome: 'created', state, updatedAt: now, mayHaveLanded: false } as const;
          return { ...created, ...(leased ? { leased } : {}) };
        }
        const existing = this.#sql.byDedupKey.get(event.tenant, event.target, event.dedupKey);
        if (existing === undefined) throw new Error('an enqueue conflict named no existing event');
        if (!canRevive(existing.state, existing.last_outcome, existing.input, input)) {
          return {
            id: outboxIdOfSeq(existing.seq),
            outcome: 'existing',
            state: existing.state,
            updatedAt: existing.updated_at,
            mayHaveLanded: existing.may_have_landed === 1,
          };
        }
        this.#sql.revive.run(input, key, decision, event.sourceId, state, ...start, now, existing.seq);
        counts.move(existing, existing.state, state);
        const mayHaveLanded = existing.may_have_landed === 1;
        // The record keeps its source (the ledger's), whichever source sent the corrected payload.
        const leased = leasedView(
          existing.seq,
          { ...event, source: existing.source },
          existing.attempt_count,
          mayHaveLanded,
          existing.landed_since,
        );
        const revived = { id: outboxIdOfSeq(existing.seq), outcome: 'revived', state, updatedAt: now, mayHaveLanded } as const;
        return { ...revived, ...(leased ? { leased } : {}) };
      }),
    );
  }

  async recordUnmappable(events: readonly UnmappableEvent[]): Promise<RecordUnmappableResult[]> {
    checkOutboxArgs.unmappable(events);
    const now = this.#clock.now();
    return this.#run('recordUnmappable', (counts) =>
      events.map((event): RecordUnmappableResult => {
        const raw = JSON.stringify({ text: event.raw.text, bytes: event.raw.bytes, truncated: event.raw.truncated });
        const inserted = this.#sql.insertUnmappable.get(
          event.tenant,
          event.target,
          event.source,
          event.sourceId,
          event.dedupKey,
          now,
          now,
          event.reason,
          now,
          raw,
        );
        if (inserted !== undefined) {
          counts.move(event, null, 'dead');
          return { id: outboxIdOfSeq(inserted.seq), outcome: 'created', state: 'dead' };
        }
        const existing = this.#sql.byDedupKey.get(event.tenant, event.target, event.dedupKey);
        if (existing === undefined) throw new Error('a dead-letter conflict named no existing event');
        return { id: outboxIdOfSeq(existing.seq), outcome: 'existing', state: existing.state };
      }),
    );
  }

  async lease(request: LeaseRequest): Promise<LeasedEvent[]> {
    const { tenant, target, owner, limit, leaseMs } = checkOutboxArgs.lease(request);
    const now = this.#clock.now();
    return this.#run('lease', (counts) => {
      const expired = this.#sql.expiredLeases.all(tenant, target, now, limit);
      const due = this.#sql.dueEvents.all(tenant, target, now, limit);
      // The earliest due first, whether due or run out; expired is null for a due event (read from its index only).
      const chosen = [
        ...expired.map((row) => ({ at: row.lease_expires_at ?? Number.POSITIVE_INFINITY, seq: row.seq, expired: row })),
        ...due.map((row) => ({ at: row.due_at, seq: row.seq, expired: null })),
      ]
        .sort((a, b) => a.at - b.at || a.seq - b.seq)
        .slice(0, limit);
      const lease = { owner, now, leaseMs };
      const leased: LeasedEvent[] = [];
      for (const { seq, expired: row } of chosen) {
        if (row === null) {
          const taken = this.#sql.takeDueLease.get(owner, now, now + leaseMs, now, now, seq);
          if (taken === undefined) continue;
          counts.move(taken, 'pending', 'leased');
          leased.push(leasedEventOfRow(taken, lease, false));
          continue;
        }
        const attempt = abandonedAttempt(row.attempt_count + 1, row.leased_at ?? now, now, row.owner ?? 'unknown');
        this.#insertAttempt(row.seq, attempt);
        this.#sql.abandon.run(row.seq);
        this.#sql.takeLease.run(owner, now, now + leaseMs, now, now, row.seq);
        leased.push(leasedEventOfRow(row, lease, true));
      }
      return leased;
    });
  }

  async renewLeases(owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    const until = this.#clock.now() + leaseMs;
    return this.#run('renewLeases', () =>
      ids.filter((id) => {
        const seq = outboxSeqOfId(id);
        return seq !== null && this.#sql.renew.run(until, seq, owner).changes === 1;
      }),
    );
  }

  async pruneSettled(olderThanMs: number, limit = 1000): Promise<number> {
    const cutoff = this.#clock.now() - olderThanMs;
    return this.#run('pruneSettled', (counts) => {
      // Attempts go with their event (ON DELETE CASCADE).
      const pruned = this.#sql.prune.all(cutoff, limit);
      for (const row of pruned) counts.move(row, row.state, null);
      return pruned.length;
    });
  }

  async settle(settlements: readonly Settlement[]): Promise<boolean[]> {
    const now = this.#clock.now();
    return this.#run(
      'settle',
      (counts) =>
        settlements.map((settlement) => {
          const seq = outboxSeqOfId(settlement.id);
          if (seq === null) return false;
          const attempt = settlement.attempt;
          const landed = attempt !== null && attemptMayHaveLanded(attempt) ? 1 : 0;
          const updated = this.#sql.settle.get(
            settlement.to,
            settlement.to === 'pending' ? settlement.dueAt : null,
            settlement.to === 'dead' ? settlement.reason : null,
            settlement.to === 'dead' ? now : null,
            now,
            attempt === null ? 0 : 1,
            attempt === null ? null : attempt.outcome,
            landed,
            landed,
            seq,
            settlement.owner,
          );
          if (updated === undefined) return false;
          counts.move(updated, 'leased', settlement.to);
          if (attempt !== null) this.#insertAttempt(seq, { ...attempt, number: updated.attempt_count, handledBy: settlement.owner });
          return true;
        }),
      // Nothing is acknowledged on a settlement, so it need not wait for the disk (see #syncLevelAfterUnsynced).
      'unsynced',
    );
  }

  async requeueDead(request: RequeueRequest): Promise<string[]> {
    const { tenant, target = null, ids, forcePastWindow } = checkOutboxArgs.requeue(request);
    const now = this.#clock.now();
    const forget = forcePastWindow === true ? 1 : 0;
    return this.#run('requeueDead', (counts) => {
      const rows =
        ids === undefined
          ? this.#sql.requeueAll.all(now, now, forget, tenant, target, target)
          : ids.flatMap((id) => {
              const seq = outboxSeqOfId(id);
              return seq === null ? [] : this.#sql.requeueOne.all(now, now, forget, tenant, seq, target, target);
            });
      for (const row of rows) counts.move(row, 'dead', 'pending');
      return rows.map((row) => outboxIdOfSeq(row.seq));
    });
  }

  async get(tenant: string, id: string): Promise<LedgerEntry | undefined> {
    return this.#read('get', () => {
      const seq = outboxSeqOfId(id);
      const row = seq === null ? undefined : this.#sql.get.get(tenant, seq);
      return row === undefined ? undefined : this.#entry(row);
    });
  }

  async findByKey(tenant: string, key: string): Promise<LedgerEntry[]> {
    return this.#read('findByKey', () => this.#sql.byKey.all(tenant, key).map((row) => this.#entry(row)));
  }

  async findBySourceId(tenant: string, sourceId: string): Promise<LedgerEntry[]> {
    return this.#read('findBySourceId', () => this.#sql.bySourceId.all(tenant, sourceId).map((row) => this.#entry(row)));
  }

  async listDead(tenant: string, page?: { readonly limit?: number; readonly offset?: number }): Promise<LedgerEntry[]> {
    const { limit, offset } = checkOutboxArgs.page(page);
    return this.#read('listDead', () => this.#sql.dead.all(tenant, limit, offset).map((row) => this.#entry(row)));
  }

  /** From the counts table (a few rows per tenant and target), not the events. */
  async listTenantTargets(options: { readonly limit?: number } = {}): Promise<TenantTarget[]> {
    const { limit } = checkOutboxArgs.page(options);
    return this.#read('listTenantTargets', () =>
      this.#db
        .prepare<[number], TenantTarget>(
          'SELECT tenant, target FROM outbox_counts WHERE count > 0 GROUP BY tenant, target ORDER BY tenant, target LIMIT ?',
        )
        .all(limit)
        .map((row) => ({ tenant: row.tenant, target: row.target })),
    );
  }

  async listEvents(tenant: string, query?: EventListQuery): Promise<EventPage> {
    const { limit, offset, ...filter } = checkOutboxArgs.listEvents(query);
    const { where, params } = eventFilterSql(tenant, filter, () => '?');
    return this.#read('listEvents', () => {
      // The counts say at once when a source has nothing to list.
      if (filter.source !== undefined && filter.key === undefined && filter.sourceId === undefined) {
        const state = filter.state ?? null;
        const target = filter.target ?? null;
        if (this.#sql.sourceHasEvents.get(tenant, filter.source, state, state, target, target) === undefined) {
          return { entries: [], hasMore: false };
        }
      }
      const rows = this.#db.prepare<unknown[], OutboxEventRow>(listEventsSql(where, filter)).all(...params, limit + 1, offset);
      return { entries: rows.slice(0, limit).map((row) => this.#entry(row)), hasMore: rows.length > limit };
    });
  }

  async activity(tenant: string, query: ActivityQuery): Promise<ActivitySeries> {
    const checked = checkOutboxArgs.activity(query);
    const { where, params } = eventFilterSql(tenant, { source: checked.source, target: checked.target, until: checked.until }, () => '?');
    const sql = activitySql(where);
    const since = checked.since;
    return this.#read('activity', () => {
      const rows = this.#db
        .prepare<unknown[], { state: OutboxState; enqueued_at: number; updated_at: number; dead_at: number | null }>(sql)
        .all(...params, since, since, since, ...params, since, ...params, since, ...params, since, MAX_ACTIVITY_ROWS + 1);
      return summarizeActivity(
        rows.slice(0, MAX_ACTIVITY_ROWS).map((row) => ({
          state: row.state,
          enqueuedAt: row.enqueued_at,
          settledAt: settledAtOf(row.state, row.updated_at, row.dead_at),
        })),
        checked,
        rows.length > MAX_ACTIVITY_ROWS,
      );
    });
  }

  async counts(tenant: string, filter: OutboxCountFilter = {}): Promise<OutboxCounts> {
    const source = filter.source ?? null;
    const target = filter.target ?? null;
    return this.#read('counts', () => countsFrom(this.#sql.counts.all(tenant, source, source, target, target)));
  }

  async countPossibleDuplicates(tenant: string, filter: OutboxCountFilter = {}): Promise<number> {
    const source = filter.source ?? null;
    const target = filter.target ?? null;
    return this.#read('countPossibleDuplicates', () => this.#sql.possibleDuplicates.get(tenant, source, source, target, target)?.n ?? 0);
  }

  async nextDueAt(tenant: string, target: string): Promise<number | null> {
    return this.#read('nextDueAt', () => {
      const due = this.#sql.nextDue.get(tenant, target)?.at ?? null;
      const expiry = this.#sql.nextExpiry.get(tenant, target)?.at ?? null;
      if (due === null) return expiry;
      return expiry === null ? due : Math.min(due, expiry);
    });
  }

  async close(): Promise<void> {
    if (this.#ownsDb && this.#db.open) this.#db.close();
  }

  #read<T>(operation: string, work: () => T): Promise<T> {
    try {
      return Promise.resolve(work());
    } catch (error) {
      return Promise.reject(outboxStoreFailure('sqlite', operation, error));
    }
  }

  #insertAttempt(seq: number, attempt: AttemptRecord): void {
    this.#sql.addAttempt.run(
      seq,
      attempt.number,
      attempt.startedAt,
      attempt.finishedAt,
      attempt.outcome,
      attempt.status,
      attempt.message,
      attempt.apiErrorCode,
      attempt.rsCode,
      attempt.requests,
      JSON.stringify(attempt.eventIds),
      attempt.uncertainRequests,
      attempt.handledBy ?? null,
    );
  }

  #entry(row: OutboxEventRow): LedgerEntry {
    return ledgerEntryOfRow(row, this.#sql.attempts.all(row.seq).map(attemptOfRow));
  }
}
