import { z } from 'zod';
import { type FieldIssue, InvalidInputError } from '../../shared/errors.js';
import { formatPath, parseInput } from '../../shared/validation.js';

/** Statuses a queued `status` fault can answer with. 502/504 come back as a gateway's HTML page, the rest as JSON. */
export type InjectedStatus = 500 | 502 | 503 | 504 | 408;

/** One scripted fault; the queue is consumed one entry per API request, before any rate is drawn. */
export type QueuedFault =
  | { readonly kind: 'status'; readonly status: InjectedStatus }
  /** 429 with Retry-After (default: the config's `retryAfterSeconds`, else 1). */
  | { readonly kind: 'throttle'; readonly retryAfterSeconds?: number }
  /** The socket is reset before any response; the request is not processed. */
  | { readonly kind: 'drop' }
  /** The request is processed (event and key stored), then the answer is lost: 503, or a reset socket. */
  | { readonly kind: 'record-then-fail'; readonly failWith: 'status' | 'drop' }
  /** The request is answered normally after `ms`. */
  | { readonly kind: 'latency'; readonly ms: number };

export type FaultKind = QueuedFault['kind'];

/** Per-request probabilities (0–1, at most 1 in total), drawn from a PRNG seeded with `seed`. */
export interface FaultConfig {
  readonly status500?: number;
  readonly status503?: number;
  readonly status429?: number;
  readonly drop?: number;
  /** Answered with 503 after the event was stored. */
  readonly recordThenFail?: number;
  /** Added to every API request. */
  readonly latencyMs?: number;
  /** Retry-After of rate-drawn 429s and of queued throttles that give none; default 1. */
  readonly retryAfterSeconds?: number;
  readonly seed?: number;
}

export interface FaultState {
  readonly config: FaultConfig;
  /** The seed in use: the config's, or a random one drawn when the config gave none. */
  readonly seed: number;
  readonly queued: readonly QueuedFault[];
  /** How many API requests each kind of fault hit since start or the last clear(). */
  readonly injected: Readonly<Record<FaultKind, number>>;
}

export interface FaultController {
  enqueue(...faults: QueuedFault[]): void;
  /** Replaces the rates (a FaultConfig or a spec string) and reseeds; the queue is kept. */
  set(config: FaultConfig | string): void;
  /** Removes every rate and every queued fault. */
  clear(): void;
  state(): FaultState;
}

export const DEFAULT_RETRY_AFTER_SECONDS = 1;
const MAX_LATENCY_MS = 60_000;
const MAX_RETRY_AFTER_SECONDS = 86_400;

const rate = z
  .number({ error: 'expected a number between 0 and 1' })
  .min(0, 'a rate must be between 0 and 1')
  .max(1, 'a rate must be between 0 and 1');
const latency = z
  .number({ error: 'expected milliseconds' })
  .int('expected whole milliseconds')
  .min(0, 'must not be negative')
  .max(MAX_LATENCY_MS, `at most ${MAX_LATENCY_MS} ms`);
const retryAfter = z
  .number({ error: 'expected seconds' })
  .int('expected whole seconds')
  .min(0, 'must not be negative')
  .max(MAX_RETRY_AFTER_SECONDS, `at most ${MAX_RETRY_AFTER_SECONDS} s`);

// Draw order of the rates; one uniform number per request falls into at most one of them.
const RATE_FIELDS = ['drop', 'status500', 'status503', 'status429', 'recordThenFail'] as const;

export const faultConfigSchema = z
  .strictObject({
    status500: rate.optional(),
    status503: rate.optional(),
    status429: rate.optional(),
    drop: rate.optional(),
    recordThenFail: rate.optional(),
    latencyMs: latency.optional(),
    retryAfterSeconds: retryAfter.optional(),
    seed: z.number({ error: 'expected an integer' }).int('expected an integer').optional(),
  })
  .superRefine((config, ctx) => {
    const total = RATE_FIELDS.reduce((sum, field) => sum + (config[field] ?? 0), 0);
    if (total > 1 + 1e-9) ctx.addIssue({ code: 'custom', message: `the rates add up to ${total}; they may add up to at most 1`, path: [] });
  });

