import { type Bundle, defineCreate, defineInputFields, type InferInputData, type ZObject } from 'zapier-platform-core';
import { type FieldIssue, InvalidInputError } from '../../../shared/errors.js';
import { buildUserEventInput, type UserEventInput } from '../../../shared/events/index.js';
import { type KeyDecision, KeyRejectedError } from '../../../shared/keys/index.js';
import type { TargetClient } from '../../../shared/target/index.js';
import {
  decideEventKey,
  type EventKeyOptions,
  idempotencyKeyFromInputField,
  idempotencyKeyHelp,
  invalidKeyPolicyInputField,
  readInvalidKeyPolicy,
  readKeyFromFields,
} from '../idempotency.js';
import { loggedUserEventOutputFields, loggedUserEventSample } from '../output-fields.js';
import { type LoggedUserEvent, loggedUserEvent, throwInputError, throwUnlessAllDelivered, unlessEmpty, zapierFieldOf } from '../results.js';
import { targetClientFor, zapierLogger } from '../target.js';

const LINE_ITEMS = 'events';

export const inputFields = defineInputFields([
  {
    key: LINE_ITEMS,
    label: 'Events',
    children: [
      { key: 'userId', label: 'User ID', type: 'string', required: true, helpText: 'The id of the SaaSquatch user of each event.' },
      { key: 'accountId', label: 'Account ID', type: 'string', required: true, helpText: "The id of each user's SaaSquatch account." },
      { key: 'eventKey', label: 'Event Key', type: 'string', required: true, helpText: 'The kind of each event, e.g. `purchase`.' },
      {
        key: 'fields',
        label: 'Event Fields (JSON)',
        type: 'text',
        required: false,
        helpText: 'Optional data of each event as a JSON object, e.g. `{"order_id": "A-1", "revenue": 12.5}`.',
      },
      { key: 'dateTriggered', label: 'Date Triggered', type: 'datetime', required: false, helpText: 'Optional. When each event happened.' },
      { key: 'idempotencyKey', label: 'Idempotency Key', type: 'string', required: false, helpText: idempotencyKeyHelp },
    ],
  },
  idempotencyKeyFromInputField('Applies to each event on its own.'),
  invalidKeyPolicyInputField,
]);

type LogUserEventsInputs = InferInputData<typeof inputFields>;

export interface LoggedUserEvents {
  /** One entry per line item, in order. */
  readonly events: LoggedUserEvent[];
  readonly total: number;
  readonly recorded: number;
  readonly duplicates: number;
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** Line items arrive as a list of objects; a step mapped without line items gives one object. */
function lineItems(value: unknown): Record<string, unknown>[] {
  const items = Array.isArray(value) ? value : isRecord(value) ? [value] : [];
  if (items.length === 0) throw new InvalidInputError([{ field: LINE_ITEMS, reason: 'needs at least one event' }]);
  return items.map((item, index) => {
    if (!isRecord(item)) throw new InvalidInputError([{ field: `${LINE_ITEMS}[${index}]`, reason: 'expected an event with its fields' }]);
    return item;
  });
}

/** Event Fields of a line item: JSON text (line items have no key/value inputs), or an object when given one. */
function eventFieldsOf(value: unknown): unknown {
  const given = unlessEmpty(value);
  if (typeof given !== 'string') return given;
  let parsed: unknown;
  try {
    parsed = JSON.parse(given);
  } catch {
    parsed = undefined;
  }
  if (!isRecord(parsed)) throw new InvalidInputError([{ field: 'fields', reason: 'expected a JSON object, e.g. {"order_id": "A-1"}' }]);
  return parsed;
}

interface PreparedEvent {
  readonly input: UserEventInput;
  readonly decision: KeyDecision | null;
}

/** Builds one UserEventInput per line item; collects the problems of every item so the error names them all. */
function prepareEvents(items: readonly Record<string, unknown>[], options: EventKeyOptions): PreparedEvent[] {
  const prepared: PreparedEvent[] = [];
  const issues: FieldIssue[] = [];
  items.forEach((item, index) => {
    const at = (path: string): string => `${LINE_ITEMS}[${index}].${zapierFieldOf(path)}`;
    try {
      const fields = eventFieldsOf(item.fields);
      const decision = decideEventKey({ ...item, fields }, options);
      const input = buildUserEventInput(
        {
          userId: item.userId,
          accountId: item.accountId,
          events: [{ key: item.eventKey, fields, dateTriggered: unlessEmpty(item.dateTriggered) }],
        },
        decision,
      );
      prepared.push({ input, decision });
    } catch (error) {
      if (error instanceof KeyRejectedError) issues.push({ field: at('idempotencyKey'), reason: error.message });
      else if (error instanceof InvalidInputError) {
        issues.push(...error.issues.map((issue) => ({ ...issue, field: at(issue.field) })));
      } else throw error;
    }
  });
  if (issues.length > 0) throw new InvalidInputError(issues);
  return prepared;
}

export async function performLogUserEvents(z: ZObject, bundle: Bundle<LogUserEventsInputs>): Promise<LoggedUserEvents> {
  const inputs: Readonly<Record<string, unknown>> = bundle.inputData;
  let client: TargetClient;
  let events: PreparedEvent[];
  try {
    client = targetClientFor(z, bundle);
    events = prepareEvents(lineItems(inputs[LINE_ITEMS]), {
      fromFields: readKeyFromFields(unlessEmpty(inputs.idempotencyKeyFrom)),
      policy: readInvalidKeyPolicy(inputs.invalidKeyPolicy),
      logger: zapierLogger(z),
    });
  } catch (error) {
    // Line-item paths are already named by `prepareEvents` (`events[2].eventKey`).
    throwInputError(z, error, {
      lead: 'No event was sent',
      fieldName: (path) => (path.startsWith(`${LINE_ITEMS}[`) ? path : zapierFieldOf(path)),
    });
  }
  const { results } = await client.logUserEvents(events.map((event) => event.input));
  throwUnlessAllDelivered(z, client.tenant, results);
  const logged = events.flatMap((event, index) => {
    const result = results[index];
    return result ? [loggedUserEvent(event.input, event.decision, result)] : [];
  });
  return {
    events: logged,
    total: logged.length,
    recorded: logged.filter((event) => !event.duplicate).length,
    duplicates: logged.filter((event) => event.duplicate).length,
  };
}

export const logUserEvents = defineCreate({
  key: 'log_user_events',
  noun: 'User Events',
  display: {
    label: 'Log User Events',
    description:
      'Logs many events in one SaaSquatch call, e.g. one per line item of an order. Each event is recorded once, even when the step is replayed.',
  },
  operation: {
    inputFields,
    perform: performLogUserEvents,
    sample: { events: [loggedUserEventSample], total: 1, recorded: 1, duplicates: 0 } satisfies LoggedUserEvents,
    outputFields: [
      { key: LINE_ITEMS, label: 'Events', children: loggedUserEventOutputFields },
      { key: 'total', label: 'Events Sent', type: 'integer' },
      { key: 'recorded', label: 'Events Recorded Now', type: 'integer' },
      { key: 'duplicates', label: 'Events Already Recorded (duplicates)', type: 'integer' },
    ],
  },
});
