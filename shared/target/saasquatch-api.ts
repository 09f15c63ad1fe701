import type { UserEventInput } from '../events/user-event.js';

/** How the client reaches SaaSquatch: REST `trackEvent`, or GraphQL `logUserEvent(s)`. */
export type TargetApi = 'rest' | 'graphql';
export const targetApis = ['rest', 'graphql'] as const satisfies readonly TargetApi[];

export const DEFAULT_TARGET_URL = 'https://app.referralsaasquatch.com';

const seg = encodeURIComponent;

export function apiRoot(baseUrl: string, tenant: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/api/v1/${seg(tenant)}`;
}

export const trackEventUrl = (baseUrl: string, tenant: string, input: Pick<UserEventInput, 'accountId' | 'userId'>): string =>
  `${apiRoot(baseUrl, tenant)}/open/account/${seg(input.accountId)}/user/${seg(input.userId)}/events`;

export const userUpsertUrl = (baseUrl: string, tenant: string, accountId: string, userId: string): string =>
  `${apiRoot(baseUrl, tenant)}/open/account/${seg(accountId)}/user/${seg(userId)}`;

export const graphqlUrl = (baseUrl: string, tenant: string): string => `${apiRoot(baseUrl, tenant)}/graphql`;

/** The API key is the Basic-auth password with an empty user name. */
export const basicAuthHeader = (apiKey: string): string => `Basic ${Buffer.from(`:${apiKey}`, 'utf8').toString('base64')}`;

/** The credential check: any GraphQL server answers `__typename` for an authenticated caller, and nothing changes. */
export const CREDENTIALS_CHECK_QUERY = 'query oncekitCredentialsCheck { __typename }';

// Only fields of the public SDL are selected: the real ApiError type has message, statusCode and rsCode.
export const LOG_USER_EVENT_MUTATION =
  'mutation logUserEvent($userEventInput: UserEventInput!) { logUserEvent(userEventInput: $userEventInput) { userId accountId events { id key } } }';

export const LOG_USER_EVENTS_MUTATION =
  'mutation logUserEvents($userEventInputs: [UserEventInput!]!) { logUserEvents(userEventInputs: $userEventInputs) { __typename ... on UserEventResult { userId accountId events { id key } } ... on ApiError { message statusCode rsCode } } }';
