/**
 * The foundation, end to end: a real FUSE mount of a bucket on the local S3 server, driven by
 * ordinary tools and file calls, checked through the mount and through the SDK.
 */

import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { constants as osConstants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type TestMount, isMounted, mountBucket, objmount, statWhenShown } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'fs-test';
const MiB = 1024 * 1024;

let server: LocalS3Server;
let mount: TestMount;
let sdk: S3Client;
let mnt: string;
let local: string;

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function sdkGet(key: string): Promise<Buffer> {
  const out = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

async function sdkHead(key: string) {
  return sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
}

async function sdkKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const out = await sdk.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }));
    keys.push(...(out.Contents ?? []).map((o) => o.Key!));
    token = out.IsTruncated ? out.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

function sh(command: string, cwd = mnt): string {
  return execFileSync('bash', ['-c', command], { cwd, encoding: 'utf8' });
}

/** Runs a shell command expected to fail; returns its stderr. */
function shFails(command: string, cwd = mnt): string {
  const result = spawnSync('bash', ['-c', command], { cwd, encoding: 'utf8' });
  expect(result.status, `${command} should fail`).not.toBe(0);
  return result.stderr;
}

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  sdk = s3Client(server.endpoint);
  mount = await mountBucket(server.endpoint, `s3://${BUCKET}`);
  mnt = mount.mountpoint;
  local = mkdtempSync(join(tmpdir(), 'objmount-local-'));
});

afterAll(async () => {
  try {
    await mount?.unmount();
  } finally {
    sdk?.destroy();
    await server?.close();
    if (local) rmSync(local, { recursive: true, force: true });
  }
});

describe('files of every size, written with different tools', () => {
  const cases: Array<{ name: string; size: number; write: (src: string, dst: string) => Promise<void> | void }> = [
    { name: 'empty-touch', size: 0, write: (_s, d) => void sh(`touch '${d}'`) },
    { name: 'one-byte-printf', size: 1, write: (s, d) => void sh(`cat '${s}' > '${d}'`) },
    { name: 'four-k-node', size: 4096, write: async (s, d) => writeFile(d, await readFile(s)) },
    { name: 'five-mib-plus-one-dd', size: 5 * MiB + 1, write: (s, d) => void sh(`dd if='${s}' of='${d}' bs=1M status=none`) },
    {
      name: 'five-mib-plus-one-python',
      size: 5 * MiB + 1,
      write: (s, d) => void sh(`python3 -c "import shutil,sys; shutil.copyfile(sys.argv[1], sys.argv[2])" '${s}' '${d}'`),
    },
    { name: 'sixty-four-mib-cp', size: 64 * MiB, write: (s, d) => void sh(`cp '${s}' '${d}'`) },
  ];
  for (const { name, size, write } of cases) {
    it(`${name}: ${size} bytes are identical through the mount and in the store`, async () => {
      const data = randomBytes(size);
      const src = join(local, name);
      writeFileSync(src, data);
      await write(src, join(mnt, name));
      expect(statSync(join(mnt, name)).size).toBe(size);
      expect(sha(await readFile(join(mnt, name)))).toBe(sha(data));
      expect(sha(await sdkGet(name))).toBe(sha(data));
    });
  }
});

