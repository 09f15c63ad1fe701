/**
 * `oncekit/zapier`: the Zapier integration. The default export is the app definition `zapier-platform push` uploads
 * (`npm run build` writes it to dist/zapier/); the named exports are its parts, to extend it or to build another app
 * whose replays never double an event.
 *
 * @module oncekit/zapier
 */
import zapier, { defineApp } from 'zapier-platform-core';
import { authentication } from './authentication.js';
import { logUserEvent } from './creates/log-user-event.js';
import { logUserEvents } from './creates/log-user-events.js';
import { addBasicAuth } from './middleware.js';

/**
 * The Zapier integration's own version, bumped for every `zapier-platform push` (Zapier keeps versions side by side
 * and users migrate between them); build.ts writes it into dist/zapier/package.json as well.
 */
export const ZAPIER_APP_VERSION = '1.0.0';

/** The app definition: authentication, the Basic-auth middleware, and the two creates. */
export const zapierApp = defineApp({
  version: ZAPIER_APP_VERSION,
  platformVersion: zapier.version,
  authentication,
  beforeRequest: [addBasicAuth],
  // Every request goes through z.request, so core's patch of Node's http module (which logs requests made any other
  // way, Authorization header included) only adds risk; transport.ts also sends the User-Agent that patch skips.
  flags: { skipHttpPatch: true },
  creates: {
    [logUserEvent.key]: logUserEvent,
    [logUserEvents.key]: logUserEvents,
  },
});

export default zapierApp;

export { authentication, type ConnectionTestResult } from './authentication.js';
export { inputFields as logUserEventInputFields, logUserEvent, performLogUserEvent } from './creates/log-user-event.js';
export {
  inputFields as logUserEventsInputFields,
  type LoggedUserEvents,
  logUserEvents,
  performLogUserEvents,
} from './creates/log-user-events.js';
export {
  decideEventKey,
  type EventKeyInputs,
  type EventKeyOptions,
  idempotencyKeyFromInputField,
  invalidKeyPolicyInputField,
  readInvalidKeyPolicy,
  readKeyFromFields,
  zapierCandidate,
} from './idempotency.js';
export { addBasicAuth } from './middleware.js';
export { loggedUserEventOutputFields, loggedUserEventSample } from './output-fields.js';
export {
  type KeyDecisionLabel,
  type LoggedUserEvent,
  loggedUserEvent,
  throwInputError,
  throwUnlessAllDelivered,
  throwUnlessDelivered,
} from './results.js';
export { type ConnectionSettings, connectionSettings, targetClientFor } from './target.js';
export { zapierTransport } from './transport.js';
