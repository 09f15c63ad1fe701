/**
 * The identity of a target for the outbox: its base URL without credentials, query or trailing slash, host in lower
 * case. Events are bound to it at intake, so a worker only ever sends what was accepted for its own target.
 */
export function targetId(baseUrl: string): string {
  const url = new URL(baseUrl);
  return `${url.protocol}//${url.host}${url.pathname.replace(/\/+$/, '')}`;
}