describe('reading', () => {
  it('gives concurrent readers of one file and of many files identical bytes', async () => {
    const files = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const data = randomBytes(12 * MiB + i * 4099);
        await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: `readers/f${i}`, Body: data }));
        return { path: join(mnt, 'readers', `f${i}`), digest: sha(data) };
      }),
    );
    // Separate processes, so the reads really run at once: 4 readers of f0, 1 of each other file.
    const readers = [files[0]!, files[0]!, files[0]!, files[0]!, files[1]!, files[2]!, files[3]!];
    const digests = await Promise.all(
      readers.map(
        ({ path }) =>
          new Promise<string>((resolve, reject) =>
            execFile('sha256sum', [path], (error, stdout) => (error ? reject(error) : resolve(stdout.split(' ')[0]!))),
          ),
      ),
    );
    expect(digests).toEqual(readers.map((file) => file.digest));
  });

  it('lets the kernel read ahead 1 MiB on the mount instead of 128 KiB', () => {
    const line = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .find((l) => l.split(' ')[4] === mnt)!;
    expect(readFileSync(`/sys/class/bdi/${line.split(' ')[2]}/read_ahead_kb`, 'utf8').trim()).toBe('1024');
  });

  it('reads at random offsets the same bytes as the store holds', async () => {
    const data = randomBytes(20 * MiB);
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'random-reads', Body: data }));
    const handle = await open(join(mnt, 'random-reads'), 'r');
    try {
      for (const at of [17 * MiB + 3, 4096, 9 * MiB - 10, 20 * MiB - 100, 0, 13 * MiB]) {
        const into = Buffer.alloc(4096);
        const { bytesRead } = await handle.read(into, 0, 4096, at);
        expect(into.subarray(0, bytesRead).equals(data.subarray(at, at + 4096))).toBe(true);
      }
    } finally {
      await handle.close();
    }
  });

  it('keeps blocks in --cache-dir across a remount and serves them from there', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'objmount-cache-'));
    const data = randomBytes(5 * MiB + 5);
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cached/file', Body: data }));
    const args = ['--cache-dir', cacheDir, '--block-size', '1M'];
    let cached = await mountBucket(server.endpoint, `s3://${BUCKET}/cached`, args);
    try {
      expect(sha(readFileSync(join(cached.mountpoint, 'file')))).toBe(sha(data));
      await cached.unmount(); // waits for the cache writes
      const blocks = readdirSync(join(cacheDir, 'blocks'), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
      expect(blocks).toHaveLength(6);
      // Spoil the bytes on the server (same ETag): only the disk cache still has the right ones.
      writeFileSync(join(server.directory, BUCKET, 'cached', 'file._S3rver_object'), Buffer.alloc(data.length));
      cached = await mountBucket(server.endpoint, `s3://${BUCKET}/cached`, args);
      expect(sha(readFileSync(join(cached.mountpoint, 'file')))).toBe(sha(data));
    } finally {
      await cached.unmount();
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
});

describe('hostile names', () => {
  it('keeps names with spaces, unicode, %, +, #, ?, quotes and 255-byte components exactly', async () => {
    const names = [
      'with space',
      'plus+sign',
      'per%25cent',
      'hash#tag',
      'what?',
      'quote\'s "double"',
      'é-nfc',
      'e\u0301-nfd',
      '日本語',
      'emoji-\u{1F600}',
      'x'.repeat(255),
      'ü'.repeat(127),
    ];
    mkdirSync(join(mnt, 'hostile'));
    for (const name of names) writeFileSync(join(mnt, 'hostile', name), name);
    expect(readdirSync(join(mnt, 'hostile')).sort()).toEqual([...names].sort());
    for (const name of names) {
      expect(readFileSync(join(mnt, 'hostile', name), 'utf8')).toBe(name);
      expect((await sdkGet(`hostile/${name}`)).toString()).toBe(name);
    }
    sh(`mv 'hostile/with space' 'hostile/still spaced+'`);
    expect((await sdkGet('hostile/still spaced+')).toString()).toBe('with space');
    expect(shFails(`touch hostile/${'y'.repeat(256)}`)).toMatch(/File name too long/);
  });
});

