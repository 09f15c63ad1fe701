import { randomBytes } from 'node:crypto';

/** Tags what one benchmark run creates (keys, tenants, schemas), so runs never meet. */
export const runId = randomBytes(4).toString('hex');
