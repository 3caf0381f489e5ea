/**
 * Interop with s3fs and rclone (Debian's): files and directories written through objmount read
 * through an s3fs mount of the same bucket with the same bytes, mode, owner and mtime, and the
 * reverse; trees that rclone copies in show up in objmount with their bytes and mtimes, and rclone
 * sees what objmount wrote.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type TestMount, forceUnmount, isMounted, mountBucket } from '../helpers/objmount.js';

const BUCKET = 'interop';
let server: LocalS3Server;
let scratch: string;
let ours: TestMount;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  scratch = mkdtempSync(join(tmpdir(), 'objmount-interop-'));
  ours = await mountBucket(server.endpoint, `s3://${BUCKET}`);
});

afterAll(async () => {
  await ours?.unmount();
  await server?.close();
});

/** A fresh s3fs mount of the bucket (no stat cache carried over); unmounted by `done`. */
async function withS3fs(use: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = mkdtempSync(join(scratch, 's3fs-'));
  const passwd = join(scratch, 'passwd');
  writeFileSync(passwd, `${LOCAL_S3_ACCESS_KEY}:${LOCAL_S3_SECRET_KEY}\n`, { mode: 0o600 });
  execFileSync('s3fs', [BUCKET, dir, '-o', `url=${server.endpoint},use_path_request_style,passwd_file=${passwd},stat_cache_expire=1`]);
  try {
    for (let i = 0; i < 100 && !isMounted(dir); i++) await sleep(50);
    await use(dir);
  } finally {
    try {
      execFileSync('fusermount3', ['-u', dir]);
    } catch {
      forceUnmount(dir);
    }
  }
}

