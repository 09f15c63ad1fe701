import { afterAll, beforeAll, beforeEach } from 'vitest';
import zapier from 'zapier-platform-core';
import { createAppHandler } from '../../../connectors/zapier/handler.js';
import App from '../../../connectors/zapier/index.js';
import { type QueuedFault, type Sandbox, type SandboxOptions, startSandbox } from '../../../sandbox/target/index.js';

export const TENANT = 'test_zapier';
/** Distinctive, so a leak into an error or a log line cannot hide among other text. */
export const API_KEY = 'sq-test-Key-7Xq2Vd9LmR4t';
/** The Authorization header carrying API_KEY: it must no more leak than the key itself. */
export const BASIC_CREDENTIALS = Buffer.from(`:${API_KEY}`, 'utf8').toString('base64');

export const appTester = zapier.createAppTester(App);

/** One sandbox per test file on a free loopback port, emptied before each test. */
export function useSandbox(options: SandboxOptions = {}): { readonly current: () => Sandbox } {
  let sandbox: Sandbox | null = null;
  beforeAll(async () => {
    sandbox = await startSandbox({ port: 0, apiKey: API_KEY, ...options });
  });
  beforeEach(() => sandbox?.reset());
  afterAll(async () => {
    await sandbox?.close();
  });
  return {
    current: () => {
      if (sandbox === null) throw new Error('the sandbox is not running');
      return sandbox;
    },
  };
}

export type AuthData = {
  readonly tenantAlias: string;
  readonly apiKey: string;
  readonly apiBaseUrl: string;
};

export const authDataFor = (sandbox: Sandbox, overrides: Partial<AuthData> = {}): AuthData => ({
  tenantAlias: TENANT,
  apiKey: API_KEY,
  apiBaseUrl: sandbox.url,
  ...overrides,
});

/** The rejection of `promise`; fails when it resolves. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof Error) return error;
    throw new Error(`rejected with a non-Error: ${String(error)}`);
  }
  throw new Error('expected a rejection, but the promise resolved');
}

/** What a z.errors.Error carries: core serialises message, code and status into `message` as JSON. */
export interface AppErrorBody {
  readonly message: string;
  readonly code: string;
  readonly status?: number;
}

export function appErrorBody(error: Error): AppErrorBody {
  if (error.name !== 'AppError') throw new Error(`expected a z.errors.Error (AppError), got ${error.name}: ${error.message}`);
  return JSON.parse(error.message) as AppErrorBody;
}

/** What a ThrottledError carries: `{message, delay}` as JSON in `message`. */
export function throttledBody(error: Error): { readonly message: string; readonly delay: number | null } {
  if (error.name !== 'ThrottledError') throw new Error(`expected a ThrottledError, got ${error.name}: ${error.message}`);
  return JSON.parse(error.message) as { message: string; delay: number | null };
}

export interface LoggedRun {
  readonly result: unknown;
  readonly error: Error | null;
  /** Every log line Zapier would store for the run (message and data), after core's secret scrubbing. */
  readonly logs: readonly string[];
}

/** Runs one app method through the platform handler, as Zapier does, keeping its log lines. */
export async function runLogged(method: string, bundle: Readonly<Record<string, unknown>>): Promise<LoggedRun> {
  const logs: string[] = [];
  const handler = createAppHandler(App);
  try {
    const { results } = await handler({
      command: 'execute',
      method,
      bundle,
      customLogger: (message, data) => logs.push(`${message} ${JSON.stringify(data)}`),
    });
    return { result: results, error: null, logs };
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    return { result: undefined, error, logs };
  }
}

/** SaaSquatch records the request, then its answer is lost: a 503, or a reset connection. */
export function lostAnswer(failWith: 'status' | 'drop'): QueuedFault {
  return { kind: 'record-then-fail', failWith };
}
