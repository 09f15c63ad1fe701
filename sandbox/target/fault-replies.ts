import type { Reply } from '../http.js';
import type { SandboxApiError } from './api-error.js';
import type { InjectedStatus } from './faults.js';
import { errorReply } from './http-io.js';

/** Marks every injected answer, so a test or a log reader can tell a fault from a real error. */
export const FAULT_HEADER = 'x-sandbox-fault';

const jsonFault = (statusCode: number, apiErrorCode: string, message: string, rsCode: string | null = null): SandboxApiError => ({
  statusCode,
  message,
  apiErrorCode,
  rsCode,
});

// 502 and 504 come from a gateway in front of the API: an HTML page, not the API's JSON, as in production.
const gatewayPage = (status: number, title: string): Reply => ({
  status,
  body: `<html><head><title>${status} ${title}</title></head><body><center><h1>${status} ${title}</h1></center></body></html>\n`,
  headers: { 'content-type': 'text/html', [FAULT_HEADER]: `status-${status}` },
});

export function statusFaultReply(status: InjectedStatus): Reply {
  const header = { [FAULT_HEADER]: `status-${status}` };
  switch (status) {
    case 500:
      return errorReply(jsonFault(500, 'INTERNAL_SERVER_ERROR', 'Internal Server Error'), header);
    case 503:
      return errorReply(jsonFault(503, 'SERVICE_UNAVAILABLE', 'Service Unavailable'), header);
    case 408:
      return errorReply(jsonFault(408, 'REQUEST_TIMEOUT', 'Request Timeout'), { ...header, connection: 'close' });
    case 502:
      return gatewayPage(502, 'Bad Gateway');
    case 504:
      return gatewayPage(504, 'Gateway Time-out');
  }
}

/** `marker` tells an injected throttle ("throttle") from the capacity cap ("rate-cap"). */
export function throttleReply(retryAfterSeconds: number, marker = 'throttle'): Reply {
  return errorReply(jsonFault(429, 'RATE_LIMIT_EXCEEDED', 'Rate limit exceeded; retry after the Retry-After delay', 'RS033'), {
    [FAULT_HEADER]: marker,
    'retry-after': String(retryAfterSeconds),
  });
}

/** The answer that replaces a processed request's real one: the client cannot tell it was recorded. */
export function lostResponseReply(): Reply {
  return errorReply(jsonFault(503, 'SERVICE_UNAVAILABLE', 'Service Unavailable'), { [FAULT_HEADER]: 'record-then-fail' });
}
