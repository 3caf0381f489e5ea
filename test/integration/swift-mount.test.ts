/**
 * A real FUSE mount of a container on a single-node Swift (swift://, tempauth v1), written and
 * read through ordinary file calls and checked through Swift's own API; credentials imported
 * from an OpenStack RC file and an rclone section, the root view's swift/<container>; and the
 * bad inputs of a Swift mount, each one clear line.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalSwift, SWIFT_TEST_KEY, SWIFT_TEST_USER, startLocalSwift, swiftToken } from '../../src/demo/local-swift.js';
import { CLI, type CliResult, type TestMount, isMounted, mountBucket, objmount, statWhenShown, testEnv } from '../helpers/objmount.js';

const CONTAINER = 'mounted';
const SOURCE = `swift://${CONTAINER}`;
const MiB = 1024 * 1024;

let swift: LocalSwift;
let token: string;
let scratch: string;

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** OS_* as a sourced v1 RC file leaves them, and an empty credential store. */
function swiftEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env = testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'no-store') });
  for (const name of Object.keys(env)) if (name.startsWith('OS_') || name.startsWith('ST_')) delete env[name];
  return { ...env, OS_AUTH_URL: swift.authUrl, OS_USERNAME: SWIFT_TEST_USER, OS_PASSWORD: SWIFT_TEST_KEY, OS_AUTH_VERSION: '1', ...extra };
}

