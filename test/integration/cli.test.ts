/**
 * Bad input gets one clear line, a non-zero exit and nothing left mounted; the daemon mode,
 * unmount and the demo work as a user runs them.
 */

import { spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { CLI, type CliResult, forceUnmount, isMounted, mountBucket, objmount, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

let server: LocalS3Server;
let scratch: string;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: ['cli-test'] });
  scratch = mkdtempSync(join(tmpdir(), 'objmount-cli-'));
});

afterAll(async () => {
  await server?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function emptyDir(name: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** One line on stderr, no stack trace, non-zero exit, nothing mounted. */
function expectCleanFailure(result: CliResult, mountpoint: string | undefined, pattern: RegExp): void {
  const wasMounted = mountpoint ? isMounted(mountpoint) : false;
  if (mountpoint) forceUnmount(mountpoint);
  expect(wasMounted, `${mountpoint} must not be mounted`).toBe(false);
  expect(result.code, result.stderr).not.toBe(0);
  const lines = result.stderr.trim().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^objmount: /);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe('bad input', () => {
  it('a malformed source', async () => {
    const mnt = emptyDir('malformed');
    expectCleanFailure(await objmount(['mount', 'just-a-bucket', mnt]), mnt, /not a source: write it as s3:\/\/bucket/);
    expectCleanFailure(await objmount(['mount', 'ftp://bucket', mnt]), mnt, /ftp:\/\/ scheme is not supported/);
  });

  it('a mountpoint that is missing, a file, not empty, or already mounted', async () => {
    const missing = join(scratch, 'does-not-exist');
    expectCleanFailure(
      await objmount(['mount', 's3://cli-test', missing, '--endpoint', server.endpoint]),
      undefined,
      /does not exist: create it with mkdir -p/,
    );
    const file = join(scratch, 'a-file');
    writeFileSync(file, 'x');
    expectCleanFailure(await objmount(['mount', 's3://cli-test', file, '--endpoint', server.endpoint]), undefined, /is not a directory/);
    const full = emptyDir('full');
    writeFileSync(join(full, 'something'), 'x');
    expectCleanFailure(await objmount(['mount', 's3://cli-test', full, '--endpoint', server.endpoint]), full, /is not empty/);

    const first = await mountBucket(server.endpoint, 's3://cli-test');
    try {
      const again = await objmount(['mount', 's3://cli-test', first.mountpoint, '--endpoint', server.endpoint]);
      expect(again.code).not.toBe(0);
      expect(again.stderr.trim().split('\n')).toHaveLength(1);
      expect(again.stderr).toMatch(/is already mounted \(s3:\/\/cli-test, fuse.objmount\)/);
      expect(isMounted(first.mountpoint)).toBe(true); // the first mount is untouched
    } finally {
      await first.unmount();
    }
  });

  it('an unreachable endpoint', async () => {
    const mnt = emptyDir('unreachable');
    expectCleanFailure(
      await objmount(['mount', 's3://cli-test', mnt, '--endpoint', 'http://127.0.0.1:9']),
      mnt,
      /cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\).*check --endpoint/,
    );
  });

  it("a --staging-dir or --cache-dir other users may write in, or that is not the user's, or not a directory; nothing made in it", async () => {
    const mount = (mnt: string, ...extra: string[]) => objmount(['mount', 's3://cli-test', mnt, '--endpoint', server.endpoint, ...extra]);
    const shared = emptyDir('shared-staging');
    chmodSync(shared, 0o1777); // as /tmp is
    let mnt = emptyDir('private-dirs-1');
    expectCleanFailure(
      await mount(mnt, '--staging-dir', shared),
      mnt,
      /^objmount: cannot use --staging-dir \S+shared-staging: group and others may write in it \(mode 1777\).*run 'chmod go-w \S+shared-staging'/,
    );
    expect(readdirSync(shared)).toEqual([]);
    const groupCache = emptyDir('group-cache');
    chmodSync(groupCache, 0o770);
    mnt = emptyDir('private-dirs-2');
    expectCleanFailure(
      await mount(mnt, '--cache-dir', groupCache),
      mnt,
      /cannot use --cache-dir \S+group-cache: its group may write in it \(mode 0770\)/,
    );
    expect(readdirSync(groupCache)).toEqual([]);
    const othersStaging = emptyDir('others-staging');
    chownSync(othersStaging, 4321, 4321);
    chmodSync(othersStaging, 0o700);
    mnt = emptyDir('private-dirs-3');
    expectCleanFailure(
      await mount(mnt, '--staging-dir', othersStaging),
      mnt,
      /cannot use --staging-dir \S+others-staging: it belongs to uid 4321, not to this user \(uid 0\).*give a directory of your own/,
    );
    expect(readdirSync(othersStaging)).toEqual([]);
    const file = join(scratch, 'a-file');
    writeFileSync(file, '');
    mnt = emptyDir('private-dirs-4');
    expectCleanFailure(await mount(mnt, '--cache-dir', file), mnt, /cannot use --cache-dir \S+a-file: it is not a directory/);
    // A private one (and a missing one, made 0700) mounts.
    const mine = emptyDir('my-staging');
    chmodSync(mine, 0o755);
    mnt = emptyDir('private-dirs-5');
    const made = join(scratch, 'made-cache');
    const ok = await mount(mnt, '--staging-dir', mine, '--cache-dir', made);
    try {
      expect(ok.code, ok.stderr).toBe(0);
      expect(statSync(made).mode & 0o777).toBe(0o700);
    } finally {
      await objmount(['unmount', mnt]);
      forceUnmount(mnt);
    }
  });

  it('a bucket that does not exist', async () => {
    const mnt = emptyDir('nobucket');
    expectCleanFailure(
      await objmount(['mount', 's3://no-such-bucket', mnt, '--endpoint', server.endpoint]),
      mnt,
      /bucket 'no-such-bucket' does not exist at http:\/\/127\.0\.0\.1/,
    );
  });

  it('a wrong secret or an unknown key names the key and what the store said, never the secret', async () => {
    const mnt = emptyDir('wrongkey');
    const secret = 'wrong-secret-do-not-print-me';
    const wrongSecret = await objmount(
      ['mount', 's3://cli-test', mnt, '--endpoint', server.endpoint],
      testEnv({ AWS_SECRET_ACCESS_KEY: secret }),
    );
    expectCleanFailure(wrongSecret, mnt, /rejected access key S3RVER from the environment \(AWS_ACCESS_KEY_ID\): SignatureDoesNotMatch/);
    expect(wrongSecret.stderr + wrongSecret.stdout).not.toContain(secret);
    const unknownKey = await objmount(
      ['mount', 's3://cli-test', mnt, '--endpoint', server.endpoint],
      testEnv({ AWS_ACCESS_KEY_ID: 'AKIAUNKNOWN' }),
    );
    expectCleanFailure(unknownKey, mnt, /rejected access key AKIAUNKNOWN .*InvalidAccessKeyId/);
  });

  it('no credentials at all', async () => {
    const mnt = emptyDir('nocreds');
    const result = await objmount(
      ['mount', 's3://cli-test', mnt, '--endpoint', server.endpoint],
      testEnv({ AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined }),
    );
    expectCleanFailure(result, mnt, /no credentials found for s3:\/\/cli-test: set AWS_ACCESS_KEY_ID/);
  });

  it('bad option values and a missing command', async () => {
    const mnt = emptyDir('badopts');
    expectCleanFailure(
      await objmount(['mount', 's3://cli-test', mnt, '--file-mode', 'rwx']),
      mnt,
      /--file-mode 'rwx' is not an octal mode/,
    );
    expectCleanFailure(await objmount(['mount', 's3://cli-test', mnt, '--part-size', 'big']), mnt, /--part-size: 'big' is not a size/);
    // Numbers are checked against their ranges before anything is mounted (--uid abc used to mount, and every stat failed).
    const badNumbers: Array<[string, string, RegExp]> = [
      ['--uid', 'abc', /^objmount: --uid must be a whole number from 0 to 4294967294 \(not a number was given\)$/],
      ['--gid', '-1', /^objmount: --gid must be a whole number from 0 to 4294967294 \(not -1\)$/],
      ['--metadata-ttl', 'soon', /^objmount: --metadata-ttl must be a number from 0 to \d+ \(not a number was given\)$/],
      ['--negative-ttl', '-1', /^objmount: --negative-ttl must be a number from 0/],
      ['--part-size', '1K', /^objmount: --part-size 1K is out of range: use 1M to 5G$/],
      ['--upload-concurrency', '0', /^objmount: --upload-concurrency must be a whole number from 1 to 256 \(not 0\)$/],
      ['--max-connections', '2.5', /^objmount: --max-connections must be a whole number from 1 to 4096 \(not 2.5\)$/],
      ['--request-timeout', '0', /^objmount: --request-timeout must be a number from 0.1 to 86400 \(not 0\)$/],
      ['--min-transfer-rate', 'fast', /^objmount: --min-transfer-rate: 'fast' is not a size/],
    ];
    for (const [flag, value, message] of badNumbers)
      expectCleanFailure(await objmount(['mount', 's3://cli-test', mnt, flag, value]), mnt, message);
    expectCleanFailure(
      await objmount(['mount', 's3://cli-test', mnt, '--memory-limit', '16M']),
      mnt,
      /--memory-limit 16 MiB is too small for 8 MiB blocks/,
    );
    expectCleanFailure(
      await objmount(['mount', 's3://cli-test', mnt, '--max-upload-parts', '0']),
      mnt,
      /--max-upload-parts must be a whole number from 1 to 10000/,
    );
    expectCleanFailure(await objmount([]), undefined, /name a command/);
  });

  it('a malformed configuration file, or an unknown key in it', async () => {
    const mnt = emptyDir('badconfig');
    const configDir = emptyDir('badconfig-dir');
    writeFileSync(join(configDir, 'config.toml'), '# defaults\nblock-size = "8M"\nblock-sise = "16M"\n');
    const env = testEnv({ OBJMOUNT_CONFIG_DIR: configDir });
    expectCleanFailure(
      await objmount(['mount', 's3://cli-test', mnt], env),
      mnt,
      new RegExp(`${configDir}/config.toml:3: 'block-sise' is not a mount option`),
    );
    writeFileSync(join(configDir, 'config.toml'), 'file-mode = = 1\n');
    expectCleanFailure(await objmount(['mount', 's3://cli-test', mnt], env), mnt, /config.toml:1: Invalid TOML document/);
  });

  it('unmount of something that is not mounted', async () => {
    const dir = emptyDir('not-mounted');
    expectCleanFailure(await objmount(['unmount', dir]), undefined, /is not mounted/);
  });
});

describe('daemon mode', () => {
  it('returns once the mount is live, serves it detached, and unmount stops the daemon', async () => {
    const m = await mountBucket(server.endpoint, 's3://cli-test');
    try {
      expect(isMounted(m.mountpoint)).toBe(true);
      writeFileSync(join(m.mountpoint, 'daemon-file'), 'served');
      expect(readFileSync(join(m.mountpoint, 'daemon-file'), 'utf8')).toBe('served');
      const result = await objmount(['unmount', m.mountpoint]);
      expect(result).toMatchObject({ code: 0 });
      expect(isMounted(m.mountpoint)).toBe(false);
      // The daemon's log is JSON lines (pino): level, time, message.
      const entries = readFileSync(m.logFile, 'utf8')
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { level: string; time: string; msg: string });
      for (const entry of entries) expect(Object.keys(entry)).toEqual(['level', 'time', 'msg']);
      expect(entries[0]).toMatchObject({
        level: 'info',
        msg: expect.stringMatching(/^mounted s3:\/\/cli-test on .* \(access key S3RVER from the environment/),
      });
      expect(entries.at(-1)).toMatchObject({ level: 'info', msg: expect.stringMatching(/^unmounted /) });
    } finally {
      await m.unmount();
    }
  });

  it('takes defaults from the configuration file, and the command line overrides them', async () => {
    const configDir = emptyDir('config-dir');
    writeFileSync(join(configDir, 'config.toml'), 'file-mode = "600"\nuid = 4242\n');
    const env = testEnv({ OBJMOUNT_CONFIG_DIR: configDir });
    const mount = await mountBucket(server.endpoint, 's3://cli-test', ['--uid', '777'], env);
    try {
      const sdk = s3Client(server.endpoint);
      await sdk.send(new PutObjectCommand({ Bucket: 'cli-test', Key: 'config-plain', Body: 'x' }));
      sdk.destroy();
      const st = statSync(join(mount.mountpoint, 'config-plain'));
      expect([st.mode & 0o777, st.uid]).toEqual([0o600, 777]);
    } finally {
      await mount.unmount();
    }
  });

  it('refuses to unmount a busy mount without --force, and detaches it with --force', async () => {
    const m = await mountBucket(server.endpoint, 's3://cli-test');
    const holder = spawn('sleep', ['30'], { cwd: m.mountpoint });
    try {
      await new Promise((r) => holder.once('spawn', r));
      const busy = await objmount(['unmount', m.mountpoint]);
      expect(busy.code).not.toBe(0);
      expect(busy.stderr).toMatch(/is busy: close the files .* or use --force/);
      expect(isMounted(m.mountpoint)).toBe(true);
      expect(await objmount(['unmount', '--force', m.mountpoint])).toMatchObject({ code: 0 });
      expect(isMounted(m.mountpoint)).toBe(false);
    } finally {
      holder.kill();
      await m.unmount();
    }
  });
});

describe('objmount demo', () => {
  it('mounts a sample bucket, serves it, and unmounts cleanly on Ctrl-C', async () => {
    const cwd = mkdtempSync(join(tmpdir(), 'objmount-demo-test-'));
    const mnt = join(cwd, 'objmount-demo');
    const demo = spawn(process.execPath, [CLI, 'demo'], { cwd, env: testEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    demo.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    demo.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((r) => demo.on('exit', (code) => r(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        demo.stdout.on('data', () => stdout.includes('Press Ctrl-C') && resolve());
        void exited.then((code) => reject(new Error(`demo exited early (${code}): ${stderr}`)));
      });
      expect(stdout).toContain(`is mounted on ${mnt}`);
      expect(readdirSync(mnt).sort()).toEqual(['README.txt', 'data', 'hello.txt', 'notes', 'photos']);
      expect(readFileSync(join(mnt, 'hello.txt'), 'utf8')).toBe('Hello from object storage!\n');
      expect(readdirSync(join(mnt, 'notes', '2026'))).toEqual(['november.md']);
      writeFileSync(join(mnt, 'new.txt'), 'written through FUSE');
      expect(readFileSync(join(mnt, 'new.txt'), 'utf8')).toBe('written through FUSE');
      demo.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(isMounted(mnt)).toBe(false);
      expect(existsSync(mnt)).toBe(false);
      expect(stdout).toContain('unmounted, server stopped');
      expect(stderr).toBe('');
    } finally {
      demo.kill('SIGKILL');
      forceUnmount(mnt);
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});
