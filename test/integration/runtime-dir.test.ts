/**
 * The mount records and control sockets live only in a private runtime directory: never in a
 * shared one another user could create first, never in one that is not the user's own; and
 * `objmount unmount` signals only a recorded pid that is this user's objmount.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { CLI, forceUnmount, isMounted, mountBucket, objmount, testEnv } from '../helpers/objmount.js';

const run = promisify(execFile);
const NOBODY = 65534;

let server: LocalS3Server;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: ['runtime'] });
});

afterAll(async () => {
  await server?.close();
});

function privateDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `runtime-${name}-`));
  chmodSync(dir, 0o755);
  return dir;
}

describe('the runtime directory', () => {
  it('is refused, in one line, when a user has none of their own (no XDG_RUNTIME_DIR, no /run/user/UID)', async () => {
    const mnt = privateDir('nobody-mnt');
    const env = testEnv({ OBJMOUNT_RUNTIME_DIR: undefined, XDG_RUNTIME_DIR: undefined, HOME: mnt });
    // As another user (nobody has no login session, so no /run/user/65534).
    const result = await run(
      'setpriv',
      ['--reuid', String(NOBODY), '--regid', String(NOBODY), '--clear-groups', process.execPath, CLI, 'status'],
      { env },
    ).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code?: number; stderr?: string }) => ({ code: error.code ?? 1, stderr: error.stderr ?? '' }),
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toEqual([
      `objmount: no private runtime directory for the mount records: set XDG_RUNTIME_DIR (or OBJMOUNT_RUNTIME_DIR) to a directory only you can write, such as /run/user/${NOBODY} of a login session`,
    ]);
  });

  it('is refused when another user made it first, or others may write it; nothing is mounted', async () => {
    const base = privateDir('taken');
    const taken = join(base, 'objmount');
    mkdirSync(taken);
    chownSync(taken, NOBODY, NOBODY);
    const mnt = join(privateDir('taken-mnt'), 'mnt');
    mkdirSync(mnt);
    const env = testEnv({ OBJMOUNT_RUNTIME_DIR: taken });
    const mounted = await objmount(['mount', 's3://runtime', mnt, '--endpoint', server.endpoint], env);
    const wasMounted = isMounted(mnt);
    forceUnmount(mnt); // in every outcome
    expect(wasMounted).toBe(false);
    expect(mounted.code).not.toBe(0);
    expect(mounted.stderr).toContain(
      `the runtime directory ${taken} belongs to uid ${NOBODY}, not you (0): remove it, or set XDG_RUNTIME_DIR to a private directory`,
    );
    expect(readdirSync(taken)).toEqual([]); // no record, no socket
    chownSync(taken, 0, 0);
    chmodSync(taken, 0o777);
    const status = await objmount(['status'], env);
    expect(status.code).not.toBe(0);
    expect(status.stderr.trim()).toBe(
      `objmount: the runtime directory ${taken} may be written by other users (mode 777): remove it, or set XDG_RUNTIME_DIR to a private directory`,
    );
  });
});

describe('objmount unmount', () => {
  let stranger: ChildProcess | undefined;

  afterAll(() => {
    stranger?.kill('SIGKILL');
  });

  it('signals only the daemon that made the record: a reused pid is left alone', async () => {
    const env = testEnv({ OBJMOUNT_RUNTIME_DIR: join(privateDir('reused'), 'objmount') });
    const mount = await mountBucket(server.endpoint, 's3://runtime', [], env);
    try {
      // The record now names another program (as after the daemon died and its pid was reused).
      stranger = spawn('sleep', ['600'], { stdio: 'ignore' });
      const exited = new Promise<string>((resolveExit) => stranger!.once('exit', (code, signal) => resolveExit(signal ?? String(code))));
      const directory = env.OBJMOUNT_RUNTIME_DIR!;
      const file = readdirSync(directory).find((name) => name.endsWith('.json'))!;
      const record = JSON.parse(readFileSync(join(directory, file), 'utf8')) as { pid: number };
      writeFileSync(join(directory, file), JSON.stringify({ ...record, pid: stranger.pid }));
      const result = await objmount(['unmount', mount.mountpoint], env);
      expect(result.code, result.stderr).toBe(0);
      expect(isMounted(mount.mountpoint)).toBe(false);
      // The stranger was not signalled: it still runs, and only our SIGKILL ends it.
      expect(stranger.exitCode).toBeNull();
      stranger.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      stranger = undefined;
    } finally {
      await mount.unmount();
    }
  });
});