export const queuedFaultSchema = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({
      kind: z.literal('status'),
      status: z.union([z.literal(500), z.literal(502), z.literal(503), z.literal(504), z.literal(408)], {
        error: 'expected one of 500, 502, 503, 504, 408',
      }),
    }),
    z.strictObject({ kind: z.literal('throttle'), retryAfterSeconds: retryAfter.optional() }),
    z.strictObject({ kind: z.literal('drop') }),
    z.strictObject({ kind: z.literal('record-then-fail'), failWith: z.enum(['status', 'drop'], { error: 'expected "status" or "drop"' }) }),
    z.strictObject({ kind: z.literal('latency'), ms: latency }),
  ],
  { error: 'expected kind "status", "throttle", "drop", "record-then-fail" or "latency"' },
);

const queuedFaultsSchema = z.array(queuedFaultSchema, { error: 'expected a list of faults' });

/** Drops keys zod left as undefined, so the result fits FaultConfig under exactOptionalPropertyTypes. */
function definedOnly<T extends object>(value: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(value).filter(([, member]) => member !== undefined)) as {
    [K in keyof T]: Exclude<T[K], undefined>;
  };
}

export function validateFaultConfig(value: unknown): FaultConfig {
  return definedOnly(parseInput(faultConfigSchema, value, 'invalid fault config'));
}

export function validateQueuedFaults(value: unknown): QueuedFault[] {
  return parseInput(queuedFaultsSchema, value, 'invalid queued fault').map((fault) => definedOnly(fault) as QueuedFault);
}

const SPEC_NAMES: Readonly<Record<string, keyof FaultConfig>> = {
  '500': 'status500',
  '503': 'status503',
  '429': 'status429',
  drop: 'drop',
  'record-then-fail': 'recordThenFail',
  latency: 'latencyMs',
  'retry-after': 'retryAfterSeconds',
  seed: 'seed',
};
const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Parses the CLI form `500=0.1,503=0.05,429=0.05,retry-after=2,drop=0.02,record-then-fail=0.05,latency=20,seed=42`.
 * Every part is optional; each bad part is named in the InvalidInputError.
 */
export function parseFaultSpec(spec: string): FaultConfig {
  const issues: FieldIssue[] = [];
  const raw: Record<string, number> = {};
  const partOf = new Map<string, string>();
  for (const piece of spec.split(',')) {
    const part = piece.trim();
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq).trim();
    const text = eq < 0 ? '' : part.slice(eq + 1).trim();
    const field = Object.hasOwn(SPEC_NAMES, name) ? SPEC_NAMES[name] : undefined;
    if (eq < 0) issues.push({ field: part, reason: 'expected name=value' });
    else if (field === undefined)
      issues.push({ field: part, reason: `unknown fault "${name}"; expected one of ${Object.keys(SPEC_NAMES).join(', ')}` });
    else if (partOf.has(field)) issues.push({ field: part, reason: `"${name}" is given more than once` });
    else if (!NUMBER.test(text)) issues.push({ field: part, reason: `${JSON.stringify(text)} is not a number` });
    else {
      partOf.set(field, part);
      raw[field] = Number(text);
    }
  }
  const result = faultConfigSchema.safeParse(raw);
  if (!result.success) {
    const rateParts = RATE_FIELDS.flatMap((field) => partOf.get(field) ?? []).join(',');
    for (const issue of result.error.issues) {
      const field = issue.path[0];
      const part = typeof field === 'string' ? (partOf.get(field) ?? formatPath(issue.path)) : rateParts;
      issues.push({ field: part, reason: issue.message });
    }
  }
  if (issues.length > 0 || !result.success) throw new InvalidInputError(issues, 'invalid fault spec');
  return definedOnly(result.data);
}

