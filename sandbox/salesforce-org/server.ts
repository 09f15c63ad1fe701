import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jsonReply, type Reply, readBody, send } from '../http.js';
import { type ClientCredentialsApp, createOAuthEndpoint, FAKE_ORG_ID, type JwtBearerApp, type TokenGrant } from './oauth.js';
import { type FakePubSub, type FakePubSubOptions, startFakePubSub } from './pubsub.js';
import { createRestApi, type FakeRecord, type FakeRecordType, notFoundReply, type RecordedQuery } from './rest.js';
import { createStreamingApi, type RecordedBayeuxMessage, type StreamingApi } from './streaming.js';

/**
 * A loopback stand-in for a Salesforce org, for the REAL jsforce client: the test suite's org, and the one `oncekit demo`
 * publishes Platform Events from (as the sandbox stands in for the target). jsforce ignores NO_PROXY, so callers on a
 * machine with http(s)_proxy set must unset it for loopback. What it serves:
 * - `POST /services/oauth2/token`: the JWT bearer grant (the assertion's RS256 signature is checked with the test's
 *   public key, and iss/sub/aud/exp) and client credentials; tokens stay valid until the test invalidates them;
 * - `GET /services/data/vXX.X/sobjects/{Lead|Contact|Account}/{id}` and `GET /services/data/vXX.X/query` over an
 *   in-memory record set, for the SOQL the connector writes (`SELECT … FROM T WHERE Id IN (…)` or `Id = '…'`);
 * - a faye Bayeux endpoint at `/cometd/XX.X` that checks `Authorization: OAuth <token>` on every message and answers
 *   a bad token the way Salesforce does (handshake `403::Handshake denied`, connect `401::Authentication invalid`,
 *   `advice.reconnect: none`), and emulates durable replay from a retained event log: `-1` new events only, `-2`
 *   every retained event, an id = the events after it, an id no longer retained = `400::The replayId {…} … invalid`.
 * - with `pubsub`, the Pub/Sub API on its own loopback port (pubsub.ts), taking the same tokens; `invalidateTokens`
 *   also ends its open streams UNAUTHENTICATED.
 * Errors never use 5xx on GETs: jsforce retries those for ~15 s.
 */

export interface FakeOrgOptions {
  readonly apiVersion?: string;
  readonly jwt?: JwtBearerApp;
  readonly clientCredentials?: ClientCredentialsApp;
  readonly records?: Readonly<Partial<Record<FakeRecordType, readonly FakeRecord[]>>>;
  /** How long a Bayeux /meta/connect is held when nothing happens. Salesforce holds it up to 110 s. */
  readonly bayeuxTimeoutSeconds?: number;
  /** Also start the Pub/Sub API (a gRPC server on loopback); its topics, keepalive interval and managed subscriptions. */
  readonly pubsub?: boolean | Pick<FakePubSubOptions, 'topics' | 'keepaliveMs' | 'managedSubscriptions'>;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly search: string;
}

export interface FakeOrg {
  /** Login URL and instance URL alike. */
  readonly url: string;
  readonly apiVersion: string;
  readonly requests: readonly RecordedRequest[];
  /** Every SOQL statement received, with its object type. */
  readonly queries: readonly RecordedQuery[];
  readonly tokenGrants: readonly TokenGrant[];
  /** The org id (`00D…`), in each token's identity URL. */
  readonly orgId: string;
  /** The Pub/Sub API, when started with `pubsub`. */
  readonly pubsub: FakePubSub | null;
  readonly bayeux: readonly RecordedBayeuxMessage[];
  putRecord(type: FakeRecordType, record: FakeRecord): void;
  /** Every token issued so far stops working, as when a session is revoked or expires; held long-polls are answered. */
  invalidateTokens(): void;
  /** The next `count` token requests fail with 400 invalid_grant. */
  failTokenRequests(count: number): void;
  /** The next `count` SOQL queries are never answered (until close), as a hung Salesforce call. */
  hangQueries(count: number): void;
  publish: StreamingApi['publish'];
  /** Drops retained events up to and including `replayId`, as the 72-hour retention does. */
  expireEventsThrough(channel: string, replayId: number): void;
  /** CometD HTTP requests the server has not answered yet (held long-polls). */
  openCometdRequests(): number;
  close(): Promise<void>;
}

/** Salesforce's own JSON content type. */
const SALESFORCE_JSON = 'application/json;charset=UTF-8';

export async function startFakeOrg(options: FakeOrgOptions = {}): Promise<FakeOrg> {
  const apiVersion = options.apiVersion ?? '59.0';
  const requests: RecordedRequest[] = [];
  const oauth = createOAuthEndpoint(options);
  const rest = createRestApi(apiVersion, options.records ?? {});
  const streaming = createStreamingApi({
    apiVersion,
    timeoutSeconds: options.bayeuxTimeoutSeconds ?? 20,
    authorized: (request) => oauth.authorized(request, 'OAuth'),
  });
  let url = '';
  let queriesToHang = 0;

  const server = createServer((request, response) => {
    const parsed = new URL(request.url ?? '/', 'http://fake.invalid');
    requests.push({ method: request.method ?? 'GET', path: parsed.pathname, search: parsed.search });
    if (streaming.handle(request, response)) return;
    handle(request, parsed).then(
      (reply) => send(response, reply, SALESFORCE_JSON),
      (error: unknown) => {
        // A POST-only 500: jsforce does not retry POSTs on status codes.
        const status = request.method === 'GET' ? 400 : 500;
        send(response, jsonReply(status, [{ errorCode: 'FAKE_ERROR', message: String(error) }]), SALESFORCE_JSON);
      },
    );
  });
  // Salesforce offers no WebSocket; faye falls back to long-polling.
  server.on('upgrade', (_request, socket) => socket.destroy());

  async function handle(request: IncomingMessage, parsed: URL): Promise<Reply> {
    if (request.method === 'POST' && parsed.pathname === '/services/oauth2/token') {
      return oauth.token(new URLSearchParams(await readBody(request)), url);
    }
    const prefix = `/services/data/v${apiVersion}/`;
    if (!parsed.pathname.startsWith(prefix)) return notFoundReply();
    if (!oauth.authorized(request, 'Bearer')) {
      return jsonReply(401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
    }
    const path = parsed.pathname.slice(prefix.length);
    if (queriesToHang > 0 && path.startsWith('query')) {
      queriesToHang -= 1;
      return new Promise<Reply>(() => {});
    }
    return rest.handle(request.method, path, parsed.searchParams);
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pubsubSettings = options.pubsub === true ? {} : options.pubsub || null;
  const pubsub = pubsubSettings
    ? await startFakePubSub({ ...pubsubSettings, tokenIsValid: oauth.tokenIsValid, instanceUrl: url, tenantId: FAKE_ORG_ID })
    : null;

  return {
    url,
    apiVersion,
    requests,
    queries: rest.queries,
    tokenGrants: oauth.tokenGrants,
    orgId: FAKE_ORG_ID,
    pubsub,
    bayeux: streaming.bayeux,
    putRecord: rest.putRecord,
    invalidateTokens() {
      oauth.invalidateTokens();
      streaming.flushConnections();
      pubsub?.expireSessions();
    },
    failTokenRequests: oauth.failTokenRequests,
    hangQueries(count) {
      queriesToHang = count;
    },
    publish: streaming.publish,
    expireEventsThrough: streaming.expireEventsThrough,
    openCometdRequests: streaming.openRequests,
    async close() {
      await pubsub?.close();
      streaming.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