async function raw(method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Response> {
  return fetch(`${swift.storageUrl}/${path}`, { method, headers: { 'x-auth-token': token, ...headers }, body });
}

async function names(container: string, prefix = ''): Promise<string[]> {
  const response = await raw('GET', `${container}?format=json&prefix=${encodeURIComponent(prefix)}`);
  if (response.status === 404) return [];
  return ((await response.json()) as Array<{ name: string }>).map((entry) => entry.name).sort();
}

async function bytesOf(key: string): Promise<Buffer> {
  return Buffer.from(await (await raw('GET', `${CONTAINER}/${key}`)).arrayBuffer());
}

beforeAll(async () => {
  swift = await startLocalSwift({ containers: [CONTAINER] });
  token = await swiftToken(swift.authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
  scratch = mkdtempSync(join(tmpdir(), 'objmount-swift-'));
});

afterAll(async () => {
  await swift?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('a mounted Swift container', () => {
  let mount: TestMount;
  let mnt: string;

  beforeAll(async () => {
    mount = await mountBucket('', SOURCE, ['--part-size', '4M'], swiftEnv());
    mnt = mount.mountpoint;
  });

  afterAll(async () => {
    await mount?.unmount();
  });

  it('writes a small file and reads it back; Swift holds the same bytes with its mode in X-Object-Meta-Mode', async () => {
    writeFileSync(join(mnt, 'hello.txt'), 'hello swift\n', { mode: 0o640 });
    expect(readFileSync(join(mnt, 'hello.txt'), 'utf8')).toBe('hello swift\n');
    const head = await raw('HEAD', `${CONTAINER}/hello.txt`);
    expect(Number(head.headers.get('x-object-meta-mode')) & 0o777).toBe(0o640);
    expect((await bytesOf('hello.txt')).toString()).toBe('hello swift\n');
    expect(statSync(join(mnt, 'hello.txt')).mode & 0o777).toBe(0o640);
    writeFileSync(join(mnt, 'empty'), '');
    expect(readFileSync(join(mnt, 'empty')).length).toBe(0);
    expect(await names(CONTAINER)).toEqual(['empty', 'hello.txt']);
  });

  it('makes a FIFO and a device node: empty objects with their type in X-Object-Meta-Mode, the device number in -Rdev', async () => {
    execFileSync('sh', ['-c', 'umask 022 && mkfifo fifo && mknod chr c 1 3'], { cwd: mnt });
    expect((await raw('HEAD', `${CONTAINER}/fifo`)).headers.get('x-object-meta-mode')).toBe('4516');
    const chr = (await raw('HEAD', `${CONTAINER}/chr`)).headers;
    expect([chr.get('content-length'), chr.get('x-object-meta-mode'), chr.get('x-object-meta-rdev')]).toEqual(['0', '8612', '259']);
    expect(statSync(join(mnt, 'fifo')).isFIFO()).toBe(true);
    expect(statSync(join(mnt, 'chr'))).toMatchObject({ mode: 0o20644, rdev: 259 });
    unlinkSync(join(mnt, 'fifo'));
    unlinkSync(join(mnt, 'chr'));
  });

  it('writes a 20 MiB file as a Static Large Object and reads it back byte-identical, whole and from the middle', async () => {
    const data = randomBytes(20 * MiB);
    const local = join(scratch, 'big.bin');
    writeFileSync(local, data);
    execFileSync('cp', [local, join(mnt, 'big.bin')]);
    expect((await raw('HEAD', `${CONTAINER}/big.bin`)).headers.get('x-static-large-object')).toBe('True');
    expect((await names(`${CONTAINER}_segments`, 'big.bin/')).length).toBeGreaterThan(1);
    expect(sha(await bytesOf('big.bin'))).toBe(sha(data));
    expect(statSync(join(mnt, 'big.bin')).size).toBe(data.length);
    expect(sha(readFileSync(join(mnt, 'big.bin')))).toBe(sha(data));
    const middle = Buffer.alloc(2 * MiB);
    const fd = openSync(join(mnt, 'big.bin'), 'r');
    try {
      expect(readSync(fd, middle, 0, middle.length, 13 * MiB + 5)).toBe(middle.length);
    } finally {
      closeSync(fd);
    }
    expect(sha(middle)).toBe(sha(data.subarray(13 * MiB + 5, 15 * MiB + 5)));
  });

  it('appends to a large file and writes into its middle; its old segments are deleted', async () => {
    const start = randomBytes(10 * MiB);
    writeFileSync(join(mnt, 'log.bin'), start);
    const segmentsBefore = await names(`${CONTAINER}_segments`, 'log.bin/');
    expect(segmentsBefore.length).toBeGreaterThan(1);
    appendFileSync(join(mnt, 'log.bin'), 'one more line\n');
    const expected = Buffer.concat([start, Buffer.from('one more line\n')]);
    expect(sha(await bytesOf('log.bin'))).toBe(sha(expected));
    // The unchanged start was copied inside the store (PUT with X-Copy-From and Range), not sent again.
    const status = await objmount(['status', mnt, '--json'], swiftEnv());
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(status.stdout))).toMatch(/"copy part":[1-9]/);

    const fd = openSync(join(mnt, 'log.bin'), 'r+');
    try {
      writeSync(fd, Buffer.from('PATCHED'), 0, 7, 5 * MiB);
    } finally {
      closeSync(fd);
    }
    Buffer.from('PATCHED').copy(expected, 5 * MiB);
    expect(sha(readFileSync(join(mnt, 'log.bin')))).toBe(sha(expected));
    expect(sha(await bytesOf('log.bin'))).toBe(sha(expected));
    const segmentsAfter = await names(`${CONTAINER}_segments`, 'log.bin/');
    expect(segmentsAfter.filter((name) => segmentsBefore.includes(name))).toEqual([]);

    // Replaced by a small file: no segment is left behind.
    writeFileSync(join(mnt, 'log.bin'), 'small now');
    expect(await names(`${CONTAINER}_segments`, 'log.bin/')).toEqual([]);
  });

  it('makes directories, lists them, and renames files and directories', async () => {
    mkdirSync(join(mnt, 'dir/sub'), { recursive: true });
    writeFileSync(join(mnt, 'dir/sub/a.txt'), 'a');
    writeFileSync(join(mnt, 'dir/b.txt'), 'b');
    expect(readdirSync(join(mnt, 'dir')).sort()).toEqual(['b.txt', 'sub']);
    expect(await names(CONTAINER, 'dir/')).toEqual(['dir/', 'dir/b.txt', 'dir/sub/', 'dir/sub/a.txt']);
    renameSync(join(mnt, 'dir/b.txt'), join(mnt, 'dir/c.txt'));
    renameSync(join(mnt, 'dir'), join(mnt, 'moved'));
    expect(readdirSync(mnt).sort()).toEqual(['big.bin', 'empty', 'hello.txt', 'log.bin', 'moved']);
    expect(readFileSync(join(mnt, 'moved/c.txt'), 'utf8')).toBe('b');
    expect(readFileSync(join(mnt, 'moved/sub/a.txt'), 'utf8')).toBe('a');
    expect(await names(CONTAINER, 'dir/')).toEqual([]);
    expect(await names(CONTAINER, 'moved/')).toEqual(['moved/', 'moved/c.txt', 'moved/sub/', 'moved/sub/a.txt']);
    // A renamed large file is one object with all its bytes.
    renameSync(join(mnt, 'big.bin'), join(mnt, 'moved/big.bin'));
    expect(statSync(join(mnt, 'moved/big.bin')).size).toBe(20 * MiB);
    expect((await bytesOf('moved/big.bin')).length).toBe(20 * MiB);
  });

  it('shows what the Swift tools write: a Dynamic Large Object, and application/directory markers', async () => {
    await raw('PUT', `${CONTAINER}_segments/tools/dlo/0001`, {}, 'first half, ');
    await raw('PUT', `${CONTAINER}_segments/tools/dlo/0002`, {}, 'second half');
    await raw('PUT', `${CONTAINER}/tools/dlo.txt`, { 'x-object-manifest': `${CONTAINER}_segments/tools/dlo/` }, '');
    await raw('PUT', `${CONTAINER}/tools/folder`, { 'content-type': 'application/directory' }, '');
    await statWhenShown(join(mnt, 'tools'));
    expect(readdirSync(join(mnt, 'tools')).sort()).toEqual(['dlo.txt', 'folder']);
    expect(statSync(join(mnt, 'tools/dlo.txt')).size).toBe(23);
    expect(readFileSync(join(mnt, 'tools/dlo.txt'), 'utf8')).toBe('first half, second half');
    expect(statSync(join(mnt, 'tools/folder')).isDirectory()).toBe(true);
    expect(readdirSync(join(mnt, 'tools/folder'))).toEqual([]);
  });
});

describe('interop with rclone and the swift client on one container', () => {
  const rclone = (args: string[]) =>
    execFileSync(
      'rclone',
      [
        '--config',
        '/dev/null',
        '--swift-auth',
        swift.authUrl,
        '--swift-user',
        SWIFT_TEST_USER,
        '--swift-key',
        SWIFT_TEST_KEY,
        '--swift-auth-version',
        '1',
        ...args,
      ],
      {
        encoding: 'buffer',
        maxBuffer: 64 * MiB,
      },
    );

  it('reads a tree rclone wrote (its chunked large file too), and rclone and swift read what objmount wrote (an SLO too)', async () => {
    const tree = join(scratch, 'rclone-tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    const chunked = randomBytes(5 * MiB + 3);
    writeFileSync(join(tree, 'chunked.bin'), chunked);
    writeFileSync(join(tree, 'sub/small.txt'), 'from rclone');
    rclone(['copy', '--swift-chunk-size', '1M', tree, `:swift:${CONTAINER}/interop/from-rclone`]);
    expect((await raw('HEAD', `${CONTAINER}/interop/from-rclone/chunked.bin`)).headers.get('x-object-manifest')).toBeTruthy(); // a DLO

    const written = randomBytes(9 * MiB + 1);
    const mount = await mountBucket('', `${SOURCE}/interop`, ['--part-size', '4M'], swiftEnv());
    try {
      const mnt = mount.mountpoint;
      expect(readdirSync(join(mnt, 'from-rclone')).sort()).toEqual(['chunked.bin', 'sub']);
      expect(statSync(join(mnt, 'from-rclone/chunked.bin')).size).toBe(chunked.length);
      expect(sha(readFileSync(join(mnt, 'from-rclone/chunked.bin')))).toBe(sha(chunked));
      expect(readFileSync(join(mnt, 'from-rclone/sub/small.txt'), 'utf8')).toBe('from rclone');
      // rclone's mtime (X-Object-Meta-Mtime) is the file's mtime here.
      expect(Math.round(statSync(join(mnt, 'from-rclone/sub/small.txt')).mtimeMs / 1000)).toBe(
        Math.round(statSync(join(tree, 'sub/small.txt')).mtimeMs / 1000),
      );
      writeFileSync(join(mnt, 'from-objmount.bin'), written);
      writeFileSync(join(mnt, 'small.txt'), 'from objmount');
    } finally {
      await mount.unmount();
    }
    expect((await raw('HEAD', `${CONTAINER}/interop/from-objmount.bin`)).headers.get('x-static-large-object')).toBe('True');
    expect(sha(rclone(['cat', `:swift:${CONTAINER}/interop/from-objmount.bin`]))).toBe(sha(written));
    expect(rclone(['cat', `:swift:${CONTAINER}/interop/small.txt`]).toString()).toBe('from objmount');
    const downloaded = join(scratch, 'downloaded.bin');
    execFileSync('/usr/bin/swift', [
      '-A',
      swift.authUrl,
      '-U',
      SWIFT_TEST_USER,
      '-K',
      SWIFT_TEST_KEY,
      'download',
      CONTAINER,
      'interop/from-objmount.bin',
      '-o',
      downloaded,
    ]);
    expect(sha(readFileSync(downloaded))).toBe(sha(written));
  });
});

/** Runs the CLI with `input` on its standard input. */
function objmountWithInput(args: string[], input: string, env: NodeJS.ProcessEnv): CliResult {
  const result = spawnSync(process.execPath, [CLI, ...args], { input, env, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status ?? 1, stdout: result.stdout, stderr: result.stderr };
}

describe('Swift credentials', () => {
  it('imports an OpenStack RC file that asks for the password (given on stdin), masks it, and mounts the root view', async () => {
    const env = testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'store-rc') });
    for (const name of Object.keys(env)) if (name.startsWith('OS_')) delete env[name];
    const rc = join(scratch, 'openrc.sh');
    writeFileSync(
      rc,
      [
        '#!/usr/bin/env bash',
        `export OS_AUTH_URL="${swift.authUrl}"`,
        'export OS_AUTH_VERSION=1',
        `export OS_USERNAME='${SWIFT_TEST_USER}'`,
        'echo "Please enter your OpenStack Password for project $OS_PROJECT_NAME as user $OS_USERNAME: "',
        'read -sr OS_PASSWORD_INPUT',
        'export OS_PASSWORD=$OS_PASSWORD_INPUT',
        '',
      ].join('\n'),
    );
    const imported = objmountWithInput(['creds', 'import', rc, '--name', 'rc'], `${SWIFT_TEST_KEY}\n`, env);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(/Imported 'rc' \(Swift user 'test:tester' \(auth v1\).*Detected 1 bucket, paired 1: mounted$/m);
    const list = await objmount(['creds', 'show', 'rc', '--json'], env);
    // mounted_segments holds mounted's segments: it is not paired.
    expect(JSON.parse(list.stdout)).toMatchObject({ provider: 'swift', key: '********', buckets: ['swift://mounted'] });
    expect(list.stdout + (await objmount(['creds', 'list'], env)).stdout).not.toContain(SWIFT_TEST_KEY);
    const verify = await objmount(['creds', 'verify', 'rc'], env);
    expect(verify.stdout).toMatch(/rc: authenticates, lists 1 bucket\(s\); mounted ok/);

    const root = await mountBucket('', '', [], env);
    try {
      expect(readdirSync(join(root.mountpoint, 'swift'))).toEqual(['mounted']);
      expect(readFileSync(join(root.mountpoint, 'swift/mounted/hello.txt'), 'utf8')).toBe('hello swift\n');
    } finally {
      await root.unmount();
    }
    expect(isMounted(root.mountpoint)).toBe(false);
  });

  it('imports OS_* from the environment with --from-env, and mounts by pairing without them', async () => {
    const env = testEnv({
      OBJMOUNT_CONFIG_DIR: join(scratch, 'store-env'),
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
    });
    for (const name of Object.keys(env)) if (name.startsWith('OS_')) delete env[name];
    const sourced = { ...env, OS_AUTH_URL: swift.authUrl, OS_AUTH_VERSION: '1', OS_USERNAME: SWIFT_TEST_USER, OS_PASSWORD: SWIFT_TEST_KEY };
    const imported = await objmount(['creds', 'import', '--from-env', '--name', 'from-env'], sourced);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(
      /Imported 'from-env' \(Swift user 'test:tester' \(auth v1\) at http:\/\/127\.0\.0\.1:\d+\/auth\/v1\.0\)\. Detected \d+ buckets?/,
    );
    expect(imported.stdout).not.toContain(SWIFT_TEST_KEY);
    const mount = await mountBucket('', SOURCE, [], env);
    try {
      expect(readFileSync(join(mount.mountpoint, 'hello.txt'), 'utf8')).toBe('hello swift\n');
    } finally {
      await mount.unmount();
    }
  });

  it('imports an rclone swift section, and pairs a container with a user that may not list the account', async () => {
    const env = testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'store-rclone') });
    const conf = join(scratch, 'rclone.conf');
    writeFileSync(conf, `[myswift]\ntype = swift\nauth = ${swift.authUrl}\nuser = test:reader\nkey = reading\nauth_version = 1\n`);
    const imported = await objmount(['creds', 'import', conf], env);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(
      /Imported 'myswift'.*may not list buckets: pair each bucket with 'objmount creds pair swift:\/\/BUCKET myswift'/,
    );
    // The reader may read one container: its ACL names it.
    await raw('PUT', 'shared', { 'x-container-read': 'test:reader' });
    await raw('PUT', 'shared/note.txt', {}, 'for the reader');
    const denied = await objmount(['creds', 'pair', `swift://${CONTAINER}`, 'myswift'], env);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr.trim().split('\n')).toHaveLength(1);
    expect(denied.stderr).toMatch(/cannot pair swift:\/\/mounted with 'myswift': .*denied/);
    const paired = await objmount(['creds', 'pair', 'swift://shared', 'myswift'], env);
    expect(paired.code, paired.stderr).toBe(0);
    const mount = await mountBucket('', 'swift://shared', [], env);
    try {
      expect(readFileSync(join(mount.mountpoint, 'note.txt'), 'utf8')).toBe('for the reader');
    } finally {
      await mount.unmount();
    }
  });
});

