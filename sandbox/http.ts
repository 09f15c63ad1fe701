import type { IncomingMessage, ServerResponse } from 'node:http';

/** A response decided by a handler; the server writes it, or replaces it when a fault says so. */
export interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export const jsonReply = (status: number, value: unknown, headers?: Readonly<Record<string, string>>): Reply =>
  headers === undefined ? { status, body: JSON.stringify(value) } : { status, body: JSON.stringify(value), headers };

/** Thrown when the client went away mid-body; nothing is left to answer, so it is not logged as a server error. */
export class ClientGoneError extends Error {}

/** The whole body as UTF-8; with a `limit`, null when it is larger (the rest is read and discarded). */
export function readBody(req: IncomingMessage): Promise<string>;
export function readBody(req: IncomingMessage, limit: number): Promise<string | null>;
export function readBody(req: IncomingMessage, limit = Number.POSITIVE_INFINITY): Promise<string | null> {
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

export function send(res: ServerResponse, reply: Reply, contentType = 'application/json; charset=utf-8'): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(reply.status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(reply.body),
    ...reply.headers,
  });
  res.end(reply.body);
}
