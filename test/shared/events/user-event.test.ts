import { describe, expect, it } from 'vitest';
import { buildUserEventInput, toEpochMillis } from '../../../shared/events/index.js';
import { decideKey, rawCandidate } from '../../../shared/keys/index.js';
import { inputIssuesOf } from '../../input-issues.js';

const kept = decideKey(rawCandidate('f650f058-192c-4e52-b72d-9634116f59eb'));

describe('buildUserEventInput', () => {
  it('builds the target body with one key per request and ISO dates as epoch ms', () => {
    const input = buildUserEventInput(
      {
        userId: 'u1',
        accountId: 'a1',
        events: [{ key: 'purchase', fields: { revenue: 1000, currency: 'USD' }, dateTriggered: '2024-03-01T12:00:00.000Z' }],
      },
      kept,
    );
    expect(input).toStrictEqual({
      userId: 'u1',
      accountId: 'a1',
      idempotencyKey: 'f650f058-192c-4e52-b72d-9634116f59eb',
      events: [{ key: 'purchase', fields: { revenue: 1000, currency: 'USD' }, dateTriggered: Date.UTC(2024, 2, 1, 12) }],
    });
  });

  it('leaves the key out when the decision has none', () => {
    const dropped = decideKey(rawCandidate('bad key'));
    const input = buildUserEventInput({ userId: 'u1', accountId: 'a1', events: [{ key: 'signup' }] }, dropped);
    expect(input).toStrictEqual({ userId: 'u1', accountId: 'a1', events: [{ key: 'signup' }] });
  });

  it('names each bad field and the reason', () => {
    expect(inputIssuesOf(() => buildUserEventInput({ userId: '', accountId: 7, events: [{ key: '' }] }, null))).toEqual([
      { field: 'userId', reason: 'must not be empty' },
      { field: 'accountId', reason: 'required, a non-empty string' },
      { field: 'events[0].key', reason: 'must not be empty' },
    ]);
    expect(inputIssuesOf(() => buildUserEventInput({ userId: 'u', accountId: 'a', events: [] }, null))).toEqual([
      { field: 'events', reason: 'needs at least one event' },
    ]);
  });

  it('names the date field that cannot be read', () => {
    expect(
      inputIssuesOf(() =>
        buildUserEventInput({ userId: 'u', accountId: 'a', events: [{ key: 'k' }, { key: 'k', dateTriggered: 'yesterday' }] }, null),
      ),
    ).toEqual([{ field: 'events[1].dateTriggered', reason: 'expected an ISO-8601 date or epoch milliseconds, got "yesterday"' }]);
  });

  it('refuses field strings over 1500 UTF-8 bytes and arrays of arrays, naming the path', () => {
    const long = 'é'.repeat(751); // 1502 bytes in 751 characters
    expect(
      inputIssuesOf(() => buildUserEventInput({ userId: 'u', accountId: 'a', events: [{ key: 'k', fields: { note: long } }] }, null)),
    ).toEqual([{ field: 'events[0].fields.note', reason: 'string is 1502 UTF-8 bytes; the target accepts at most 1500' }]);
    expect(
      inputIssuesOf(() => buildUserEventInput({ userId: 'u', accountId: 'a', events: [{ key: 'k', fields: { grid: [[1, 2]] } }] }, null)),
    ).toEqual([{ field: 'events[0].fields.grid[0]', reason: 'arrays of arrays are not supported by the target' }]);
  });

  it('refuses fields nested deeper than 32 levels (100,000 here) with the path, without overflowing the stack', () => {
    const depth = 100_000;
    const fields = JSON.parse(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`) as unknown;
    const issues = inputIssuesOf(() => buildUserEventInput({ userId: 'u', accountId: 'a', events: [{ key: 'k', fields }] }, null));
    expect(issues).toEqual([{ field: `events[0].fields${'.a'.repeat(33)}`, reason: 'nested deeper than 32 levels' }]);
    const atLimit = JSON.parse(`${'{"a":'.repeat(32)}1${'}'.repeat(32)}`) as unknown;
    expect(() => buildUserEventInput({ userId: 'u', accountId: 'a', events: [{ key: 'k', fields: atLimit }] }, null)).not.toThrow();
  });

  it('refuses fields with more than 10,000 values, naming where it stopped', () => {
    const fields = { list: Array.from({ length: 20_000 }, (_, n) => n) };
    expect(inputIssuesOf(() => buildUserEventInput({ userId: 'u', accountId: 'a', events: [{ key: 'k', fields }] }, null))).toEqual([
      { field: 'events[0].fields.list[9998]', reason: 'more than 10000 values' },
    ]);
  });

  it('accepts nested objects and arrays of objects in fields', () => {
    const fields = { items: [{ sku: 'a', qty: 1 }], address: { city: 'Victoria' }, tags: ['x', 'y'], coupon: null };
    expect(
      buildUserEventInput({ userId: 'u', accountId: 'a', events: [{ key: 'purchase', fields }] }, null).events[0]?.fields,
    ).toStrictEqual(fields);
  });
});

describe('toEpochMillis', () => {
  it.each([
    ['2024-03-01T12:00:00Z', Date.UTC(2024, 2, 1, 12)],
    ['2024-03-01T12:00:00.250Z', Date.UTC(2024, 2, 1, 12, 0, 0, 250)],
    ['2024-03-01T14:00:00+02:00', Date.UTC(2024, 2, 1, 12)],
    ['2024-03-01T12:00:00', Date.UTC(2024, 2, 1, 12)],
    ['2024-03-01', Date.UTC(2024, 2, 1)],
    ['1709294400000', 1709294400000],
    [1709294400000, 1709294400000],
  ])('%j → %i', (value, expected) => {
    expect(toEpochMillis(value)).toBe(expected);
  });

  it('reads a Date', () => {
    expect(toEpochMillis(new Date(Date.UTC(2024, 0, 1)))).toBe(Date.UTC(2024, 0, 1));
  });

  it.each([['03/01/2024'], ['not a date'], [-5], [1.5], [null], [{}]])('refuses %j', (value) => {
    expect(() => toEpochMillis(value, 'when')).toThrow(/^when: /);
  });
});