describe('trees copied with cp -r, rsync and tar', () => {
  let tree: string;
  beforeAll(() => {
    tree = join(local, 'tree');
    for (let d = 0; d < 10; d++) {
      for (let s = 0; s < 3; s++) {
        const dir = join(tree, `dir${d}`, `sub${s}`);
        mkdirSync(dir, { recursive: true });
        for (let f = 0; f < 10; f++) writeFileSync(join(dir, `file${f}.txt`), randomBytes(100 + d * 97 + f * 13));
      }
    }
    mkdirSync(join(tree, 'empty-dir'));
    execFileSync('ln', ['-s', 'dir0/sub0/file0.txt', join(tree, 'link')]);
    execFileSync('touch', ['-d', '2021-05-06 07:08:09', join(tree, 'dir1', 'sub1', 'file1.txt')]);
  });

  it('cp -r copies 300 files and an empty directory', () => {
    sh(`cp -r '${tree}' '${mnt}/cp-tree'`);
    expect(sh(`diff -r '${tree}' '${mnt}/cp-tree' && echo same`)).toBe('same\n');
  });

  it('rsync -a copies the tree with modes, mtimes and symlinks, and a second run transfers nothing', () => {
    sh(`rsync -a '${tree}/' '${mnt}/rsync-tree/'`);
    expect(sh(`diff -r '${tree}' '${mnt}/rsync-tree' && echo same`)).toBe('same\n');
    const mtime = statSync(join(mnt, 'rsync-tree', 'dir1', 'sub1', 'file1.txt')).mtime;
    expect(mtime.toISOString()).toBe(new Date('2021-05-06T07:08:09Z').toISOString());
    expect(readlinkSync(join(mnt, 'rsync-tree', 'link'))).toBe('dir0/sub0/file0.txt');
    const again = sh(`rsync -ai '${tree}/' '${mnt}/rsync-tree/'`);
    expect(again.split('\n').filter((l) => /^[<>ch.][fdL]/.test(l) && !l.startsWith('.d'))).toEqual([]);
  });

  it('tar extracts into the mount and archives out of it', () => {
    mkdirSync(join(mnt, 'tar-tree'));
    sh(`tar -C '${tree}' -cf - . | tar -C '${mnt}/tar-tree' -xf -`);
    expect(sh(`diff -r '${tree}' '${mnt}/tar-tree' && echo same`)).toBe('same\n');
    const out = join(local, 'from-mount');
    mkdirSync(out);
    sh(`tar -C '${mnt}/tar-tree' -cf - . | tar -C '${out}' -xf -`);
    expect(sh(`diff -r '${tree}' '${out}' && echo same`)).toBe('same\n');
  });
});

describe('directories', () => {
  it('mkdir writes a marker, rmdir of a non-empty directory fails with ENOTEMPTY', async () => {
    mkdirSync(join(mnt, 'made'));
    expect((await sdkHead('made/')).ContentLength).toBe(0);
    writeFileSync(join(mnt, 'made', 'inside'), 'x');
    expect(shFails(`rmdir made`)).toMatch(/Directory not empty/);
    rmSync(join(mnt, 'made', 'inside'));
    sh('rmdir made');
    expect(existsSync(join(mnt, 'made'))).toBe(false);
    expect(await sdkKeys('made')).toEqual([]);
  });

  it('shows implicit directories from key prefixes, two levels deep', async () => {
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'implicit/a/b/deep.txt', Body: 'deep' }));
    await statWhenShown(join(mnt, 'implicit')); // a new directory: seen once --negative-ttl has passed
    expect(readdirSync(join(mnt, 'implicit'))).toEqual(['a']);
    expect(statSync(join(mnt, 'implicit', 'a')).isDirectory()).toBe(true);
    expect(readFileSync(join(mnt, 'implicit', 'a', 'b', 'deep.txt'), 'utf8')).toBe('deep');
  });

  it('an implicit directory stays after its last file is removed', () => {
    rmSync(join(mnt, 'implicit', 'a', 'b', 'deep.txt'));
    expect(statSync(join(mnt, 'implicit', 'a', 'b')).isDirectory()).toBe(true);
    sh('rm -r implicit');
    expect(existsSync(join(mnt, 'implicit'))).toBe(false);
  });

  it('lists a directory of 2,500 entries (paged listings)', async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `many/f${String(i).padStart(5, '0')}`);
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((Key) => sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'm' }))));
    }
    const names = readdirSync(join(mnt, 'many')).sort();
    expect(names).toEqual(keys.map((k) => k.slice('many/'.length)));
  });
});

