import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keygenWebhookVerifier, parseSignatureParameters } from '../../../connectors/keygen/keygen-signature.js';

const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const publicKeyHex = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
const NOW = Date.parse('2026-11-22T12:00:00Z');

/** Signs a delivery the way Keygen does. */
function keygenDelivery(
  body: string,
  options: { host?: string; path?: string; date?: string; tamper?: (headers: Record<string, string>) => void } = {},
) {
  const host = options.host ?? 'relay.example.com';
  const path = options.path ?? '/webhooks/keygen';
  const date = options.date ?? new Date(NOW).toUTCString();
  const digest = `sha-256=${createHash('sha256').update(body).digest('base64')}`;
  const signingString = [`(request-target): post ${path}`, `host: ${host}`, `date: ${date}`, `digest: ${digest}`].join('\n');
  const signature = sign(null, Buffer.from(signingString), privateKey).toString('base64');
  const headers: Record<string, string> = {
    date,
    digest,
    'keygen-signature': `keyid="acct-1", algorithm="ed25519", signature="${signature}", headers="(request-target) host date digest"`,
  };
  options.tamper?.(headers);
  return { method: 'POST', path, host, headers, rawBody: Buffer.from(body) };
}

describe('Keygen webhook signatures', () => {
  const verifier = keygenWebhookVerifier({ publicKey: publicKeyHex, now: () => NOW });
  const body = JSON.stringify({ data: { type: 'webhook-events', meta: { idempotencyToken: 'a'.repeat(64) } } });

  it('accepts a delivery signed by the account key, with the key given as hex or PEM', () => {
    expect(verifier(keygenDelivery(body))).toEqual({ valid: true });
    const pemVerifier = keygenWebhookVerifier({ publicKey: publicKey.export({ format: 'pem', type: 'spki' }).toString(), now: () => NOW });
    expect(pemVerifier(keygenDelivery(body))).toEqual({ valid: true });
  });

  it.each([
    [
      'a changed body',
      (d: ReturnType<typeof keygenDelivery>) => ({ ...d, rawBody: Buffer.from(`${body} `) }),
      'Digest header does not match the body',
    ],
    ['another host', (d: ReturnType<typeof keygenDelivery>) => ({ ...d, host: 'evil.example.com' }), 'Keygen-Signature does not verify'],
    ['another path', (d: ReturnType<typeof keygenDelivery>) => ({ ...d, path: '/webhooks/other' }), 'Keygen-Signature does not verify'],
    ['another method', (d: ReturnType<typeof keygenDelivery>) => ({ ...d, method: 'PUT' }), 'Keygen-Signature does not verify'],
  ])('refuses %s', (_name, change, reason) => {
    expect(verifier(change(keygenDelivery(body)))).toEqual({ valid: false, reason });
  });

  it('refuses a signature from another key', () => {
    const other = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
    expect(keygenWebhookVerifier({ publicKey: other, now: () => NOW })(keygenDelivery(body))).toEqual({
      valid: false,
      reason: 'Keygen-Signature does not verify',
    });
  });

  it('refuses a replay outside the clock skew', () => {
    const old = keygenDelivery(body, { date: new Date(NOW - 10 * 60_000).toUTCString() });
    expect(verifier(old)).toEqual({ valid: false, reason: 'Date header is outside the allowed clock skew' });
  });

  it.each([
    ['no signature header', (h: Record<string, string>) => delete h['keygen-signature'], 'missing Keygen-Signature header'],
    [
      'another algorithm',
      (h: Record<string, string>) => (h['keygen-signature'] = (h['keygen-signature'] ?? '').replace('ed25519', 'rsa-sha256')),
      'Keygen-Signature: algorithm must be "ed25519"',
    ],
    [
      'the digest not signed',
      (h: Record<string, string>) => (h['keygen-signature'] = (h['keygen-signature'] ?? '').replace(' digest"', '"')),
      'Keygen-Signature: "digest" must be signed',
    ],
    ['no Date header', (h: Record<string, string>) => delete h.date, 'missing or unreadable Date header'],
  ])('refuses %s', (_name, tamper, reason) => {
    expect(verifier(keygenDelivery(body, { tamper }))).toEqual({ valid: false, reason });
  });

  it('parses the signature parameters', () => {
    expect(Object.fromEntries(parseSignatureParameters('keyid="k", algorithm="ed25519", signature="c2ln", headers="host date"'))).toEqual({
      keyid: 'k',
      algorithm: 'ed25519',
      signature: 'c2ln',
      headers: 'host date',
    });
  });
});
