import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const MB = 1024 * 1024;

/**
 * Keeps a long bulk command's old generation near `targetMb` by a full collection when it grows past it. Left alone, V8
 * lets the heap of a busy process grow to several times what is alive before collecting, which costs RSS, not speed.
 * A heap flag (--max-old-space-size) would do the same but only at start: it would need a `#!` line (ignored by
 * `node dist/cli/oncekit.js`, and applied to every command) or a re-exec (a second process, which a kill -9 of the
 * first leaves running). When what is alive outgrows the target, the target follows it (twice what survived), so the
 * pacer never collects in a loop. Returns the stop.
 */
export function paceHeap(targetMb: number, everyMs = 100): () => void {
  const collect = collector();
  if (collect === null) return () => {};
  let threshold = targetMb * MB;
  const timer = setInterval(() => {
    if (oldSpaceUsed() <= threshold) return;
    collect();
    threshold = Math.max(targetMb * MB, 2 * oldSpaceUsed());
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** What the old generation holds: what survived young collections, and what only a full collection frees. */
function oldSpaceUsed(): number {
  return getHeapSpaceStatistics().find((space) => space.space_name === 'old_space')?.space_used_size ?? 0;
}

/** The full collection V8 offers behind --expose-gc, taken without exposing `gc` to the program. */
function collector(): (() => void) | null {
  const exposed: unknown = (globalThis as { gc?: unknown }).gc;
  if (typeof exposed === 'function') return exposed as () => void;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}
