export * from '../state/memory/outbox.js';
export * from '../state/postgres/outbox.js';
export * from '../state/redis/outbox.js';
export * from '../state/sqlite/outbox.js';
export * from './activity.js';
export * from './config.js';
export * from './ledger.js';
export * from './retry-dead.js';
export {
  canRevive,
  newOutboxId,
  newWorkerToken,
  OutboxStoreError,
  type OutboxStoreOptions,
} from './store-support.js';
export * from './types.js';
export * from './worker.js';
