import { describe, expect, it } from 'vitest';
import { deliverySettingsFrom } from '../../../connectors/relay/delivery-settings.js';
import { InvalidInputError } from '../../../shared/errors.js';

function issuesOf(run: () => unknown): { field: string; reason: string }[] {
  try {
    run();
  } catch (error) {
    if (error instanceof InvalidInputError) return [...error.issues];
    throw error;
  }
  throw new Error('expected an InvalidInputError');
}

describe('delivery settings', () => {
  it('reads each setting from the command line, else its variable, and leaves the rest to the defaults', () => {
    const settings = deliverySettingsFrom(
      { batchSize: 50, horizonMs: '90m', maxEventsPerSecond: '250' },
      {
        ONCEKIT_BATCH_SIZE: '10',
        ONCEKIT_CONCURRENCY: '8',
        ONCEKIT_LEASE: '30s',
        ONCEKIT_BACKOFF_BASE: '200ms',
        ONCEKIT_BACKOFF_MAX: '1m',
      },
    );
    expect(settings).toEqual({
      batchSize: 50,
      concurrency: 8,
      horizonMs: 90 * 60_000,
      leaseMs: 30_000,
      backoffBaseMs: 200,
      backoffMaxMs: 60_000,
      maxEventsPerSecond: 250,
    });
    expect(deliverySettingsFrom({}, {})).toEqual({});
  });

  it('names the option or the variable that carried a bad value', () => {
    expect(issuesOf(() => deliverySettingsFrom({}, { ONCEKIT_MAX_RATE: 'fast', ONCEKIT_CONCURRENCY: '2.5' }))).toEqual([
      { field: 'ONCEKIT_CONCURRENCY', reason: 'expected a whole number, got "2.5"' },
      { field: 'ONCEKIT_MAX_RATE', reason: 'expected a number of events per second above 0, got "fast"' },
    ]);
    expect(issuesOf(() => deliverySettingsFrom({ batchSize: 5000 }, {}))).toEqual([{ field: '--batch-size', reason: 'at most 1000' }]);
  });

  it('refuses a horizon that with the lease reaches the key window, naming where each came from', () => {
    const [issue] = issuesOf(() => deliverySettingsFrom({ horizonMs: '23h' }, { ONCEKIT_LEASE: '2h' }));
    expect(issue?.field).toBe('--horizon');
    expect(issue?.reason).toMatch(/plus the lease \(2 h\) must stay shorter than the target's key window \(1 d\)/);
  });
});
