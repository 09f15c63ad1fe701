import type { UserEventData } from '../../shared/events/user-event.js';

export type EventFields = NonNullable<UserEventData['fields']>;
export type Channel = 'rest' | 'graphql';

export interface StoredEvent {
  readonly id: string;
  readonly userId: string;
  readonly accountId: string;
  readonly key: string;
  readonly fields: EventFields;
  readonly dateTriggered: number;
  readonly dateReceived: number;
  readonly dateProcessed: number;
  readonly idempotencyKey: string | null;
  /** Which API recorded it. */
  readonly via: Channel;
}

/** One idempotency key of one tenant, for one retention window. */
export interface KeyRecord {
  readonly key: string;
  /** Requests (or logUserEvents items) that carried the key in this window, including 409s, 400s and faulted ones. */
  requests: number;
  firstSeenAt: number;
  /** null until a request with the key was accepted; the window then runs to storedAt + retention. */
  expiresAt: number | null;
  eventIds: string[];
}

export interface StoredUser {
  /** The user as the API returns it. */
  data: Record<string, unknown>;
  /** Created implicitly by an event (strictUsers off) rather than by an upsert. */
  autoCreated: boolean;
}

/** A recorded event as inspection shows it. */
export type EventSnapshot = Omit<StoredEvent, 'dateProcessed'>;

export interface KeySnapshot {
  readonly key: string;
  readonly requests: number;
  readonly firstSeenAt: number;
  /** null when no request with this key has been accepted yet (only rejected or faulted ones). */
  readonly expiresAt: number | null;
  readonly eventIds: readonly string[];
}

export interface UserSnapshot {
  readonly id: string;
  readonly accountId: string;
  readonly dateCreated: number;
  readonly autoCreated: boolean;
  readonly [field: string]: unknown;
}

export interface TenantSnapshot {
  readonly tenant: string;
  readonly events: readonly EventSnapshot[];
  readonly keys: readonly KeySnapshot[];
  readonly users: readonly UserSnapshot[];
  /** Authenticated API requests to this tenant, by the HTTP status answered; `dropped` had no answer. */
  readonly requests: { readonly total: number; readonly byStatus: Readonly<Record<string, number>>; readonly dropped: number };
}

export class TenantState {
  readonly name: string;
  readonly events: StoredEvent[] = [];
  readonly keys = new Map<string, KeyRecord>();
  /** accountId → userId → user; nested maps so no id can collide with another through a separator. */
  readonly accounts = new Map<string, Map<string, StoredUser>>();
  #total = 0;
  #dropped = 0;
  readonly #byStatus = new Map<number, number>();

  constructor(name: string) {
    this.name = name;
  }

  /** Counts one request carrying `key`; a key whose window has passed starts a fresh record. */
  noteKey(key: string, now: number): KeyRecord {
    const existing = this.keys.get(key);
    if (existing !== undefined && (existing.expiresAt === null || now < existing.expiresAt)) {
      existing.requests += 1;
      return existing;
    }
    if (existing !== undefined) this.keys.delete(key); // re-insert, so the map stays in first-seen order
    const record: KeyRecord = { key, requests: 1, firstSeenAt: now, expiresAt: null, eventIds: [] };
    this.keys.set(key, record);
    return record;
  }

  user(accountId: string, userId: string): StoredUser | undefined {
    return this.accounts.get(accountId)?.get(userId);
  }

  putUser(accountId: string, userId: string, user: StoredUser): void {
    let users = this.accounts.get(accountId);
    if (users === undefined) {
      users = new Map();
      this.accounts.set(accountId, users);
    }
    users.set(userId, user);
  }

  countResponse(status: number): void {
    this.#total += 1;
    this.#byStatus.set(status, (this.#byStatus.get(status) ?? 0) + 1);
  }

  countDrop(): void {
    this.#total += 1;
    this.#dropped += 1;
  }

  snapshot(): TenantSnapshot {
    const users: UserSnapshot[] = [];
    for (const accountUsers of this.accounts.values()) {
      for (const user of accountUsers.values()) users.push({ ...user.data, autoCreated: user.autoCreated } as UserSnapshot);
    }
    const byStatus: Record<string, number> = {};
    for (const [status, count] of [...this.#byStatus].sort(([a], [b]) => a - b)) byStatus[String(status)] = count;
    // A deep copy: callers may keep or change a snapshot without touching the sandbox's state.
    return structuredClone({
      tenant: this.name,
      events: this.events.map(({ dateProcessed: _, ...event }) => event),
      keys: [...this.keys.values()],
      users,
      requests: { total: this.#total, byStatus, dropped: this.#dropped },
    });
  }
}

export class SandboxState {
  readonly #tenants = new Map<string, TenantState>();
  readonly #initialTenants: readonly string[];

  /** `initialTenants` (the configured ones) are listed from the start, even before their first request. */
  constructor(initialTenants: readonly string[] = []) {
    this.#initialTenants = initialTenants;
    this.reset();
  }

  tenant(name: string): TenantState {
    let tenant = this.#tenants.get(name);
    if (tenant === undefined) {
      tenant = new TenantState(name);
      this.#tenants.set(name, tenant);
    }
    return tenant;
  }

  names(): string[] {
    return [...this.#tenants.keys()];
  }

  /** A tenant never seen gives an empty snapshot rather than an error. */
  snapshot(name: string): TenantSnapshot {
    return (this.#tenants.get(name) ?? new TenantState(name)).snapshot();
  }

  reset(): void {
    this.#tenants.clear();
    for (const name of this.#initialTenants) this.tenant(name);
  }
}