describe('bad input for a Swift mount', () => {
  function emptyDir(name: string): string {
    const dir = join(scratch, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  function expectCleanFailure(result: CliResult, mountpoint: string, pattern: RegExp, secret?: string): void {
    expect(isMounted(mountpoint)).toBe(false);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(pattern);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    if (secret) expect(result.stderr).not.toContain(secret);
  }

  it('a wrong password, a missing container, no credentials: one line each', async () => {
    const wrong = emptyDir('wrong');
    expectCleanFailure(
      await objmount(['mount', SOURCE, wrong], swiftEnv({ OS_PASSWORD: 'not-the-password' })),
      wrong,
      /cannot mount swift:\/\/mounted: .*refused user 'test:tester'.*check the user name/,
      'not-the-password',
    );
    const missing = emptyDir('missing');
    expectCleanFailure(
      await objmount(['mount', 'swift://no-such-container', missing], swiftEnv()),
      missing,
      /container 'no-such-container' does not exist at .*: check the container name/,
    );
    const none = emptyDir('none');
    expectCleanFailure(
      await objmount(['mount', SOURCE, none], swiftEnv({ OS_AUTH_URL: undefined, OS_USERNAME: undefined, OS_PASSWORD: undefined })),
      none,
      /no credentials found for swift:\/\/mounted: import an OpenStack RC file/,
    );
  });
});
