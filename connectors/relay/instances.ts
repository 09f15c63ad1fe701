import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { CheckpointStore } from '../../shared/state/checkpoints.js';

// package.json is two folders up from connectors/relay/ in the sources, three from dist/connectors/relay/.
const packageJson = new URL(
  import.meta.url.includes('/dist/connectors/') ? '../../../package.json' : '../../package.json',
  import.meta.url,
);
/** The version the heartbeat reports. */
export const RELAY_VERSION: string = (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;

/** How often a relay writes its heartbeat; it counts as alive for three of them. */
export const HEARTBEAT_MS = 5_000;
const ALIVE_FOR_MS = 3 * HEARTBEAT_MS;

const count = z.number().int().nonnegative();
const time = z.number().finite();

/**
 * What one relay instance says about itself, in the store every instance shares. Read back through this schema: another
 * version's heartbeat, or anything else written under the scope, is checked, not trusted.
 */
const instanceHeartbeatSchema = z.object({
  id: z.string(),
  version: z.string(),
  host: z.string(),
  pid: z.number().int(),
  target: z.string(),
  startedAt: time,
  lastSeenAt: time,
  /** What this instance's worker settled since it started. */
  delivered: count,
  duplicate: count,
  dead: count,
  /** When it stopped cleanly; null while it runs (or if it died). */
  stoppedAt: time.nullable(),
});
export type InstanceHeartbeat = z.infer<typeof instanceHeartbeatSchema>;

/** The heartbeat in a stored position, or null when it is not one (unreadable JSON, another shape). */
function heartbeatOf(position: string): InstanceHeartbeat | null {
  try {
    const parsed = instanceHeartbeatSchema.safeParse(JSON.parse(position));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export interface InstanceView extends InstanceHeartbeat {
  readonly alive: boolean;
  /**
   * How long ago its last heartbeat was saved, on the store's clock: instances whose hosts' clocks disagree are judged
   * alike. For a heartbeat saved before the store kept that time, this host's clock against the writer's stamp.
   */
  readonly seenAgoMs: number;
}

export interface InstanceRegistry {
  /** Every instance that wrote a heartbeat for the tenant, newest first, with whether it is alive now. */
  list(): Promise<InstanceView[]>;
}

/**
 * Heartbeats live beside the stream checkpoints (every engine has them), scope `oncekit-instances:{tenant}`, one stream
 * per instance id, the heartbeat as JSON. Several relays on one store see each other; a stopped one stays listed, not alive.
 * Whether one is alive is judged by how long ago the store saved its heartbeat, on the store's clock.
 */
export function instanceRegistry(checkpoints: CheckpointStore, tenant: string): InstanceRegistry {
  const scope = `oncekit-instances:${tenant}`;
  return {
    async list() {
      const now = Date.now();
      const rows = await checkpoints.list(scope, 200);
      const instances = rows.flatMap(({ position, savedAgoMs }): InstanceView[] => {
        const beat = heartbeatOf(position);
        if (beat === null) return [];
        const seenAgoMs = savedAgoMs ?? Math.max(0, now - beat.lastSeenAt);
        return [{ ...beat, alive: beat.stoppedAt === null && seenAgoMs < ALIVE_FOR_MS, seenAgoMs }];
      });
      return instances.sort((a, b) => b.lastSeenAt - a.lastSeenAt);
    },
  };
}

export interface Heartbeat {
  readonly id: string;
  /** Counts a settlement of this instance's worker. */
  note(to: 'delivered' | 'duplicate' | 'dead' | 'pending'): void;
  stop(): Promise<void>;
}

/** Writes this instance's heartbeat now and every HEARTBEAT_MS; a failed write is reported, never fatal. */
export function startHeartbeat(options: {
  readonly checkpoints: CheckpointStore;
  readonly tenant: string;
  readonly target: string;
  readonly id: string;
  readonly version: string;
  readonly onError: (error: unknown) => void;
}): Heartbeat {
  const scope = `oncekit-instances:${options.tenant}`;
  const startedAt = Date.now();
  const settled = { delivered: 0, duplicate: 0, dead: 0 };
  let writing: Promise<void> = Promise.resolve();
  let stoppedAt: number | null = null;
  const write = (): void => {
    const beat: InstanceHeartbeat = {
      id: options.id,
      version: options.version,
      host: hostname(),
      pid: process.pid,
      target: options.target,
      startedAt,
      lastSeenAt: Date.now(),
      ...settled,
      stoppedAt,
    };
    writing = writing.then(() => options.checkpoints.save(scope, options.id, JSON.stringify(beat)).catch(options.onError));
  };
  write();
  const timer = setInterval(write, HEARTBEAT_MS);
  timer.unref();
  return {
    id: options.id,
    note(to) {
      if (to !== 'pending') settled[to] += 1;
    },
    async stop() {
      clearInterval(timer);
      stoppedAt = Date.now();
      write();
      await writing;
    },
  };
}
