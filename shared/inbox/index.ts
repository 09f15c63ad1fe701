export { inboxKey } from '../state/key-spaces.js';
export * from './inbox.js';
