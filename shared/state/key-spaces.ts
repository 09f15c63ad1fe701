/**
 * The key spaces of the idempotency store. Everything that shares a store and a tenant (the inbox, request
 * idempotency) names its keys here, each under its own prefix, so a key chosen by a caller in one space (an HTTP
 * client's Idempotency-Key) can never be read as a record of another (a webhook's delivery token).
 */

/** The inbox's record of one delivery; the source is URI-encoded so `a:b`+`c` and `a`+`b:c` stay apart. */
export function inboxKey(source: string, token: string): string {
  return `inbox:${encodeURIComponent(source)}:${token}`;
}

/** Request idempotency's record of one `Idempotency-Key`, as the client sent it. */
export function requestKey(idempotencyKey: string): string {
  return `request:${idempotencyKey}`;
}
