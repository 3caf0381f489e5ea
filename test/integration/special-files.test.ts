/**
 * FIFOs, sockets and device nodes through a real mount with --allow-other, made and changed by
 * root and by another uid (through `setpriv`), in a plain and in a sticky directory, each step with
 * the errno it must give; and interop with Debian's s3fs (1.90) on one bucket, both ways.
 *
 * The file calls run in /usr/bin/python3 (as root, or as the other uid), which prints the errno
 * name of a failure: the kernel's permission checks (default_permissions, the sticky bit) decide
 * on the owner and mode objmount reports, so those are what is tested. The mount has a long
 * metadata TTL: only this mount changes the bucket, except where s3fs does, and those objects are
 * read by a fresh mount.
 */

import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type TestMount, forceUnmount, isMounted, mountBucket } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const run = promisify(execFile);

const BUCKET = 'special';
/** The other user: no account is needed for a uid. */
const OTHER = 4242;
const PYTHON = '/usr/bin/python3'; // not a shim in root's home, which the other uid cannot read
const DT = { UNKNOWN: 0, FIFO: 1, CHR: 2, BLK: 6, SOCK: 12 };
/** A device number as st_rdev has it (glibc's makedev, for small numbers). */
const makedev = (major: number, minor: number) => major * 256 + minor;

/** One file call per run; prints "OK", a result, or the errno name of its failure (as JSON). */
const OPS = `
import ctypes, errno, json, os, socket, stat, sys
os.umask(0o022)
op, args = sys.argv[1], sys.argv[2:]

def dtypes(path):
    class Dirent(ctypes.Structure):
        _fields_ = [('ino', ctypes.c_uint64), ('off', ctypes.c_int64), ('reclen', ctypes.c_ushort),
                    ('type', ctypes.c_ubyte), ('name', ctypes.c_char * 256)]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.opendir.restype, libc.opendir.argtypes = ctypes.c_void_p, [ctypes.c_char_p]
    libc.readdir.restype, libc.readdir.argtypes = ctypes.POINTER(Dirent), [ctypes.c_void_p]
    libc.closedir.argtypes = [ctypes.c_void_p]
    d = libc.opendir(path.encode())
    if not d:
        raise OSError(ctypes.get_errno(), 'opendir')
    found = {}
    while True:
        entry = libc.readdir(d)
        if not entry:
            break
        found[entry.contents.name.decode()] = entry.contents.type
    libc.closedir(d)
    return found

def call():
    if op == 'mkfifo':
        os.mkfifo(args[0], int(args[1], 8))
    elif op == 'mknod':
        kind = stat.S_IFCHR if args[1] == 'c' else stat.S_IFBLK
        os.mknod(args[0], kind | int(args[4], 8), os.makedev(int(args[2]), int(args[3])))
    elif op == 'bind':
        s = socket.socket(socket.AF_UNIX)
        s.bind(args[0])
        s.close()
    elif op == 'unlink':
        os.unlink(args[0])
    elif op == 'rename':
        os.rename(args[0], args[1])
    elif op == 'chown':
        os.chown(args[0], int(args[1]), int(args[2]))
    elif op == 'chmod':
        os.chmod(args[0], int(args[1], 8))
    elif op == 'utime':
        os.utime(args[0], (int(args[1]), int(args[1])))
    elif op == 'create':
        os.close(os.open(args[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    elif op == 'mkdir':
        os.mkdir(args[0], 0o755)
    elif op == 'symlink':
        os.symlink(args[1], args[0])
    elif op == 'open':
        os.close(os.open(args[0], os.O_RDONLY | os.O_NONBLOCK))
    elif op == 'dtypes':
        return dtypes(args[0])
    else:
        raise SystemExit('unknown op ' + op)

try:
    result = call()
    print(json.dumps('OK' if result is None else result))
except OSError as e:
    print(json.dumps(errno.errorcode[e.errno]))
`;

/** Runs one op as root, or as `uid` (with its own gid and no supplementary groups). */
function op(name: string, args: Array<string | number>, uid?: number): unknown {
  const argv = [PYTHON, '-c', OPS, name, ...args.map(String)];
  const command = uid === undefined ? argv : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', ...argv];
  const out = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`${name} ${args.join(' ')} failed: ${out.stderr}`);
  return JSON.parse(out.stdout);
}
const asOther = (name: string, ...args: Array<string | number>) => op(name, args, OTHER);
const asRoot = (name: string, ...args: Array<string | number>) => op(name, args);

