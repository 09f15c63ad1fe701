export * from './candidates.js';
export * from './decide.js';
export * from './profiles.js';
