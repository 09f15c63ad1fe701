import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { groupCommit } from '../../../shared/outbox/group-commit.js';
import { MemoryOutboxStore, type OutboxStore, SqliteOutboxStore } from '../../../shared/outbox/index.js';
import { outboxEvent } from '../state/outbox-contract.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Counts the store's enqueue calls (transactions) and the events in each. */
function counting(store: OutboxStore): { store: OutboxStore; calls: number[] } {
  const calls: number[] = [];
  const enqueue = store.enqueue.bind(store);
  return {
    calls,
    store: Object.assign(Object.create(store) as OutboxStore, {
      enqueue: (...args: Parameters<OutboxStore['enqueue']>) => {
        calls.push(args[0].length);
        return enqueue(...args);
      },
    }),
  };
}

describe('group commit', () => {
  it('commits concurrent callers in one SQLite transaction and answers each with its own results, in order', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oncekit-group-'));
    dirs.push(dir);
    const sqlite = new SqliteOutboxStore({ path: join(dir, 'oncekit.db') });
    const { store, calls } = counting(sqlite);
    const enqueue = groupCommit(store);
    const callers = Array.from({ length: 50 }, (_, caller) =>
      Array.from({ length: 3 }, (_, item) => outboxEvent({ key: `caller-${caller}-item-${item}` })),
    );
    const answers = await Promise.all(callers.map((events) => enqueue(events)));
    expect(calls.length).toBeLessThan(callers.length);
    expect(calls.reduce((sum, n) => sum + n, 0)).toBe(150);
    for (const [caller, results] of answers.entries()) {
      expect(results).toHaveLength(3);
      for (const [item, result] of results.entries()) {
        expect(result.outcome).toBe('created');
        const stored = await sqlite.get('acme', result.id);
        expect(stored?.key).toBe(`caller-${caller}-item-${item}`);
      }
    }
    // The same events again, from two callers in one group: each is told it exists already.
    const again = await Promise.all([enqueue(callers[0] ?? []), enqueue(callers[0] ?? [])]);
    expect(again.flat().map((result) => result.outcome)).toEqual(Array(6).fill('existing'));
    expect((await sqlite.counts('acme')).pending).toBe(150);
    await sqlite.close();
  });

  it('never splits one caller across transactions, even past the group size', async () => {
    const { store, calls } = counting(new MemoryOutboxStore());
    const enqueue = groupCommit(store, {}, { maxGroupEvents: 4 });
    await Promise.all([
      enqueue([outboxEvent(), outboxEvent(), outboxEvent()]),
      enqueue([outboxEvent(), outboxEvent(), outboxEvent()]),
      enqueue(Array.from({ length: 6 }, () => outboxEvent())),
    ]);
    expect(calls).toEqual([3, 3, 6]);
  });

  it('fails every caller of a group whose commit failed, and answers later callers from a new transaction', async () => {
    const memory = new MemoryOutboxStore();
    let failNext = true;
    const enqueue = memory.enqueue.bind(memory);
    const flaky = Object.assign(Object.create(memory) as OutboxStore, {
      enqueue: (...args: Parameters<OutboxStore['enqueue']>) => {
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error('disk full'));
        }
        return enqueue(...args);
      },
    });
    const commit = groupCommit(flaky);
    const first = await Promise.allSettled([commit([outboxEvent()]), commit([outboxEvent()])]);
    expect(first.map((settled) => settled.status)).toEqual(['rejected', 'rejected']);
    expect((await memory.counts('acme')).pending).toBe(0);
    const later = await commit([outboxEvent()]);
    expect(later[0]?.outcome).toBe('created');
  });
});
