/**
 * The root view: one mount that shows every bucket the stored credentials reach, as
 * `s3/<bucket>`, `az/<account>/<container>` and `gs/<bucket>`.
 *
 * The directories above the buckets are made up here (read-only, mode 0555); each bucket is a
 * `FileSystem` of its own, made the first time a path inside it is used, and every operation on a
 * path inside a bucket goes to it with the path made relative to the bucket. File handles are
 * numbered here and mapped to the bucket's own. A rename or link between two buckets is `EXDEV`,
 * as between two disks, so `mv` copies instead.
 */

import { posix } from 'node:path';

import { type Attributes, type Owner, S_IFDIR } from './attributes.js';
import type { Cancellation } from './cancellation.js';
import type { StorePages } from './read/page-store.js';
import { FsError, toFsError } from './errors.js';
import type { DirectoryEntry, FileSystem, FileSystemStats, StatFs } from './file-system.js';

/** What the FUSE operations ask of a file system: a bucket's, or the root view. */
export type MountedFileSystem = Pick<
  FileSystem,
  | 'getattr'
  | 'fgetattr'
  | 'versionOf'
  | 'readdir'
  | 'readdirPlus'
  | 'mkdir'
  | 'rmdir'
  | 'create'
  | 'open'
  | 'read'
  | 'write'
  | 'flush'
  | 'fsync'
  | 'release'
  | 'truncate'
  | 'ftruncate'
  | 'unlink'
  | 'symlink'
  | 'readlink'
  | 'link'
  | 'mknod'
  | 'rename'
  | 'chmod'
  | 'chown'
  | 'utimens'
  | 'statfs'
  | 'stopWrites'
  | 'drain'
  | 'pendingFiles'
  | 'stats'
>;

/** One bucket (container) of the view, e.g. path ['az', 'account', 'container']. */
export interface Space {
  path: string[];
  /** Makes the bucket's file system; called once, again only after a failure. */
  open(): Promise<MountedFileSystem>;
}

export interface RootViewOptions {
  /** The buckets to show; asked again when `catalogTtlMs` has passed. */
  catalog(): Promise<Space[]>;
  catalogTtlMs: number;
  /** Owner of the made-up directories. */
  uid: number;
  gid: number;
  /** Answered before any bucket is open. */
  statfs: StatFs;
  /** How long a bucket that failed to open answers with that failure before it is tried again. */
  retryAfterMs?: number;
  now?: () => number;
}

type Route = { kind: 'dir'; names: string[] } | { kind: 'space'; space: Space; rest: string };

interface OpenSpace {
  fs?: MountedFileSystem;
  opening?: Promise<MountedFileSystem>;
  failure?: { error: FsError; until: number };
}

export class RootView implements MountedFileSystem {
  private spaces: Space[] = [];
  private catalogAt = -Infinity;
  private catalogLoading?: Promise<void>;
  private readonly open_ = new Map<string, OpenSpace>();
  private readonly handles = new Map<number, { fs: MountedFileSystem; fh: number }>();
  private nextHandle = 1;
  private readonly startedMs: number;
  private readonly own = { failedOperations: 0 };
  readonly stats: FileSystemStats;

  constructor(private readonly options: RootViewOptions) {
    this.startedMs = this.now();
    const opened = () => [...this.open_.values()].flatMap((entry) => (entry.fs ? [entry.fs] : []));
    const own = this.own;
    this.stats = {
      get bytesRead() {
        return opened().reduce((sum, fs) => sum + fs.stats.bytesRead, 0);
      },
      get bytesWritten() {
        return opened().reduce((sum, fs) => sum + fs.stats.bytesWritten, 0);
      },
      get failedOperations() {
        return own.failedOperations + opened().reduce((sum, fs) => sum + fs.stats.failedOperations, 0);
      },
      set failedOperations(value: number) {
        own.failedOperations += value - this.failedOperations;
      },
    } as FileSystemStats;
  }

  // ---- paths ---------------------------------------------------------------------------------

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private async catalog(): Promise<Space[]> {
    if (this.now() - this.catalogAt >= this.options.catalogTtlMs) {
      this.catalogLoading ??= this.options
        .catalog()
        .then((spaces) => {
          this.spaces = spaces;
          this.catalogAt = this.now();
        })
        .finally(() => (this.catalogLoading = undefined));
      await this.catalogLoading;
    }
    return this.spaces;
  }

