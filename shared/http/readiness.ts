/** One thing `/readyz` checks; `check` rejects with a message that says what is wrong (never a secret). */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<void>;
}
