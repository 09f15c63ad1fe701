import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** The built CLI entry: next to this file in dist/cli/, or there from the source tree (tests run the sources). */
export const ONCEKIT_BIN = fileURLToPath(
  new URL(import.meta.url.includes('/dist/cli/') ? './oncekit.js' : '../dist/cli/oncekit.js', import.meta.url),
);

export interface RunningCommand {
  readonly child: ChildProcess;
  /** The first line the command printed, e.g. "oncekit sandbox listening on http://127.0.0.1:PORT". */
  readonly firstLine: string;
  /** The URL in the first line, when there is one. */
  readonly url: string | null;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts `oncekit <args>` as a child process and resolves once it printed its first line, so benchmarks and tests
 * measure a server in its own process, as it is deployed.
 */
export async function startOncekit(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 15_000,
): Promise<RunningCommand> {
  const child = spawn(process.execPath, [ONCEKIT_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const firstLine = await new Promise<string>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`oncekit ${args.join(' ')} printed nothing in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const end = stdout.indexOf('\n');
      if (end >= 0) {
        clearTimeout(timer);
        resolve(stdout.slice(0, end));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`oncekit ${args.join(' ')} exited with ${code}: ${stderr}`));
    });
  });
  const url = /(https?:\/\/\S+)/.exec(firstLine)?.[1] ?? null;
  return {
    child,
    firstLine,
    url,
    async stop(signal = 'SIGTERM') {
      // A process killed by a signal has no exit code, only a signal code.
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
  };
}
