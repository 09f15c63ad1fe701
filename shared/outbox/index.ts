export * from './config.js';
export * from './ledger.js';
export * from './memory-store.js';
export * from './open-store.js';
export * from './postgres-store.js';
export * from './redis-store.js';
export * from './sqlite-store.js';
export {
  canRevive,
  newOutboxId,
  newWorkerToken,
  OutboxStoreError,
  type OutboxStoreOptions,
} from './store-support.js';
export * from './types.js';
export * from './worker.js';
