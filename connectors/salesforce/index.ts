/** The Salesforce connector's library surface, for the relay to mount. */
export * from './identity.js';
export * from './invocable-input.js';
export * from './platform-event-mapping.js';
export * from './platform-event-subscriber.js';
export * from './replay-checkpoint-store.js';
export * from './salesforce-auth.js';
export * from './salesforce-id.js';
export * from './track-event-batch.js';