describe('file operations', () => {
  it('overwrites part of an existing file and appends to it', async () => {
    writeFileSync(join(mnt, 'patch.bin'), Buffer.from('0123456789'));
    const handle = await open(join(mnt, 'patch.bin'), 'r+');
    await handle.write(Buffer.from('AB'), 0, 2, 4);
    await handle.close();
    sh(`printf 'xyz' >> patch.bin`);
    expect(readFileSync(join(mnt, 'patch.bin'), 'utf8')).toBe('0123AB6789xyz');
    expect((await sdkGet('patch.bin')).toString()).toBe('0123AB6789xyz');
  });

  it('appends to and patches the end of a large object (its start copied inside the store)', async () => {
    const data = randomBytes(12 * MiB + 5);
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'large-append', Body: data }));
    sh(`printf 'appended' >> large-append`);
    const handle = await open(join(mnt, 'large-append'), 'r+');
    await handle.write(Buffer.from('patch'), 0, 5, 11 * MiB);
    await handle.close();
    const expected = Buffer.concat([data, Buffer.from('appended')]);
    expected.write('patch', 11 * MiB);
    expect(sha(await sdkGet('large-append'))).toBe(sha(expected));
    expect(sha(readFileSync(join(mnt, 'large-append')))).toBe(sha(expected));
  });

  it('writes a file again while its last handle is being released (found by the model test)', () => {
    // The release of the first handle raced the second open: the open could pick up the file
    // being dropped, and its write then failed with ESTALE.
    for (let i = 0; i < 40; i++) {
      writeFileSync(join(mnt, 'rewritten'), `first ${i}`);
      writeFileSync(join(mnt, 'rewritten'), `second ${i}`);
      expect(readFileSync(join(mnt, 'rewritten'), 'utf8')).toBe(`second ${i}`);
    }
  });

  it('with --metadata-ttl 0, a file another client deleted is gone at the next lookup (found by the model test)', async () => {
    // fuse-native dropped a 0 timeout, so the kernel kept the entry for libfuse's default second:
    // rename(a, e/f/g) answered ENOTDIR (e/f still a file) instead of ENOENT.
    const fresh = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--metadata-ttl', '0', '--negative-ttl', '0']);
    try {
      mkdirSync(join(fresh.mountpoint, 'ttl0', 'e'), { recursive: true });
      writeFileSync(join(fresh.mountpoint, 'ttl0', 'e', 'f'), '');
      await sdk.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'ttl0/e/f' }));
      expect(() => statSync(join(fresh.mountpoint, 'ttl0', 'e', 'f'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    } finally {
      await fresh.unmount();
    }
  });

  it('O_EXCL refuses an existing file, O_TRUNC empties it', async () => {
    writeFileSync(join(mnt, 'excl'), 'content');
    await expect(open(join(mnt, 'excl'), constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY)).rejects.toMatchObject({
      code: 'EEXIST',
    });
    const h = await open(join(mnt, 'excl'), constants.O_WRONLY | constants.O_TRUNC);
    await h.close();
    expect(statSync(join(mnt, 'excl')).size).toBe(0);
    expect((await sdkGet('excl')).length).toBe(0);
  });

  it('reads and writes through one O_RDWR handle', async () => {
    const h = await open(join(mnt, 'rdwr'), 'w+');
    await h.write('hello world', 0);
    const back = Buffer.alloc(5);
    await h.read(back, 0, 5, 6);
    await h.sync();
    expect(back.toString()).toBe('world');
    expect((await sdkGet('rdwr')).toString()).toBe('hello world');
    await h.close();
  });

  it('ftruncate and fsync on an open handle reach the store before close', async () => {
    const h = await open(join(mnt, 'ftrunc'), 'w+');
    try {
      await h.write('0123456789', 0);
      await h.truncate(4);
      await h.sync();
      expect((await sdkGet('ftrunc')).toString()).toBe('0123');
      await h.truncate(6);
      await h.datasync();
      expect(await sdkGet('ftrunc')).toEqual(Buffer.from('0123\0\0'));
    } finally {
      await h.close();
    }
  });

  it('truncates to grow and shrink', async () => {
    writeFileSync(join(mnt, 'trunc'), 'abcdef');
    sh('truncate -s 3 trunc');
    expect((await sdkGet('trunc')).toString()).toBe('abc');
    sh('truncate -s 6 trunc');
    expect(await sdkGet('trunc')).toEqual(Buffer.from([97, 98, 99, 0, 0, 0]));
    expect(statSync(join(mnt, 'trunc')).size).toBe(6);
  });

  it('renames a file, also over an existing one', async () => {
    writeFileSync(join(mnt, 'old-name'), 'moving');
    writeFileSync(join(mnt, 'victim'), 'replaced');
    sh('mv old-name victim');
    expect(readFileSync(join(mnt, 'victim'), 'utf8')).toBe('moving');
    expect(existsSync(join(mnt, 'old-name'))).toBe(false);
    expect(await sdkKeys('old-name')).toEqual([]);
    expect((await sdkGet('victim')).toString()).toBe('moving');
  });

  it('renames a whole directory', async () => {
    sh('mkdir -p mvdir/sub && echo 1 > mvdir/a && echo 2 > mvdir/sub/b');
    sh('mv mvdir moved');
    expect(sh('cat moved/a moved/sub/b')).toBe('1\n2\n');
    expect(existsSync(join(mnt, 'mvdir'))).toBe(false);
    expect(await sdkKeys('mvdir')).toEqual([]);
    expect(await sdkKeys('moved/')).toEqual(['moved/', 'moved/a', 'moved/sub/', 'moved/sub/b']);
  });

  it('unlinks files', async () => {
    writeFileSync(join(mnt, 'doomed'), 'x');
    rmSync(join(mnt, 'doomed'));
    expect(existsSync(join(mnt, 'doomed'))).toBe(false);
    expect(await sdkKeys('doomed')).toEqual([]);
  });

  it('keeps an unlinked file readable, and fstat-able, through a handle still open (no hidden renames)', async () => {
    writeFileSync(join(mnt, 'open-doomed'), 'still here');
    // cat fstats and reads its stdin after the name is gone.
    expect(sh(`exec 3< open-doomed; rm open-doomed; stat -L -c %s /dev/stdin <&3; cat <&3`)).toBe('10\nstill here');
    expect(existsSync(join(mnt, 'open-doomed'))).toBe(false);
    expect(await sdkKeys('open-doomed')).toEqual([]);
    expect((await sdkKeys('')).filter((k) => k.includes('.fuse_hidden'))).toEqual([]);
    // Likewise a file that a rename replaces while it is open.
    writeFileSync(join(mnt, 'open-replaced'), 'old bytes');
    writeFileSync(join(mnt, 'replacement'), 'new');
    expect(sh(`exec 3< open-replaced; mv replacement open-replaced; cat <&3; cat open-replaced`)).toBe('old bytesnew');
  });

  it('makes and reads symlinks, stored s3fs-style', async () => {
    writeFileSync(join(mnt, 'target.txt'), 'pointed at');
    sh('ln -s target.txt sym');
    expect(lstatSync(join(mnt, 'sym')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(mnt, 'sym'))).toBe('target.txt');
    expect(readFileSync(join(mnt, 'sym'), 'utf8')).toBe('pointed at');
    expect((await sdkGet('sym')).toString()).toBe('target.txt');
    expect(Number((await sdkHead('sym')).Metadata?.mode) & 0o170000).toBe(0o120000);
  });

  it('persists chmod, chown and utimens in s3fs headers', async () => {
    writeFileSync(join(mnt, 'meta'), 'm');
    sh('chmod 751 meta && chown 1234:5678 meta && touch -d "2019-03-04 05:06:07.5" meta');
    const head = await sdkHead('meta');
    expect(head.Metadata).toMatchObject({ mode: String(0o100751), uid: '1234', gid: '5678' });
    expect(Number(head.Metadata?.mtime)).toBeCloseTo(Date.parse('2019-03-04T05:06:07.5Z') / 1000, 3);
    const st = statSync(join(mnt, 'meta'));
    expect([st.mode & 0o7777, st.uid, st.gid]).toEqual([0o751, 1234, 5678]);
    expect(st.mtime.toISOString()).toBe('2019-03-04T05:06:07.500Z');
  });

  it('has no extended attributes: a get or set is not supported, a remove finds none, a list is empty; ls -l and cp -a say nothing of them', () => {
    writeFileSync(join(mnt, 'xattrs'), 'x');
    const python = (code: string) =>
      sh(`python3 -c "import os, errno
try:
  print(${code})
except OSError as e:
  print(errno.errorcode[e.errno])"`).trim();
    // The first get answers ENOSYS: the kernel then says "not supported" itself, with no round
    // trip per file (`ls -l` asks two attributes of every entry).
    expect(python("os.getxattr('xattrs', 'user.note')")).toBe('ENOTSUP');
    expect(python("os.getxattr('xattrs', 'security.selinux')")).toBe('ENOTSUP');
    expect(python("os.listxattr('xattrs')")).toBe('[]');
    expect(python("os.removexattr('xattrs', 'user.note')")).toBe('ENODATA');
    expect(python("os.setxattr('xattrs', 'user.note', b'v')")).toBe('ENOTSUP');
    expect(sh('ls -l xattrs 2>&1')).toMatch(/^-rw-r--r-- 1 [^\n]*xattrs\n$/);
    const copy = join(mkdtempSync(join(tmpdir(), 'objmount-xattrs-')), 'copy');
    expect(sh(`cp -a xattrs ${copy} 2>&1`)).toBe('');
    expect(readFileSync(copy, 'utf8')).toBe('x');
  });

  it('refuses hard links with EPERM', () => {
    writeFileSync(join(mnt, 'linksrc'), 'x');
    expect(shFails('ln linksrc hardlink')).toMatch(/Operation not permitted/);
  });

  it('reports free space (statfs)', () => {
    expect(sh(`df -P '${mnt}' | tail -1`)).toMatch(/s3:\/\/fs-test/);
  });
});

