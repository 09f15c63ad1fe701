/** The parts of a Node system error (`listen`, `open`, …) worth telling a user. */
interface SystemErrorFields {
  readonly code?: unknown;
  readonly syscall?: unknown;
  readonly path?: unknown;
  readonly address?: unknown;
  readonly port?: unknown;
}

const FILE_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a folder, not a file',
  ENOTDIR: 'a part of the path is not a folder',
  EROFS: 'the file system is read-only',
  ENOSPC: 'no space left on the device',
};

/**
 * One line for the failures a user causes and can fix (a port in use, a file that cannot be read), or null for
 * anything else: those are bugs and get the unexpected-error treatment.
 */
export function describeSystemError(error: unknown): string | null {
  if (!(error instanceof Error)) return null;
  const { code, syscall, path, address, port } = error as Error & SystemErrorFields;
  if (typeof code !== 'string') return null;
  const where = typeof address === 'string' ? `${address.includes(':') ? `[${address}]` : address}:${String(port)}` : null;
  if (syscall === 'listen' || syscall === 'bind') {
    if (code === 'EADDRINUSE') {
      return `cannot listen on ${where ?? 'the address'}: the port is already in use; stop what listens there or choose another with --port (or ONCEKIT_PORT)`;
    }
    if (code === 'EADDRNOTAVAIL')
      return `cannot listen on ${where ?? 'the address'}: the address is not one of this machine's (--host or ONCEKIT_HOST)`;
    if (code === 'EACCES' || code === 'EPERM') {
      return `cannot listen on ${where ?? 'the address'}: permission denied (ports below 1024 need privileges; choose another with --port)`;
    }
  }
  const reason = FILE_REASONS[code];
  if (reason !== undefined && typeof path === 'string') return `cannot use ${path}: ${reason}`;
  return null;
}
