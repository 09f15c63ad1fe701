export * from './dates.js';
export * from './user-event.js';
