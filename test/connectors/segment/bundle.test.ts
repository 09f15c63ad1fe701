import { readFileSync } from 'node:fs';
import { Script } from 'node:vm';
import { describe, expect, test } from 'vitest';
import { BUILT_FUNCTION_PATH } from '../../fakes/segment-runtime.js';
import { builtFunction, settingsFor, startTestSandbox, TENANT, trackEvent } from './helpers.js';

const code = readFileSync(BUILT_FUNCTION_PATH, 'utf8');

describe('dist/segment/function.js, the file users paste into Segment', () => {
  test('is one plain script: no import, export or require', () => {
    expect(() => new Script(code)).not.toThrow();
    expect(code).not.toMatch(/^\s*(import|export)\s/m);
    expect(code).not.toMatch(/\brequire\s*\(/);
    expect(code).not.toMatch(/\bimport\s*\(/);
  });

  test('declares the handlers Segment calls by name at the top level', () => {
    for (const name of ['onTrack', 'onIdentify', 'onPage', 'onScreen', 'onGroup', 'onAlias', 'onDelete']) {
      expect(code).toMatch(new RegExp(`^async function ${name}\\(event, settings\\) \\{$`, 'm'));
    }
    expect(code).toMatch(/^async function onBatch\(events, settings\) \{$/m);
    // Loaded the way Segment loads it, every handler is the script's own, none Segment's default.
    expect([...builtFunction().definedHandlers].sort()).toEqual(
      ['onAlias', 'onBatch', 'onDelete', 'onGroup', 'onIdentify', 'onPage', 'onScreen', 'onTrack'].sort(),
    );
  });

  test('leaves out the Node-only HTTP transport', () => {
    expect(code).not.toContain('undici');
  });

  test.each(['page', 'screen', 'group', 'alias', 'delete'])(
    'a %s event is refused with EventNotSupported and sends nothing',
    async (type) => {
      const sandbox = await startTestSandbox();
      const invocation = await builtFunction().invoke({ type, userId: 'ann', messageId: 'msg-00000001' }, settingsFor(sandbox));
      expect(invocation.thrown?.name).toBe('EventNotSupported');
      expect(invocation.treatment).toEqual({
        result: 'discard',
        category: 'Unsupported Event Type',
        errorName: 'EventNotSupported',
        message: `${type} events are not supported: this function forwards only track and identify calls to SaaSquatch`,
      });
      expect(sandbox.inspect(TENANT).requests.total).toBe(0);
    },
  );

  test('runs without AbortController in the runtime: its own timeout still ends a hung request, as a retry', async () => {
    // The harness has no AbortController (Segment does not document one), so this exercises the bundled stand-in.
    const sandbox = await startTestSandbox();
    sandbox.faults.enqueue({ kind: 'latency', ms: 8_000 }, { kind: 'latency', ms: 8_000 });
    const invocation = await builtFunction().invoke(trackEvent(), settingsFor(sandbox));
    // A RetryError from the function itself, not Segment's own timeout: the function stays within its 5 s.
    expect(invocation.treatment).toMatchObject({ result: 'retry', category: 'Retry' });
    expect(invocation.thrown?.message).toMatch(
      /^SaaSquatch did not take the event after 2 attempt\(s\) \(no answer: request timed out after \d+ ms\)/,
    );
  });
});
