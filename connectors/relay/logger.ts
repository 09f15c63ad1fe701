import { type Logger as PinoLogger, pino } from 'pino';
import type { RelayConfig } from './config.js';

// Everything that can carry a secret in a request log line.
const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-oncekit-signature"]',
  'req.headers["keygen-signature"]',
  'req.headers["x-signature"]',
  'req.query.token',
];

/** Fastify's request log fields, with secrets in the query string (the status page's ?token=) redacted. */
function serializeRequest(request: {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url?.replace(/([?&]token=)[^&#]*/gi, '$1[redacted]'),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** The relay's JSON log; stderr by default, so stdout keeps the human start-up lines. */
export function createRelayLogger(level: RelayConfig['logLevel'], stream?: NodeJS.WritableStream): PinoLogger {
  return pino(
    {
      level,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      // Fastify logs each request's URL; the status page link carries the relay secret as ?token=.
      serializers: { req: serializeRequest },
    },
    stream ?? pino.destination(2),
  );
}
