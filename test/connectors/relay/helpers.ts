import '../../fakes/no-proxy.js';
import { createHash, createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { type RelayWithSandbox as RunningRelay, startRelayOrSandbox } from '../../../cli/built-in-sandbox.js';
import { readRelayConfig } from '../../../connectors/relay/config.js';
import { checksumSuffix } from '../../../connectors/salesforce/salesforce-id.js';

/** Distinctive secrets, so a leak into a log line or a response cannot hide among other text. */
export const RELAY_SECRET = 'relay-secret-Kp4Qz9Wm2Xv7Lr5N';
export const SEGMENT_SECRET = 'segment-secret-Hy3Tb8Jc6Vn1';

/** Fast delivery settings for tests: the worker polls often and backs off briefly. */
export const FAST_OUTBOX = { pollMs: 20, backoffBaseMs: 10, backoffMaxMs: 50 } as const;

/** An 18-character id with a valid checksum from a 15-character one. */
export function id18(id15: string): string {
  return `${id15}${checksumSuffix(id15)}`;
}

/** A Writable that keeps every JSON log line the relay writes. */
export class LogCapture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.text += chunk.toString();
    callback();
  }
  lines(): Record<string, unknown>[] {
    return this.text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix = 'oncekit-relay-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface TestRelay {
  readonly relay: RunningRelay;
  readonly logs: LogCapture;
}

/** Starts a relay on a free loopback port with fast delivery; env is the only configuration source. */
export async function startTestRelay(env: Record<string, string | undefined>, store: string): Promise<TestRelay> {
  const fullEnv = { ONCEKIT_RELAY_SECRET: RELAY_SECRET, ONCEKIT_LOG_LEVEL: 'info', ...env };
  const config = readRelayConfig({ port: 0, store }, fullEnv);
  const logs = new LogCapture();
  const relay = await startRelayOrSandbox(config, { outbox: FAST_OUTBOX, logStream: logs });
  return { relay, logs };
}

/** A sample's value from the relay's /metrics, e.g. `oncekit_unmappable_events_total{source="segment"}`; 0 when absent. */
export async function metricValue(url: string, sample: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${RELAY_SECRET}` } })).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${sample} `));
  return line === undefined ? 0 : Number(line.slice(sample.length + 1));
}

/** Polls until `check` holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until the outbox holds nothing pending or leased (everything delivered, duplicate or dead). */
export async function waitForSettled(relay: RunningRelay, expectedTotal?: number): Promise<void> {
  await waitFor('the outbox to settle', async () => {
    const counts = await relay.outbox.counts(relay.target.tenant);
    const settled = counts.delivered + counts.duplicate + counts.dead;
    return counts.pending === 0 && counts.leased === 0 && (expectedTotal === undefined || settled === expectedTotal);
  });
}

export interface HttpAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly json: unknown;
}

export async function request(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<HttpAnswer> {
  const response = await fetch(url, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: init.headers ?? {},
    ...(init.body === undefined ? {} : { body: init.body }),
  });
  const text = await response.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** POSTs JSON with the relay's Bearer secret (unless other headers replace it). */
export function postJson(url: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${RELAY_SECRET}` }) {
  return request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

export function hmacSignature(body: string, secret = RELAY_SECRET): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export function segmentSignature(body: string, secret = SEGMENT_SECRET): string {
  return createHmac('sha1', secret).update(body).digest('hex');
}

/** A Keygen account key pair; the public key is hex as Keygen's dashboard shows it. */
export function keygenKeys(): { privateKey: KeyObject; publicKeyHex: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKeyHex: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex') };
}

/** Headers Keygen sends with a delivery of `body` to `host` + `/webhooks/keygen`. */
export function keygenHeaders(body: string, host: string, privateKey: KeyObject, path = '/webhooks/keygen'): Record<string, string> {
  const date = new Date().toUTCString();
  const digest = `sha-256=${createHash('sha256').update(body).digest('base64')}`;
  const signingString = [`(request-target): post ${path}`, `host: ${host}`, `date: ${date}`, `digest: ${digest}`].join('\n');
  const signature = sign(null, Buffer.from(signingString), privateKey).toString('base64');
  return {
    'content-type': 'application/vnd.api+json',
    date,
    digest,
    'keygen-signature': `keyid="acct-1", algorithm="ed25519", signature="${signature}", headers="(request-target) host date digest"`,
  };
}

/** A Keygen webhook-event resource for a license event. */
export function keygenWebhookBody(options: { id: string; token: string; email: string; event?: string }): string {
  const payload = {
    data: { type: 'licenses', id: 'lic-1', attributes: { name: 'Pro license', metadata: { email: options.email } } },
  };
  return JSON.stringify({
    data: {
      id: options.id,
      type: 'webhook-events',
      meta: { idempotencyToken: options.token },
      attributes: { event: options.event ?? 'license.created', payload: JSON.stringify(payload), created: '2026-01-02T03:04:05.000Z' },
    },
  });
}
