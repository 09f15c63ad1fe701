import { type Bundle, defineCreate, defineInputFields, type InferInputData, type ZObject } from 'zapier-platform-core';
import { buildUserEventInput, type UserEventInput } from '../../../shared/events/index.js';
import type { KeyDecision } from '../../../shared/keys/index.js';
import type { TargetClient } from '../../../shared/target/index.js';
import {
  decideEventKey,
  idempotencyKeyFromInputField,
  idempotencyKeyHelp,
  invalidKeyPolicyInputField,
  readInvalidKeyPolicy,
  readKeyFromFields,
} from '../idempotency.js';
import { loggedUserEventOutputFields, loggedUserEventSample } from '../output-fields.js';
import { type LoggedUserEvent, loggedUserEvent, throwInputError, throwUnlessDelivered, unlessEmpty } from '../results.js';
import { targetClientFor, zapierLogger } from '../target.js';

export const inputFields = defineInputFields([
  {
    key: 'userId',
    label: 'User ID',
    type: 'string',
    required: true,
    helpText: 'The id of the SaaSquatch user the event belongs to.',
  },
  {
    key: 'accountId',
    label: 'Account ID',
    type: 'string',
    required: true,
    helpText: "The id of the user's SaaSquatch account; often the same as the User ID.",
  },
  {
    key: 'eventKey',
    label: 'Event Key',
    type: 'string',
    required: true,
    helpText: 'The kind of event, as your SaaSquatch programs know it, e.g. `purchase`.',
  },
  {
    key: 'fields',
    label: 'Event Fields',
    dict: true,
    required: false,
    helpText: 'Optional data of the event, e.g. `order_id`, `revenue`, `currency`. Text values may have at most 1500 bytes.',
  },
  {
    key: 'dateTriggered',
    label: 'Date Triggered',
    type: 'datetime',
    required: false,
    helpText: 'Optional. When the event happened; SaaSquatch uses the time it received the event when this is empty.',
  },
  { key: 'idempotencyKey', label: 'Idempotency Key', type: 'string', required: false, helpText: idempotencyKeyHelp },
  idempotencyKeyFromInputField(),
  invalidKeyPolicyInputField,
]);

type LogUserEventInputs = InferInputData<typeof inputFields>;

export async function performLogUserEvent(z: ZObject, bundle: Bundle<LogUserEventInputs>): Promise<LoggedUserEvent> {
  const inputs: Readonly<Record<string, unknown>> = bundle.inputData;
  let client: TargetClient;
  let decision: KeyDecision | null;
  let input: UserEventInput;
  try {
    client = targetClientFor(z, bundle);
    decision = decideEventKey(inputs, {
      fromFields: readKeyFromFields(unlessEmpty(inputs.idempotencyKeyFrom)),
      policy: readInvalidKeyPolicy(inputs.invalidKeyPolicy),
      logger: zapierLogger(z),
    });
    input = buildUserEventInput(
      {
        userId: inputs.userId,
        accountId: inputs.accountId,
        events: [{ key: inputs.eventKey, fields: unlessEmpty(inputs.fields), dateTriggered: unlessEmpty(inputs.dateTriggered) }],
      },
      decision,
    );
  } catch (error) {
    throwInputError(z, error);
  }
  const result = await client.logUserEvent(input);
  throwUnlessDelivered(z, client.tenant, result);
  return loggedUserEvent(input, decision, result);
}

export const logUserEvent = defineCreate({
  key: 'log_user_event',
  noun: 'User Event',
  display: {
    label: 'Log User Event',
    description:
      'Logs one event for a SaaSquatch user, once: with an idempotency key, replays and retries of this step do not record it again.',
  },
  operation: {
    inputFields,
    perform: performLogUserEvent,
    sample: loggedUserEventSample,
    outputFields: loggedUserEventOutputFields,
  },
});