describe('other clients and other tools', () => {
  it('reads objects written by s3fs (POSIX metadata in x-amz-meta headers)', async () => {
    await sdk.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 's3fs-made.sh',
        Body: '#!/bin/sh\necho hi\n',
        Metadata: { mode: String(0o100755), uid: '1001', gid: '1002', mtime: '1600000000' },
      }),
    );
    const st = await statWhenShown(join(mnt, 's3fs-made.sh')); // a new file: seen within --negative-ttl (the root was listed)
    expect([st.mode, st.uid, st.gid, st.mtimeMs]).toEqual([0o100755, 1001, 1002, 1600000000_000]);
    expect(sh(`'${mnt}/s3fs-made.sh'`)).toBe('hi\n');
  });

  it('gives objects without metadata the defaults', async () => {
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'plain.txt', Body: 'plain' }));
    const st = await statWhenShown(join(mnt, 'plain.txt'));
    expect(st.mode).toBe(0o100644);
    expect(st.uid).toBe(process.getuid!());
  });

  it('keeps what another client put under a name it answered missing: `>>` appends to it, `>` replaces it', async () => {
    // Long TTLs: what the mount knows of the names in the directory it made stays fresh throughout.
    const own = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--metadata-ttl', '60', '--negative-ttl', '60']);
    try {
      const dir = join(own.mountpoint, 'guarded');
      mkdirSync(dir);
      await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'guarded/log', Body: 'theirs\n' }));
      await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'guarded/replaced', Body: 'theirs, longer\n' }));
      // Made here a moment ago: the mount answers from what it knows, without asking.
      expect(existsSync(join(dir, 'log'))).toBe(false);
      // An append asks the store before it creates, and keeps their bytes.
      sh(`printf 'mine\\n' >> guarded/log`, own.mountpoint);
      expect((await sdkGet('guarded/log')).toString()).toBe('theirs\nmine\n');
      expect(readFileSync(join(dir, 'log'), 'utf8')).toBe('theirs\nmine\n');
      // `>` truncates whatever is there: the file is ours alone (the kernel's O_TRUNC reached the create).
      sh(`printf 'mine\\n' > guarded/replaced`, own.mountpoint);
      expect((await sdkGet('guarded/replaced')).toString()).toBe('mine\n');
    } finally {
      await own.unmount();
    }
  });

  it('shows a change made by another client within the metadata TTL', async () => {
    writeFileSync(join(mnt, 'changing'), 'before');
    expect(readFileSync(join(mnt, 'changing'), 'utf8')).toBe('before');
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'changing', Body: 'after, longer' }));
    const start = Date.now();
    let seen = '';
    let staleReads = 0;
    while (Date.now() - start < 5000) {
      try {
        seen = readFileSync(join(mnt, 'changing'), 'utf8');
      } catch (error) {
        // Opened at the cached version, read after the change: ESTALE, never a mix of the two.
        // (libuv has no name for ESTALE: Node reports "Unknown system error -116".)
        expect((error as NodeJS.ErrnoException).errno).toBe(-osConstants.errno.ESTALE);
        staleReads += 1;
      }
      if (seen === 'after, longer') break;
      expect(['before', 'after,', '']).toContain(seen);
      await sleep(100);
    }
    expect(seen).toBe('after, longer');
    expect(Date.now() - start).toBeLessThan(3000);
    expect(staleReads).toBeLessThanOrEqual(1); // the failed read forgets the cached version
  });
});

