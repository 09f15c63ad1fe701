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
  /**
   * True when the connection failed before the request went out (refused, no such host), so the target certainly did
   * not record it; otherwise (reset, timeout, abort) it may have been received.
   */
  readonly neverSent: boolean;
  constructor(failure: TransportFailure, message: string, options?: { cause?: unknown; neverSent?: boolean }) {
    super(`transport_${failure}`, message, options);
    this.failure = failure;
    this.neverSent = options?.neverSent ?? false;
  }
}

/** Error codes of a connection that was never established: no byte of the request reached the target. */
const NEVER_CONNECTED = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Whether a transport error's code (or its cause's, as fetch reports it) says the request never left. */
export function neverConnected(error: unknown): boolean {
  const codeOf = (value: unknown): unknown =>
    value !== null && typeof value === 'object' ? (value as { code?: unknown }).code : undefined;
  const code = codeOf(error) ?? codeOf(error !== null && typeof error === 'object' ? (error as { cause?: unknown }).cause : undefined);
  return typeof code === 'string' && NEVER_CONNECTED.has(code);
}
