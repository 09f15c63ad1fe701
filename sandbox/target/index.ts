export { type Clock, MANUAL_CLOCK_START_MS, type ManualClock, manualClock, systemClock } from '../../shared/clock.js';
export type { SandboxApiError } from './api-error.js';
export { isManualClock } from './control.js';
export { FAULT_HEADER } from './fault-replies.js';
export {
  DEFAULT_RETRY_AFTER_SECONDS,
  type FaultConfig,
  type FaultController,
  type FaultKind,
  type FaultState,
  type InjectedStatus,
  parseFaultSpec,
  type QueuedFault,
} from './faults.js';
export { SANDBOX_SDL } from './graphql.js';
export { DEFAULT_SANDBOX_API_KEY, type Sandbox, type SandboxOptions, startSandbox } from './server.js';
export type { Channel, EventFields, EventSnapshot, KeySnapshot, TenantSnapshot, UserSnapshot } from './state.js';
