import { OncekitError } from '../errors.js';

export interface HttpRequest {
  readonly method: 'GET' | 'POST' | 'PUT';
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Aborts this one attempt when it takes longer. */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface HttpResponse {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: string;
}

/**
 * Sends one HTTP request. Resolves with any status; rejects with a TransportError when no response arrived
 * (connection refused or reset, timeout, abort). Node uses undici; Segment's runtime uses its global fetch.
 */
export type HttpTransport = (request: HttpRequest) => Promise<HttpResponse>;

export type TransportFailure = 'timeout' | 'aborted' | 'network';

export class TransportError extends OncekitError {
  readonly failure: TransportFailure;
  constructor(failure: TransportFailure, message: string, options?: { cause?: unknown }) {
    super(`transport_${failure}`, message, options);
    this.failure = failure;
  }
}
