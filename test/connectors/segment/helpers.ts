import { afterEach } from 'vitest';
import { DEFAULT_SANDBOX_API_KEY, type Sandbox, type SandboxOptions, startSandbox } from '../../../sandbox/target/index.js';
import { loadSegmentFunction, type SegmentFunction } from '../../fakes/segment-runtime.js';

export const TENANT = 'test_segment';

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((closable) => closable.close()));
});

/** Closes `closable` after the current test. */
export function closeAfterTest<T extends { close(): Promise<void> }>(closable: T): T {
  open.push(closable);
  return closable;
}

/** A sandbox on a free loopback port, closed after the test. */
export async function startTestSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  return closeAfterTest(await startSandbox({ port: 0, ...options }));
}

/** The function's settings as a user would enter them, pointed at `sandbox`. */
export function settingsFor(sandbox: Sandbox, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiKey: DEFAULT_SANDBOX_API_KEY, tenantAlias: TENANT, apiBaseUrl: sandbox.url, ...overrides };
}

/** The built dist/segment/function.js, freshly loaded in Segment's runtime harness. */
export function builtFunction(): SegmentFunction {
  return loadSegmentFunction();
}

let sequence = 0;

/** A valid, unique messageId in analytics-node's format. */
export function messageId(): string {
  sequence += 1;
  return `node-next-${Date.now()}-${String(sequence).padStart(8, '0')}-4b74-8078-cbcc8894c586`;
}

/** A track event as Segment delivers it to a function. */
export function trackEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'track',
    event: 'Order Completed',
    userId: 'ann',
    anonymousId: 'anon-1',
    messageId: messageId(),
    timestamp: '2025-11-07T10:20:30.456Z',
    receivedAt: '2025-11-07T10:20:31.000Z',
    properties: { order_id: 'o-1', revenue: 42.5, currency: 'USD' },
    context: { library: { name: 'analytics-node-next', version: '3.1.0' } },
    integrations: {},
    ...overrides,
  };
}

export function identifyEvent(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'identify',
    userId: 'ann',
    messageId: messageId(),
    timestamp: '2025-11-07T10:20:30.456Z',
    traits: { email: 'ann@example.com', name: 'Ann Lee' },
    context: { locale: 'en-US' },
    ...overrides,
  };
}

/** The JSON lines the function logged with console.warn, parsed. */
export function warnLines(logs: readonly { level: string; text: string }[]): Record<string, unknown>[] {
  return logs.filter((line) => line.level === 'warn').map((line) => JSON.parse(line.text) as Record<string, unknown>);
}