  private async route(path: string): Promise<Route> {
    const parts = path.split('/').filter(Boolean);
    const spaces = await this.catalog();
    const space = spaces.find((s) => s.path.length <= parts.length && s.path.every((part, i) => parts[i] === part));
    if (space) return { kind: 'space', space, rest: `/${parts.slice(space.path.length).join('/')}` };
    const below = spaces.filter((s) => s.path.length > parts.length && parts.every((part, i) => s.path[i] === part));
    if (below.length === 0 && parts.length > 0) throw new FsError('ENOENT', `${path}: no such bucket or directory in the root view`);
    return { kind: 'dir', names: [...new Set(below.map((s) => s.path[parts.length]!))].sort() };
  }

  /** The bucket's file system, made on first use. */
  private async fsOf(space: Space): Promise<MountedFileSystem> {
    const key = space.path.join('/');
    let entry = this.open_.get(key);
    if (!entry) this.open_.set(key, (entry = {}));
    if (entry.fs) return entry.fs;
    if (entry.failure && entry.failure.until > this.now()) throw entry.failure.error;
    entry.opening ??= space.open().then(
      (fs) => {
        entry.fs = fs;
        entry.failure = undefined;
        return fs;
      },
      (error: unknown) => {
        const failure = toFsError(error, `/${key}`);
        entry.failure = { error: failure, until: this.now() + (this.options.retryAfterMs ?? 5_000) };
        throw failure;
      },
    );
    try {
      return await entry.opening;
    } finally {
      entry.opening = undefined;
    }
  }

  /** The bucket and bucket-relative path of `path`; EPERM (naming `op`) for the made-up directories. */
  private async inBucket(path: string, op: string): Promise<{ fs: MountedFileSystem; rest: string }> {
    const route = await this.route(path).catch(async (error: unknown) => {
      // A new name in a made-up directory (mkdir s3/new-bucket): not ours to make.
      const parent = await this.route(posix.dirname(path)).catch(() => undefined);
      if (parent?.kind === 'dir') return parent;
      throw error;
    });
    if (route.kind === 'dir' || route.rest === '/') {
      throw new FsError(
        'EPERM',
        `${path}: the root view's ${route.kind === 'dir' ? 'directories list buckets' : 'buckets themselves'} cannot be changed (${op})`,
      );
    }
    return { fs: await this.fsOf(route.space), rest: route.rest };
  }

  private handle(fh: number): { fs: MountedFileSystem; fh: number } {
    const handle = this.handles.get(fh);
    if (!handle) throw new FsError('EBADF', `no open file ${fh}`);
    return handle;
  }

  private register(fs: MountedFileSystem, fh: number): number {
    const ours = this.nextHandle++;
    this.handles.set(ours, { fs, fh });
    return ours;
  }

  private directory(): Attributes {
    const at = this.startedMs;
    return {
      kind: 'directory',
      mode: S_IFDIR | 0o555,
      rdev: 0,
      uid: this.options.uid,
      gid: this.options.gid,
      size: 0,
      mtimeMs: at,
      atimeMs: at,
      ctimeMs: at,
    };
  }

  // ---- the operations ------------------------------------------------------------------------

  // Reads pass the cancellation of an interrupted request on to the bucket (cancellation.ts); the
  // catalog and a bucket's opening are shared by every operation, and run to their end.

  async getattr(path: string, cancel?: Cancellation): Promise<Attributes> {
    const route = await this.route(path);
    if (route.kind === 'dir') return this.directory();
    return (await this.fsOf(route.space)).getattr(route.rest, cancel);
  }

  async readdir(path: string, cancel?: Cancellation): Promise<string[]> {
    const route = await this.route(path);
    if (route.kind === 'dir') return ['.', '..', ...route.names];
    return (await this.fsOf(route.space)).readdir(route.rest, cancel);
  }

  async readdirPlus(path: string, cancel?: Cancellation): Promise<DirectoryEntry[]> {
    const route = await this.route(path);
    if (route.kind === 'space') return (await this.fsOf(route.space)).readdirPlus(route.rest, cancel);
    // The made-up directories hold a few names, some of them buckets whose attributes come from
    // their own file systems (opened at their first lookup): names alone.
    return ['.', '..', ...route.names].map((name) => ({ name }));
  }

