export { inboxKey } from '../store/key-spaces.js';
export * from './inbox.js';
