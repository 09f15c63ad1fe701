import { createTargetClient as createClientOver, type TargetClient, type TargetClientOptions } from './client.js';
import type { HttpTransport } from './transport.js';
import { undiciTransport } from './transport-undici.js';

/** The target client's options on Node: as `createTargetClient`'s, with the transport optional. */
export type NodeTargetClientOptions = Omit<TargetClientOptions, 'transport'> & {
  /** How requests are sent; default undici with keep-alive (one connection pool per client, closed by `close()`). */
  readonly transport?: HttpTransport;
};

/** A target client that owns its default transport. */
export interface NodeTargetClient extends TargetClient {
  /** Closes the keep-alive connections of the default transport; a transport the caller gave is left to the caller. */
  close(): Promise<void>;
}

/**
 * The target client with Node defaults: `createTargetClient({ baseUrl, tenant, apiKey })` sends through undici with
 * keep-alive. Kept apart from client.ts so that bundles for other runtimes (the Segment function) carry no undici.
 */
export function createNodeTargetClient(options: NodeTargetClientOptions): NodeTargetClient {
  const { transport: given, ...rest } = options;
  const owned = given === undefined ? undiciTransport() : null;
  const transport: HttpTransport = given ?? (owned as NonNullable<typeof owned>).send;
  let client: TargetClient;
  try {
    client = createClientOver({ ...rest, transport });
  } catch (error) {
    void owned?.close();
    throw error;
  }
  return {
    tenant: client.tenant,
    checkCredentials: (callOptions) => client.checkCredentials(callOptions),
    logUserEvent: (input, callOptions) => client.logUserEvent(input, callOptions),
    logUserEvents: (inputs, callOptions) => client.logUserEvents(inputs, callOptions),
    upsertUser: (user, callOptions) => client.upsertUser(user, callOptions),
    close: async () => {
      await owned?.close();
    },
  };
}
