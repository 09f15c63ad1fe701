import { createHash } from 'node:crypto';
import { messageOf, OncekitError } from '../errors.js';
import type { UnmappableRaw } from './types.js';

/** How much of an unmappable event's raw payload the ledger keeps, in UTF-8 bytes. */
export const UNMAPPABLE_RAW_LIMIT_BYTES = 16 * 1024;

/**
 * The text of a raw payload: a string as it is (a request body), anything else as JSON. A payload that cannot be
 * serialised (too deep for JSON.stringify, a cycle, a BigInt) is described instead, so recording it never fails.
 */
export function rawPayloadText(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  try {
    return JSON.stringify(raw) ?? String(raw);
  } catch (error) {
    return `[payload not serialisable as JSON: ${messageOf(error)}]`;
  }
}

/** The payload as the ledger keeps it: at most `limitBytes` of UTF-8, cut before a character, never inside one. */
export function capRawPayload(raw: unknown, limitBytes: number = UNMAPPABLE_RAW_LIMIT_BYTES): UnmappableRaw {
  const text = rawPayloadText(raw);
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes <= limitBytes) return { text, bytes, truncated: false };
  const encoded = Buffer.from(text, 'utf8');
  let end = limitBytes;
  // Back off continuation bytes (10xxxxxx) so the cut falls on the start of a character.
  while (end > 0 && ((encoded[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return { text: encoded.subarray(0, end).toString('utf8'), bytes, truncated: true };
}

/**
 * The identity of an unmappable event, stable across redeliveries, restarts and instances: the dedupKey the event
 * would have had when the caller knows it (the source's own id), else a digest of the whole raw payload.
 */
export function unmappableDedupKey(known: string | null, raw: unknown): string {
  if (known !== null && known !== '') return known;
  return `raw-sha256:${createHash('sha256').update(rawPayloadText(raw), 'utf8').digest('hex')}`;
}

/** A mapping error as a dead letter's reason: its message (an unexpected error's class too), never its stack. */
export function unmappableReason(error: unknown): string {
  let message: string;
  if (error instanceof OncekitError) message = error.message;
  else if (error instanceof Error) message = `${error.name === 'Error' ? '' : `${error.name}: `}${error.message}`;
  else message = String(error);
  return `could not be mapped: ${message}`;
}
