import { AsyncLocalStorage } from 'node:async_hooks';
import * as nodeCrypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import vm from 'node:vm';
import nodeFetch, { Headers, Request, Response } from 'node-fetch';

/**
 * A local stand-in for Segment's destination-function runtime (reference: segment.md §1), modelled on Segment's own
 * boreal loader: the script runs in a node:vm context that holds only Segment's globals, handlers are looked up by
 * name after the script ran, and what a handler throws is mapped to Segment's treatment (retry or discard, and the
 * Event Delivery category).
 */

// Segment's error classes: plain globals, told apart by class (§1.2).
export class RetryError extends Error {
  constructor(message?: string) {
    super(message);
    this.name = 'RetryError';
  }
}
export class ValidationError extends Error {
  constructor(message?: string) {
    super(message);
    this.name = 'ValidationError';
  }
}
export class InvalidEventPayload extends Error {
  constructor(message?: string) {
    super(message);
    this.name = 'InvalidEventPayload';
  }
}
export class EventNotSupported extends Error {
  constructor(message?: string) {
    super(message);
    this.name = 'EventNotSupported';
  }
}

/** Segment stops a destination function after 5 s and retries it (§1.3). */
export const SEGMENT_TIME_LIMIT_MS = 5_000;

export const BUILT_FUNCTION_PATH = join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/segment/function.js');

const HANDLER_BY_TYPE: Readonly<Record<string, string>> = {
  identify: 'onIdentify',
  track: 'onTrack',
  page: 'onPage',
  screen: 'onScreen',
  group: 'onGroup',
  alias: 'onAlias',
  delete: 'onDelete',
};
const HANDLER_NAMES = [...Object.values(HANDLER_BY_TYPE), 'onBatch'];

export type DiscardCategory = 'Unsupported Event Type' | 'Message Rejected' | 'Bad Request';

/** What Segment does with one event after one invocation. */
export type EventTreatment =
  | { readonly result: 'delivered' }
  | { readonly result: 'retry'; readonly category: 'Retry' | 'Timeout'; readonly message: string }
  | { readonly result: 'discard'; readonly category: DiscardCategory; readonly message: string; readonly errorName: string };

export interface ConsoleLine {
  readonly level: 'log' | 'info' | 'warn' | 'error' | 'debug';
  readonly text: string;
}

export interface Invocation {
  readonly handler: string;
  readonly treatment: EventTreatment;
  /** What the handler threw, as Segment would show it (name and message), or null. */
  readonly thrown: { readonly name: string; readonly message: string } | null;
  readonly returned: unknown;
  /** console output of this invocation only. */
  readonly logs: readonly ConsoleLine[];
}

export interface BatchInvocation {
  /** How the onBatch call itself ended. */
  readonly call: Invocation;
  /** One treatment per event, in input order (§1.4). */
  readonly events: readonly EventTreatment[];
}

export interface SegmentFunction {
  /** Handlers the script defines itself (not Segment's defaults). */
  readonly definedHandlers: readonly string[];
  /** Dispatches one event by its `type`, as Segment does. */
  invoke(event: unknown, settings: unknown): Promise<Invocation>;
  /** Calls onBatch with the events and applies §1.4 to what it throws or returns. */
  invokeBatch(events: readonly unknown[], settings: unknown): Promise<BatchInvocation>;
  /** Every console line of every invocation, in order. */
  readonly logs: readonly ConsoleLine[];
}

export interface LoadOptions {
  readonly path?: string;
  /** Default 5 s, Segment's limit. */
  readonly timeLimitMs?: number;
}

function describeThrown(thrown: unknown): { name: string; message: string } {
  if (thrown !== null && typeof thrown === 'object') {
    const { name, message } = thrown as { name?: unknown; message?: unknown };
    return { name: typeof name === 'string' ? name : 'Error', message: typeof message === 'string' ? message : String(thrown) };
  }
  return { name: typeof thrown, message: String(thrown) };
}

/** §1.2: the class of what a handler throws decides retry or discard. */
export function treatmentOfThrown(thrown: unknown): EventTreatment {
  const { name, message } = describeThrown(thrown);
  if (thrown instanceof RetryError) return { result: 'retry', category: 'Retry', message };
  if (thrown instanceof EventNotSupported) return { result: 'discard', category: 'Unsupported Event Type', message, errorName: name };
  if (thrown instanceof InvalidEventPayload || thrown instanceof ValidationError) {
    return { result: 'discard', category: 'Message Rejected', message, errorName: name };
  }
  return { result: 'discard', category: 'Bad Request', message, errorName: name };
}

/**
 * §1.4: one entry per event; 2xx delivered, 5xx/429/408 retried, any other status a permanent failure.
 * (Segment's docs show 500 retried and 400 discarded; 429 and 408 follow its retry rules for HTTP destinations.)
 */
function treatmentOfStatus(entry: unknown): EventTreatment {
  const { status, errormessage } = (entry ?? {}) as { status?: unknown; errormessage?: unknown };
  const message = typeof errormessage === 'string' ? errormessage : '';
  if (typeof status !== 'number')
    return { result: 'discard', category: 'Bad Request', message: `no status in ${JSON.stringify(entry)}`, errorName: 'Error' };
  if (status >= 200 && status < 300) return { result: 'delivered' };
  if (status >= 500 || status === 429 || status === 408) return { result: 'retry', category: 'Retry', message };
  return { result: 'discard', category: 'Message Rejected', message, errorName: `status ${status}` };
}

