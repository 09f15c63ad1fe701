import { afterEach, describe, expect, it } from 'vitest';
import type { StoreLocation } from '../../../shared/state/location.js';
import { type OpenStateOptions, openState } from '../../../shared/state/open-state.js';

/** A place for state that outlives a reopen, and how to clean it up. */
export interface StateHarness {
  readonly location: StoreLocation;
  readonly options?: OpenStateOptions;
  dispose(): Promise<void>;
}

/**
 * The checkpoint contract every engine meets: a position per scope and stream, replaced by each save, kept across a
 * reopen when the engine is durable.
 */
export function describeCheckpointContract(
  name: string,
  traits: { readonly durable: boolean },
  harness: () => Promise<StateHarness>,
): void {
  describe(`checkpoints: ${name}`, () => {
    const disposers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const dispose of disposers.splice(0)) await dispose();
    });

    it('keeps the last position per scope and stream, scopes and streams apart', async () => {
      const where = await harness();
      disposers.push(where.dispose);
      const state = await openState(where.location, where.options);
      try {
        expect(await state.checkpoints.load('acme', '/event/A__e')).toBeNull();
        await state.checkpoints.save('acme', '/event/A__e', '41');
        await state.checkpoints.save('acme', '/event/A__e', '42');
        await state.checkpoints.save('globex', '/event/A__e', '7');
        await state.checkpoints.save('acme', '/event/B__e', '9');
        expect(await state.checkpoints.load('acme', '/event/A__e')).toBe('42');
        expect(await state.checkpoints.load('globex', '/event/A__e')).toBe('7');
        expect(await state.checkpoints.load('acme', '/event/B__e')).toBe('9');
        // Separators in names cannot make two scopes or streams one.
        await state.checkpoints.save('a:b', 'c', 'x');
        expect(await state.checkpoints.load('a', 'b:c')).toBeNull();
        // list: the scope's streams only, by name, up to the limit, each with how long ago it was saved (the store's clock).
        const listed = await state.checkpoints.list('acme');
        expect(listed.map(({ stream, position }) => ({ stream, position }))).toEqual([
          { stream: '/event/A__e', position: '42' },
          { stream: '/event/B__e', position: '9' },
        ]);
        for (const { savedAgoMs } of listed) {
          expect(savedAgoMs).toBeGreaterThanOrEqual(0);
          expect(savedAgoMs).toBeLessThan(60_000);
        }
        expect((await state.checkpoints.list('acme', 1)).map(({ stream, position }) => ({ stream, position }))).toEqual([
          { stream: '/event/A__e', position: '42' },
        ]);
        expect(await state.checkpoints.list('a')).toEqual([]);
      } finally {
        await state.close();
      }
    });

    // Only durable engines have something to reopen.
    if (traits.durable)
      it('keeps positions across a reopen', async () => {
        const where = await harness();
        disposers.push(where.dispose);
        const first = await openState(where.location, where.options);
        await first.checkpoints.save('acme', '/event/A__e', '1234567890');
        await first.close();
        const second = await openState(where.location, where.options);
        try {
          expect(await second.checkpoints.load('acme', '/event/A__e')).toBe('1234567890');
        } finally {
          await second.close();
        }
      });
  });
}
