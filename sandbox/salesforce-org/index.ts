import { createPublicKey, type KeyObject, randomBytes, randomUUID, verify } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { jsonReply, readBody, send } from '../http.js';

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
 * Errors never use 5xx on GETs: jsforce retries those for ~15 s.
 */

export type FakeRecordType = 'Lead' | 'Contact' | 'Account';
export type FakeRecord = Readonly<Record<string, unknown>> & { readonly Id: string };

export interface FakeOrgOptions {
  readonly apiVersion?: string;
  readonly jwt?: {
    readonly clientId: string;
    readonly username: string;
    readonly publicKey: KeyObject | string;
    readonly audience?: string;
  };
  readonly clientCredentials?: { readonly clientId: string; readonly clientSecret: string };
  readonly records?: Readonly<Partial<Record<FakeRecordType, readonly FakeRecord[]>>>;
  /** How long a Bayeux /meta/connect is held when nothing happens. Salesforce holds it up to 110 s. */
  readonly bayeuxTimeoutSeconds?: number;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly search: string;
}

export interface RecordedBayeuxMessage {
  readonly channel: string;
  readonly clientId: string | undefined;
  readonly authorized: boolean;
  readonly replay: unknown;
}

export interface PublishedEvent {
  readonly replayId: number;
  readonly eventUuid: string | null;
}

export interface FakeOrg {
  /** Login URL and instance URL alike. */
  readonly url: string;
  readonly apiVersion: string;
  readonly requests: readonly RecordedRequest[];
  /** Every SOQL statement received, with its object type. */
  readonly queries: readonly { readonly soql: string; readonly type: string }[];
  readonly tokenGrants: readonly { readonly grantType: string; readonly ok: boolean }[];
  readonly bayeux: readonly RecordedBayeuxMessage[];
  putRecord(type: FakeRecordType, record: FakeRecord): void;
  /** Every token issued so far stops working, as when a session is revoked or expires; held long-polls are answered. */
  invalidateTokens(): void;
  /** The next `count` token requests fail with 400 invalid_grant. */
  failTokenRequests(count: number): void;
  publish(
    channel: string,
    payload: Readonly<Record<string, unknown>>,
    options?: { readonly eventUuid?: string | null },
  ): Promise<PublishedEvent>;
  /** Drops retained events up to and including `replayId`, as the 72-hour retention does. */
  expireEventsThrough(channel: string, replayId: number): void;
  /** CometD HTTP requests the server has not answered yet (held long-polls). */
  openCometdRequests(): number;
  close(): Promise<void>;
}

interface FayePublication {
  then(onDone: () => void, onFailed: (error: unknown) => void): unknown;
}
interface FayeAdapter {
  check(request: IncomingMessage): boolean;
  handle(request: IncomingMessage, response: ServerResponse): void;
  addExtension(extension: object): void;
  getClient(): { publish(channel: string, data: unknown): FayePublication; disconnect(): void };
  close(): void;
  // The engine is reached for one fake-only shortcut: answering held long-polls when tokens are invalidated.
  _server: { _engine: { flushConnection(clientId: string): void } };
}
type FayeModule = { NodeAdapter: new (options: { mount: string; timeout: number }) => FayeAdapter };
const faye = createRequire(import.meta.url)('faye') as FayeModule;

interface BayeuxMessage {
  channel: string;
  clientId?: string;
  subscription?: string;
  successful?: boolean;
  error?: string;
  advice?: Record<string, unknown>;
  ext?: Record<string, unknown>;
  supportedConnectionTypes?: string[];
  data?: { event?: { replayId?: number } };
}
type Next = (message: BayeuxMessage | null) => void;

interface RetainedEvent {
  readonly replayId: number;
  readonly data: unknown;
}

const DEFAULT_FIELDS: Record<FakeRecordType, readonly string[]> = {
  Lead: ['Id', 'Email', 'FirstName', 'LastName', 'Company'],
  Contact: ['Id', 'Email', 'FirstName', 'LastName', 'AccountId'],
  Account: ['Id', 'Name'],
};