/** What `stat` says of a node: its type, permissions, device, owner. */
function facts(path: string) {
  const st = lstatSync(path);
  const type = st.isFIFO()
    ? 'fifo'
    : st.isCharacterDevice()
      ? 'chr'
      : st.isBlockDevice()
        ? 'blk'
        : st.isSocket()
          ? 'sock'
          : st.isFile()
            ? 'file'
            : 'other';
  return { type, mode: st.mode & 0o7777, rdev: st.rdev, uid: st.uid, gid: st.gid };
}

let server: LocalS3Server;
let sdk: S3Client;
let base: string;
let ours: TestMount;
let mnt: string;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  sdk = s3Client(server.endpoint);
  // The other uid must reach the mountpoint: the run's directories are searchable, not listable.
  chmodSync(tmpdir(), 0o711);
  base = mkdtempSync(join(tmpdir(), 'objmount-special-'));
  chmodSync(base, 0o711);
  mkdirSync(join(base, 'mnt'));
  ours = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--allow-other', '--metadata-ttl', '30'], undefined, join(base, 'mnt'));
  mnt = ours.mountpoint;
});

afterAll(async () => {
  await ours?.unmount();
  sdk?.destroy();
  await server?.close();
});

async function head(key: string) {
  const out = await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
  return { size: out.ContentLength, metadata: out.Metadata };
}

/** A directory made by root with exactly `mode`. */
function directory(name: string, mode: number): string {
  const dir = join(mnt, name);
  mkdirSync(dir);
  chmodSync(dir, mode);
  return dir;
}

describe('special files made by root', () => {
  it('are made with their type, mode, device and owner, stored as s3fs stores them, and listed with their d_type', async () => {
    const dir = directory('made', 0o755);
    expect(asRoot('mkfifo', join(dir, 'fifo'), '644')).toBe('OK');
    expect(asRoot('mknod', join(dir, 'chr'), 'c', 1, 3, '644')).toBe('OK');
    expect(asRoot('mknod', join(dir, 'blk'), 'b', 8, 1, '640')).toBe('OK');
    expect(asRoot('bind', join(dir, 'sock'))).toBe('OK');

    const expected = {
      fifo: { type: 'fifo', mode: 0o644, rdev: 0, uid: 0, gid: 0 },
      chr: { type: 'chr', mode: 0o644, rdev: makedev(1, 3), uid: 0, gid: 0 },
      blk: { type: 'blk', mode: 0o640, rdev: makedev(8, 1), uid: 0, gid: 0 },
      sock: { type: 'sock', mode: 0o755, rdev: 0, uid: 0, gid: 0 },
    };
    for (const [name, want] of Object.entries(expected)) expect(facts(join(dir, name)), name).toEqual(want);
    // (Of '.' and '..' the kernel is told no type: it never takes them as looked up.)
    expect(asRoot('dtypes', dir)).toEqual({ '.': DT.UNKNOWN, '..': DT.UNKNOWN, fifo: DT.FIFO, chr: DT.CHR, blk: DT.BLK, sock: DT.SOCK });

    // Empty objects; the mode in decimal with its type bits (s3fs 1.90's 4516 for a FIFO 0644, 8612 for a
    // character device 0644), and the device number in rdev.
    expect(await head('made/fifo')).toEqual({ size: 0, metadata: expect.objectContaining({ mode: '4516', uid: '0', gid: '0' }) });
    expect((await head('made/fifo')).metadata).not.toHaveProperty('rdev');
    expect((await head('made/chr')).metadata).toMatchObject({ mode: '8612', rdev: String(makedev(1, 3)) });
    expect((await head('made/blk')).metadata).toMatchObject({ mode: String(0o60640), rdev: String(makedev(8, 1)) });
    expect(await head('made/sock')).toEqual({ size: 0, metadata: expect.objectContaining({ mode: String(0o140755) }) });

    // A mount that knows nothing yet reads the same from the store.
    const fresh = await mountBucket(server.endpoint, `s3://${BUCKET}`);
    try {
      for (const [name, want] of Object.entries(expected)) expect(facts(join(fresh.mountpoint, 'made', name)), name).toEqual(want);
    } finally {
      await fresh.unmount();
    }
  });

  it('are chown/chmod/utime-d by root in place, the type and device kept', async () => {
    const dir = directory('changed', 0o755);
    asRoot('mknod', join(dir, 'chr'), 'c', 1, 3, '644');
    asRoot('mkfifo', join(dir, 'fifo'), '644');
    expect(asRoot('chown', join(dir, 'chr'), OTHER, OTHER + 1)).toBe('OK');
    expect(asRoot('chmod', join(dir, 'chr'), '600')).toBe('OK');
    expect(asRoot('chmod', join(dir, 'fifo'), '1640')).toBe('OK');
    expect(asRoot('utime', join(dir, 'fifo'), 1_600_000_000)).toBe('OK');
    expect(facts(join(dir, 'chr'))).toEqual({ type: 'chr', mode: 0o600, rdev: makedev(1, 3), uid: OTHER, gid: OTHER + 1 });
    expect(facts(join(dir, 'fifo'))).toMatchObject({ type: 'fifo', mode: 0o1640 });
    expect(lstatSync(join(dir, 'fifo')).mtimeMs).toBe(1_600_000_000_000);
    expect((await head('changed/chr')).metadata).toMatchObject({
      mode: String(0o20600),
      rdev: '259',
      uid: String(OTHER),
      gid: String(OTHER + 1),
    });
    expect((await head('changed/fifo')).metadata).toMatchObject({ mode: String(0o11640), mtime: '1600000000' });
  });

  it('leave opening to the kernel: a FIFO is a pipe between two programs, a device on this nodev mount is refused', async () => {
    const dir = directory('opened', 0o755);
    asRoot('mkfifo', join(dir, 'fifo'), '644');
    asRoot('mknod', join(dir, 'null'), 'c', 1, 3, '666');
    const reader = run('cat', [join(dir, 'fifo')], { timeout: 20_000 });
    await run('sh', ['-c', 'printf "through the pipe" > "$1"', 'sh', join(dir, 'fifo')], { timeout: 20_000 });
    expect((await reader).stdout).toBe('through the pipe');
    // FUSE mounts are nodev: the kernel refuses to open a device node on one (objmount is not asked).
    expect(asRoot('open', join(dir, 'null'))).toBe('EACCES');
    expect(facts(join(dir, 'fifo'))).toMatchObject({ type: 'fifo' });
  });
});