describe('mount options and failures', () => {
  it('gives objects without metadata the --uid, --gid, --file-mode and --dir-mode defaults', async () => {
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'defaults/inner/plain', Body: 'p' }));
    const other = await mountBucket(server.endpoint, `s3://${BUCKET}/defaults`, [
      '--uid',
      '4321',
      '--gid',
      '8765',
      '--file-mode',
      '0640',
      '--dir-mode',
      '0750',
    ]);
    try {
      const dir = statSync(join(other.mountpoint, 'inner'));
      const file = statSync(join(other.mountpoint, 'inner', 'plain'));
      expect([dir.mode, dir.uid, dir.gid]).toEqual([0o40750, 4321, 8765]);
      expect([file.mode, file.uid, file.gid]).toEqual([0o100640, 4321, 8765]);
    } finally {
      await other.unmount();
    }
  });

  it('keeps every upload within --max-upload-parts by growing the parts', async () => {
    const other = await mountBucket(server.endpoint, `s3://${BUCKET}/few-parts`, ['--max-upload-parts', '2', '--part-size', '5M']);
    try {
      const data = randomBytes(12 * MiB + 3);
      writeFileSync(join(other.mountpoint, 'streamed'), data); // written from its start: streamed
      const patched = Buffer.from(data);
      patched.write('x', 100);
      const handle = await open(join(other.mountpoint, 'streamed'), 'r+');
      await handle.write('x', 100); // a change at the start: the whole file again, through the close-time uploader
      await handle.close();
      // s3rver neither enforces a part limit nor shows the part count in the ETag: the part
      // counts are checked in the unit tests; here, that both paths produce the right bytes.
      expect(sha(await sdkGet('few-parts/streamed'))).toBe(sha(patched));
    } finally {
      await other.unmount();
    }
  });

  it('reports a failed upload to fsync and close as EIO, and keeps serving', async () => {
    const bucket = 'vanishing';
    await sdk.send(new CreateBucketCommand({ Bucket: bucket }));
    const other = await mountBucket(server.endpoint, `s3://${bucket}`);
    try {
      const h = await open(join(other.mountpoint, 'lost'), 'w');
      await h.write(Buffer.alloc(6 * 1024 * 1024, 7)); // more than one part: a multipart upload
      // The bucket disappears under the mount: every upload now fails with NoSuchBucket.
      rmSync(join(server.directory, bucket), { recursive: true, force: true });
      await expect(h.sync()).rejects.toMatchObject({ code: 'EIO' });
      await expect(h.close()).rejects.toMatchObject({ code: 'EIO' });
      expect(readFileSync(other.logFile, 'utf8')).toMatch(/lost/);
      // The daemon is still up: once the bucket is back, the same mount writes again.
      await sdk.send(new CreateBucketCommand({ Bucket: bucket }));
      writeFileSync(join(other.mountpoint, 'after'), 'after');
      const { Body } = await sdk.send(new GetObjectCommand({ Bucket: bucket, Key: 'after' }));
      expect(await Body!.transformToString()).toBe('after');
    } finally {
      await other.unmount();
    }
  });
});

