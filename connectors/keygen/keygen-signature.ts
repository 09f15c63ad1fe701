import { createHash, createPublicKey, type KeyObject, sign, verify } from 'node:crypto';
import type { SignatureCheck } from '../../shared/http/signature-check.js';

/**
 * Keygen signs each webhook with its account's Ed25519 key: the `Keygen-Signature` header carries
 * `keyid="…", algorithm="ed25519", signature="<base64>", headers="(request-target) host date digest"`, and the signed
 * text is those headers, one `name: value` per line, with `(request-target)` = lower-case method + path and the host of
 * the webhook endpoint. `Digest` is `sha-256=<base64 SHA-256 of the raw body>`.
 */
export interface KeygenSignatureInput {
  readonly method: string;
  /** Path and query as received, e.g. `/webhooks/keygen`. */
  readonly path: string;
  /** The endpoint's host as Keygen addressed it (the Host header, or the configured public host behind a proxy). */
  readonly host: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly rawBody: Buffer;
}

export interface KeygenVerifierOptions {
  /** The account's Ed25519 public key, hex (as Keygen's dashboard shows it) or PEM. */
  readonly publicKey: string;
  /** How far the Date header may be from now; stops replays of captured requests. */
  readonly maxClockSkewMs?: number;
  readonly now?: () => number;
}

// DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it.
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function publicKeyOf(text: string): KeyObject {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) {
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, Buffer.from(trimmed, 'hex')]), format: 'der', type: 'spki' });
  }
  const key = createPublicKey(trimmed);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('the Keygen public key must be an Ed25519 key');
  return key;
}

function header(headers: KeygenSignatureInput['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Parses `a="x", b="y"` into a map; values are quoted strings. */
export function parseSignatureParameters(value: string): Map<string, string> {
  const parameters = new Map<string, string>();
  for (const match of value.matchAll(/([A-Za-z]+)="([^"]*)"/g)) {
    const [, name, text] = match;
    if (name !== undefined && text !== undefined) parameters.set(name.toLowerCase(), text);
  }
  return parameters;
}

/** Builds a verifier once (parsing the key), then checks each request in constant time. */
export function keygenWebhookVerifier(options: KeygenVerifierOptions): (input: KeygenSignatureInput) => SignatureCheck {
  const key = publicKeyOf(options.publicKey);
  const maxSkew = options.maxClockSkewMs ?? 5 * 60_000;
  const now = options.now ?? Date.now;

  return (input) => {
    const signatureHeader = header(input.headers, 'keygen-signature');
    if (!signatureHeader) return { valid: false, reason: 'missing Keygen-Signature header' };
    const parameters = parseSignatureParameters(signatureHeader);
    if (parameters.get('algorithm') !== 'ed25519') return { valid: false, reason: 'Keygen-Signature: algorithm must be "ed25519"' };
    const signature = parameters.get('signature');
    if (!signature) return { valid: false, reason: 'Keygen-Signature: no signature' };
    const signed = (parameters.get('headers') ?? '(request-target) host date digest').split(' ');
    for (const required of ['(request-target)', 'host', 'date', 'digest']) {
      if (!signed.includes(required)) return { valid: false, reason: `Keygen-Signature: "${required}" must be signed` };
    }

    const digest = header(input.headers, 'digest');
    const expectedDigest = `sha-256=${createHash('sha256').update(input.rawBody).digest('base64')}`;
    if (digest !== expectedDigest) return { valid: false, reason: 'Digest header does not match the body' };
    const date = header(input.headers, 'date');
    const sentAt = date === undefined ? Number.NaN : Date.parse(date);
    if (Number.isNaN(sentAt)) return { valid: false, reason: 'missing or unreadable Date header' };
    if (Math.abs(now() - sentAt) > maxSkew) return { valid: false, reason: 'Date header is outside the allowed clock skew' };

    const values: Record<string, string | undefined> = {
      '(request-target)': `${input.method.toLowerCase()} ${input.path}`,
      host: input.host,
      date,
      digest,
    };
    const lines: string[] = [];
    for (const name of signed) {
      const value = values[name] ?? header(input.headers, name);
      if (value === undefined) return { valid: false, reason: `Keygen-Signature: signed header "${name}" is missing` };
      lines.push(`${name}: ${value}`);
    }
    // verify() for Ed25519 compares in constant time.
    const ok = verify(null, Buffer.from(lines.join('\n')), key, Buffer.from(signature, 'base64'));
    return ok ? { valid: true } : { valid: false, reason: 'Keygen-Signature does not verify' };
  };
}

/**
 * The headers Keygen sends with a delivery of `body` to `host` + `path`, signed with the account's private key: what a
 * sender playing Keygen (the chaos run, demos) needs, and the exact text the verifier above checks.
 */
export function signKeygenWebhook(input: {
  readonly body: string;
  readonly host: string;
  readonly privateKey: KeyObject;
  readonly path?: string;
  readonly keyId?: string;
  readonly date?: Date;
}): Record<string, string> {
  const path = input.path ?? '/webhooks/keygen';
  const date = (input.date ?? new Date()).toUTCString();
  const digest = `sha-256=${createHash('sha256').update(input.body).digest('base64')}`;
  const signingString = [`(request-target): post ${path}`, `host: ${input.host}`, `date: ${date}`, `digest: ${digest}`].join('\n');
  const signature = sign(null, Buffer.from(signingString), input.privateKey).toString('base64');
  return {
    'content-type': 'application/vnd.api+json',
    date,
    digest,
    'keygen-signature': `keyid="${input.keyId ?? 'oncekit'}", algorithm="ed25519", signature="${signature}", headers="(request-target) host date digest"`,
  };
}