const facts = (path: string) => {
  const st = statSync(path);
  return { directory: st.isDirectory(), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
};

describe('s3fs and objmount on one bucket', () => {
  it('s3fs reads what objmount wrote: bytes, mode, owner, mtime, directories', async () => {
    const mnt = ours.mountpoint;
    mkdirSync(join(mnt, 'from-objmount'));
    writeFileSync(join(mnt, 'from-objmount', 'file'), 'written by objmount\n');
    execFileSync('sh', ['-c', 'chmod 640 file && chown 1234:5678 file && touch -d "2020-02-03 04:05:06" file'], {
      cwd: join(mnt, 'from-objmount'),
    });
    const expected = facts(join(mnt, 'from-objmount', 'file'));
    await withS3fs((dir) => {
      expect(readFileSync(join(dir, 'from-objmount', 'file'), 'utf8')).toBe('written by objmount\n');
      expect(facts(join(dir, 'from-objmount', 'file'))).toEqual(expected);
      expect(expected).toMatchObject({ mode: 0o640, uid: 1234, gid: 5678, mtime: Date.parse('2020-02-03T04:05:06Z') / 1000 });
      expect(statSync(join(dir, 'from-objmount')).isDirectory()).toBe(true);
    });
  });

  it('objmount reads what s3fs wrote', async () => {
    let expected: ReturnType<typeof facts> | undefined;
    await withS3fs((dir) => {
      mkdirSync(join(dir, 'from-s3fs'));
      writeFileSync(join(dir, 'from-s3fs', 'file'), 'written by s3fs\n');
      execFileSync('sh', ['-c', 'chmod 600 file && chown 42:43 file && touch -d "2021-05-06 07:08:09" file'], {
        cwd: join(dir, 'from-s3fs'),
      });
      expected = facts(join(dir, 'from-s3fs', 'file'));
    });
    await sleep(1100); // objmount's metadata TTL
    expect(readFileSync(join(ours.mountpoint, 'from-s3fs', 'file'), 'utf8')).toBe('written by s3fs\n');
    expect(facts(join(ours.mountpoint, 'from-s3fs', 'file'))).toEqual(expected);
    expect(expected).toMatchObject({ mode: 0o600, uid: 42, gid: 43 });
    expect(statSync(join(ours.mountpoint, 'from-s3fs')).isDirectory()).toBe(true);
  });
});

describe('rclone and objmount on one bucket', () => {
  /** rclone with a remote `store:` for the local server, configured through the environment only. */
  const rclone = (...args: string[]) =>
    execFileSync('rclone', args, {
      encoding: 'utf8',
      env: {
        PATH: process.env.PATH,
        HOME: scratch,
        RCLONE_CONFIG: join(scratch, 'rclone.conf'), // absent: the remote comes from the variables below
        RCLONE_CONFIG_STORE_TYPE: 's3',
        RCLONE_CONFIG_STORE_PROVIDER: 'Other',
        RCLONE_CONFIG_STORE_ACCESS_KEY_ID: LOCAL_S3_ACCESS_KEY,
        RCLONE_CONFIG_STORE_SECRET_ACCESS_KEY: LOCAL_S3_SECRET_KEY,
        RCLONE_CONFIG_STORE_ENDPOINT: server.endpoint,
        RCLONE_CONFIG_STORE_FORCE_PATH_STYLE: 'true',
      },
    });

  it('objmount shows a tree that rclone copied in: directories, bytes and mtimes, multipart objects too', async () => {
    const tree = mkdtempSync(join(scratch, 'tree-'));
    const files: Record<string, Buffer> = {
      'top.txt': Buffer.from('at the top\n'),
      'a/b/deep.bin': randomBytes(300_000),
      'a/big.bin': randomBytes(12 * 1024 * 1024 + 5), // uploaded by rclone in 5 MiB parts
      'with space/ünï €.txt': Buffer.from('odd names\n'),
    };
    const mtime = new Date('2022-03-04T05:06:07.250Z');
    for (const [name, data] of Object.entries(files)) {
      mkdirSync(join(tree, name, '..'), { recursive: true });
      writeFileSync(join(tree, name), data);
      utimesSync(join(tree, name), mtime, mtime);
    }
    rclone('copy', tree, `store:${BUCKET}/from-rclone`, '--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M');

    const root = join(ours.mountpoint, 'from-rclone');
    await sleep(1100); // objmount's metadata TTL for the directory listed before
    expect(readdirSync(root).sort()).toEqual(['a', 'top.txt', 'with space']);
    expect(readdirSync(join(root, 'a')).sort()).toEqual(['b', 'big.bin']);
    for (const [name, data] of Object.entries(files)) {
      expect(readFileSync(join(root, name)).equals(data), name).toBe(true);
      expect(statSync(join(root, name)).mtimeMs, name).toBe(mtime.getTime());
    }
    expect(statSync(join(root, 'a', 'b')).isDirectory()).toBe(true);
  });

  it('rclone sees what objmount wrote: files with their mtimes, and directories without stray entries', async () => {
    const mnt = ours.mountpoint;
    mkdirSync(join(mnt, 'for-rclone', 'empty'), { recursive: true });
    mkdirSync(join(mnt, 'for-rclone', 'sub'));
    const data = randomBytes(9 * 1024 * 1024);
    writeFileSync(join(mnt, 'for-rclone', 'sub', 'file.bin'), data);
    execFileSync('touch', ['-d', '2019-09-09 09:09:09', join(mnt, 'for-rclone', 'sub', 'file.bin')]);

    const listed = JSON.parse(rclone('lsjson', '-R', `store:${BUCKET}/for-rclone`)) as Array<{
      Path: string;
      IsDir: boolean;
      Size: number;
      ModTime: string;
    }>;
    const byPath = new Map(listed.map((entry) => [entry.Path, entry]));
    // rclone 1.60 (Debian 12) shows no empty directory on S3: it skips objmount's `empty/` marker
    // rather than showing it as a file, which is what matters here.
    expect([...byPath.keys()].sort()).toEqual(['sub', 'sub/file.bin']);
    expect(byPath.get('sub/file.bin')).toMatchObject({ IsDir: false, Size: data.length });
    expect(Date.parse(byPath.get('sub/file.bin')!.ModTime)).toBe(Date.parse('2019-09-09T09:09:09Z'));
    const copy = mkdtempSync(join(scratch, 'back-'));
    rclone('copy', `store:${BUCKET}/for-rclone/sub`, copy);
    expect(readFileSync(join(copy, 'file.bin')).equals(data)).toBe(true);
  });
});
