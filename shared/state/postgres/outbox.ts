import type pg from 'pg';
import { type Clock, systemClock } from '../../clock.js';
import { settledAtOf, summarizeActivity } from '../../outbox/activity.js';
import { attemptMayHaveLanded } from '../../outbox/ledger.js';
import {
  abandonedAttempt,
  canRevive,
  checkOutboxArgs,
  countsFrom,
  leasedOnEnqueue,
  OutboxStoreError,
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
import type { PostgresStoreLocation } from '../location.js';
import {
  attemptOfRow,
  eventFilterSql,
  type LedgerAttemptRow,
  leasedEventOfRow,
  ledgerEntryOfRow,
  type OutboxEventRow,
  outboxIdOfSeq,
  outboxSeqOfId,
  rowMayHaveLanded,
} from '../outbox-rows.js';
import { type Migration, nowParam, nowSql, PostgresDatabase, transactionNow } from './database.js';

const MODULE = 'outbox';
// Version 1 is migrations[0]; a later change appends a migration, never edits one. (Version 1 took `target` and the
// settled index in place: the PostgreSQL engine had not been released, so no database holds the version without them.)
const MIGRATIONS: readonly Migration[] = [
  [
    `CREATE TABLE outbox_events (
      seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      tenant text NOT NULL,
      -- The target the event is for; never '' here: events stored before targets were recorded exist only in other engines.
      target text NOT NULL CHECK (target <> ''),
      source text NOT NULL,
      source_id text NOT NULL,
      dedup_key text NOT NULL,
      idempotency_key text,
      key_decision text,
      input text NOT NULL,
      state text NOT NULL CHECK (state IN ('pending', 'leased', 'delivered', 'duplicate', 'dead')),
      enqueued_at bigint NOT NULL,
      updated_at bigint NOT NULL,
      due_at bigint,
      owner text,
      leased_at bigint,
      lease_expires_at bigint,
      first_attempt_at bigint,
      attempt_count integer NOT NULL DEFAULT 0,
      last_outcome text,
      dead_reason text,
      dead_at bigint
    )`,
    // The dedup rule is the database's: one event per (tenant, target, dedup_key), whichever instance enqueues it.
    'CREATE UNIQUE INDEX outbox_events_dedup ON outbox_events (tenant, target, dedup_key)',
    // A worker leases (and waits for) only its target's events: these are read per (tenant, target).
    `CREATE INDEX outbox_events_due ON outbox_events (tenant, target, due_at, seq) WHERE state = 'pending'`,
    `CREATE INDEX outbox_events_leased ON outbox_events (tenant, target, lease_expires_at, seq) WHERE state = 'leased'`,
    // The ledger's reads stay tenant-wide (every target's dead letters, keys and source ids).
    `CREATE INDEX outbox_events_dead ON outbox_events (tenant, dead_at, seq) WHERE state = 'dead'`,
    // Pruning finds settled events of every tenant by age, oldest first, without reading the pending and leased ones.
    `CREATE INDEX outbox_events_settled ON outbox_events (updated_at) WHERE state IN ('delivered', 'duplicate', 'dead')`,
    'CREATE INDEX outbox_events_key ON outbox_events (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL',
    'CREATE INDEX outbox_events_source_id ON outbox_events (tenant, source_id)',
    // Counts are read from this index: no counter rows that every worker's transaction would have to lock. Target
    // second, so a target's counts (a worker's drain check) read only its range; tenant-wide counts read the tenant's.
    'CREATE INDEX outbox_events_counts ON outbox_events (tenant, target, state, source)',
    `CREATE TABLE ledger_attempts (
      event_seq bigint NOT NULL REFERENCES outbox_events (seq) ON DELETE CASCADE,
      number integer NOT NULL,
      started_at bigint NOT NULL,
      finished_at bigint NOT NULL,
      outcome text NOT NULL,
      status integer,
      message text,
      api_error_code text,
      rs_code text,
      requests integer NOT NULL,
      event_ids text NOT NULL,
      PRIMARY KEY (event_seq, number)
    )`,
  ],
  // Version 2: requests whose outcome is unknown are counted per attempt, and an event an attempt of which may have
  // landed is marked, so possible duplicates (keyless, delivered, marked) are counted from an index. Older attempts
  // count their final answer, as uncertainFinalRequests does (a failure other than a 429).
  [
    'ALTER TABLE outbox_events ADD COLUMN may_have_landed boolean NOT NULL DEFAULT false',
    'ALTER TABLE ledger_attempts ADD COLUMN uncertain_requests integer NOT NULL DEFAULT 0',
    `UPDATE ledger_attempts SET uncertain_requests = 1 WHERE outcome = 'failed' AND (status IS NULL OR status <> 429)`,
    `UPDATE outbox_events SET may_have_landed = true WHERE seq IN (
       SELECT event_seq FROM ledger_attempts WHERE outcome = 'abandoned' OR uncertain_requests > 0)`,
    `CREATE INDEX outbox_events_possible_duplicates ON outbox_events (tenant, target, source)
       WHERE state = 'delivered' AND idempotency_key IS NULL AND may_have_landed`,
  ],
  // Version 3: an unmappable dead letter keeps its raw payload (UnmappableRaw as JSON); null for every mapped event.
  ['ALTER TABLE outbox_events ADD COLUMN unmappable text'],
  // Version 4: the ledger's listing (newest first) and the activity charts read a tenant's events by enqueue time; each
  // attempt records the worker that made it (null for older attempts).
  [
    'CREATE INDEX outbox_events_enqueued ON outbox_events (tenant, enqueued_at, seq)',
    'ALTER TABLE ledger_attempts ADD COLUMN handled_by text',
  ],
  // Version 5: when the earliest attempt that may have landed was leased (LeasedEvent.landedSince). Events already
  // marked take the earliest start among such attempts: an abandoned one's is its lease time; another's is its worker's
  // clock, the closest there is.
  [
    'ALTER TABLE outbox_events ADD COLUMN landed_since bigint',
    `UPDATE outbox_events e SET landed_since = (
       SELECT min(a.started_at) FROM ledger_attempts a
       WHERE a.event_seq = e.seq AND (a.outcome = 'abandoned' OR a.uncertain_requests > 0))
     WHERE e.may_have_landed`,
  ],
];

/** How many settled events one `pruneSettled` call deletes unless told: one short statement, repeated until none are left. */
const DEFAULT_PRUNE_LIMIT = 1000;

export interface PostgresOutboxStoreOptions extends OutboxStoreOptions {
  /** An open database (shared with other modules): the store creates its tables in it and never closes it. */
  readonly database: PostgresDatabase;
}

/**
 * Many relay instances share one PostgreSQL. Each method is one transaction: leases take rows with
 * `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait for each other nor get the same event, and a settle only
 * changes a row its owner still holds. Time: see postgres-database.ts (the server's clock unless a clock is injected).
 * `enqueue` NOTIFYs the schema's channel, so an idle worker on any instance wakes (`onEnqueued`).
 */
/**
 * The activity window's rows: the events received in it, settled in it, or still waiting, as four disjoint ranges of
 * four indexes (enqueue time, the settled events' update time, the pending and the leased events). One condition over
 * "enqueued before the window's end" read every event the ledger keeps: a sequential scan, 13 ms for an empty window at
 * 100,000 events, on every console refresh. `since` and `limit` are placeholders.
 */
export function postgresActivitySql(where: string, since: string, limit: string): string {
  const columns = 'SELECT state, enqueued_at, updated_at, dead_at FROM outbox_events';
  return `${[
    `${columns} WHERE ${where} AND enqueued_at >= ${since} AND (state IN ('pending', 'leased') OR updated_at >= ${since})`,
    `${columns} WHERE state IN ('delivered', 'duplicate', 'dead') AND updated_at >= ${since} AND ${where} AND enqueued_at < ${since}`,
    `${columns} WHERE state = 'pending' AND ${where} AND enqueued_at < ${since}`,
    `${columns} WHERE state = 'leased' AND ${where} AND enqueued_at < ${since}`,
  ].join(' UNION ALL ')} LIMIT ${limit}`;
}

export class PostgresOutboxStore implements OutboxStore {
  readonly kind = 'postgres' as const;
  readonly #db: PostgresDatabase;
  readonly #ownsDatabase: boolean;
  readonly #clock: Clock | undefined;
  readonly #listeners = new Set<(tenant: string) => void>();
  #listener: Promise<pg.Client | undefined> | undefined;
  #closed = false;

  /** Opens a pool of its own onto `location` and applies the migrations; `close()` ends the pool. */
  static async open(
    location: PostgresStoreLocation,
    options: OutboxStoreOptions & { readonly schema?: string } = {},
  ): Promise<PostgresOutboxStore> {
    const database = await PostgresDatabase.open(location, MODULE, MIGRATIONS, options.schema);
    return new PostgresOutboxStore({ database, ...(options.clock ? { clock: options.clock } : {}) }, true);
  }

  /** Applies this store's migrations to a database opened elsewhere. */
  static async create(options: PostgresOutboxStoreOptions): Promise<PostgresOutboxStore> {
    try {
      await options.database.migrate(MODULE, MIGRATIONS);
    } catch (error) {
      throw options.database.unavailable('migrating outbox', error);
    }
    return new PostgresOutboxStore(options);
  }

  private constructor(options: PostgresOutboxStoreOptions, ownsDatabase = false) {
    this.#db = options.database;
    this.#ownsDatabase = ownsDatabase;
    this.#clock = options.clock;
  }

  async enqueue(events: readonly NewOutboxEvent[], options?: EnqueueOptions): Promise<EnqueueResult[]> {
    checkOutboxArgs.events(events);
    const lease = checkOutboxArgs.enqueueLease(options);
    if (events.length === 0) return [];
    return this.#transaction('enqueue', async (client, now) => {
      // How a new or revived event starts: pending and due now, or leased to the caller.
      const state: OutboxState = lease === undefined ? 'pending' : 'leased';
      const start = lease === undefined ? [now, null, null, null, null] : [null, lease.owner, now, now + lease.leaseMs, now];
      // The first event per (tenant, target, dedupKey) is the one written; a later twin in the same call is its duplicate.
      const nameOf = (tenant: string, target: string, dedupKey: string): string => JSON.stringify([tenant, target, dedupKey]);
      const firsts = new Map<string, number>();
      // Every event per name, in order: a later twin may revive what the first found dead (see reviverOf).
      const occurrences = new Map<string, number[]>();
      events.forEach((event, index) => {
        const name = nameOf(event.tenant, event.target, event.dedupKey);
        if (!firsts.has(name)) firsts.set(name, index);
        const list = occurrences.get(name);
        if (list === undefined) occurrences.set(name, [index]);
        else list.push(index);
      });
      const unique = [...firsts.values()].map((index) => ({ index, event: events[index] as NewOutboxEvent }));
      const rows = unique.map(({ event }) => ({
        event,
        input: storedInput(event.input),
        key: event.input.idempotencyKey ?? null,
        decision: event.keyDecision === null ? null : JSON.stringify(event.keyDecision),
      }));
      const inserted = await client.query<{ seq: number; tenant: string; target: string; dedup_key: string }>(
        `INSERT INTO outbox_events (tenant, target, source, source_id, dedup_key, idempotency_key, key_decision, input, state,
           enqueued_at, updated_at, due_at, owner, leased_at, lease_expires_at, first_attempt_at)
         SELECT u.tenant, u.target, u.source, u.source_id, u.dedup_key, u.idempotency_key, u.key_decision, u.input,
           $9, $10, $10, $11, $12, $13, $14, $15
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[]) WITH ORDINALITY
           AS u (tenant, target, source, source_id, dedup_key, idempotency_key, key_decision, input, ord)
         ORDER BY u.ord
         ON CONFLICT (tenant, target, dedup_key) DO NOTHING
         RETURNING seq, tenant, target, dedup_key`,
        [
          rows.map((row) => row.event.tenant),
          rows.map((row) => row.event.target),
          rows.map((row) => row.event.source),
          rows.map((row) => row.event.sourceId),
          rows.map((row) => row.event.dedupKey),
          rows.map((row) => row.key),
          rows.map((row) => row.decision),
          rows.map((row) => row.input),
          state,
          now,
          ...start,
        ],
      );
      const eventName = (event: NewOutboxEvent): string => nameOf(event.tenant, event.target, event.dedupKey);
      const insertedSeq = new Map(inserted.rows.map((row) => [nameOf(row.tenant, row.target, row.dedup_key), row.seq]));
      const others = rows.filter((row) => !insertedSeq.has(eventName(row.event)));
      const existing = new Map<string, OutboxEventRow>();
      if (others.length > 0) {
        const found = await client.query<OutboxEventRow>(
          `SELECT e.* FROM outbox_events e
             JOIN unnest($1::text[], $2::text[], $3::text[]) AS u (tenant, target, dedup_key) USING (tenant, target, dedup_key)
           FOR UPDATE OF e`,
          [others.map((row) => row.event.tenant), others.map((row) => row.event.target), others.map((row) => row.event.dedupKey)],
        );
        for (const row of found.rows) existing.set(nameOf(row.tenant, row.target, row.dedup_key), row);
      }
      // As if enqueued one by one: the first event of a name whose payload differs from a rejected dead letter's revives
      // it; the events before it find the dead letter, the ones after it the revived event.
      const reviverOf = new Map<string, number>();
      const revive = others.flatMap((row) => {
        const name = eventName(row.event);
        const current = existing.get(name);
        if (current === undefined) return [];
        for (const index of occurrences.get(name) ?? []) {
          const event = events[index] as NewOutboxEvent;
          const input = event === row.event ? row.input : storedInput(event.input);
          if (!canRevive(current.state, current.last_outcome, current.input, input)) continue;
          reviverOf.set(name, index);
          const decision = event.keyDecision === null ? null : JSON.stringify(event.keyDecision);
          return [{ event, input, key: event.input.idempotencyKey ?? null, decision }];
        }
        return [];
      });
      if (revive.length > 0) {
        await client.query(
          `UPDATE outbox_events e SET input = u.input, idempotency_key = u.idempotency_key, key_decision = u.key_decision,
             source_id = u.source_id, state = $6, due_at = $7, owner = $8, leased_at = $9, lease_expires_at = $10,
             first_attempt_at = $11, dead_reason = NULL, dead_at = NULL, unmappable = NULL, updated_at = $12
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u (seq, input, idempotency_key, key_decision, source_id)
           WHERE e.seq = u.seq`,
          [
            revive.map((row) => existing.get(eventName(row.event))?.seq),
            revive.map((row) => row.input),
            revive.map((row) => row.key),
            revive.map((row) => row.decision),
            revive.map((row) => row.event.sourceId),
            state,
            ...start,
            now,
          ],
        );
      }
      const results = new Map<number, EnqueueResult>();
      // A result for each name's first event and for each reviver; the other twins take theirs below.
      for (const index of new Set([...firsts.values(), ...reviverOf.values()])) {
        const event = events[index] as NewOutboxEvent;
        const name = eventName(event);
        const seq = insertedSeq.get(name);
        if (seq !== undefined) {
          const leased = lease === undefined ? undefined : leasedOnEnqueue(outboxIdOfSeq(seq), event, lease, now, 0, false, null);
          const created = { id: outboxIdOfSeq(seq), outcome: 'created', state, updatedAt: now, mayHaveLanded: false } as const;
          results.set(index, { ...created, ...(leased ? { leased } : {}) });
          continue;
        }
        const current = existing.get(name);
        if (current === undefined) throw new Error('an enqueue conflict named no existing event');
        const mayHaveLanded = rowMayHaveLanded(current);
        if (reviverOf.get(name) !== index) {
          const id = outboxIdOfSeq(current.seq);
          results.set(index, { id, outcome: 'existing', state: current.state, updatedAt: current.updated_at, mayHaveLanded });
          continue;
        }
        // The record keeps its source (the ledger's), whichever source sent the corrected payload.
        const view = { ...event, source: current.source };
        const leased =
          lease === undefined
            ? undefined
            : leasedOnEnqueue(outboxIdOfSeq(current.seq), view, lease, now, current.attempt_count, mayHaveLanded, current.landed_since);
        const revivedResult = { id: outboxIdOfSeq(current.seq), outcome: 'revived', state, updatedAt: now, mayHaveLanded } as const;
        results.set(index, { ...revivedResult, ...(leased ? { leased } : {}) });
      }
      if (state === 'pending') {
        const woken = new Set(
          [...results].filter(([, result]) => result.outcome !== 'existing').map(([index]) => events[index]?.tenant ?? ''),
        );
        await this.#notify(client, woken);
      }
      // A twin without a result of its own finds what the events of its name before it left.
      const latest = new Map<string, EnqueueResult>();
      return events.map((event, index): EnqueueResult => {
        const name = eventName(event);
        const before = latest.get(name);
        const result =
          results.get(index) ??
          (before && {
            id: before.id,
            outcome: 'existing',
            state: before.state,
            updatedAt: before.updatedAt,
            mayHaveLanded: before.mayHaveLanded,
          });
        if (result === undefined) throw new Error('an enqueued event has no result');
        latest.set(name, result);
        return result;
      });
    });
  }

  async recordUnmappable(events: readonly UnmappableEvent[]): Promise<RecordUnmappableResult[]> {
    checkOutboxArgs.unmappable(events);
    if (events.length === 0) return [];
    return this.#transaction('recordUnmappable', async (client, now) => {
      const results: RecordUnmappableResult[] = [];
      // One statement per event: dead letters are rare, and a later twin in the call then finds the first one.
      for (const event of events) {
        const raw = JSON.stringify({ text: event.raw.text, bytes: event.raw.bytes, truncated: event.raw.truncated });
        const inserted = await client.query<{ seq: number }>(
          `INSERT INTO outbox_events (tenant, target, source, source_id, dedup_key, input, state, enqueued_at, updated_at,
             last_outcome, dead_reason, dead_at, unmappable)
           VALUES ($1, $2, $3, $4, $5, '${UNMAPPABLE_STORED_INPUT}', 'dead', $6, $6, '${UNMAPPABLE_OUTCOME}', $7, $6, $8)
           ON CONFLICT (tenant, target, dedup_key) DO NOTHING RETURNING seq`,
          [event.tenant, event.target, event.source, event.sourceId, event.dedupKey, now, event.reason, raw],
        );
        const seq = inserted.rows[0]?.seq;
        if (seq !== undefined) {
          results.push({ id: outboxIdOfSeq(seq), outcome: 'created', state: 'dead' });
          continue;
        }
        const existing = await client.query<{ seq: number; state: OutboxState }>(
          'SELECT seq, state FROM outbox_events WHERE tenant = $1 AND target = $2 AND dedup_key = $3',
          [event.tenant, event.target, event.dedupKey],
        );
        const row = existing.rows[0];
        if (row === undefined) throw new Error('a dead-letter conflict named no existing event');
        results.push({ id: outboxIdOfSeq(row.seq), outcome: 'existing', state: row.state });
      }
      return results;
    });
  }

  async lease(request: LeaseRequest): Promise<LeasedEvent[]> {
    const { tenant, target, owner, limit, leaseMs } = checkOutboxArgs.lease(request);
    return this.#transaction('lease', async (client, now) => {
      // Rows another worker is taking right now are skipped, not waited for; a row that worker already took no longer
      // matches when re-checked, so no event is leased twice. Only the worker's target's events are candidates.
      const picked = await client.query<OutboxEventRow>(
        `WITH due AS (
           SELECT * FROM outbox_events WHERE tenant = $1 AND target = $2 AND state = 'pending' AND due_at <= $3
           ORDER BY due_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED
         ), expired AS (
           SELECT * FROM outbox_events WHERE tenant = $1 AND target = $2 AND state = 'leased' AND lease_expires_at <= $3
           ORDER BY lease_expires_at, seq LIMIT $4 FOR UPDATE SKIP LOCKED
         )
         SELECT * FROM (SELECT * FROM due UNION ALL SELECT * FROM expired) AS picked
         ORDER BY CASE WHEN state = 'pending' THEN due_at ELSE lease_expires_at END, seq LIMIT $4`,
        [tenant, target, now, limit],
      );
      if (picked.rows.length === 0) return [];
      const abandoned = picked.rows
        .filter((row) => row.state === 'leased')
        .map((row) => ({
          seq: row.seq,
          attempt: abandonedAttempt(row.attempt_count + 1, row.leased_at ?? now, now, row.owner ?? 'unknown'),
        }));
      await insertAttempts(client, abandoned);
      await client.query(
        `UPDATE outbox_events SET state = 'leased', owner = $2, leased_at = $3, lease_expires_at = $4, due_at = NULL,
           first_attempt_at = COALESCE(first_attempt_at, $3), updated_at = $3,
           attempt_count = attempt_count + CASE WHEN state = 'leased' THEN 1 ELSE 0 END,
           last_outcome = CASE WHEN state = 'leased' THEN 'abandoned' ELSE last_outcome END,
           may_have_landed = may_have_landed OR state = 'leased',
           landed_since = COALESCE(landed_since, CASE WHEN state = 'leased' THEN leased_at END)
         WHERE seq = ANY ($1::bigint[])`,
        [picked.rows.map((row) => row.seq), owner, now, now + leaseMs],
      );
      // An expired lease is an abandoned attempt: it may have landed.
      return picked.rows.map((row) => leasedEventOfRow(row, { owner, now, leaseMs }, row.state === 'leased'));
    });
  }

  async renewLeases(owner: string, ids: readonly string[], leaseMs: number): Promise<string[]> {
    if (typeof owner !== 'string' || owner.length === 0) throw new OutboxStoreError('owner must be a non-empty string');
    if (!Number.isInteger(leaseMs) || leaseMs < 1) throw new OutboxStoreError('leaseMs must be a whole number ≥ 1');
    const given = ids.map((id) => ({ id, seq: outboxSeqOfId(id) }));
    const seqs = given.flatMap(({ seq }) => (seq === null ? [] : [seq]));
    if (seqs.length === 0) return [];
    return this.#read('renewLeases', async () => {
      // One statement: a row settled or taken over meanwhile no longer matches. The new expiry is from the store's now.
      // updated_at stays: a renewal is no change to the event's outcome.
      const result = await this.#db.pool.query<{ seq: number }>(
        `UPDATE outbox_events SET lease_expires_at = ${nowSql(3)} + $4::bigint
         WHERE seq = ANY ($1::bigint[]) AND state = 'leased' AND owner = $2
         RETURNING seq`,
        [seqs, owner, nowParam(this.#clock), leaseMs],
      );
      const renewed = new Set(result.rows.map((row) => row.seq));
      const seen = new Set<string>();
      return given.flatMap(({ id, seq }) => {
        if (seq === null || !renewed.has(seq) || seen.has(id)) return [];
        seen.add(id);
        return [id];
      });
    });
  }

  async settle(settlements: readonly Settlement[]): Promise<boolean[]> {
    const applied = settlements.map(() => false);
    // One statement per round; an event named twice in one call goes to a later round, so it sees the first's result.
    const rounds: { index: number; seq: number; settlement: Settlement }[][] = [];
    const seen = new Map<number, number>();
    settlements.forEach((settlement, index) => {
      const seq = outboxSeqOfId(settlement.id);
      if (seq === null) return;
      const round = seen.get(seq) ?? 0;
      seen.set(seq, round + 1);
      const items = rounds[round] ?? [];
      items.push({ index, seq, settlement });
      rounds[round] = items;
    });
    if (rounds.length === 0) return applied;
    // The worker decided a retry's dueAt on its own clock: only the delay from now carries over to the server's clock.
    const callerNow = this.#callerNow();
    return this.#transaction('settle', async (client, now) => {
      for (const round of rounds) {
        const updated = await client.query<{ ord: number; attempt_count: number }>(
          `UPDATE outbox_events e SET state = s.state, owner = NULL, leased_at = NULL, lease_expires_at = NULL, due_at = s.due_at,
             dead_reason = COALESCE(s.dead_reason, e.dead_reason), dead_at = CASE WHEN s.state = 'dead' THEN $9 ELSE e.dead_at END,
             updated_at = $9, attempt_count = e.attempt_count + s.inc, last_outcome = COALESCE(s.outcome, e.last_outcome),
             may_have_landed = e.may_have_landed OR s.landed,
             landed_since = COALESCE(e.landed_since, CASE WHEN s.landed THEN e.leased_at END)
           FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::int[], $7::text[], $8::int[], $10::boolean[])
             AS s (seq, owner, state, due_at, dead_reason, inc, outcome, ord, landed)
           WHERE e.seq = s.seq AND e.state = 'leased' AND e.owner = s.owner
           RETURNING s.ord, e.attempt_count`,
          [
            round.map(({ seq }) => seq),
            round.map(({ settlement }) => settlement.owner),
            round.map(({ settlement }) => settlement.to),
            round.map(({ settlement }) => (settlement.to === 'pending' ? now + Math.max(0, settlement.dueAt - callerNow) : null)),
            round.map(({ settlement }) => (settlement.to === 'dead' ? settlement.reason : null)),
            round.map(({ settlement }) => (settlement.attempt === null ? 0 : 1)),
            round.map(({ settlement }) => settlement.attempt?.outcome ?? null),
            round.map(({ index }) => index),
            now,
            round.map(({ settlement }) => settlement.attempt !== null && attemptMayHaveLanded(settlement.attempt)),
          ],
        );
        const attempts: { seq: number; attempt: AttemptRecord }[] = [];
        for (const row of updated.rows) {
          applied[row.ord] = true;
          const settlement = settlements[row.ord];
          if (settlement?.attempt)
            attempts.push({
              seq: outboxSeqOfId(settlement.id) ?? 0,
              attempt: { ...settlement.attempt, number: row.attempt_count, handledBy: settlement.owner },
            });
        }
        await insertAttempts(client, attempts);
      }
      return applied;
    });
  }

  async requeueDead(request: RequeueRequest): Promise<string[]> {
    const { tenant, target, ids, forcePastWindow = false } = checkOutboxArgs.requeue(request);
    const seqs = ids?.map(outboxSeqOfId).filter((seq): seq is number => seq !== null);
    if (seqs !== undefined && seqs.length === 0) return [];
    return this.#transaction('requeueDead', async (client, now) => {
      const result = await client.query<{ seq: number }>(
        `UPDATE outbox_events SET state = 'pending', due_at = $2, first_attempt_at = NULL, dead_reason = NULL, dead_at = NULL, updated_at = $2,
           landed_since = CASE WHEN $5::boolean THEN NULL ELSE landed_since END
         WHERE tenant = $1 AND state = 'dead' AND unmappable IS NULL AND ($3::bigint[] IS NULL OR seq = ANY ($3::bigint[]))
           AND ($4::text IS NULL OR target = $4)
         RETURNING seq`,
        [tenant, now, seqs ?? null, target ?? null, forcePastWindow],
      );
      const requeued = new Set(result.rows.map((row) => row.seq));
      const order = seqs ?? [...requeued].sort((a, b) => a - b);
      if (requeued.size > 0) await this.#notify(client, new Set([tenant]));
      return [...new Set(order)].filter((seq) => requeued.has(seq)).map(outboxIdOfSeq);
    });
  }

  async get(tenant: string, id: string): Promise<LedgerEntry | undefined> {
    const seq = outboxSeqOfId(id);
    if (seq === null) return undefined;
    const [entry] = await this.#entries('get', 'SELECT * FROM outbox_events WHERE tenant = $1 AND seq = $2', [tenant, seq]);
    return entry;
  }

  async findByKey(tenant: string, key: string): Promise<LedgerEntry[]> {
    return this.#entries('findByKey', 'SELECT * FROM outbox_events WHERE tenant = $1 AND idempotency_key = $2 ORDER BY seq', [tenant, key]);
  }

  async findBySourceId(tenant: string, sourceId: string): Promise<LedgerEntry[]> {
    return this.#entries('findBySourceId', 'SELECT * FROM outbox_events WHERE tenant = $1 AND source_id = $2 ORDER BY seq', [
      tenant,
      sourceId,
    ]);
  }

  async listDead(tenant: string, page?: { readonly limit?: number; readonly offset?: number }): Promise<LedgerEntry[]> {
    const { limit, offset } = checkOutboxArgs.page(page);
    return this.#entries(
      'listDead',
      `SELECT * FROM outbox_events WHERE tenant = $1 AND state = 'dead' ORDER BY dead_at, seq LIMIT $2 OFFSET $3`,
      [tenant, limit, offset],
    );
  }

  /**
   * A loose index scan of the counts index: one index probe per pair, however many events each has. Sorted here, not in
   * SQL, so the order does not depend on the database's collation.
   */
  async listTenantTargets(options: { readonly limit?: number } = {}): Promise<TenantTarget[]> {
    const { limit } = checkOutboxArgs.page(options);
    return this.#read('listTenantTargets', async () => {
      const result = await this.#db.pool.query<TenantTarget>(
        `WITH RECURSIVE pairs AS (
           (SELECT tenant, target FROM outbox_events ORDER BY tenant, target LIMIT 1)
           UNION ALL
           SELECT next.tenant, next.target FROM pairs, LATERAL (
             SELECT tenant, target FROM outbox_events WHERE (tenant, target) > (pairs.tenant, pairs.target)
             ORDER BY tenant, target LIMIT 1) next)
         SELECT tenant, target FROM pairs LIMIT $1`,
        [limit],
      );
      return result.rows
        .map((row) => ({ tenant: row.tenant, target: row.target }))
        .sort((a, b) => compareText(a.tenant, b.tenant) || compareText(a.target, b.target));
    });
  }

  async listEvents(tenant: string, query?: EventListQuery): Promise<EventPage> {
    const { limit, offset, ...filter } = checkOutboxArgs.listEvents(query);
    const { where, params } = eventFilterSql(tenant, filter, (position) => `$${position}`);
    const at = params.length;
    const entries = await this.#entries(
      'listEvents',
      `SELECT * FROM outbox_events WHERE ${where} ORDER BY enqueued_at DESC, seq DESC LIMIT $${at + 1} OFFSET $${at + 2}`,
      [...params, limit + 1, offset],
    );
    return { entries: entries.slice(0, limit), hasMore: entries.length > limit };
  }

  async activity(tenant: string, query: ActivityQuery): Promise<ActivitySeries> {
    const checked = checkOutboxArgs.activity(query);
    const { where, params } = eventFilterSql(
      tenant,
      { source: checked.source, target: checked.target, until: checked.until },
      (position) => `$${position}`,
    );
    const at = params.length;
    return this.#read('activity', async () => {
      const rows = (
        await this.#db.pool.query<{ state: OutboxState; enqueued_at: string; updated_at: string; dead_at: string | null }>(
          postgresActivitySql(where, `$${at + 1}`, `$${at + 2}`),
          [...params, checked.since, MAX_ACTIVITY_ROWS + 1],
        )
      ).rows;
      return summarizeActivity(
        rows.slice(0, MAX_ACTIVITY_ROWS).map((row) => ({
          state: row.state,
          enqueuedAt: Number(row.enqueued_at),
          settledAt: settledAtOf(row.state, Number(row.updated_at), row.dead_at === null ? null : Number(row.dead_at)),
        })),
        checked,
        rows.length > MAX_ACTIVITY_ROWS,
      );
    });
  }

  async counts(tenant: string, filter: OutboxCountFilter = {}): Promise<OutboxCounts> {
    return this.#read('counts', async () => {
      // Only the conditions asked for, so a target's counts are a range of the counts index.
      const values: string[] = [tenant];
      const where = ['tenant = $1'];
      for (const [column, value] of [
        ['target', filter.target],
        ['source', filter.source],
      ] as const) {
        if (value === undefined) continue;
        values.push(value);
        where.push(`${column} = $${values.length}`);
      }
      const result = await this.#db.pool.query<{ state: string; count: number }>(
        `SELECT state, count(*)::integer AS count FROM outbox_events WHERE ${where.join(' AND ')} GROUP BY state`,
        values,
      );
      return countsFrom(result.rows);
    });
  }

  async countPossibleDuplicates(tenant: string, filter: OutboxCountFilter = {}): Promise<number> {
    return this.#read('countPossibleDuplicates', async () => {
      const result = await this.#db.pool.query<{ n: number }>(
        `SELECT count(*)::integer AS n FROM outbox_events
         WHERE tenant = $1 AND state = 'delivered' AND idempotency_key IS NULL AND may_have_landed
           AND ($2::text IS NULL OR target = $2) AND ($3::text IS NULL OR source = $3)`,
        [tenant, filter.target ?? null, filter.source ?? null],
      );
      return result.rows[0]?.n ?? 0;
    });
  }

  async nextDueAt(tenant: string, target: string): Promise<number | null> {
    return this.#read('nextDueAt', async () => {
      checkOutboxArgs.target(target);
      const callerNow = this.#callerNow();
      const result = await this.#db.pool.query<{ at: number | null; now: number }>(
        `SELECT LEAST(
           (SELECT min(due_at) FROM outbox_events WHERE tenant = $1 AND target = $2 AND state = 'pending'),
           (SELECT min(lease_expires_at) FROM outbox_events WHERE tenant = $1 AND target = $2 AND state = 'leased')) AS at,
           ${nowSql(3)} AS now`,
        [tenant, target, nowParam(this.#clock)],
      );
      const row = result.rows[0];
      // On the caller's clock, as its worker compares it with its own now.
      return row?.at == null ? null : row.at - row.now + callerNow;
    });
  }

  async pruneSettled(olderThanMs: number, limit = DEFAULT_PRUNE_LIMIT): Promise<number> {
    if (!Number.isInteger(olderThanMs) || olderThanMs < 0) throw new OutboxStoreError('olderThanMs must be a whole number ≥ 0');
    if (!Number.isInteger(limit) || limit < 1) throw new OutboxStoreError('limit must be a whole number ≥ 1');
    return this.#read('pruneSettled', async () => {
      // One statement, oldest first off the settled index. Rows another instance is pruning (or a requeue or revive is
      // changing) are skipped rather than waited for; a row that stopped being settled no longer matches when re-checked.
      // Its ledger attempts go with it (ON DELETE CASCADE); counts are read from the events, so they follow.
      const result = await this.#db.pool.query(
        // `= ANY (ARRAY(…))`, not `IN (…)`: the picked seqs are then looked up by primary key, where `IN` may plan a
        // hash join over the whole table.
        `DELETE FROM outbox_events WHERE seq = ANY (ARRAY(
           SELECT seq FROM outbox_events
           WHERE state IN ('delivered', 'duplicate', 'dead') AND updated_at < ${nowSql(1)} - $2::bigint
           ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED))`,
        [nowParam(this.#clock), olderThanMs, limit],
      );
      return result.rowCount ?? 0;
    });
  }

  /**
   * Calls `listener` with the tenant whenever any instance enqueues (or requeues) events that are due now, through one
   * LISTEN connection per store, opened on the first subscription. Best effort: a worker still polls.
   */
  onEnqueued(listener: (tenant: string) => void): () => void {
    this.#listeners.add(listener);
    if (!this.#closed) this.#listener ??= this.#listen();
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Whether the LISTEN connection is up (tests wait for it before expecting a wake-up). */
  async listening(): Promise<boolean> {
    return (await this.#listener) !== undefined;
  }

  /** The caller's time: a test's clock, else this host's (only to turn a caller's absolute times into delays and back). */
  #callerNow(): number {
    return (this.#clock ?? systemClock).now();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    const listener = await this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => {});
    if (this.#ownsDatabase) await this.#db.close();
  }

  async #listen(): Promise<pg.Client | undefined> {
    const client = this.#db.newClient();
    const drop = (): void => {
      if (this.#listener !== undefined) this.#listener = undefined;
      client.end().catch(() => {});
    };
    // A lost LISTEN connection is dropped; the next subscription opens another, and the worker polls meanwhile.
    client.on('error', drop);
    client.on('notification', (message) => {
      for (const listener of [...this.#listeners]) listener(message.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.#db.outboxChannel}`);
      return client;
    } catch {
      drop();
      return undefined;
    }
  }

  async #notify(client: pg.PoolClient, tenants: ReadonlySet<string>): Promise<void> {
    if (tenants.size === 0) return;
    // Delivered at commit, once per distinct payload.
    await client.query('SELECT pg_notify($1, tenant) FROM unnest($2::text[]) AS tenant', [this.#db.outboxChannel, [...tenants]]);
  }

  async #transaction<T>(operation: string, work: (client: pg.PoolClient, now: number) => Promise<T>): Promise<T> {
    try {
      return await this.#db.transaction(async (client) => work(client, await transactionNow(client, this.#clock)));
    } catch (error) {
      throw outboxStoreFailure('postgres', operation, error);
    }
  }

  /** Pool statements outside a transaction (reads, and the single-statement renewLeases and pruneSettled); failures wrapped. */
  async #read<T>(operation: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      throw outboxStoreFailure('postgres', operation, error);
    }
  }

  async #entries(operation: string, sql: string, values: unknown[]): Promise<LedgerEntry[]> {
    return this.#read(operation, async () => {
      const rows = (await this.#db.pool.query<OutboxEventRow>(sql, values)).rows;
      if (rows.length === 0) return [];
      const attempts = await this.#db.pool.query<LedgerAttemptRow & { event_seq: number }>(
        'SELECT * FROM ledger_attempts WHERE event_seq = ANY ($1::bigint[]) ORDER BY event_seq, number',
        [rows.map((row) => row.seq)],
      );
      const bySeq = new Map<number, AttemptRecord[]>();
      for (const attempt of attempts.rows) {
        const list = bySeq.get(attempt.event_seq) ?? [];
        list.push(attemptOfRow(attempt));
        bySeq.set(attempt.event_seq, list);
      }
      return rows.map((row) => ledgerEntryOfRow(row, bySeq.get(row.seq) ?? []));
    });
  }
}

/** Adds ledger attempts in one statement. */
async function insertAttempts(client: pg.PoolClient, items: readonly { seq: number; attempt: AttemptRecord }[]): Promise<void> {
  if (items.length === 0) return;
  await client.query(
    `INSERT INTO ledger_attempts (event_seq, number, started_at, finished_at, outcome, status, message, api_error_code, rs_code, requests, event_ids,
       uncertain_requests, handled_by)
     SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[],
       $10::int[], $11::text[], $12::int[], $13::text[])`,
    [
      items.map(({ seq }) => seq),
      items.map(({ attempt }) => attempt.number),
      items.map(({ attempt }) => attempt.startedAt),
      items.map(({ attempt }) => attempt.finishedAt),
      items.map(({ attempt }) => attempt.outcome),
      items.map(({ attempt }) => attempt.status),
      items.map(({ attempt }) => attempt.message),
      items.map(({ attempt }) => attempt.apiErrorCode),
      items.map(({ attempt }) => attempt.rsCode),
      items.map(({ attempt }) => attempt.requests),
      items.map(({ attempt }) => JSON.stringify(attempt.eventIds)),
      items.map(({ attempt }) => attempt.uncertainRequests),
      items.map(({ attempt }) => attempt.handledBy ?? null),
    ],
  );
}

const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
