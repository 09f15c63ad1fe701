import type { PlainOutputField } from 'zapier-platform-core';
import type { LoggedUserEvent } from './results.js';

/** What the editor shows for a logged event before a real run; typed as the output so the two cannot drift apart. */
export const loggedUserEventSample = {
  userId: 'user-123',
  accountId: 'account-123',
  eventKey: 'purchase',
  eventIds: ['64f1c0ffee0123456789abcd'],
  eventId: '64f1c0ffee0123456789abcd',
  duplicate: false,
  idempotencyKey: 'order-10001',
  idempotencyKeyDecision: 'kept',
  idempotencyKeyDropped: null,
  idempotencyKeyDroppedDetail: null,
} satisfies LoggedUserEvent;

export const loggedUserEventOutputFields = [
  { key: 'userId', label: 'User ID', type: 'string' },
  { key: 'accountId', label: 'Account ID', type: 'string' },
  { key: 'eventKey', label: 'Event Key', type: 'string' },
  { key: 'eventIds', label: 'Event IDs', type: 'string', list: true },
  { key: 'eventId', label: 'Event ID', type: 'string' },
  { key: 'duplicate', label: 'Duplicate (already recorded)', type: 'boolean' },
  { key: 'idempotencyKey', label: 'Idempotency Key Sent', type: 'string' },
  { key: 'idempotencyKeyDecision', label: 'Idempotency Key Decision (kept, hashed, dropped, none)', type: 'string' },
  { key: 'idempotencyKeyDropped', label: 'Idempotency Key Dropped Because', type: 'string' },
  { key: 'idempotencyKeyDroppedDetail', label: 'Idempotency Key Dropped Detail', type: 'string' },
] satisfies (PlainOutputField & { key: keyof LoggedUserEvent })[];
