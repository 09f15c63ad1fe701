/** The answer of a webhook signature check; the reason is safe to send back (it never echoes a secret). */
export type SignatureCheck = { readonly valid: true } | { readonly valid: false; readonly reason: string };
