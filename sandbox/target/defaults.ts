/** The API key the sandbox accepts when none is configured; a development value, documented, never a secret. */
export const DEFAULT_SANDBOX_API_KEY = 'sandbox-key';
