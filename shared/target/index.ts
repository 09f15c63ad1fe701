export * from './client.js';
export * from './outcome.js';
export * from './retry.js';
export * from './saasquatch-api.js';
export * from './transport.js';
export * from './transport-fetch.js';