export async function startFakeOrg(options: FakeOrgOptions = {}): Promise<FakeOrg> {
  const apiVersion = options.apiVersion ?? '59.0';
  const records: Record<FakeRecordType, Map<string, FakeRecord>> = { Lead: new Map(), Contact: new Map(), Account: new Map() };
  for (const [type, list] of Object.entries(options.records ?? {}) as [FakeRecordType, readonly FakeRecord[]][]) {
    for (const record of list) records[type].set(record.Id, record);
  }
  const requests: RecordedRequest[] = [];
  const queries: { soql: string; type: string }[] = [];
  const tokenGrants: { grantType: string; ok: boolean }[] = [];
  const bayeux: RecordedBayeuxMessage[] = [];
  const validTokens = new Set<string>();
  const retained = new Map<string, RetainedEvent[]>();
  let lastReplayId = 1000;
  let tokenFailures = 0;
  let openCometd = 0;
  let url = '';

  // Per Bayeux client: the position in each channel it has been given events up to.
  const positions = new Map<string, Map<string, number>>();
  const pendingSubscribes = new Map<string, number>();
  const requestClients = new WeakMap<IncomingMessage, string>();
  const knownClients = new Set<string>();

  const adapter = new faye.NodeAdapter({ mount: `/cometd/${apiVersion}`, timeout: options.bayeuxTimeoutSeconds ?? 20 });
  const publisher = adapter.getClient();
  const publishData = (channel: string, data: unknown): Promise<void> =>
    new Promise((resolve, reject) => {
      publisher.publish(channel, data).then(resolve, reject);
    });

  const authorized = (request: IncomingMessage | null | undefined, scheme: 'Bearer' | 'OAuth'): boolean => {
    const header = request?.headers.authorization ?? '';
    return header.startsWith(`${scheme} `) && validTokens.has(header.slice(scheme.length + 1));
  };

  adapter.addExtension({
    incoming(message: BayeuxMessage, request: IncomingMessage | null, next: Next) {
      // The in-process publisher has no request; it is the org itself.
      const ok = !request || authorized(request, 'OAuth');
      if (request && message.channel.startsWith('/meta/')) {
        const replay = (message.ext?.replay as Record<string, unknown> | undefined)?.[message.subscription ?? ''];
        bayeux.push({ channel: message.channel, clientId: message.clientId, authorized: ok, replay });
      }
      if (request && message.clientId) requestClients.set(request, message.clientId);
      if (!ok) {
        message.error = message.channel === '/meta/handshake' ? '403::Handshake denied' : '401::Authentication invalid';
        return next(message);
      }
      if (request && message.channel === '/meta/subscribe' && message.clientId && message.subscription) {
        const start = subscribeStart(
          message.subscription,
          (message.ext?.replay as Record<string, unknown> | undefined)?.[message.subscription],
        );
        if (typeof start === 'string') message.error = start;
        else pendingSubscribes.set(`${message.clientId} ${message.subscription}`, start);
      }
      next(message);
    },
    outgoing(reply: BayeuxMessage, request: IncomingMessage | null, next: Next) {
      const authFailure = reply.error === '403::Handshake denied' || reply.error === '401::Authentication invalid';
      if (reply.channel === '/meta/handshake') {
        if (authFailure) {
          reply.advice = { reconnect: 'none' };
          reply.ext = { sfdc: { failureReason: '401::Authentication invalid' }, replay: true };
        } else if (reply.successful && request) {
          // Not for the in-process publisher: it must keep its in-process transport.
          if (reply.clientId) knownClients.add(reply.clientId);
          reply.ext = { replay: true, 'payload.format': true };
          reply.supportedConnectionTypes = ['long-polling'];
        }
        return next(reply);
      }
      if (reply.channel === '/meta/connect' && authFailure) {
        reply.advice = { reconnect: 'none' };
        return next(reply);
      }
      if (reply.channel === '/meta/subscribe' && reply.successful && reply.clientId && reply.subscription) {
        const channel = reply.subscription;
        const key = `${reply.clientId} ${channel}`;
        const start = pendingSubscribes.get(key) ?? latest(channel);
        pendingSubscribes.delete(key);
        const clientPositions = positions.get(reply.clientId) ?? new Map<string, number>();
        clientPositions.set(channel, start);
        positions.set(reply.clientId, clientPositions);
        // Replay: publish the retained events again; the delivery filter below passes each client only what is
        // after its own position, so the others do not get them twice.
        const replays = (retained.get(channel) ?? []).filter((event) => event.replayId > start);
        next(reply);
        for (const event of replays) void publishData(channel, event.data);
        return;
      }
      const replayId = reply.data?.event?.replayId;
      const clientId = request ? requestClients.get(request) : undefined;
      if (typeof replayId === 'number' && clientId !== undefined) {
        const clientPositions = positions.get(clientId);
        const position = clientPositions?.get(reply.channel);
        if (clientPositions === undefined || position === undefined) return next(reply);
        if (replayId <= position) return next(null);
        clientPositions.set(reply.channel, replayId);
      }
      next(reply);
    },
  });

  function latest(channel: string): number {
    return retained.get(channel)?.at(-1)?.replayId ?? lastReplayId;
  }

  /** Where a subscription starts, or the error Salesforce gives for a replayId it no longer retains. */
  function subscribeStart(channel: string, replay: unknown): number | string {
    const events = retained.get(channel) ?? [];
    if (replay === undefined || replay === -1) return latest(channel);
    if (replay === -2) return events.length > 0 ? (events[0] as RetainedEvent).replayId - 1 : latest(channel);
    if (typeof replay === 'number' && events.some((event) => event.replayId === replay)) return replay;
    return `400::The replayId {${String(replay)}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.`;
  }

  const server = createServer((request, response) => {
    const parsed = new URL(request.url ?? '/', 'http://fake.invalid');
    requests.push({ method: request.method ?? 'GET', path: parsed.pathname, search: parsed.search });
    if (adapter.check(request)) {
      openCometd++;
      response.on('close', () => openCometd--);
      adapter.handle(request, response);
      return;
    }
    handle(request, response, parsed).catch((error: unknown) => {
      // A POST-only 500: jsforce does not retry POSTs on status codes.
      sendJson(response, request.method === 'GET' ? 400 : 500, [{ errorCode: 'FAKE_ERROR', message: String(error) }]);
    });
  });
  // Salesforce offers no WebSocket; faye falls back to long-polling.
  server.on('upgrade', (_request, socket) => socket.destroy());

  async function handle(request: IncomingMessage, response: ServerResponse, parsed: URL): Promise<void> {
    if (request.method === 'POST' && parsed.pathname === '/services/oauth2/token') {
      const form = new URLSearchParams(await readBody(request));
      return token(form, response);
    }
    const prefix = `/services/data/v${apiVersion}/`;
    if (!parsed.pathname.startsWith(prefix)) return notFound(response);
    if (!authorized(request, 'Bearer')) {
      return sendJson(response, 401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]);
    }
    const rest = parsed.pathname.slice(prefix.length);
    if (request.method === 'GET' && rest === 'query') return query(parsed.searchParams.get('q') ?? '', response);
    const sobject = /^sobjects\/(Lead|Contact|Account)\/([A-Za-z0-9]{15,18})$/.exec(rest);
    if (request.method === 'GET' && sobject) {
      const type = sobject[1] as FakeRecordType;
      const record = records[type].get(sobject[2] as string);
      if (!record) return notFound(response);
      const fields = parsed.searchParams.get('fields')?.split(',') ?? Object.keys(record);
      return sendJson(response, 200, shape(type, record, fields));
    }
    return notFound(response);
  }

  // No return type: the early returns hand back send()'s nothing.
  function token(form: URLSearchParams, response: ServerResponse) {
    const grantType = form.get('grant_type') ?? '';
    const refuse = (error: string, description: string) => {
      tokenGrants.push({ grantType, ok: false });
      sendJson(response, 400, { error, error_description: description });
    };
    if (tokenFailures > 0) {
      tokenFailures--;
      return refuse('invalid_grant', 'authentication failure');
    }
    if (grantType === 'urn:ietf:params:oauth:grant-type:jwt-bearer' && options.jwt) {
      const problem = checkAssertion(form.get('assertion') ?? '', options.jwt);
      if (problem) return refuse('invalid_grant', problem);
    } else if (grantType === 'client_credentials' && options.clientCredentials) {
      const expected = options.clientCredentials;
      if (form.get('client_id') !== expected.clientId || form.get('client_secret') !== expected.clientSecret) {
        return refuse('invalid_client', 'invalid client credentials');
      }
    } else {
      return refuse('unsupported_grant_type', 'grant type not supported');
    }
    const accessToken = `00Dfake!${randomBytes(12).toString('hex')}`;
    validTokens.add(accessToken);
    tokenGrants.push({ grantType, ok: true });
    sendJson(response, 200, {
      access_token: accessToken,
      scope: 'api',
      instance_url: url,
      id: `${url}/id/00D000000000001AAA/005000000000001AAA`,
      token_type: 'Bearer',
      issued_at: String(Date.now()),
    });
  }

  function query(soql: string, response: ServerResponse) {
    const match = /^SELECT\s+(.+?)\s+FROM\s+(\w+)\s+WHERE\s+Id\s+(?:IN\s*\((.+)\)|=\s*('(?:[^'\\]|\\.)*'))\s*$/i.exec(soql.trim());
    if (!match)
      return sendJson(response, 400, [
        { errorCode: 'MALFORMED_QUERY', message: 'the fake org understands SELECT … FROM T WHERE Id IN (…)' },
      ]);
    const type = match[2] as string;
    queries.push({ soql, type });
    if (!(type in records))
      return sendJson(response, 400, [{ errorCode: 'INVALID_TYPE', message: `sObject type '${type}' is not supported.` }]);
    const recordType = type as FakeRecordType;
    const fields = (match[1] as string).split(',').map((field) => field.trim());
    for (const field of fields) {
      if (!knownField(recordType, field)) {
        return sendJson(response, 400, [{ errorCode: 'INVALID_FIELD', message: `No such column '${field}' on entity '${type}'.` }]);
      }
    }
    const ids = [...(match[3] ?? match[4] ?? '').matchAll(/'((?:[^'\\]|\\.)*)'/g)].map((m) => (m[1] as string).replace(/\\(.)/g, '$1'));
    const rows = ids.flatMap((id) => {
      const record = records[recordType].get(id);
      return record ? [shape(recordType, record, fields)] : [];
    });
    sendJson(response, 200, { totalSize: rows.length, done: true, records: rows });
  }

  function knownField(type: FakeRecordType, field: string): boolean {
    const [head, tail] = field.split('.', 2) as [string, string | undefined];
    if (tail !== undefined) {
      const related = head as FakeRecordType;
      return related in records && knownField(related, tail);
    }
    if (DEFAULT_FIELDS[type].some((name) => name.toLowerCase() === head.toLowerCase())) return true;
    return [...records[type].values()].some((record) => Object.keys(record).some((name) => name.toLowerCase() === head.toLowerCase()));
  }

  function shape(type: FakeRecordType, record: FakeRecord, fields: readonly string[]): Record<string, unknown> {
    const row: Record<string, unknown> = { attributes: { type, url: `/services/data/v${apiVersion}/sobjects/${type}/${record.Id}` } };
    for (const field of fields) {
      const [head, tail] = field.split('.', 2) as [string, string | undefined];
      if (tail === undefined) {
        const name = Object.keys(record).find((key) => key.toLowerCase() === head.toLowerCase()) ?? head;
        row[name] = record[name] ?? null;
        continue;
      }
      const relatedType = head as FakeRecordType;
      const related = records[relatedType]?.get(String(record[`${head}Id`] ?? ''));
      const nested = (row[head] as Record<string, unknown> | undefined) ?? (related ? { attributes: { type: relatedType } } : null);
      if (nested && related) nested[tail] = related[tail] ?? null;
      row[head] = nested;
    }
    return row;
  }

  function checkAssertion(assertion: string, jwt: NonNullable<FakeOrgOptions['jwt']>): string | null {
    const parts = assertion.split('.');
    if (parts.length !== 3) return 'invalid assertion: not a JWT';
    const [header, claims, signature] = parts as [string, string, string];
    const decode = (part: string): Record<string, unknown> | null => {
      try {
        return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
      } catch {
        return null;
      }
    };
    if (decode(header)?.alg !== 'RS256') return 'invalid assertion: alg must be RS256';
    const key = typeof jwt.publicKey === 'string' ? createPublicKey(jwt.publicKey) : jwt.publicKey;
    if (!verify('sha256', Buffer.from(`${header}.${claims}`, 'utf8'), key, Buffer.from(signature, 'base64url'))) {
      return 'invalid assertion: signature does not verify';
    }
    const body = decode(claims);
    const nowSeconds = Math.floor(Date.now() / 1000);
    if (body?.iss !== jwt.clientId) return 'invalid assertion: client identifier invalid';
    if (body.sub !== jwt.username) return 'invalid assertion: user not approved';
    if (body.aud !== (jwt.audience ?? 'https://login.salesforce.com')) return 'invalid assertion: audience invalid';
    if (typeof body.exp !== 'number' || body.exp <= nowSeconds || body.exp > nowSeconds + 300)
      return 'invalid assertion: expired or too far ahead';
    return null;
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    apiVersion,
    requests,
    queries,
    tokenGrants,
    bayeux,
    putRecord(type, record) {
      records[type].set(record.Id, record);
    },
    invalidateTokens() {
      validTokens.clear();
      for (const clientId of knownClients) adapter._server._engine.flushConnection(clientId);
    },
    failTokenRequests(count) {
      tokenFailures = count;
    },
    async publish(channel, payload, publishOptions = {}) {
      const replayId = ++lastReplayId;
      const eventUuid = publishOptions.eventUuid === undefined ? randomUUID() : publishOptions.eventUuid;
      const data = {
        schema: 'fake-schema-1',
        payload: { CreatedDate: new Date().toISOString(), CreatedById: '005000000000001AAA', ...payload },
        // Salesforce adds EventUuid to the event header from API 52.0.
        event: { replayId, ...(eventUuid !== null && Number(apiVersion) >= 52 ? { EventUuid: eventUuid } : {}) },
      };
      const list = retained.get(channel) ?? [];
      list.push({ replayId, data });
      retained.set(channel, list);
      await publishData(channel, data);
      return { replayId, eventUuid };
    },
    expireEventsThrough(channel, replayId) {
      retained.set(
        channel,
        (retained.get(channel) ?? []).filter((event) => event.replayId > replayId),
      );
    },
    openCometdRequests: () => openCometd,
    async close() {
      publisher.disconnect();
      adapter.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Salesforce's own JSON content type. */
const SALESFORCE_JSON = 'application/json;charset=UTF-8';

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  send(response, jsonReply(status, body), SALESFORCE_JSON);
}

function notFound(response: ServerResponse): void {
  sendJson(response, 404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }]);
}
