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

export default defineApp({
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
