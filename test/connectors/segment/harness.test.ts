import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadSegmentFunction } from '../../fakes/segment-runtime.js';

/** The harness itself must model Segment (segment.md §1.2, §1.4, §1.5), or the bundle's tests prove nothing. */
function scriptFunction(code: string, timeLimitMs?: number) {
  const path = join(mkdtempSync(join(tmpdir(), 'oncekit-segment-')), 'function.js');
  writeFileSync(path, code);
  return loadSegmentFunction({ path, ...(timeLimitMs === undefined ? {} : { timeLimitMs }) });
}

describe('the Segment runtime harness', () => {
  test('offers only Segment globals: no require, process, module system or AbortController', async () => {
    const fn = scriptFunction(`
      async function onTrack(event) {
        return [typeof require, typeof process, typeof module, typeof AbortController, typeof fetch, typeof crypto.createHash,
          typeof Buffer, typeof atob, typeof btoa, typeof URL, typeof URLSearchParams, typeof setTimeout, typeof RetryError];
      }`);
    const invocation = await fn.invoke({ type: 'track' }, {});
    expect(invocation.returned).toEqual([
      'undefined',
      'undefined',
      'undefined',
      'undefined',
      'function',
      'function',
      'function',
      'function',
      'function',
      'function',
      'function',
      'function',
      'function',
    ]);
  });

  test('maps what a handler throws to Segment treatment and Event Delivery category', async () => {
    const fn = scriptFunction(`
      async function onTrack(event) {
        switch (event.event) {
          case 'retry': throw new RetryError('try later');
          case 'invalid': throw new InvalidEventPayload('bad payload');
          case 'validation': throw new ValidationError('not valid');
          case 'unsupported': throw new EventNotSupported('nope');
          case 'plain': throw new TypeError('boom');
          default: return 'ok';
        }
      }`);
    const treatment = async (name: string) => (await fn.invoke({ type: 'track', event: name }, {})).treatment;
    expect(await treatment('retry')).toEqual({ result: 'retry', category: 'Retry', message: 'try later' });
    expect(await treatment('invalid')).toEqual({
      result: 'discard',
      category: 'Message Rejected',
      message: 'bad payload',
      errorName: 'InvalidEventPayload',
    });
    expect(await treatment('validation')).toEqual({
      result: 'discard',
      category: 'Message Rejected',
      message: 'not valid',
      errorName: 'ValidationError',
    });
    expect(await treatment('unsupported')).toEqual({
      result: 'discard',
      category: 'Unsupported Event Type',
      message: 'nope',
      errorName: 'EventNotSupported',
    });
    expect(await treatment('plain')).toEqual({ result: 'discard', category: 'Bad Request', message: 'boom', errorName: 'TypeError' });
    expect(await treatment('fine')).toEqual({ result: 'delivered' });
    // A type the script has no handler for gets Segment's default: EventNotSupported.
    expect((await fn.invoke({ type: 'page' }, {})).treatment).toMatchObject({ result: 'discard', category: 'Unsupported Event Type' });
  });

  test('a function past its time limit is retried as a Timeout', async () => {
    const fn = scriptFunction('async function onTrack() { await new Promise((resolve) => setTimeout(resolve, 1000)); }', 50);
    expect((await fn.invoke({ type: 'track' }, {})).treatment).toEqual({
      result: 'retry',
      category: 'Timeout',
      message: 'function timed out after 50 ms',
    });
  });

  test('onBatch: per-event statuses decide per event; a thrown error decides for the whole batch', async () => {
    const fn = scriptFunction(`
      async function onBatch(events) {
        if (events[0].event === 'throw-retry') throw new RetryError('later');
        if (events[0].event === 'throw-plain') throw new Error('broken');
        return events.map((event) => event.properties);
      }`);
    const statuses = [
      { status: 200 },
      { status: 409 },
      { status: 400, errormessage: 'bad' },
      { status: 429, errormessage: 'slow' },
      { status: 503, errormessage: 'down' },
    ];
    const batch = await fn.invokeBatch(
      statuses.map((status) => ({ type: 'track', event: 'x', properties: status })),
      {},
    );
    expect(batch.events).toEqual([
      { result: 'delivered' },
      { result: 'discard', category: 'Message Rejected', message: '', errorName: 'status 409' },
      { result: 'discard', category: 'Message Rejected', message: 'bad', errorName: 'status 400' },
      { result: 'retry', category: 'Retry', message: 'slow' },
      { result: 'retry', category: 'Retry', message: 'down' },
    ]);
    const retried = await fn.invokeBatch(
      [
        { type: 'track', event: 'throw-retry' },
        { type: 'track', event: 'x' },
      ],
      {},
    );
    expect(retried.events.map((treatment) => treatment.result)).toEqual(['retry', 'retry']);
    const discarded = await fn.invokeBatch(
      [
        { type: 'track', event: 'throw-plain' },
        { type: 'track', event: 'x' },
      ],
      {},
    );
    expect(discarded.events.map((treatment) => treatment.result)).toEqual(['discard', 'discard']);
  });

  test('onBatch answering the wrong number of statuses is a contract violation', async () => {
    const fn = scriptFunction('async function onBatch(events) { return [{ status: 200 }]; }');
    await expect(fn.invokeBatch([{ type: 'track' }, { type: 'track' }], {})).rejects.toThrow(
      'onBatch answered 1 statuses for 2 events; Segment needs one per event, in order',
    );
  });
});
