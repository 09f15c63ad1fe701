import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../shared/duration.js';
import { InvalidInputError } from '../../shared/errors.js';

describe('parseDuration', () => {
  it.each([
    ['1500', 1500],
    ['1500ms', 1500],
    ['90s', 90_000],
    ['90m', 5_400_000],
    ['20h', 72_000_000],
    ['1h30m', 5_400_000],
    ['1h 30min', 5_400_000],
    ['1.5h', 5_400_000],
    ['7d', 604_800_000],
  ])('reads %j as %d ms', (text, ms) => {
    expect(parseDuration(text, '--horizon')).toBe(ms);
  });

  it.each(['', '   ', 'soon', '-1h', '5 apples', '1x'])('refuses %j naming the field', (text) => {
    let caught: unknown;
    try {
      parseDuration(text, '--horizon');
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidInputError);
    expect((caught as InvalidInputError).issues[0]).toMatchObject({
      field: '--horizon',
      reason: expect.stringContaining(`expected a duration such as 500ms, 30s, 90m, 20h, 1h30m or 1d, got ${JSON.stringify(text)}`),
    });
  });

  it('reads back what formatDuration writes, for whole seconds and anything under a second', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 0, max: 999 }),
          fc.integer({ min: 1, max: 10_000_000 }).map((s) => s * 1000),
        ),
        (ms) => {
          expect(parseDuration(formatDuration(ms), 'd')).toBe(ms);
        },
      ),
    );
  });
});
