import { randomBytes, randomInt } from 'node:crypto';

// Mongo ObjectId layout (4-byte seconds, 5 random bytes per process, 3-byte counter): 24 hex chars like the API's ids.
const processPart = randomBytes(5).toString('hex');
let counter = randomInt(0x1000000);

/** A new 24-hex-character event id whose first 8 characters encode `nowMs` in seconds. */
export function objectId(nowMs: number): string {
  counter = (counter + 1) & 0xffffff;
  const seconds = Math.floor(nowMs / 1000) >>> 0;
  return seconds.toString(16).padStart(8, '0') + processPart + counter.toString(16).padStart(6, '0');
}
