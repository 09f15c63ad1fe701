import { spawn } from 'node:child_process';
import { ONCEKIT_BIN } from '../../cli/spawn-self.js';

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built `oncekit` binary as a user would, with its own environment and optional stdin. */
export function runCli(
  args: readonly string[],
  options: { env?: Record<string, string | undefined>; input?: string; cwd?: string } = {},
): Promise<CliRun> {
  const env: Record<string, string | undefined> = { PATH: process.env.PATH, ...options.env };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ONCEKIT_BIN, ...args], {
      env: env as NodeJS.ProcessEnv,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}
