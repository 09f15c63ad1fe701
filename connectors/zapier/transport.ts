import type { HttpRequestOptions, ZObject } from 'zapier-platform-core';
import { type HttpResponse, type HttpTransport, TransportError } from '../../shared/target/transport.js';

/** Request options core reads but its type definitions leave out. */
interface CoreRequestOptions extends HttpRequestOptions {
  readonly url: string;
  readonly signal?: AbortSignal;
  /**
   * false: a 429 reaches us as a response instead of a ThrottledError thrown inside `z.request`. The target client
   * would otherwise see a thrown error as "no response"; this way it classifies the 429 with its Retry-After, and
   * results.ts turns that into the ThrottledError, like every other outcome.
   */
  readonly throwForThrottlingEarly: boolean;
  /**
   * false: skip core's requestTemplate merge, whose `{{bundle.*}}` check would throw on an event field that happens
   * to contain such text. oncekit has no requestTemplate, and the client sets every header itself.
   */
  readonly merge: boolean;
}

/**
 * Core's patch of Node's http module logs every request it does not take for a `z.request` one, and it tells them
 * apart by `User-Agent` being exactly "Zapier". Its log line leaves the Authorization header unscrubbed, so
 * the key would reach Zapier's logs in Basic-auth form with any other User-Agent (seen with core 19.1.0).
 */
const Z_REQUEST_USER_AGENT = 'Zapier';

const withoutUserAgent = (headers: Readonly<Record<string, string>>): Record<string, string> =>
  Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'user-agent'));

/**
 * The shared client's HttpTransport over `z.request`, so Zapier's request logging (with its secret scrubbing) and the
 * app's middleware apply. Resolves with every status; rejects with a TransportError only when no response arrived.
 */
export function zapierTransport(z: ZObject): HttpTransport {
  return async (request) => {
    const options: CoreRequestOptions = {
      url: request.url,
      method: request.method,
      headers: { ...withoutUserAgent(request.headers), 'user-agent': Z_REQUEST_USER_AGENT },
      ...(request.body === undefined ? {} : { body: request.body }),
      timeout: request.timeoutMs,
      ...(request.signal ? { signal: request.signal } : {}),
      skipThrowForStatus: true,
      throwForThrottlingEarly: false,
      merge: false,
    };
    let response: Awaited<ReturnType<ZObject['request']>>;
    try {
      response = await z.request(options);
    } catch (error) {
      throw transportErrorOf(error, request.timeoutMs, request.signal);
    }
    const headers: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      headers[name.toLowerCase()] = value;
    });
    return { status: response.status, headers, body: response.content } satisfies HttpResponse;
  };
}

/** node-fetch (under z.request) reports a timeout as a FetchError of type `request-timeout` and an abort as AbortError. */
function transportErrorOf(error: unknown, timeoutMs: number, signal: AbortSignal | undefined): TransportError {
  if (error instanceof TransportError) return error;
  const type = typeof error === 'object' && error !== null ? Reflect.get(error, 'type') : undefined;
  const message = error instanceof Error ? error.message : 'request failed';
  if (signal?.aborted) return new TransportError('aborted', 'request aborted by the caller', { cause: error });
  if (type === 'request-timeout') return new TransportError('timeout', `request timed out after ${timeoutMs} ms`, { cause: error });
  return new TransportError('network', message, { cause: error });
}
