import type { IncomingMessage, ServerResponse } from 'node:http';
import type { SandboxApiError } from './api-error.js';

/** A response decided by a handler; the server writes it, or replaces it when a fault says so. */
export interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export const MAX_BODY_BYTES = 5 * 1024 * 1024;

export const jsonReply = (status: number, value: unknown, headers?: Readonly<Record<string, string>>): Reply =>
  headers === undefined ? { status, body: JSON.stringify(value) } : { status, body: JSON.stringify(value), headers };

export const errorReply = (error: SandboxApiError, headers?: Readonly<Record<string, string>>): Reply =>
  jsonReply(error.statusCode, error, headers);

/** Thrown when the client went away mid-body; nothing is left to answer, so it is not logged as a sandbox error. */
export class ClientGoneError extends Error {}

/** The whole body as UTF-8, or null when it is larger than `limit` (the rest is read and discarded). */
export function readBody(req: IncomingMessage, limit: number = MAX_BODY_BYTES): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > limit) {
        tooLarge = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    });
    req.on('end', () => {
      if (tooLarge) resolve(null);
      else resolve(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (error) => reject(new ClientGoneError(error.message)));
    req.on('aborted', () => reject(new ClientGoneError('request aborted')));
  });
}

/** True for `application/json` with or without parameters such as charset. */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const semicolon = value.indexOf(';');
  const type = (semicolon < 0 ? value : value.slice(0, semicolon)).trim().toLowerCase();
  return type === 'application/json';
}

export type JsonParse = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly detail: string };

export function parseJsonBody(body: string): JsonParse {
  if (body.trim() === '') return { ok: false, detail: 'the body is empty' };
  try {
    return { ok: true, value: JSON.parse(body) };
  } catch (error) {
    return { ok: false, detail: error instanceof Error ? error.message : 'unparsable' };
  }
}

export function send(res: ServerResponse, reply: Reply, contentType = 'application/json; charset=utf-8'): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(reply.status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(reply.body),
    ...reply.headers,
  });
  res.end(reply.body);
}

/** Resets the connection (TCP RST where supported): the client sees ECONNRESET, no status, no body. */
export function dropConnection(res: ServerResponse): void {
  const socket = res.socket ?? res.req.socket;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}
