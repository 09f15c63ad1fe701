import zapier from 'zapier-platform-core';

/** The events the platform's Lambda handler takes that oncekit uses: schema validation, and running one method. */
export type AppHandlerEvent =
  | { readonly command: 'validate' }
  | { readonly command: 'definition' }
  | {
      readonly command: 'execute';
      /** A dotted path into the app, e.g. `creates.log_user_event.operation.perform`. */
      readonly method: string;
      readonly bundle: Readonly<Record<string, unknown>>;
      /** Receives every log line after core's secret scrubbing; how `zapier-platform invoke` shows logs. */
      readonly customLogger?: (message: string, data: Readonly<Record<string, unknown>>) => void;
    };

export interface AppHandlerResult {
  /** `validate`: a list of schema problems, `[]` when the app is valid; `execute`: what the method returned. */
  readonly results: unknown;
}

export type AppHandler = (event: AppHandlerEvent) => Promise<AppHandlerResult>;

type RawCreateAppHandler = (appOrPath: object | string) => (event: object) => Promise<AppHandlerResult>;

/**
 * zapier-platform-core's `createAppHandler`: present at runtime but missing from its type definitions.
 * `appOrPath` is an app definition, or the path of a CommonJS module exporting one (how Zapier loads a pushed app).
 */
export function createAppHandler(appOrPath: object | string): AppHandler {
  const raw: unknown = Reflect.get(zapier, 'createAppHandler');
  if (typeof raw !== 'function') throw new TypeError('zapier-platform-core does not export createAppHandler');
  const handler = (raw as RawCreateAppHandler)(appOrPath);
  return (event) => handler(event);
}
