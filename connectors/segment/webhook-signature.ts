import { createHmac, timingSafeEqual } from 'node:crypto';
import type { SignatureCheck } from '../../shared/http/signature-check.js';

/**
 * Segment's Webhooks destinations sign each request with the destination's shared secret: `X-Signature` is the
 * hex HMAC-SHA1 of the raw body.
 */
export function verifySegmentSignature(rawBody: Buffer, signatureHeader: string | undefined, sharedSecret: string): SignatureCheck {
  if (!signatureHeader) return { valid: false, reason: 'missing X-Signature header' };
  const expected = createHmac('sha1', sharedSecret).update(rawBody).digest();
  const given = /^[0-9a-fA-F]{40}$/.test(signatureHeader.trim()) ? Buffer.from(signatureHeader.trim(), 'hex') : Buffer.alloc(0);
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { valid: false, reason: 'X-Signature does not match the body' };
  return { valid: true };
}

/** The `X-Signature` a Webhooks destination with `sharedSecret` sends with `rawBody`. */
export function segmentSignature(rawBody: string | Buffer, sharedSecret: string): string {
  return createHmac('sha1', sharedSecret).update(rawBody).digest('hex');
}
