import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type EventTreatment, loadSegmentFunction, type SegmentFunction } from './segment-runtime.js';

/**
 * A loopback stand-in for Segment's ingestion and delivery: `@segment/analytics-node` posts to `POST /v1/batch`, each
 * event is stamped the way Segment's pipeline stamps it, and delivered to the destination function through the
 * runtime harness. Events whose invocation ends in RetryError or a timeout are delivered again with randomised
 * exponential backoff (Segment keeps this up for 4 hours; here the delays are milliseconds and the attempts bounded).
 *
 * Segment's own messageId dedup at ingestion is best-effort and not modelled: every accepted event is delivered, which
 * is exactly the case the function's idempotency key is for.
 */

export interface IngestRetryPolicy {
  /** Stands in for Segment's 4-hour window. */
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export interface IngestOptions {
  readonly writeKey: string;
  /** The function's settings, as entered in Segment's destination settings. */
  readonly settings: Readonly<Record<string, unknown>>;
  /** Default: the built dist/segment/function.js. */
  readonly fn?: SegmentFunction;
  readonly retry?: Partial<IngestRetryPolicy>;
  /** When set, events are delivered through onBatch in batches of up to maxEvents, flushed after maxWaitMs (§1.4). */
  readonly batching?: { readonly maxEvents: number; readonly maxWaitMs: number };
}

export type IngestedEvent = Readonly<Record<string, unknown>>;

export interface DeliveryAttempt {
  readonly attempt: number;
  readonly handler: string;
  readonly treatment: EventTreatment;
  /** Size of the onBatch call this attempt was part of; 1 for single-event handlers. */
  readonly batchSize: number;
}

/** One event's history in Segment's Event Delivery view. */
export interface DeliveryRecord {
  readonly event: IngestedEvent;
  readonly attempts: DeliveryAttempt[];
  /** How it ended: delivered, discarded, or still failing when the retry window closed; null while in flight. */
  outcome: EventTreatment | null;
}

export interface IngestRequest {
  readonly authorization: string | undefined;
  readonly body: unknown;
}

export interface SegmentIngest {
  readonly url: string;
  readonly fn: SegmentFunction;
  readonly requests: readonly IngestRequest[];
  readonly deliveries: readonly DeliveryRecord[];
  /** Resolves when every accepted event is delivered, discarded or out of retries; rejects on a harness error. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const defaultRetry: IngestRetryPolicy = { maxAttempts: 6, baseDelayMs: 5, maxDelayMs: 80 };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Segment's stamps: receivedAt, originalTimestamp, and a timestamp corrected for the client's clock skew. */
function stamp(event: Record<string, unknown>, sentAt: unknown, receivedAtMs: number): IngestedEvent {
  const original = typeof event.timestamp === 'string' ? Date.parse(event.timestamp) : Number.NaN;
  const sent = typeof sentAt === 'string' ? Date.parse(sentAt) : Number.NaN;
  const corrected = Number.isNaN(original) ? receivedAtMs : Number.isNaN(sent) ? original : receivedAtMs - (sent - original);
  return {
    ...event,
    messageId: event.messageId ?? `api-${randomUUID()}`,
    ...(typeof event.timestamp === 'string' ? { originalTimestamp: event.timestamp } : {}),
    ...(typeof sentAt === 'string' ? { sentAt } : {}),
    receivedAt: new Date(receivedAtMs).toISOString(),
    timestamp: new Date(corrected).toISOString(),
  };
}

/** One invocation at a time, so queued target faults meet requests in a predictable order. */
function serial(): <T>(work: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return (work) => {
    const run = tail.then(work, work);
    tail = run.catch(() => undefined);
    return run;
  };
}

export async function startSegmentIngest(options: IngestOptions): Promise<SegmentIngest> {
  const fn = options.fn ?? loadSegmentFunction();
  const retry: IngestRetryPolicy = { ...defaultRetry, ...options.retry };
  const requests: IngestRequest[] = [];
  const deliveries: DeliveryRecord[] = [];
  const harnessErrors: Error[] = [];
  const inOrder = serial();
  let inFlight = 0;
  let idleWaiters: (() => void)[] = [];

  const begin = (): void => {
    inFlight += 1;
  };
  const end = (): void => {
    inFlight -= 1;
    if (inFlight === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  };
  const backoff = (attempt: number): number =>
    Math.round(Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2));

  const settle = (record: DeliveryRecord, attempt: DeliveryAttempt): boolean => {
    record.attempts.push(attempt);
    const retryAgain = attempt.treatment.result === 'retry' && attempt.attempt < retry.maxAttempts;
    if (!retryAgain) record.outcome = attempt.treatment;
    return retryAgain;
  };

  async function deliverOne(record: DeliveryRecord): Promise<void> {
    for (let attempt = 1; ; attempt += 1) {
      const invocation = await inOrder(() => fn.invoke(record.event, options.settings));
      if (!settle(record, { attempt, handler: invocation.handler, treatment: invocation.treatment, batchSize: 1 })) return;
      await sleep(backoff(attempt));
    }
  }

  // Batching: events wait in `buffer` until it is full or the oldest has waited maxWaitMs.
  let buffer: { record: DeliveryRecord; attempt: number }[] = [];
  let flushTimer: NodeJS.Timeout | undefined;

  function enqueueForBatch(record: DeliveryRecord, attempt: number): void {
    const batching = options.batching;
    if (!batching) return;
    begin();
    buffer.push({ record, attempt });
    if (buffer.length >= batching.maxEvents) flush();
    else flushTimer ??= setTimeout(flush, batching.maxWaitMs);
  }

  function flush(): void {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    const size = options.batching?.maxEvents ?? 1;
    const batch = buffer.slice(0, size);
    buffer = buffer.slice(size);
    if (buffer.length > 0) flushTimer = setTimeout(flush, 0);
    if (batch.length === 0) return;
    void deliverBatch(batch);
  }

  async function deliverBatch(batch: { record: DeliveryRecord; attempt: number }[]): Promise<void> {
    try {
      const result = await inOrder(() =>
        fn.invokeBatch(
          batch.map((item) => item.record.event),
          options.settings,
        ),
      );
      result.events.forEach((treatment, position) => {
        const { record, attempt } = batch[position] as { record: DeliveryRecord; attempt: number };
        if (settle(record, { attempt, handler: 'onBatch', treatment, batchSize: batch.length })) {
          // Only the failed events come back, in a later batch (§1.4).
          begin();
          void sleep(backoff(attempt)).then(() => {
            enqueueForBatch(record, attempt + 1);
            end();
          });
        }
      });
    } catch (error) {
      harnessErrors.push(error instanceof Error ? error : new Error(String(error)));
      for (const { record } of batch)
        record.outcome ??= { result: 'discard', category: 'Bad Request', message: 'harness error', errorName: 'Error' };
    } finally {
      for (const _ of batch) end();
    }
  }

  function accept(events: readonly IngestedEvent[]): void {
    for (const event of events) {
      const record: DeliveryRecord = { event, attempts: [], outcome: null };
      deliveries.push(record);
      if (options.batching) {
        enqueueForBatch(record, 1);
        continue;
      }
      begin();
      deliverOne(record)
        .catch((error: unknown) => harnessErrors.push(error instanceof Error ? error : new Error(String(error))))
        .finally(end);
    }
  }

  const expectedAuthorization = `Basic ${Buffer.from(`${options.writeKey}:`).toString('base64')}`;

  const server = createServer(async (req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/batch') {
      req.resume();
      reply(res, 404, { success: false, message: 'not found' });
      return;
    }
    const text = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      reply(res, 400, { success: false, message: 'invalid JSON' });
      return;
    }
    requests.push({ authorization: req.headers.authorization, body });
    const { batch, sentAt, writeKey } = (body ?? {}) as { batch?: unknown; sentAt?: unknown; writeKey?: unknown };
    if (req.headers.authorization !== expectedAuthorization && writeKey !== options.writeKey) {
      reply(res, 401, { success: false, message: 'invalid write key' });
      return;
    }
    if (!Array.isArray(batch)) {
      reply(res, 400, { success: false, message: 'expected {batch: [...]}' });
      return;
    }
    const receivedAt = Date.now();
    // Segment answers at once and delivers afterwards.
    reply(res, 200, { success: true });
    accept(batch.map((event: Record<string, unknown>) => stamp(event, sentAt, receivedAt)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    fn,
    requests,
    deliveries,
    async idle() {
      if (inFlight > 0) await new Promise<void>((resolve) => idleWaiters.push(resolve));
      if (harnessErrors.length > 0) throw harnessErrors[0];
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        clearTimeout(flushTimer);
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