describe('special files and another uid', () => {
  it('in a plain directory: made as its own, renamed and unlinked whoever made them; no devices, no chown', () => {
    const dir = directory('plain', 0o777);
    asRoot('mkfifo', join(dir, 'roots'), '644');
    expect(asOther('mkfifo', join(dir, 'own'), '640')).toBe('OK');
    expect(asOther('bind', join(dir, 'sock'))).toBe('OK');
    expect(facts(join(dir, 'own'))).toEqual({ type: 'fifo', mode: 0o640, rdev: 0, uid: OTHER, gid: OTHER });
    expect(facts(join(dir, 'sock'))).toEqual({ type: 'sock', mode: 0o755, rdev: 0, uid: OTHER, gid: OTHER });
    expect(asOther('mknod', join(dir, 'chr'), 'c', 1, 3, '644')).toBe('EPERM'); // CAP_MKNOD
    expect(asOther('chown', join(dir, 'own'), 0, 0)).toBe('EPERM');
    expect(asOther('chmod', join(dir, 'roots'), '666')).toBe('EPERM');
    expect(asOther('chmod', join(dir, 'own'), '600')).toBe('OK');
    expect(asOther('rename', join(dir, 'roots'), join(dir, 'roots-moved'))).toBe('OK');
    expect(facts(join(dir, 'roots-moved'))).toEqual({ type: 'fifo', mode: 0o644, rdev: 0, uid: 0, gid: 0 });
    expect(asOther('unlink', join(dir, 'roots-moved'))).toBe('OK');
    expect(asOther('unlink', join(dir, 'own'))).toBe('OK');
    expect(asOther('unlink', join(dir, 'sock'))).toBe('OK');
    expect(Object.keys(asRoot('dtypes', dir) as object).sort()).toEqual(['.', '..']);
  });

  it("in a directory it may not write: nothing made, renamed or unlinked (EACCES); root's chown works", () => {
    const dir = directory('closed', 0o755);
    asRoot('mkfifo', join(dir, 'roots'), '644');
    expect(asOther('mkfifo', join(dir, 'own'), '644')).toBe('EACCES');
    expect(asOther('bind', join(dir, 'sock'))).toBe('EACCES');
    expect(asOther('rename', join(dir, 'roots'), join(dir, 'moved'))).toBe('EACCES');
    expect(asOther('unlink', join(dir, 'roots'))).toBe('EACCES');
    expect(asRoot('chown', join(dir, 'roots'), OTHER, OTHER)).toBe('OK');
    expect(facts(join(dir, 'roots'))).toMatchObject({ type: 'fifo', uid: OTHER, gid: OTHER });
    expect(asOther('unlink', join(dir, 'roots'))).toBe('EACCES'); // owning the node is not enough
  });

  it("in a sticky directory: root's nodes stay (EPERM), its own it renames and unlinks", async () => {
    const dir = directory('sticky', 0o1777);
    expect(facts(dir)).toMatchObject({ mode: 0o1777 });
    asRoot('mkfifo', join(dir, 'roots'), '666');
    asRoot('mknod', join(dir, 'chr'), 'c', 1, 3, '666');
    expect(asOther('mkfifo', join(dir, 'own'), '644')).toBe('OK');
    expect(asOther('bind', join(dir, 'sock'))).toBe('OK');
    expect(facts(join(dir, 'own'))).toMatchObject({ type: 'fifo', uid: OTHER, gid: OTHER });

    expect(asOther('unlink', join(dir, 'roots'))).toBe('EPERM');
    expect(asOther('unlink', join(dir, 'chr'))).toBe('EPERM');
    expect(asOther('rename', join(dir, 'roots'), join(dir, 'taken'))).toBe('EPERM');
    expect(asOther('rename', join(dir, 'own'), join(dir, 'roots'))).toBe('EPERM'); // would replace root's
    expect(facts(join(dir, 'roots'))).toMatchObject({ type: 'fifo', uid: 0 });
    expect(facts(join(dir, 'chr'))).toMatchObject({ type: 'chr', rdev: makedev(1, 3), uid: 0 });

    expect(asOther('rename', join(dir, 'own'), join(dir, 'own-moved'))).toBe('OK');
    expect(facts(join(dir, 'own-moved'))).toEqual({ type: 'fifo', mode: 0o644, rdev: 0, uid: OTHER, gid: OTHER });
    expect((await head('sticky/own-moved')).metadata).toMatchObject({ mode: '4516', uid: String(OTHER), gid: String(OTHER) });
    expect(asOther('unlink', join(dir, 'own-moved'))).toBe('OK');
    expect(asOther('unlink', join(dir, 'sock'))).toBe('OK');
    // Files, directories and symlinks it makes are its own too, as on a local disk.
    expect(asOther('create', join(dir, 'file'))).toBe('OK');
    expect(asOther('mkdir', join(dir, 'subdir'))).toBe('OK');
    expect(asOther('symlink', join(dir, 'link'), 'file')).toBe('OK');
    for (const name of ['file', 'subdir', 'link']) expect(lstatSync(join(dir, name)), name).toMatchObject({ uid: OTHER, gid: OTHER });
    expect(asOther('unlink', join(dir, 'file'))).toBe('OK');
    expect(asOther('unlink', join(dir, 'link'))).toBe('OK');
    rmdirSync(join(dir, 'subdir'));
    // Root may remove anyone's.
    expect(asOther('mkfifo', join(dir, 'left'), '644')).toBe('OK');
    expect(asRoot('unlink', join(dir, 'left'))).toBe('OK');
    expect(Object.keys(asRoot('dtypes', dir) as object).sort()).toEqual(['.', '..', 'chr', 'roots']);
  });
});

