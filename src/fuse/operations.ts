/**
 * Translates FUSE operations into `FileSystem` calls and `FsError`s into errno values: the one
 * errno table. Nothing here decides behaviour; it only converts arguments and results.
 *
 * The operations a kernel may interrupt (binding.ts) get a `Cancellation` after their callback,
 * and pass it on, so that an interrupted request's store requests end with it.
 *
 * The kernel keeps a file's pages across opens while its mtime and size are unchanged (the
 * binding's auto_cache); an object another client replaced with one of the same size and the
 * same stored mtime would pass that test. So each open also compares the version (ETag) its
 * handle reads with the one the kernel's pages of that path came from (the last open's, or the
 * version a writer's close left), and drops the pages first when they differ (`dropPages`).
 */

import { constants } from 'node:os';

import { LRUCache } from 'lru-cache';

import type { Attributes } from '../fs/attributes.js';
import type { Cancellation } from '../fs/cancellation.js';
import { type FsErrorCode, toFsError } from '../fs/errors.js';
import type { MountedFileSystem } from '../fs/root-view.js';
import type { Logger } from '../log/logger.js';
import type { FuseOperations } from './binding.js';
import { holdsWritableDescriptor } from './descriptors.js';

const errno = constants.errno as Record<string, number>;

/** FsError code → negative errno, as FUSE expects. */
export function errnoOf(code: FsErrorCode): number {
  const value = errno[code];
  return value === undefined ? -errno.EIO! : -value;
}

/**
 * Codes that are ordinary answers rather than failures worth a log line (EINTR: the program
 * waiting was interrupted, and its store requests cancelled).
 */
const QUIET: ReadonlySet<FsErrorCode> = new Set(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'ENODATA', 'ENOTSUP', 'EINTR']);

type Callback = (code: number, ...results: unknown[]) => void;

export interface OperationsOptions {
  /** The mountpoint as /proc shows the mount's files (canonical), for `holdsWritableDescriptor`. */
  mountpoint?: string;
  /** The session's `storePages` (binding.ts): reads may hand pages to the kernel through it. */
  storePages?: (fh: number, offset: number, data: Buffer) => Promise<number>;
  /** The session's `dropPages` (binding.ts): an open of a changed object drops the old pages. */
  dropPages?: (path: string) => Promise<number>;
}

/** Paths whose page version is remembered (see above); a path forgotten keeps auto_cache's test only. */
const KERNEL_VERSIONS = 10_000;

