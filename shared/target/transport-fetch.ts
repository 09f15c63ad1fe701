import { type HttpResponse, type HttpTransport, neverConnected, TransportError } from './transport.js';

/** The fetch surface used: node-fetch v2 (Segment's runtime) and WHATWG fetch both have it. */
export interface FetchLikeResponse {
  readonly status: number;
  readonly headers: { forEach(callback: (value: string, name: string) => void): void };
  text(): Promise<string>;
}
export type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal },
) => Promise<FetchLikeResponse>;

/** A transport over a fetch function, for runtimes without undici (Segment functions). */
export function fetchTransport(fetchImpl: FetchLike): HttpTransport {
  return async (req) => {
    // An abort that came before the call: no request at all (the listener below would never fire).
    if (req.signal?.aborted) throw new TransportError('aborted', 'request aborted by the caller');
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), req.timeoutMs);
    const onAbort = (): void => controller.abort();
    req.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const response = await fetchImpl(req.url, {
        method: req.method,
        headers: { ...req.headers },
        ...(req.body === undefined ? {} : { body: req.body }),
        signal: controller.signal,
      });
      const body = await response.text();
      const headers: Record<string, string | undefined> = {};
      response.headers.forEach((value, name) => {
        headers[name.toLowerCase()] = value;
      });
      return { status: response.status, headers, body } satisfies HttpResponse;
    } catch (error) {
      if (req.signal?.aborted) throw new TransportError('aborted', 'request aborted by the caller', { cause: error });
      if (controller.signal.aborted) throw new TransportError('timeout', `request timed out after ${req.timeoutMs} ms`, { cause: error });
      throw new TransportError('network', errorMessage(error), { cause: error, neverSent: neverConnected(error) });
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
    }
  };
}

/**
 * The fetch may come from another realm (Segment runs a function in a vm context with the host's node-fetch), where
 * `instanceof Error` is false for its errors; their message is still the useful part (e.g. ECONNREFUSED).
 */
function errorMessage(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  return typeof message === 'string' && message !== '' ? message : 'request failed';
}