describe('s3fs (Debian 12: 1.90) and objmount on one bucket', () => {
  /** An s3fs mount of the bucket for the length of `use`, unmounted whatever happens. */
  async function withS3fs(use: (dir: string) => Promise<void> | void): Promise<void> {
    const dir = mkdtempSync(join(base, 's3fs-'));
    const passwd = join(base, 'passwd');
    writeFileSync(passwd, `${LOCAL_S3_ACCESS_KEY}:${LOCAL_S3_SECRET_KEY}\n`, { mode: 0o600 });
    // s3fs returns once it is mounted (it daemonizes after the mount).
    execFileSync('s3fs', [BUCKET, dir, '-o', `url=${server.endpoint},use_path_request_style,passwd_file=${passwd},stat_cache_expire=1`]);
    try {
      expect(isMounted(dir)).toBe(true);
      await use(dir);
    } finally {
      try {
        execFileSync('fusermount3', ['-u', dir]);
      } catch {
        forceUnmount(dir);
      }
    }
  }

  it('s3fs sees the types objmount made (and, keeping no device numbers, shows devices as 0,0)', async () => {
    const dir = directory('for-s3fs', 0o755);
    asRoot('mkfifo', join(dir, 'fifo'), '640');
    asRoot('mknod', join(dir, 'chr'), 'c', 1, 3, '644');
    asRoot('mknod', join(dir, 'blk'), 'b', 8, 1, '640');
    asRoot('bind', join(dir, 'sock'));
    asRoot('chown', join(dir, 'fifo'), OTHER, OTHER);
    await withS3fs((s3fs) => {
      const seen = (name: string) => facts(join(s3fs, 'for-s3fs', name));
      expect(seen('fifo')).toEqual({ type: 'fifo', mode: 0o640, rdev: 0, uid: OTHER, gid: OTHER });
      expect(seen('chr')).toEqual({ type: 'chr', mode: 0o644, rdev: 0, uid: 0, gid: 0 });
      expect(seen('blk')).toEqual({ type: 'blk', mode: 0o640, rdev: 0, uid: 0, gid: 0 });
      expect(seen('sock')).toEqual({ type: 'sock', mode: 0o755, rdev: 0, uid: 0, gid: 0 });
    });
  });

  it('objmount reads the FIFOs, devices and sockets s3fs made, as 0,0 devices', async () => {
    await withS3fs((s3fs) => {
      mkdirSync(join(s3fs, 'from-s3fs'));
      expect(asRoot('mkfifo', join(s3fs, 'from-s3fs', 'fifo'), '644')).toBe('OK');
      expect(asRoot('mknod', join(s3fs, 'from-s3fs', 'chr'), 'c', 1, 3, '644')).toBe('OK');
      expect(asRoot('mknod', join(s3fs, 'from-s3fs', 'blk'), 'b', 8, 1, '600')).toBe('OK');
      expect(asRoot('bind', join(s3fs, 'from-s3fs', 'sock'))).toBe('OK');
      expect(asRoot('chown', join(s3fs, 'from-s3fs', 'chr'), OTHER, OTHER)).toBe('OK');
    });
    // What s3fs 1.90 stores: the decimal mode with the type, no rdev.
    expect(await head('from-s3fs/fifo')).toEqual({ size: 0, metadata: expect.objectContaining({ mode: '4516' }) });
    expect((await head('from-s3fs/chr')).metadata).toMatchObject({ mode: '8612', uid: String(OTHER) });
    expect((await head('from-s3fs/chr')).metadata).not.toHaveProperty('rdev');

    const fresh = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--allow-other']);
    try {
      const seen = (name: string) => facts(join(fresh.mountpoint, 'from-s3fs', name));
      expect(seen('fifo')).toEqual({ type: 'fifo', mode: 0o644, rdev: 0, uid: 0, gid: 0 });
      expect(seen('chr')).toEqual({ type: 'chr', mode: 0o644, rdev: 0, uid: OTHER, gid: OTHER });
      expect(seen('blk')).toEqual({ type: 'blk', mode: 0o600, rdev: 0, uid: 0, gid: 0 });
      expect(seen('sock')).toEqual({ type: 'sock', mode: 0o755, rdev: 0, uid: 0, gid: 0 });
      // And they are objmount's to change like its own: chmod keeps the type, rename and unlink.
      expect(asRoot('chmod', join(fresh.mountpoint, 'from-s3fs', 'fifo'), '600')).toBe('OK');
      expect(seen('fifo')).toMatchObject({ type: 'fifo', mode: 0o600 });
      expect(asRoot('rename', join(fresh.mountpoint, 'from-s3fs', 'chr'), join(fresh.mountpoint, 'from-s3fs', 'chr2'))).toBe('OK');
      expect(seen('chr2')).toMatchObject({ type: 'chr', uid: OTHER });
      expect(asRoot('unlink', join(fresh.mountpoint, 'from-s3fs', 'sock'))).toBe('OK');
    } finally {
      await fresh.unmount();
    }
  });
});
