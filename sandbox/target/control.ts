import type { Clock, ManualClock } from '../../shared/clock.js';
import { InvalidInputError } from '../../shared/errors.js';
import { jsonReply, type Reply } from '../http.js';
import { apiErrors } from './api-error.js';
import {
  type FaultConfig,
  type FaultInjector,
  parseFaultSpec,
  type QueuedFault,
  validateFaultConfig,
  validateQueuedFaults,
} from './faults.js';
import { errorReply, parseJsonBody } from './http-io.js';
import type { SandboxState } from './state.js';

export const CONTROL_PREFIX = '/__sandbox/';

export interface ControlDeps {
  readonly state: SandboxState;
  readonly faults: FaultInjector;
  readonly clock: Clock;
  readonly reset: () => void;
}

/** Only a manual clock can be moved through the control API. */
export function isManualClock(clock: Clock): clock is ManualClock {
  const candidate = clock as Partial<ManualClock>;
  return typeof candidate.advance === 'function' && typeof candidate.set === 'function';
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

function jsonObject(body: string): Record<string, unknown> {
  if (body.trim() === '') return {};
  const parsed = parseJsonBody(body);
  if (!parsed.ok) throw new InvalidInputError([{ field: '(body)', reason: `invalid JSON: ${parsed.detail}` }]);
  if (!isObject(parsed.value)) throw new InvalidInputError([{ field: '(body)', reason: 'expected a JSON object' }]);
  return parsed.value;
}

/** `{...FaultConfig}` or `{spec}` replaces the rates; `{enqueue:[...]}` appends to the queue; both apply only if all is valid. */
function postFaults(body: Record<string, unknown>, faults: FaultInjector): Reply {
  const { spec, enqueue, ...rates } = body;
  const hasRates = Object.keys(rates).length > 0;
  if (spec !== undefined && hasRates) {
    throw new InvalidInputError([{ field: 'spec', reason: 'give either a spec string or rate fields, not both' }]);
  }
  if (spec !== undefined && typeof spec !== 'string') throw new InvalidInputError([{ field: 'spec', reason: 'expected a string' }]);
  let config: FaultConfig | null = null;
  if (typeof spec === 'string') config = parseFaultSpec(spec);
  else if (hasRates) config = validateFaultConfig(rates);
  const queued: QueuedFault[] = enqueue === undefined ? [] : validateQueuedFaults(enqueue);
  if (config !== null) faults.set(config);
  if (queued.length > 0) faults.enqueue(...queued);
  return jsonReply(200, faults.state());
}

function postClock(body: Record<string, unknown>, clock: Clock): Reply {
  if (!isManualClock(clock)) {
    return errorReply(
      apiErrors.conflict('The sandbox runs on the system clock, which it cannot move; start it with clock: manualClock() to control time'),
    );
  }
  const { advanceMs, setMs } = body;
  if ((advanceMs === undefined) === (setMs === undefined)) {
    throw new InvalidInputError([{ field: 'advanceMs', reason: 'give exactly one of advanceMs (≥ 0) or setMs' }]);
  }
  if (advanceMs !== undefined) {
    if (typeof advanceMs !== 'number' || !Number.isFinite(advanceMs) || advanceMs < 0) {
      throw new InvalidInputError([{ field: 'advanceMs', reason: 'expected milliseconds ≥ 0' }]);
    }
    clock.advance(advanceMs);
  } else {
    if (typeof setMs !== 'number' || !Number.isFinite(setMs))
      throw new InvalidInputError([{ field: 'setMs', reason: 'expected epoch milliseconds' }]);
    clock.set(setMs);
  }
  return jsonReply(200, { now: clock.now(), manual: true });
}

function decode(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/** The loopback inspection and control API: no auth, no faults. */
export function handleControl(method: string, pathname: string, body: string, deps: ControlDeps): Reply {
  const path = pathname.slice(CONTROL_PREFIX.length);
  try {
    if (path === 'health' && method === 'GET') return jsonReply(200, { ok: true, now: deps.clock.now() });
    if (path === 'tenants' && method === 'GET') return jsonReply(200, { tenants: deps.state.names() });
    if (path.startsWith('tenants/') && method === 'GET' && path.indexOf('/', 'tenants/'.length) < 0) {
      const tenant = decode(path.slice('tenants/'.length));
      if (tenant === null || tenant === '') return errorReply(apiErrors.badPath('expected /__sandbox/tenants/{tenant}'));
      return jsonReply(200, deps.state.snapshot(tenant));
    }
    if (path === 'faults') {
      if (method === 'GET') return jsonReply(200, deps.faults.state());
      if (method === 'POST') return postFaults(jsonObject(body), deps.faults);
      if (method === 'DELETE') {
        deps.faults.clear();
        return jsonReply(200, deps.faults.state());
      }
      return errorReply(apiErrors.methodNotAllowed(method, 'GET, POST, DELETE'), { allow: 'GET, POST, DELETE' });
    }
    if (path === 'reset' && method === 'POST') {
      deps.reset();
      return jsonReply(200, { reset: true });
    }
    if (path === 'clock') {
      if (method === 'GET') return jsonReply(200, { now: deps.clock.now(), manual: isManualClock(deps.clock) });
      if (method === 'POST') return postClock(jsonObject(body), deps.clock);
      return errorReply(apiErrors.methodNotAllowed(method, 'GET, POST'), { allow: 'GET, POST' });
    }
    return errorReply(apiErrors.routeNotFound(method, pathname));
  } catch (error) {
    if (error instanceof InvalidInputError) return errorReply(apiErrors.validation(error.issues));
    throw error;
  }
}
