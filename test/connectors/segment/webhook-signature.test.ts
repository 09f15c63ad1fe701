import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { verifySegmentSignature } from '../../../connectors/segment/webhook-signature.js';

describe('Segment webhook signatures', () => {
  const secret = 'whsec_segment_shared_secret';
  const body = Buffer.from('{"type":"track","event":"Order Completed"}');
  const signature = createHmac('sha1', secret).update(body).digest('hex');

  it('accepts the hex HMAC-SHA1 of the body, in either case', () => {
    expect(verifySegmentSignature(body, signature, secret)).toEqual({ valid: true });
    expect(verifySegmentSignature(body, signature.toUpperCase(), secret)).toEqual({ valid: true });
  });

  it.each([
    ['a missing header', undefined, 'missing X-Signature header'],
    ['a wrong signature', 'f'.repeat(40), 'X-Signature does not match the body'],
    ['a malformed signature', 'not-hex', 'X-Signature does not match the body'],
    ['a SHA-256 length signature', 'a'.repeat(64), 'X-Signature does not match the body'],
  ])('refuses %s', (_name, header, reason) => {
    expect(verifySegmentSignature(body, header, secret)).toEqual({ valid: false, reason });
  });

  it('refuses a changed body', () => {
    expect(verifySegmentSignature(Buffer.from(`${body.toString()} `), signature, secret).valid).toBe(false);
  });
});
