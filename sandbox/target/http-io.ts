import type { ServerResponse } from 'node:http';
import { jsonReply, type Reply } from '../http.js';
import type { SandboxApiError } from './api-error.js';

export const MAX_BODY_BYTES = 5 * 1024 * 1024;

export const errorReply = (error: SandboxApiError, headers?: Readonly<Record<string, string>>): Reply =>
  jsonReply(error.statusCode, error, headers);

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

/** Resets the connection (TCP RST where supported): the client sees ECONNRESET, no status, no body. */
export function dropConnection(res: ServerResponse): void {
  const socket = res.socket ?? res.req.socket;
  if (typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
  else socket.destroy();
}