export function createOperations(fs: MountedFileSystem, logger: Logger, options: OperationsOptions = {}): FuseOperations {
  const { storePages, dropPages } = options;
  /** The version of the object the kernel's pages of each path came from. */
  const kernelVersions = new LRUCache<string, string>({ max: KERNEL_VERSIONS });
  /** Handle `fh` on `path` is about to be answered: the kernel's pages must be of its version. */
  const pagesFor = async (path: string, fh: number) => {
    const version = fs.versionOf(fh);
    const before = kernelVersions.get(path);
    kernelVersions.set(path, version);
    if (dropPages && before !== undefined && before !== version && version !== '') await dropPages(path);
  };
  /** Runs `work`, answering FUSE with its result or the errno of its failure. */
  const answer = <T>(op: string, path: string, cb: Callback, work: () => Promise<T> | T, reply?: (value: T) => unknown[]) => {
    let promise: Promise<T>;
    try {
      promise = Promise.resolve(work());
    } catch (error) {
      promise = Promise.reject(error);
    }
    promise.then(
      (value) => cb(0, ...(reply ? reply(value) : [])),
      (error: unknown) => {
        const fsError = toFsError(error, path);
        if (!QUIET.has(fsError.code)) {
          fs.stats.failedOperations += 1;
          logger.warn(`${op} ${path}: ${fsError.code}: ${fsError.message}`);
        } else {
          logger.debug(`${op} ${path}: ${fsError.code}`);
        }
        cb(errnoOf(fsError.code));
      },
    );
  };

  const ops = {
    init: (cb: Callback) => cb(0),
    statfs: (path: string, cb: Callback) =>
      answer(
        'statfs',
        path,
        cb,
        () => fs.statfs(),
        (s) => [
          {
            bsize: s.blockSize,
            frsize: s.blockSize,
            blocks: s.blocks,
            bfree: s.blocksFree,
            bavail: s.blocksFree,
            files: s.files,
            ffree: s.filesFree,
            favail: s.filesFree,
            namemax: s.nameMax,
          },
        ],
      ),
    getattr: (path: string, cb: Callback, cancel?: Cancellation) =>
      answer(
        'getattr',
        path,
        cb,
        () => fs.getattr(path, cancel),
        (a) => [toStat(a)],
      ),
    // With a handle (fstat): the open file's attributes, also once it was unlinked.
    fgetattr: (path: string, fh: number, cb: Callback) =>
      answer(
        'getattr',
        path,
        cb,
        () => fs.fgetattr(fh),
        (a) => [toStat(a)],
      ),
    readdir: (path: string, cb: Callback, cancel?: Cancellation) =>
      answer(
        'readdir',
        path,
        cb,
        () => fs.readdir(path, cancel),
        (names) => [names],
      ),
    // The names with the attributes known now: the kernel takes those as looked up.
    readdirplus: (path: string, cb: Callback, cancel?: Cancellation) =>
      answer(
        'readdir',
        path,
        cb,
        () => fs.readdirPlus(path, cancel),
        (entries) => [entries.map((entry) => (entry.attrs ? { name: entry.name, ...toStat(entry.attrs) } : entry.name))],
      ),
    opendir: (_path: string, _flags: number, cb: Callback) => cb(0, 0),
    releasedir: (_path: string, _fh: number, cb: Callback) => cb(0),
    // What makes a node gets the caller's uid and gid (the binding passes them): it is theirs.
    mkdir: (path: string, mode: number, uid: number, gid: number, cb: Callback) =>
      answer('mkdir', path, cb, () => fs.mkdir(path, mode, { uid, gid })),
    rmdir: (path: string, cb: Callback) => answer('rmdir', path, cb, () => fs.rmdir(path)),
    // The open flags tell whether the create keeps what may be there (FileSystem.create).
    create: (path: string, mode: number, uid: number, gid: number, flags: number, cb: Callback) =>
      answer(
        'create',
        path,
        cb,
        () => fs.create(path, mode, { uid, gid }, flags),
        (fh) => [fh],
      ),
    open: (path: string, flags: number, cb: Callback, cancel?: Cancellation) =>
      answer(
        'open',
        path,
        cb,
        async () => {
          const fh = await fs.open(path, flags, cancel);
          await pagesFor(path, fh);
          return fh;
        },
        (fh) => [fh],
      ),
    read: (path: string, fh: number, buffer: Buffer, length: number, position: number, cb: (n: number) => void, cancel?: Cancellation) => {
      const store = storePages && ((offset: number, data: Buffer) => storePages(fh, offset, data));
      fs.read(fh, buffer, length, position, cancel, store).then(cb, (error: unknown) => {
        const fsError = toFsError(error, path);
        if (fsError.code === 'EINTR') logger.debug(`read ${path}: EINTR`);
        else {
          fs.stats.failedOperations += 1;
          logger.warn(`read ${path}: ${fsError.code}: ${fsError.message}`);
        }
        cb(errnoOf(fsError.code));
      });
    },
    // The Buffer is lent for this call only (binding.ts): FileSystem.write has written it to the
    // staging file by the time it resolves, and keeps no reference to it.
    write: (path: string, fh: number, buffer: Buffer, length: number, position: number, cb: (n: number) => void) => {
      fs.write(fh, buffer.subarray(0, length), position).then(cb, (error: unknown) => {
        const fsError = toFsError(error, path);
        fs.stats.failedOperations += 1;
        logger.warn(`write ${path}: ${fsError.code}: ${fsError.message}`);
        cb(errnoOf(fsError.code));
      });
    },
    // `pid` closed a descriptor on inode `ino` (0 when not known): whether it holds another one
    // for writing is asked only when it matters (FileSystem.flush).
    flush: (path: string, fh: number, pid: number, ino: number, cb: Callback) => {
      const { mountpoint } = options;
      const laterClose = mountpoint === undefined ? undefined : async () => holdsWritableDescriptor(pid, `${mountpoint}${path}`, ino);
      answer('flush', path, cb, () => fs.flush(fh, laterClose));
    },
    fsync: (path: string, _datasync: boolean, fh: number, cb: Callback) => answer('fsync', path, cb, () => fs.fsync(fh)),
    // What a writer's close uploaded is what the kernel's pages hold: no need to drop them.
    release: (path: string, fh: number, cb: Callback) =>
      answer('release', path, cb, () => {
        const version = fs.versionOf(fh);
        if (version !== '') kernelVersions.set(path, version);
        return fs.release(fh);
      }),
    truncate: (path: string, size: number, cb: Callback) => answer('truncate', path, cb, () => fs.truncate(path, size)),
    ftruncate: (path: string, fh: number, size: number, cb: Callback) => answer('ftruncate', path, cb, () => fs.ftruncate(fh, size)),
    unlink: (path: string, cb: Callback) => answer('unlink', path, cb, () => fs.unlink(path)),
    rename: (from: string, to: string, cb: Callback) => answer('rename', from, cb, () => fs.rename(from, to)),
    symlink: (target: string, path: string, uid: number, gid: number, cb: Callback) =>
      answer('symlink', path, cb, () => fs.symlink(target, path, { uid, gid })),
    readlink: (path: string, cb: Callback, cancel?: Cancellation) =>
      answer(
        'readlink',
        path,
        cb,
        () => fs.readlink(path, cancel),
        (t) => [t],
      ),
    link: (from: string, to: string, cb: Callback) => answer('link', to, cb, () => fs.link(from, to)),
    mknod: (path: string, mode: number, dev: number, uid: number, gid: number, cb: Callback) =>
      answer('mknod', path, cb, () => fs.mknod(path, mode, dev, { uid, gid })),
    chmod: (path: string, mode: number, cb: Callback) => answer('chmod', path, cb, () => fs.chmod(path, mode)),
    chown: (path: string, uid: number, gid: number, cb: Callback) => answer('chown', path, cb, () => fs.chown(path, uid, gid)),
    // null: that time stays as it is (UTIME_OMIT, e.g. `touch -m`).
    utimens: (path: string, at: number | null, mt: number | null, cb: Callback) => {
      answer('utimens', path, cb, async () => {
        const current = at === null || mt === null ? await fs.getattr(path) : undefined;
        await fs.utimens(path, at ?? current!.atimeMs, mt ?? current!.mtimeMs);
      });
    },
    // Extended attributes are not stored: with no xattr ops here the binding answers at once,
    // without a call into JS (a get or set is not supported, a remove finds no such attribute, a
    // list is empty), so cp, rsync and tar skip them quietly and `ls -l` pays nothing for them:
    // after the first get, the kernel answers the others itself.
  };
  return ops as unknown as FuseOperations;
}

function toStat(a: Attributes) {
  return {
    mode: a.mode,
    rdev: a.rdev,
    uid: a.uid,
    gid: a.gid,
    size: a.size,
    nlink: a.kind === 'directory' ? 2 : 1,
    blksize: 4096,
    blocks: Math.ceil(a.size / 512),
    mtime: new Date(a.mtimeMs),
    atime: new Date(a.atimeMs),
    ctime: new Date(a.ctimeMs),
  };
}