/** mulberry32: tiny, fast and good enough to make fault sequences reproducible from a seed. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What the server does to one API request. */
export type FaultAction =
  | { readonly kind: 'status'; readonly status: InjectedStatus }
  | { readonly kind: 'throttle'; readonly retryAfterSeconds: number }
  | { readonly kind: 'drop' }
  | { readonly kind: 'record-then-fail'; readonly failWith: 'status' | 'drop' };

export interface FaultPlan {
  readonly latencyMs: number;
  readonly action: FaultAction | null;
}

const NO_FAULT: FaultPlan = { latencyMs: 0, action: null };
const DROP: FaultAction = { kind: 'drop' };
const STATUS_500: FaultAction = { kind: 'status', status: 500 };
const STATUS_503: FaultAction = { kind: 'status', status: 503 };
const RECORD_THEN_503: FaultAction = { kind: 'record-then-fail', failWith: 'status' };

const zeroCounts = (): Record<FaultKind, number> => ({ status: 0, throttle: 0, drop: 0, 'record-then-fail': 0, latency: 0 });

export class FaultInjector implements FaultController {
  #config: FaultConfig = {};
  #seed = 0;
  #random: () => number = Math.random;
  #hasRates = false;
  #queue: QueuedFault[] = [];
  #injected = zeroCounts();

  constructor(config: FaultConfig | string = {}) {
    this.set(config);
  }

  enqueue(...faults: QueuedFault[]): void {
    this.#queue.push(...validateQueuedFaults(faults));
  }

  set(config: FaultConfig | string): void {
    const valid = typeof config === 'string' ? parseFaultSpec(config) : validateFaultConfig(config);
    this.#config = valid;
    this.#seed = valid.seed === undefined ? Math.floor(Math.random() * 0x100000000) : valid.seed >>> 0;
    this.#random = seededRandom(this.#seed);
    this.#hasRates = RATE_FIELDS.some((field) => (valid[field] ?? 0) > 0);
  }

  clear(): void {
    this.set({});
    this.#queue = [];
    this.#injected = zeroCounts();
  }

  state(): FaultState {
    return { config: { ...this.#config }, seed: this.#seed, queued: [...this.#queue], injected: { ...this.#injected } };
  }

  /** Decides the fault of the next API request: the queue's head if any, else one draw against the rates. */
  draw(): FaultPlan {
    const config = this.#config;
    const baseLatency = config.latencyMs ?? 0;
    const queued = this.#queue.shift();
    let plan: FaultPlan;
    if (queued !== undefined) plan = this.#fromQueue(queued, baseLatency);
    else if (this.#hasRates) plan = { latencyMs: baseLatency, action: this.#fromRates(config) };
    else plan = baseLatency === 0 ? NO_FAULT : { latencyMs: baseLatency, action: null };
    if (plan.action !== null) this.#injected[plan.action.kind] += 1;
    if (plan.latencyMs > 0) this.#injected.latency += 1;
    return plan;
  }

  #fromQueue(fault: QueuedFault, baseLatency: number): FaultPlan {
    switch (fault.kind) {
      case 'latency':
        return { latencyMs: baseLatency + fault.ms, action: null };
      case 'throttle':
        return {
          latencyMs: baseLatency,
          action: {
            kind: 'throttle',
            retryAfterSeconds: fault.retryAfterSeconds ?? this.#config.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS,
          },
        };
      default:
        return { latencyMs: baseLatency, action: fault };
    }
  }

  #fromRates(config: FaultConfig): FaultAction | null {
    const draw = this.#random();
    let edge = config.drop ?? 0;
    if (draw < edge) return DROP;
    edge += config.status500 ?? 0;
    if (draw < edge) return STATUS_500;
    edge += config.status503 ?? 0;
    if (draw < edge) return STATUS_503;
    edge += config.status429 ?? 0;
    if (draw < edge) return { kind: 'throttle', retryAfterSeconds: config.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS };
    edge += config.recordThenFail ?? 0;
    if (draw < edge) return RECORD_THEN_503;
    return null;
  }
}