/** Loads the script as Segment does: inside a function whose parameters default every handler to EventNotSupported. */
export function loadSegmentFunction(options: LoadOptions = {}): SegmentFunction {
  const code = readFileSync(options.path ?? BUILT_FUNCTION_PATH, 'utf8');
  const timeLimitMs = options.timeLimitMs ?? SEGMENT_TIME_LIMIT_MS;
  const allLogs: ConsoleLine[] = [];
  const invocationLogs = new AsyncLocalStorage<ConsoleLine[]>();

  const record =
    (level: ConsoleLine['level']) =>
    (...args: unknown[]) => {
      const line: ConsoleLine = { level, text: args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' ') };
      allLogs.push(line);
      invocationLogs.getStore()?.push(line);
    };

  // Exactly the globals Segment documents for functions (§1.5) that this project relies on; nothing of Node's own.
  const globals: Record<string, unknown> = {
    fetch: nodeFetch,
    Request,
    Response,
    Headers,
    RetryError,
    ValidationError,
    InvalidEventPayload,
    EventNotSupported,
    crypto: nodeCrypto,
    Buffer,
    atob,
    btoa,
    URL,
    URLSearchParams,
    setTimeout,
    clearTimeout,
    console: { log: record('log'), info: record('info'), warn: record('warn'), error: record('error'), debug: record('debug') },
  };
  const context = vm.createContext({ ...globals });
  context.window = context;

  const notSupported = (event: { type?: unknown } | null) => {
    throw new EventNotSupported(`${String(event?.type)} not supported`);
  };
  const names = HANDLER_NAMES.filter((name) => name !== 'onBatch');
  const wrapper = `(function (__exports, ${names.join(', ')}, onBatch) {\n${code}\n;${[...names, 'onBatch']
    .map((name) => `__exports.${name} = ${name};`)
    .join(' ')}\n})`;
  const load = vm.runInContext(wrapper, context, { filename: 'function.js', lineOffset: -1 }) as (...args: unknown[]) => void;
  const handlers: Record<string, unknown> = {};
  load.call(context, handlers, ...names.map(() => notSupported), undefined);
  const definedHandlers = HANDLER_NAMES.filter((name) => typeof handlers[name] === 'function' && handlers[name] !== notSupported);

  // Events arrive as JSON and are parsed inside the function's own realm, as Segment's runtime does.
  const parseInContext = vm.runInContext('JSON.parse', context) as (text: string) => unknown;
  const intoContext = (value: unknown): unknown => (value === undefined ? undefined : parseInContext(JSON.stringify(value)));

  async function run(handlerName: string, argument: unknown, settings: unknown): Promise<Invocation> {
    const handler = handlers[handlerName];
    const logs: ConsoleLine[] = [];
    if (typeof handler !== 'function') {
      const treatment: EventTreatment = {
        result: 'discard',
        category: 'Unsupported Event Type',
        message: `no ${handlerName}`,
        errorName: 'EventNotSupported',
      };
      return { handler: handlerName, treatment, thrown: null, returned: undefined, logs };
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = Symbol('timed out');
    try {
      const call = invocationLogs.run(logs, () => Promise.resolve().then(() => handler(intoContext(argument), intoContext(settings))));
      const limit = new Promise<typeof timedOut>((resolve) => {
        timer = setTimeout(() => resolve(timedOut), timeLimitMs);
      });
      const returned: unknown = await Promise.race([call, limit]);
      if (returned === timedOut) {
        const message = `function timed out after ${timeLimitMs} ms`;
        return {
          handler: handlerName,
          treatment: { result: 'retry', category: 'Timeout', message },
          thrown: null,
          returned: undefined,
          logs,
        };
      }
      return { handler: handlerName, treatment: { result: 'delivered' }, thrown: null, returned, logs };
    } catch (thrown) {
      return { handler: handlerName, treatment: treatmentOfThrown(thrown), thrown: describeThrown(thrown), returned: undefined, logs };
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    definedHandlers,
    logs: allLogs,
    invoke(event, settings) {
      const type = (event as { type?: unknown } | null)?.type;
      const handlerName = typeof type === 'string' ? HANDLER_BY_TYPE[type] : undefined;
      if (handlerName === undefined) {
        const treatment: EventTreatment = {
          result: 'discard',
          category: 'Unsupported Event Type',
          message: `unknown type ${String(type)}`,
          errorName: 'EventNotSupported',
        };
        return Promise.resolve({ handler: '(none)', treatment, thrown: null, returned: undefined, logs: [] });
      }
      return run(handlerName, event, settings);
    },
    async invokeBatch(events, settings) {
      const call = await run('onBatch', events, settings);
      if (call.treatment.result !== 'delivered') return { call, events: events.map(() => call.treatment) };
      const answer = call.returned;
      // Returning nothing means every event went through.
      if (!Array.isArray(answer)) return { call, events: events.map((): EventTreatment => ({ result: 'delivered' })) };
      if (answer.length !== events.length) {
        throw new Error(`onBatch answered ${answer.length} statuses for ${events.length} events; Segment needs one per event, in order`);
      }
      return { call, events: answer.map(treatmentOfStatus) };
    },
  };
}