  async open(path: string, flags: number, cancel?: Cancellation): Promise<number> {
    const route = await this.route(path);
    if (route.kind === 'dir') throw new FsError('EISDIR', `${path}: is a directory`);
    const fs = await this.fsOf(route.space);
    return this.register(fs, await fs.open(route.rest, flags, cancel));
  }

  async create(path: string, permissions: number, owner?: Owner, flags?: number): Promise<number> {
    const { fs, rest } = await this.inBucket(path, 'create');
    return this.register(fs, await fs.create(rest, permissions, owner, flags));
  }

  async read(fh: number, into: Buffer, length: number, position: number, cancel?: Cancellation, storePages?: StorePages): Promise<number> {
    const h = this.handle(fh);
    return h.fs.read(h.fh, into, length, position, cancel, storePages);
  }

  async write(fh: number, data: Buffer, position: number): Promise<number> {
    const h = this.handle(fh);
    return h.fs.write(h.fh, data, position);
  }

  async flush(fh: number, laterClose?: () => Promise<boolean>): Promise<void> {
    const h = this.handle(fh);
    return h.fs.flush(h.fh, laterClose);
  }

  async fsync(fh: number): Promise<void> {
    const h = this.handle(fh);
    return h.fs.fsync(h.fh);
  }

  async release(fh: number): Promise<void> {
    const h = this.handle(fh);
    this.handles.delete(fh);
    return h.fs.release(h.fh);
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const h = this.handle(fh);
    return h.fs.ftruncate(h.fh, size);
  }

  versionOf(fh: number): string {
    const h = this.handle(fh);
    return h.fs.versionOf(h.fh);
  }

  async fgetattr(fh: number): Promise<Attributes> {
    const h = this.handle(fh);
    return h.fs.fgetattr(h.fh);
  }

  async mkdir(path: string, permissions: number, owner?: Owner): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'mkdir');
    return fs.mkdir(rest, permissions, owner);
  }

  async rmdir(path: string): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'rmdir');
    return fs.rmdir(rest);
  }

  async unlink(path: string): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'unlink');
    return fs.unlink(rest);
  }

  async truncate(path: string, size: number): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'truncate');
    return fs.truncate(rest, size);
  }

  async symlink(target: string, path: string, owner?: Owner): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'symlink');
    return fs.symlink(target, rest, owner);
  }

  async readlink(path: string, cancel?: Cancellation): Promise<string> {
    const { fs, rest } = await this.inBucket(path, 'readlink');
    return fs.readlink(rest, cancel);
  }

  async mknod(path: string, mode: number, rdev: number, owner?: Owner): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'mknod');
    return fs.mknod(rest, mode, rdev, owner);
  }

  async chmod(path: string, mode: number): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'chmod');
    return fs.chmod(rest, mode);
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'chown');
    return fs.chown(rest, uid, gid);
  }

  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    const { fs, rest } = await this.inBucket(path, 'utimens');
    return fs.utimens(rest, atimeMs, mtimeMs);
  }

  async rename(from: string, to: string): Promise<void> {
    const source = await this.inBucket(from, 'rename');
    const target = await this.inBucket(to, 'rename');
    if (source.fs !== target.fs) throw new FsError('EXDEV', `${from} -> ${to}: between two buckets (mv copies instead)`);
    return source.fs.rename(source.rest, target.rest);
  }

  async link(from: string, to: string): Promise<void> {
    const source = await this.inBucket(from, 'link');
    const target = await this.inBucket(to, 'link');
    if (source.fs !== target.fs) throw new FsError('EXDEV', `${from} -> ${to}: between two buckets`);
    return source.fs.link(source.rest, target.rest);
  }

  statfs(): StatFs {
    const first = [...this.open_.values()].find((entry) => entry.fs)?.fs;
    return first ? first.statfs() : this.options.statfs;
  }

  stopWrites(): void {
    for (const entry of this.open_.values()) entry.fs?.stopWrites();
  }

  async drain(): Promise<void> {
    await Promise.all([...this.open_.values()].map((entry) => entry.fs?.drain()));
  }

  get pendingFiles(): string[] {
    return [...this.open_.entries()].flatMap(([key, entry]) =>
      entry.fs ? entry.fs.pendingFiles.map((path) => posix.join('/', key, path)) : [],
    );
  }
}