describe('ls -l and find (directories read with attributes)', () => {
  /** `ls -ln` of `dir`: name -> [mode, uid, gid, size]. */
  const longListing = (dir: string) =>
    Object.fromEntries(
      sh(`ls -ln '${dir}'`)
        .split('\n')
        .filter((line) => line && !line.startsWith('total'))
        .map((line) => {
          const f = line.split(/\s+/);
          return [f.at(-1)!, [f[0], Number(f[2]), Number(f[3]), Number(f[4])]];
        }),
    );
  /** Drops the kernel's unused dentries and inodes, which it FORGETs, and waits for one answer from
   * the mount after them (the kernel sends queued FORGETs before the requests that follow). */
  const dropKernelEntries = (at: string) => {
    writeFileSync('/proc/sys/vm/drop_caches', '2');
    spawnSync('stat', [join(at, 'no-such-name')]);
  };
  const kernelInodes = async (at: string) => {
    const out = await objmount(['status', at, '--json']);
    expect(out.code, out.stderr).toBe(0);
    return (JSON.parse(out.stdout) as Array<{ kernelInodes: number }>)[0]!.kernelInodes;
  };

  it('shows the modes, sizes and owners of objects another client put and of files written here; find too; the kernel forgets every entry', async () => {
    // A long TTL, so the daemon's answers stay fresh throughout and the directory is read with them.
    const own = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--metadata-ttl', '60']);
    try {
      const dir = join(own.mountpoint, 'plus');
      const expected: Record<string, [string, number, number, number]> = {};
      for (let i = 0; i < 40; i++) {
        await sdk.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: `plus/other-${i}`,
            Body: 'o'.repeat(i),
            Metadata: { mode: String(0o100640), uid: '1234', gid: '5678', mtime: '1600000000' },
          }),
        );
        expected[`other-${i}`] = ['-rw-r-----', 1234, 5678, i];
      }
      for (let i = 0; i < 5; i++) {
        writeFileSync(join(dir, `mine-${i}`), 'm'.repeat(100 + i));
        expected[`mine-${i}`] = ['-rw-------', process.getuid!(), process.getgid!(), 100 + i];
      }
      sh(`chmod 600 '${dir}'/mine-*`);
      dropKernelEntries(own.mountpoint);
      const base = await kernelInodes(own.mountpoint);

      expect(longListing(dir)).toEqual(expected); // the entries looked up one by one
      expect(await kernelInodes(own.mountpoint)).toBeGreaterThanOrEqual(base + 46); // plus/ and its entries
      for (let round = 0; round < 5; round++) {
        // The kernel forgot everything; the daemon knows it all: the directory comes with attributes.
        dropKernelEntries(own.mountpoint);
        expect(await kernelInodes(own.mountpoint)).toBe(base);
        expect(longListing(dir)).toEqual(expected);
        const found = sh(`find '${dir}' -printf '%y %M %U %G %s %P\n'`).split('\n').filter(Boolean).sort();
        expect(found).toEqual(
          [`d drwxr-xr-x ${process.getuid!()} ${process.getgid!()} 0 `]
            .concat(Object.entries(expected).map(([name, [mode, uid, gid, size]]) => `f ${mode} ${uid} ${gid} ${size} ${name}`))
            .sort(),
        );
      }
      dropKernelEntries(own.mountpoint);
      expect(await kernelInodes(own.mountpoint)).toBe(base);
      await own.unmount();
      expect(isMounted(own.mountpoint)).toBe(false);
    } finally {
      await own.unmount();
    }
  });

  it('no longer shows a file another client deleted once the TTL has passed', async () => {
    const dir = join(mnt, 'plus-deleted');
    for (const name of ['keep', 'gone']) {
      await sdk.send(
        new PutObjectCommand({ Bucket: BUCKET, Key: `plus-deleted/${name}`, Body: name, Metadata: { mode: String(0o100600) } }),
      );
    }
    await statWhenShown(dir);
    expect(Object.keys(longListing(dir)).sort()).toEqual(['gone', 'keep']);
    expect(longListing(dir)).toEqual({
      gone: ['-rw-------', process.getuid!(), process.getgid!(), 4],
      keep: ['-rw-------', process.getuid!(), process.getgid!(), 4],
    });
    await sdk.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'plus-deleted/gone' }));
    await sleep(1_200); // the default --metadata-ttl (1 s) and a margin: what is cached of it has expired
    expect(Object.keys(longListing(dir))).toEqual(['keep']);
    expect(() => statSync(join(dir, 'gone'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });
});

describe('remount', () => {
  it('keeps empty directories, files and metadata across a remount', async () => {
    mkdirSync(join(mnt, 'empty-survivor'));
    writeFileSync(join(mnt, 'survivor'), 'still here');
    sh('chmod 700 survivor');
    await mount.unmount();
    mount = await mountBucket(server.endpoint, `s3://${BUCKET}`);
    mnt = mount.mountpoint;
    expect(statSync(join(mnt, 'empty-survivor')).isDirectory()).toBe(true);
    expect(readFileSync(join(mnt, 'survivor'), 'utf8')).toBe('still here');
    expect(statSync(join(mnt, 'survivor')).mode & 0o777).toBe(0o700);
  });

  it('mounts a prefix of the bucket', async () => {
    const sub = await mountBucket(server.endpoint, `s3://${BUCKET}/moved`);
    try {
      expect(readdirSync(sub.mountpoint).sort()).toEqual(['a', 'sub']);
      writeFileSync(join(sub.mountpoint, 'via-prefix'), 'p');
      expect((await sdkGet('moved/via-prefix')).toString()).toBe('p');
    } finally {
      await sub.unmount();
    }
  });
});
