import { describe, expect, it } from 'vitest';
import zapier from 'zapier-platform-core';
import { createAppHandler } from '../../../connectors/zapier/handler.js';
import App from '../../../connectors/zapier/index.js';
import { addBasicAuth } from '../../../connectors/zapier/middleware.js';
import { saasquatchKeyProfile } from '../../../shared/keys/index.js';

interface FieldShape {
  readonly key: string;
  readonly helpText?: string;
  readonly required?: boolean;
  readonly default?: string;
  readonly list?: boolean;
  readonly dict?: boolean;
  readonly type?: string;
  readonly children?: readonly FieldShape[];
  readonly choices?: readonly { readonly value: string }[];
}

// The definitions are plain data (no dynamic-field functions), read here through one loose shape for both creates.
const fieldsOf = (key: 'log_user_event' | 'log_user_events'): FieldShape[] => {
  const fields: readonly unknown[] = App.creates[key].operation.inputFields ?? [];
  return fields.filter((field): field is FieldShape => typeof field === 'object' && field !== null);
};

describe('the Zapier app', () => {
  it('passes core schema validation', async () => {
    expect(await createAppHandler(App)({ command: 'validate' })).toEqual({ results: [], status: 'SUCCESS' });
  });

  it('is assembled from custom auth, the Basic-auth middleware and the two creates, on the installed core', () => {
    expect(App.platformVersion).toBe(zapier.version);
    expect(App.authentication?.type).toBe('custom');
    expect(App.beforeRequest).toEqual([addBasicAuth]);
    expect(Object.keys(App.creates)).toEqual(['log_user_event', 'log_user_events']);
  });

  it('gives Log User Event the inputs of the issue, each with help text', () => {
    const fields = fieldsOf('log_user_event');

    expect(fields.map(({ key, required, type, list, dict }) => ({ key, required, type, list, dict }))).toEqual([
      { key: 'userId', required: true, type: 'string', list: undefined, dict: undefined },
      { key: 'accountId', required: true, type: 'string', list: undefined, dict: undefined },
      { key: 'eventKey', required: true, type: 'string', list: undefined, dict: undefined },
      { key: 'fields', required: false, type: undefined, list: undefined, dict: true },
      { key: 'dateTriggered', required: false, type: 'datetime', list: undefined, dict: undefined },
      { key: 'idempotencyKey', required: false, type: 'string', list: undefined, dict: undefined },
      { key: 'idempotencyKeyFrom', required: false, type: 'string', list: true, dict: undefined },
      { key: 'invalidKeyPolicy', required: false, type: 'string', list: undefined, dict: undefined },
    ]);
    expect(fields.every((field) => (field.helpText ?? '').length > 20)).toBe(true);
    expect(fields.find((field) => field.key === 'idempotencyKey')?.helpText).toContain(saasquatchKeyProfile.rule);
    const policy = fields.find((field) => field.key === 'invalidKeyPolicy');
    expect(policy?.default).toBe('drop');
    expect(policy?.choices?.map((choice) => choice.value)).toEqual(['drop', 'hash', 'reject']);
  });

  it('gives Log User Events the same event inputs as line items', () => {
    const [lineItems, ...rest] = fieldsOf('log_user_events');

    expect(lineItems?.key).toBe('events');
    expect(lineItems?.children?.map((child) => child.key)).toEqual([
      'userId',
      'accountId',
      'eventKey',
      'fields',
      'dateTriggered',
      'idempotencyKey',
    ]);
    expect(rest.map((field) => field.key)).toEqual(['idempotencyKeyFrom', 'invalidKeyPolicy']);
  });

  it('declares a sample and output fields that cover the sample', () => {
    for (const create of [App.creates.log_user_event, App.creates.log_user_events]) {
      const sample = create.operation.sample ?? {};
      const outputKeys = (create.operation.outputFields ?? []).flatMap((field) => (typeof field === 'object' ? [field.key] : []));
      expect(outputKeys.sort()).toEqual(Object.keys(sample).sort());
    }
    expect(App.creates.log_user_event.operation.sample).toMatchObject({ duplicate: false, idempotencyKeyDropped: null });
  });
});
