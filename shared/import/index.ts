export * from './csv.js';
export * from './errors-file.js';
export * from './records.js';
export * from './rows.js';
export * from './run-import.js';
