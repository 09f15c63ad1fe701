import { jsonReply, type Reply } from '../http.js';
import { apiErrors } from './api-error.js';
import { errorReply, isJsonContentType, parseJsonBody } from './http-io.js';
import type { ApiRoute } from './routes.js';
import type { TenantState } from './state.js';
import { logUserEvent, noteCarriedKey } from './user-events.js';
import { upsertUser } from './users.js';

export interface RestRequest {
  readonly tenant: TenantState;
  readonly now: number;
  readonly retentionMs: number;
  readonly strictUsers: boolean;
}

type UserRoute = Extract<ApiRoute, { kind: 'track-event' | 'upsert-user' | 'get-user' }>;

function readJson(body: string, contentType: string | undefined): { ok: true; value: unknown } | { ok: false; reply: Reply } {
  if (!isJsonContentType(contentType)) return { ok: false, reply: errorReply(apiErrors.wrongContentType(contentType)) };
  const parsed = parseJsonBody(body);
  return parsed.ok ? parsed : { ok: false, reply: errorReply(apiErrors.invalidJson(parsed.detail)) };
}

/** `POST /api/v1/{tenant}/open/account/{accountId}/user/{userId}/events` (trackEvent). */
export function handleTrackEvent(route: UserRoute, body: string, contentType: string | undefined, request: RestRequest): Reply {
  const json = readJson(body, contentType);
  if (!json.ok) return json.reply;
  const outcome = logUserEvent(json.value, { ...request, via: 'rest', pathIds: { accountId: route.accountId, userId: route.userId } });
  return outcome.ok ? jsonReply(200, outcome.result) : errorReply(outcome.error);
}

/** `PUT /api/v1/{tenant}/open/account/{accountId}/user/{userId}` (openUserUpsert). */
export function handleUpsertUser(route: UserRoute, body: string, contentType: string | undefined, request: RestRequest): Reply {
  const json = readJson(body, contentType);
  if (!json.ok) return json.reply;
  const outcome = upsertUser(request.tenant, json.value, { accountId: route.accountId, userId: route.userId }, request.now);
  return outcome.ok ? jsonReply(200, outcome.user) : errorReply(outcome.error);
}

/** `GET /api/v1/{tenant}/open/account/{accountId}/user/{userId}` (openGetUser). */
export function handleGetUser(route: UserRoute, request: RestRequest): Reply {
  const user = request.tenant.user(route.accountId, route.userId);
  return user === undefined ? errorReply(apiErrors.userNotFound(route.accountId, route.userId)) : jsonReply(200, user.data);
}

/** Counts the key a trackEvent body carries without processing it, for requests a fault answers instead. */
export function noteRestKey(body: string, request: RestRequest): void {
  const parsed = parseJsonBody(body);
  if (parsed.ok) noteCarriedKey(request.tenant, parsed.value, request.now);
}
