import { apiErrors, type SandboxApiError } from './api-error.js';

/** The API routes the sandbox serves, all under `/api/v1/{tenant}`. */
export type ApiRoute =
  | { readonly kind: 'track-event'; readonly tenant: string; readonly accountId: string; readonly userId: string }
  | { readonly kind: 'upsert-user' | 'get-user'; readonly tenant: string; readonly accountId: string; readonly userId: string }
  | { readonly kind: 'graphql'; readonly tenant: string };

export type RouteMatch =
  | { readonly ok: true; readonly route: ApiRoute }
  | { readonly ok: false; readonly error: SandboxApiError; readonly allow?: string };

function decode(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** Matches `pathname` (already without the query string), decoding each path segment once. */
export function matchApiRoute(method: string, pathname: string): RouteMatch {
  const parts = pathname.split('/');
  // ['', 'api', 'v1', tenant, ...rest]
  const notFound: RouteMatch = { ok: false, error: apiErrors.routeNotFound(method, pathname) };
  if (parts.length < 5 || parts[1] !== 'api' || parts[2] !== 'v1' || parts[3] === '') return notFound;
  const rest = parts.slice(4);
  let shape: 'graphql' | 'user' | 'events';
  if (rest.length === 1 && rest[0] === 'graphql') shape = 'graphql';
  else if (rest.length === 5 && rest[0] === 'open' && rest[1] === 'account' && rest[3] === 'user') shape = 'user';
  else if (rest.length === 6 && rest[0] === 'open' && rest[1] === 'account' && rest[3] === 'user' && rest[5] === 'events') shape = 'events';
  else return notFound;

  const allow = shape === 'user' ? 'GET, PUT' : 'POST';
  if (!allow.split(', ').includes(method)) return { ok: false, error: apiErrors.methodNotAllowed(method, allow), allow };

  const tenant = decode(parts[3] as string);
  const accountId = shape === 'graphql' ? '' : decode(rest[2] as string);
  const userId = shape === 'graphql' ? '' : decode(rest[4] as string);
  if (tenant === null || accountId === null || userId === null) {
    return { ok: false, error: apiErrors.badPath('a path segment has malformed percent-encoding') };
  }
  if (shape === 'graphql') return { ok: true, route: { kind: 'graphql', tenant } };
  if (shape === 'events') return { ok: true, route: { kind: 'track-event', tenant, accountId, userId } };
  return { ok: true, route: { kind: method === 'PUT' ? 'upsert-user' : 'get-user', tenant, accountId, userId } };
}
