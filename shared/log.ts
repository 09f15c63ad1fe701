/** The logging surface shared code needs; pino loggers satisfy it as they are. */
export interface Logger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

type Level = 'info' | 'warn' | 'error';

/** One JSON object per line, the shape pino writes, so logs from every part of oncekit read alike. */
export function jsonLineLogger(write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const emit = (level: Level, fields: Record<string, unknown>, message: string): void => {
    write(`${JSON.stringify({ level, time: Date.now(), ...fields, msg: message })}\n`);
  };
  return {
    info: (fields, message) => emit('info', fields, message),
    warn: (fields, message) => emit('warn', fields, message),
    error: (fields, message) => emit('error', fields, message),
  };
}

export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

export interface RecordedLogLine {
  readonly level: Level;
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** Keeps every line in memory; for tests and for callers that show logs back to a user. */
export function memoryLogger(): Logger & { readonly lines: RecordedLogLine[] } {
  const lines: RecordedLogLine[] = [];
  const push = (level: Level) => (fields: Record<string, unknown>, message: string) => {
    lines.push({ level, fields, message });
  };
  return { lines, info: push('info'), warn: push('warn'), error: push('error') };
}
