import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * What a Salesforce Named Credential can send: `Authorization: Bearer <secret>`, or an HMAC of the body keyed by the
 * same secret in `X-Oncekit-Signature: sha256=<hex>`. Both compare in constant time.
 */
export const SIGNATURE_HEADER = 'x-oncekit-signature';

export type InboundAuthCheck = { readonly ok: true; readonly scheme: 'bearer' | 'hmac' } | { readonly ok: false; readonly reason: string };

function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

export function inboundAuthChecker(
  secret: string,
): (headers: Readonly<Record<string, string | string[] | undefined>>, rawBody: Buffer) => InboundAuthCheck {
  const secretBytes = Buffer.from(secret, 'utf8');
  return (headers, rawBody) => {
    const authorization = headers.authorization;
    const signature = headers[SIGNATURE_HEADER];
    if (typeof authorization === 'string' && /^Bearer\s+/i.test(authorization)) {
      const given = Buffer.from(authorization.replace(/^Bearer\s+/i, '').trim(), 'utf8');
      return constantTimeEqual(given, secretBytes)
        ? { ok: true, scheme: 'bearer' }
        : { ok: false, reason: 'the bearer token is not the relay secret' };
    }
    if (typeof signature === 'string') {
      const match = /^sha256=([0-9a-fA-F]{64})$/.exec(signature.trim());
      if (!match?.[1]) return { ok: false, reason: `${SIGNATURE_HEADER} must be sha256=<64 hex digits>` };
      const expected = createHmac('sha256', secretBytes).update(rawBody).digest();
      return constantTimeEqual(Buffer.from(match[1], 'hex'), expected)
        ? { ok: true, scheme: 'hmac' }
        : { ok: false, reason: `${SIGNATURE_HEADER} does not match the body` };
    }
    return { ok: false, reason: `send Authorization: Bearer <relay secret> or ${SIGNATURE_HEADER}: sha256=<HMAC of the body>` };
  };
}
