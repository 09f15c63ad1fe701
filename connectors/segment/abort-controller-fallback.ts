/**
 * Segment documents fetch (node-fetch v2) and timers among its globals, but not AbortController, which the shared
 * fetch transport and the client's waits use. The build injects this module for every use of the global name: the
 * runtime's own AbortController when there is one, else this small stand-in that node-fetch v2 accepts (it checks
 * that the signal's constructor is named "AbortSignal" and uses add/removeEventListener).
 */

type AbortListener = (event: { readonly type: 'abort'; readonly target: FallbackAbortSignal }) => void;

class FallbackAbortSignal {
  aborted = false;
  reason: unknown = undefined;
  onabort: AbortListener | null = null;
  readonly #listeners = new Map<AbortListener, { once: boolean }>();

  addEventListener(type: string, listener: AbortListener, options?: { once?: boolean }): void {
    if (type === 'abort') this.#listeners.set(listener, { once: options?.once === true });
  }

  removeEventListener(type: string, listener: AbortListener): void {
    if (type === 'abort') this.#listeners.delete(listener);
  }

  throwIfAborted(): void {
    if (this.aborted) throw this.reason;
  }

  /** Called by the controller only. */
  fire(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const event = { type: 'abort', target: this } as const;
    this.onabort?.(event);
    for (const [listener, { once }] of [...this.#listeners]) {
      if (once) this.#listeners.delete(listener);
      listener(event);
    }
  }
}
// node-fetch v2 recognises a signal by this name; set explicitly so minification cannot change it.
Object.defineProperty(FallbackAbortSignal, 'name', { value: 'AbortSignal' });

class FallbackAbortController {
  readonly signal = new FallbackAbortSignal();

  abort(reason?: unknown): void {
    const error = new Error('This operation was aborted');
    error.name = 'AbortError';
    this.signal.fire(reason ?? error);
  }
}

const native = (globalThis as { AbortController?: typeof globalThis.AbortController }).AbortController;

// The cast states that the stand-in covers what oncekit uses of the DOM type, which it checks in the harness tests.
export const AbortController: typeof globalThis.AbortController =
  native ?? (FallbackAbortController as unknown as typeof globalThis.AbortController);
