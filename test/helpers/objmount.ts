/**
 * Runs the real `objmount` CLI against a local S3 server, and makes sure every mount it makes is
 * unmounted whatever happens to the test.
 */

import { execFile, execFileSync, spawn } from 'node:child_process';
import { type Stats, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { MountRegistry } from '../../src/daemon/registry.js';
import { AZURITE_ACCOUNT_KEY } from '../../src/demo/local-azurite.js';
import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY } from '../../src/demo/local-s3-server.js';

const run = promisify(execFile);

export const CLI = resolve(__dirname, '../../bin/objmount.js');

/** An environment with the local server's key and nothing that could reach the network. */
export function testEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('AWS_') && name !== 'AWS_CA_BUNDLE') delete env[name];
  return {
    ...env,
    AWS_ACCESS_KEY_ID: LOCAL_S3_ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: LOCAL_S3_SECRET_KEY,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/objmount-test-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/objmount-test-credentials',
    OBJMOUNT_RUNTIME_DIR: join(tmpdir(), 'objmount-test-runtime'),
    ...extra,
  };
}

/**
 * An environment for az:// mounts of Azurite: the development account's key (public, not a
 * secret) in AZURE_STORAGE_KEY, and no other Azure variable inherited from the machine.
 */
export function azureTestEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env = testEnv();
  for (const name of Object.keys(env)) if (name.startsWith('AZURE_STORAGE_')) delete env[name];
  return { ...env, AZURE_STORAGE_KEY: AZURITE_ACCOUNT_KEY, ...extra };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function objmount(args: string[], env: NodeJS.ProcessEnv = testEnv(), timeoutMs = 60_000): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env, timeout: timeoutMs });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Runs the CLI with `input` on its standard input (a secret that must not be an argument). */
export async function objmountWithInput(args: string[], input: string, env: NodeJS.ProcessEnv = testEnv()): Promise<CliResult> {
  const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  child.stdin.end(input);
  const code = await new Promise<number>((resolveCode) => child.once('close', (exit) => resolveCode(exit ?? 1)));
  return { code, stdout, stderr };
}

export function isMounted(mountpoint: string): boolean {
  const table = readFileSync('/proc/self/mountinfo', 'utf8');
  return table.split('\n').some((line) => line.split(' ')[4] === mountpoint);
}

/** Last-resort cleanup: lazily detach a mount a test left behind. */
export function forceUnmount(mountpoint: string): void {
  if (isMounted(mountpoint)) {
    try {
      execFileSync('fusermount3', ['-uz', mountpoint]);
    } catch {
      // already gone
    }
  }
}

export interface TestMount {
  mountpoint: string;
  logFile: string;
  unmount(): Promise<void>;
}

/** Mounts `source` (with '', the root view) from `endpoint` (or wherever its stored credential says, with '') in daemon mode; returns once live. */
export async function mountBucket(
  endpoint: string,
  source: string,
  extraArgs: string[] = [],
  env = testEnv(),
  /** Mount here (e.g. again, on a mountpoint a killed daemon left) instead of a new directory. */
  at?: string,
): Promise<TestMount> {
  const dir = mkdtempSync(join(tmpdir(), 'objmount-test-'));
  const mountpoint = at ?? join(dir, 'mnt');
  if (!at) mkdirSync(mountpoint);
  const logFile = join(dir, 'daemon.log');
  const endpointArgs = endpoint ? ['--endpoint', endpoint] : []; // '': the credential store says
  const result = await objmount(
    ['mount', ...(source ? [source] : []), mountpoint, ...endpointArgs, '--log-file', logFile, ...extraArgs],
    env,
  );
  if (result.code !== 0) {
    forceUnmount(mountpoint);
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    throw new Error(`mount failed (${result.code}): ${result.stderr}\n${log}`);
  }
  return {
    mountpoint,
    logFile,
    async unmount() {
      try {
        if (isMounted(mountpoint)) {
          const out = await objmount(['unmount', mountpoint], env);
          if (out.code !== 0) throw new Error(`unmount failed: ${out.stderr}`);
        }
      } finally {
        forceUnmount(mountpoint);
      }
    },
  };
}

/** The pid of the daemon serving `mountpoint`, from its registry record. */
export async function daemonPid(mountpoint: string, env: NodeJS.ProcessEnv = testEnv()): Promise<number> {
  const record = await new MountRegistry(env.OBJMOUNT_RUNTIME_DIR!).find(mountpoint);
  if (!record) throw new Error(`no daemon is recorded for ${mountpoint}`);
  return record.pid;
}

/**
 * The stat of a directory another client just made (a new prefix): a mount that listed its parent
 * less than --negative-ttl (1 s) ago shows it once that has passed (docs/SEMANTICS.md). A new file
 * is seen at once and needs no wait.
 */
export async function statWhenShown(path: string): Promise<Stats> {
  const start = Date.now();
  for (;;) {
    try {
      return statSync(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || Date.now() - start > 3000) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
