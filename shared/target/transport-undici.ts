import { Agent, type Dispatcher, errors, request } from 'undici';
import { type HttpResponse, type HttpTransport, neverConnected, TransportError } from './transport.js';

export interface UndiciTransportOptions {
  /** Connections kept per origin. */
  readonly connections?: number;
  readonly keepAliveTimeoutMs?: number;
  readonly dispatcher?: Dispatcher;
}

export interface ClosableTransport {
  readonly send: HttpTransport;
  close(): Promise<void>;
}

/** The Node transport: undici with keep-alive connection reuse (several times faster than fetch on loopback). */
export function undiciTransport(options: UndiciTransportOptions = {}): ClosableTransport {
  const dispatcher =
    options.dispatcher ??
    new Agent({ connections: options.connections ?? 16, keepAliveTimeout: options.keepAliveTimeoutMs ?? 10_000, pipelining: 1 });

  const send: HttpTransport = async (req) => {
    const timeout = AbortSignal.timeout(req.timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    try {
      const response = await request(req.url, {
        method: req.method,
        headers: req.headers,
        ...(req.body === undefined ? {} : { body: req.body }),
        signal,
        dispatcher,
        headersTimeout: req.timeoutMs,
        bodyTimeout: req.timeoutMs,
      });
      const body = await response.body.text();
      const headers: Record<string, string | undefined> = {};
      for (const [name, value] of Object.entries(response.headers)) {
        headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
      }
      return { status: response.statusCode, headers, body } satisfies HttpResponse;
    } catch (error) {
      throw toTransportError(error, req.signal, timeout);
    }
  };

  return {
    send,
    close: async () => {
      if (!options.dispatcher) await dispatcher.close();
    },
  };
}

function toTransportError(error: unknown, callerSignal: AbortSignal | undefined, timeout: AbortSignal): TransportError {
  if (callerSignal?.aborted) return new TransportError('aborted', 'request aborted by the caller', { cause: error });
  if (timeout.aborted || error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError) {
    return new TransportError('timeout', 'request timed out', { cause: error });
  }
  const code = (error as { code?: unknown }).code;
  const reason = error instanceof Error ? error.message : 'request failed';
  return new TransportError('network', typeof code === 'string' ? `${code}: ${reason}` : reason, {
    cause: error,
    neverSent: neverConnected(error),
  });
}
