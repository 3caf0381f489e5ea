/**
 * The model test of test/model/mount.model.test.ts, in process: random sequences of the same file
 * operations run on `FileSystem` (its public methods only) over `MemoryStore`, and on a local
 * directory, compared after every step: the same result or the same error code, the same bytes,
 * listings and modes. Without FUSE and a server a sequence takes milliseconds, so the suite runs
 * thousands of them; the real-mount test stays short.
 *
 * What the kernel does between a system call and FUSE, `Kernel` below does between a call and
 * `FileSystem`: it walks the path one name at a time (following symlinks), answers what the VFS
 * answers itself (EEXIST before mkdir, EISDIR before unlink, EINVAL for a directory moved into
 * itself...), and turns `writeFile` into create/open, write, flush and release.
 *
 * The world also changes behind the mount's back: another client puts and deletes objects (and
 * the clock then moves past the TTLs, the time the mount is allowed to take to see them), the
 * clock jumps (expiring cached entries, which must change nothing), the mount is "remounted" (a
 * new FileSystem over the same store, after a drain, whose whole tree must equal the local one),
 * and store calls fail (FaultyStore): an operation that fails must say so with EIO or EACCES and
 * leave the store as it was before or as it would be after, never anything else, with no
 * multipart upload left behind. Files are also held open across operations (read, written,
 * fstat'ed and fsynced through their handles while they are renamed, unlinked or written over).
 * Runs are sync or async write mode, with 1 KiB parts (so files of a few KiB stream and use
 * multipart uploads and part copies) or 8 MiB ones, with and without a key prefix, with short
 * metadata TTLs or none.
 *
 * Failures shrink to a short sequence; keep each as a named case at the end (a bug not fixed yet
 * as `it.fails`, with what it is). OBJMOUNT_FS_MODEL_RUNS sets the number of random runs per
 * property (default 200; the four take about 20 s of CPU).
 */

import {
  appendFileSync,
  chmodSync,
  closeSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  rmdirSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Attributes } from '../../src/fs/attributes.js';
import { FileSystem, O_APPEND, O_CREAT, O_RDWR, O_TRUNC, O_WRONLY } from '../../src/fs/file-system.js';
import { silentLogger } from '../../src/log/logger.js';
import { FaultyStore } from '../../src/storage/faulty-store.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { StoreErrorCode } from '../../src/storage/object-store.js';

const RUNS = Number(process.env.OBJMOUNT_FS_MODEL_RUNS ?? 200);
/** A few seconds on an idle machine; far longer on a loaded one, which is no failure. */
const PROPERTY_TIMEOUT = Math.max(120_000, RUNS * 1_500);
const KiB = 1024;
const O_RDONLY = 0;
const UMASK = process.umask();
const FILE_TTL = 1_000;
const DIR_TTL = 2_000;
const NEGATIVE_TTL = 500;
/** Past every TTL: what another client changed is then visible. */
const ALL_TTLS = Math.max(FILE_TTL, DIR_TTL, NEGATIVE_TTL) + 1;
/** The directory each run works in, on both sides ('..' from its symlinks stays in the tree). */
const WORK = 'w';

let scratch: string;
let runs = 0;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'objmount-fs-model-'));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** How one run mounts. */
interface Setup {
  writeMode: 'sync' | 'async';
  partSize: number;
  prefix: string;
  /** Start with directories d, e and e/f and files a and d/a, so that more operations find something. */
  seeded: boolean;
  /** The metadata cache's TTLs: short ones (expired by the clock), or none (`--metadata-ttl 0`). */
  caching: boolean;
}

class Clock {
  ms = 1_700_000_000_000;
  now = (): number => this.ms;
}

/** One run: the store, the mount over it, and the local directory it is compared with. */
class World {
  readonly memory: MemoryStore;
  readonly store: FaultyStore;
  readonly clock = new Clock();
  readonly local: string;
  readonly stagingDir: string;
  fs: FileSystem;
  kernel: Kernel;
  /** Files held open across operations: the local descriptor and the mount's handle. */
  readonly handles: { fd: number; fh: number; mode: string }[] = [];

  constructor(readonly setup: Setup) {
    this.memory = new MemoryStore({ minPartSize: KiB });
    this.store = new FaultyStore(this.memory);
    const dir = join(scratch, `run-${++runs}`);
    this.local = join(dir, 'local');
    this.stagingDir = join(dir, 'staging');
    mkdirSync(this.local, { recursive: true });
    mkdirSync(this.stagingDir);
    this.fs = this.mount();
    this.kernel = new Kernel(this.fs);
  }

  mount(): FileSystem {
    return new FileSystem(this.store, {
      prefix: this.setup.prefix,
      defaults: { uid: 1000, gid: 1000, fileMode: 0o666 & ~UMASK, dirMode: 0o777 & ~UMASK },
      cache: this.setup.caching
        ? { fileTtlMs: FILE_TTL, dirTtlMs: DIR_TTL, negativeTtlMs: NEGATIVE_TTL, maxEntries: 10_000, clock: this.clock }
        : { fileTtlMs: 0, dirTtlMs: 0, negativeTtlMs: 0, maxEntries: 10_000, clock: this.clock },
      stagingDir: this.stagingDir,
      partSize: this.setup.partSize,
      uploadConcurrency: 2,
      writeMode: this.setup.writeMode,
      logger: silentLogger,
      now: this.clock.now,
    });
  }

  /** Everything acknowledged reaches the store; then a new FileSystem over it, as after a remount. */
  async remount(): Promise<void> {
    await this.fs.drain();
    this.fs = this.mount();
    this.kernel = new Kernel(this.fs);
  }

  key(path: string): string {
    return `${this.setup.prefix}${WORK}/${path}`;
  }

  async start(): Promise<void> {
    mkdirSync(join(this.local, WORK));
    await this.fs.mkdir(`/${WORK}`, 0o777 & ~UMASK);
    if (!this.setup.seeded) return;
    for (const dir of ['d', 'e', 'e/f']) {
      mkdirSync(join(this.local, WORK, dir));
      await this.kernel.mkdir(dir);
    }
    for (const [file, bytes] of [
      ['a', 100],
      ['d/a', 2500],
    ] as const) {
      const data = Buffer.alloc(bytes, file);
      writeFileSync(join(this.local, WORK, file), data);
      await this.kernel.writeFile(file, data);
    }
  }

  /** Closes every held handle on both sides; the outcomes must agree. */
  async closeHandles(): Promise<void> {
    for (const { fd, fh } of this.handles.splice(0)) {
      const real = await outcomeOf(() => this.kernel.close(fh));
      closeSync(fd);
      expect(real.code, 'close of a held handle').toBeUndefined();
    }
  }

  async end(): Promise<void> {
    await this.closeHandles();
    await this.remount();
    expect(await snapshotOf(this.kernel)).toEqual(snapshotOfLocal(this.local));
    expect(this.memory.uploads.size).toBe(0);
    rmSync(dirname(this.local), { recursive: true, force: true });
  }
}

// ---- the kernel's part ----

/** An error the VFS answers itself, before FUSE is asked. */
class KernelError extends Error {
  constructor(
    readonly code: string,
    path: string,
  ) {
    super(`${code}: ${path}`);
  }
}

/** Linux gives up after this many symlinks in one path (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

interface Found {
  /** The path in the mount, symlinks resolved (all but the last, unless followed). */
  path: string;
  /** Its attributes; undefined when nothing is there (its directory is). */
  attrs?: Attributes;
}

/**
 * What the kernel does with paths and open files before and around FUSE calls, over a
 * `FileSystem`. Paths are relative to the run's directory; methods mirror node:fs calls.
 */
class Kernel {
  /** How each handle was opened: the kernel refuses a read or write the mode does not allow. */
  private readonly modes = new Map<number, { read: boolean; write: boolean; append: boolean }>();

  constructor(readonly fs: FileSystem) {}

  /** Resolves `path` (relative to the work directory) as namei does. */
  async walk(path: string, followLast: boolean): Promise<Found> {
    const budget = { links: MAX_SYMLINKS };
    return this.walkFrom('/', `${WORK}/${path}`, followLast, budget);
  }

  private async walkFrom(start: string, path: string, followLast: boolean, budget: { links: number }): Promise<Found> {
    const names = path.split('/').filter((n) => n !== '' && n !== '.');
    let dir = start;
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const last = i === names.length - 1;
      if (name === '..') {
        dir = posix.dirname(dir);
        if (last) return { path: dir, attrs: await this.fs.getattr(dir) };
        continue;
      }
      const child = posix.join(dir, name);
      const attrs = await this.lookup(child);
      if (attrs?.kind === 'symlink' && (!last || followLast)) {
        if (--budget.links < 0) throw new KernelError('ELOOP', child);
        const target = await this.fs.readlink(child);
        const found = await this.walkFrom(target.startsWith('/') ? '/' : dir, target, true, budget);
        if (last) return found;
        if (!found.attrs) throw new KernelError('ENOENT', child);
        if (found.attrs.kind !== 'directory') throw new KernelError('ENOTDIR', child);
        dir = found.path;
        continue;
      }
      if (last) return { path: child, attrs };
      if (!attrs) throw new KernelError('ENOENT', child);
      if (attrs.kind !== 'directory') throw new KernelError('ENOTDIR', child);
      dir = child;
    }
    return { path: dir, attrs: await this.fs.getattr(dir) };
  }

  /** FUSE's LOOKUP: getattr, with ENOENT as "nothing there". */
  private async lookup(path: string): Promise<Attributes | undefined> {
    try {
      return await this.fs.getattr(path);
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  /** open(2) of an existing file; a directory only for reading (then read(2) says EISDIR). */
  private async openExisting(found: Found, flags: number): Promise<number> {
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    if (found.attrs.kind === 'directory') throw new KernelError('EISDIR', found.path);
    return this.fs.open(found.path, flags);
  }

  /** open(2) with node's flag letters ('r', 'r+', 'a', 'w'), for a handle held across operations. */
  async open(path: string, mode: string): Promise<number> {
    const found = await this.walk(path, true);
    const creates = mode === 'a' || mode === 'w';
    const access = mode === 'r' ? O_RDONLY : mode === 'r+' ? O_RDWR : O_WRONLY;
    const flags = access | (mode === 'a' ? O_APPEND : 0) | (mode === 'w' ? O_TRUNC : 0);
    if (found.attrs?.kind === 'directory') throw new KernelError('EISDIR', found.path); // callers hold no directory
    const fh =
      !found.attrs && creates
        ? await this.fs.create(found.path, 0o666 & ~UMASK, undefined, flags | O_CREAT)
        : await this.openExisting(found, flags);
    this.modes.set(fh, { read: access !== O_WRONLY, write: access !== O_RDONLY, append: mode === 'a' });
    return fh;
  }

  /** pread(2) through a held handle. */
  async pread(fh: number, length: number, position: number): Promise<Buffer> {
    if (!this.modes.get(fh)?.read) throw new KernelError('EBADF', `handle ${fh}`);
    const into = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const n = await this.fs.read(fh, into.subarray(done), length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return into.subarray(0, done);
  }

  /** pwrite(2) through a held handle; with O_APPEND the kernel writes at the end it knows. */
  async pwrite(fh: number, data: Buffer, position: number): Promise<void> {
    const mode = this.modes.get(fh);
    if (!mode?.write) throw new KernelError('EBADF', `handle ${fh}`);
    await this.writeAll(fh, data, mode.append ? (await this.fs.fgetattr(fh)).size : position);
  }

  /** close(2): FLUSH, whose error close returns, then RELEASE, whose error nobody sees. */
  async close(fh: number): Promise<void> {
    this.modes.delete(fh);
    let flushed = false;
    try {
      await this.fs.flush(fh);
      flushed = true;
    } finally {
      const released = this.fs.release(fh);
      // The kernel drops RELEASE's answer; after a good flush there is nothing left for it to fail at.
      if (flushed) await released;
      else await released.catch(() => undefined);
    }
  }

  private async writeAll(fh: number, data: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) done += await this.fs.write(fh, data.subarray(done), position + done);
  }

  /** writeFileSync: O_WRONLY|O_CREAT|O_TRUNC, write, close; `fsync` first if asked. */
  async writeFile(path: string, data: Buffer, fsync = false): Promise<void> {
    const found = await this.walk(path, true);
    if (found.attrs?.kind === 'directory') throw new KernelError('EISDIR', found.path);
    const fh = found.attrs
      ? await this.fs.open(found.path, O_WRONLY | O_TRUNC)
      : await this.fs.create(found.path, 0o666 & ~UMASK, undefined, O_WRONLY | O_CREAT | O_TRUNC);
    await this.use(fh, async () => {
      await this.writeAll(fh, data, 0);
      if (fsync) await this.fs.fsync(fh);
    });
  }

  /** appendFileSync: O_WRONLY|O_CREAT|O_APPEND; the kernel writes at the size it knows. */
  async appendFile(path: string, data: Buffer): Promise<void> {
    const found = await this.walk(path, true);
    if (found.attrs?.kind === 'directory') throw new KernelError('EISDIR', found.path);
    const fh = found.attrs
      ? await this.fs.open(found.path, O_WRONLY | O_APPEND)
      : await this.fs.create(found.path, 0o666 & ~UMASK, undefined, O_WRONLY | O_CREAT | O_APPEND);
    await this.use(fh, () => this.writeAll(fh, data, found.attrs?.size ?? 0));
  }

  /** Runs `work` on an open handle and closes it in every outcome (close's error wins only after success). */
  private async use(fh: number, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      await this.close(fh).catch(() => undefined); // the first error is the one reported
      throw error;
    }
    await this.close(fh);
  }

  /** truncate(2) by path (setattr), or as node's truncateSync does it: open r+, ftruncate, close. */
  async truncate(path: string, size: number, byHandle: boolean): Promise<void> {
    const found = await this.walk(path, true);
    if (!byHandle) {
      if (!found.attrs) throw new KernelError('ENOENT', found.path);
      if (found.attrs.kind === 'directory') throw new KernelError('EISDIR', found.path);
      return this.fs.truncate(found.path, size);
    }
    const fh = await this.openExisting(found, O_RDWR);
    await this.use(fh, () => this.fs.ftruncate(fh, size));
  }

  /** readFileSync: open, read until a read returns nothing, close. */
  async readFile(path: string, chunk = 1000): Promise<Buffer> {
    const found = await this.walk(path, true);
    const fh = await this.openExisting(found, O_RDONLY);
    const parts: Buffer[] = [];
    await this.use(fh, async () => {
      for (let position = 0; ; ) {
        const into = Buffer.alloc(chunk);
        const n = await this.fs.read(fh, into, chunk, position);
        if (n === 0) break;
        parts.push(into.subarray(0, n));
        position += n;
      }
    });
    return Buffer.concat(parts);
  }

  async lstat(path: string): Promise<Attributes> {
    const found = await this.walk(path, false);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    return found.attrs;
  }

  async stat(path: string): Promise<Attributes> {
    const found = await this.walk(path, true);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    return found.attrs;
  }

  async mkdir(path: string): Promise<void> {
    const found = await this.walk(path, false);
    if (found.attrs) throw new KernelError('EEXIST', found.path);
    await this.fs.mkdir(found.path, 0o777 & ~UMASK);
  }

  async rmdir(path: string): Promise<void> {
    const found = await this.walk(path, false);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    if (found.attrs.kind !== 'directory') throw new KernelError('ENOTDIR', found.path);
    await this.fs.rmdir(found.path);
  }

  async unlink(path: string): Promise<void> {
    const found = await this.walk(path, false);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    if (found.attrs.kind === 'directory') throw new KernelError('EISDIR', found.path);
    await this.fs.unlink(found.path);
  }

  /** rename(2): the checks of do_renameat2 and vfs_rename, in their order, then RENAME. */
  async rename(from: string, to: string): Promise<void> {
    const source = await this.walk(from, false);
    const target = await this.walk(to, false);
    if (!source.attrs) throw new KernelError('ENOENT', source.path);
    if (target.path.startsWith(`${source.path}/`)) throw new KernelError('EINVAL', target.path);
    if (source.path.startsWith(`${target.path}/`)) throw new KernelError('ENOTEMPTY', target.path);
    if (source.path === target.path) return;
    if (target.attrs) {
      const sourceIsDir = source.attrs.kind === 'directory';
      const targetIsDir = target.attrs.kind === 'directory';
      if (sourceIsDir && !targetIsDir) throw new KernelError('ENOTDIR', target.path);
      if (!sourceIsDir && targetIsDir) throw new KernelError('EISDIR', target.path);
    }
    await this.fs.rename(source.path, target.path);
  }

  async readdir(path: string): Promise<string[]> {
    const found = await this.walk(path, true);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    if (found.attrs.kind !== 'directory') throw new KernelError('ENOTDIR', found.path);
    return (await this.fs.readdir(found.path)).filter((n) => n !== '.' && n !== '..').sort();
  }

  /** openSync(path, 'r+'), writeSync at `offset`, close. */
  async writeAt(path: string, offset: number, data: Buffer): Promise<void> {
    const found = await this.walk(path, true);
    const fh = await this.openExisting(found, O_RDWR);
    await this.use(fh, () => this.writeAll(fh, data, offset));
  }

  async symlink(target: string, path: string): Promise<void> {
    const found = await this.walk(path, false);
    if (found.attrs) throw new KernelError('EEXIST', found.path);
    await this.fs.symlink(target, found.path);
  }

  async readlink(path: string): Promise<string> {
    const found = await this.walk(path, false);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    if (found.attrs.kind !== 'symlink') throw new KernelError('EINVAL', found.path);
    return this.fs.readlink(found.path);
  }

  async chmod(path: string, mode: number): Promise<void> {
    const found = await this.walk(path, true);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    await this.fs.chmod(found.path, mode);
  }

  async utimes(path: string, seconds: number): Promise<void> {
    const found = await this.walk(path, true);
    if (!found.attrs) throw new KernelError('ENOENT', found.path);
    await this.fs.utimens(found.path, seconds * 1000, seconds * 1000);
  }
}

// ---- whole trees ----

type Entry = { kind: 'directory'; mode: number } | { kind: 'file'; mode: number; bytes: string } | { kind: 'symlink'; target: string };
type Snapshot = Record<string, Entry>;

/** Every entry under the mount's root, as the mount shows it. */
async function snapshotOf(kernel: Kernel): Promise<Snapshot> {
  const fs = kernel.fs;
  const out: Snapshot = {};
  const visit = async (dir: string): Promise<void> => {
    for (const name of (await fs.readdir(dir)).filter((n) => n !== '.' && n !== '..').sort()) {
      const path = posix.join(dir, name);
      const attrs = await fs.getattr(path);
      if (attrs.kind === 'directory') {
        out[path] = { kind: 'directory', mode: attrs.mode & 0o7777 };
        await visit(path);
      } else if (attrs.kind === 'symlink') {
        out[path] = { kind: 'symlink', target: await fs.readlink(path) };
      } else {
        const fh = await fs.open(path, O_RDONLY);
        const into = Buffer.alloc(attrs.size);
        const n = await fs.read(fh, into, attrs.size, 0);
        await fs.release(fh);
        out[path] = { kind: 'file', mode: attrs.mode & 0o7777, bytes: into.subarray(0, n).toString('hex') };
      }
    }
  };
  await visit('/');
  return out;
}

/** Every entry under `root`, named as in the mount. */
function snapshotOfLocal(root: string): Snapshot {
  const out: Snapshot = {};
  const visit = (dir: string, as: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const path = posix.join(as, name);
      const st = lstatSync(join(dir, name));
      if (st.isDirectory()) {
        out[path] = { kind: 'directory', mode: st.mode & 0o7777 };
        visit(join(dir, name), path);
      } else if (st.isSymbolicLink()) {
        out[path] = { kind: 'symlink', target: readlinkSync(join(dir, name)) };
      } else {
        out[path] = { kind: 'file', mode: st.mode & 0o7777, bytes: readFileSync(join(dir, name)).toString('hex') };
      }
    }
  };
  visit(root, '/');
  return out;
}

/** Makes the local tree `snapshot` (after a failure, the store's state is the truth). */
function restoreLocal(root: string, snapshot: Snapshot): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root);
  for (const [path, entry] of Object.entries(snapshot)) {
    const where = join(root, path);
    if (entry.kind === 'directory') mkdirSync(where, { mode: entry.mode });
    else if (entry.kind === 'symlink') symlinkSync(entry.target, where);
    else writeFileSync(where, Buffer.from(entry.bytes, 'hex'), { mode: entry.mode });
    if (entry.kind !== 'symlink') chmodSync(where, entry.mode);
  }
}

// ---- commands ----

type Outcome<T> = { value?: T; code?: string };

async function outcomeOf<T>(op: () => Promise<T> | T): Promise<Outcome<T>> {
  try {
    return { value: await op() };
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return { code: e.code === undefined || e.code === 'UNKNOWN' ? `${e.code ?? 'no code'}: ${String(error)}` : e.code };
  }
}

function outcomeOfSync<T>(op: () => T): Outcome<T> {
  try {
    return { value: op() };
  } catch (error) {
    return { code: (error as NodeJS.ErrnoException).code ?? String(error) };
  }
}

/** One operation, as the mount does it and as the local directory does it. */
abstract class Operation<T = unknown> implements fc.AsyncCommand<object, World> {
  /** Whether one store object at most changes, so a failure leaves the tree as before or after. */
  readonly singleObject: boolean = true;
  abstract mount: (k: Kernel, w: World) => Promise<T>;
  abstract local: (root: string) => T;
  compare(real: T, model: T): void {
    expect(real).toEqual(model);
  }
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    const real = await outcomeOf(() => this.mount(w.kernel, w));
    const model = await outcomeOf(() => this.local(join(w.local, WORK)));
    expect(real.code, `${this}`).toBe(model.code);
    if (real.code === undefined) this.compare(real.value as T, model.value as T);
  }
  abstract toString: () => string;
}

class Write extends Operation {
  constructor(
    readonly path: string,
    readonly data: Buffer,
    readonly fsync = false,
  ) {
    super();
  }
  mount = (k: Kernel) => k.writeFile(this.path, this.data, this.fsync);
  local = (root: string) => writeFileSync(join(root, this.path), this.data);
  toString = () => `write(${this.path}, ${this.data.length} bytes${this.fsync ? ', fsync' : ''})`;
}
class Append extends Operation {
  constructor(
    readonly path: string,
    readonly data: Buffer,
  ) {
    super();
  }
  mount = (k: Kernel) => k.appendFile(this.path, this.data);
  local = (root: string) => appendFileSync(join(root, this.path), this.data);
  toString = () => `append(${this.path}, ${this.data.length} bytes)`;
}
class Truncate extends Operation {
  constructor(
    readonly path: string,
    readonly size: number,
    readonly byHandle = false,
  ) {
    super();
  }
  mount = (k: Kernel) => k.truncate(this.path, this.size, this.byHandle);
  local = (root: string) => truncateSync(join(root, this.path), this.size);
  toString = () => `truncate(${this.path}, ${this.size}${this.byHandle ? ', by handle' : ''})`;
}
class Read extends Operation<Buffer> {
  constructor(
    readonly path: string,
    readonly chunk = 1000,
  ) {
    super();
  }
  mount = (k: Kernel) => k.readFile(this.path, this.chunk);
  local = (root: string) => readFileSync(join(root, this.path));
  override compare(real: Buffer, model: Buffer): void {
    expect(real.toString('hex')).toBe(model.toString('hex'));
  }
  toString = () => `read(${this.path}, in ${this.chunk}-byte reads)`;
}
interface Stat {
  kind: string;
  size: number;
  mode: number;
}
class StatPath extends Operation<Stat> {
  constructor(readonly path: string) {
    super();
  }
  mount = async (k: Kernel) => {
    const a = await k.lstat(this.path);
    return { kind: a.kind, size: a.kind === 'file' ? a.size : 0, mode: a.mode & 0o7777 };
  };
  local = (root: string) => {
    const st = lstatSync(join(root, this.path));
    return {
      kind: st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'file',
      size: st.isFile() ? st.size : 0,
      mode: st.mode & 0o7777,
    };
  };
  toString = () => `stat(${this.path})`;
}
class Mkdir extends Operation {
  constructor(readonly path: string) {
    super();
  }
  mount = (k: Kernel) => k.mkdir(this.path);
  local = (root: string) => mkdirSync(join(root, this.path));
  toString = () => `mkdir(${this.path})`;
}
class Rmdir extends Operation {
  override readonly singleObject = false; // and the parent's marker, if it was implicit
  constructor(readonly path: string) {
    super();
  }
  mount = (k: Kernel) => k.rmdir(this.path);
  local = (root: string) => rmdirSync(join(root, this.path));
  toString = () => `rmdir(${this.path})`;
}
class Unlink extends Operation {
  override readonly singleObject = false; // and the parent's marker, if it was implicit
  constructor(readonly path: string) {
    super();
  }
  mount = (k: Kernel) => k.unlink(this.path);
  local = (root: string) => unlinkSync(join(root, this.path));
  toString = () => `unlink(${this.path})`;
}
class Rename extends Operation {
  override readonly singleObject = false;
  constructor(
    readonly from: string,
    readonly to: string,
  ) {
    super();
  }
  mount = (k: Kernel) => k.rename(this.from, this.to);
  local = (root: string) => renameSync(join(root, this.from), join(root, this.to));
  toString = () => `rename(${this.from}, ${this.to})`;
}
class List extends Operation<string[]> {
  constructor(readonly path: string) {
    super();
  }
  mount = (k: Kernel) => k.readdir(this.path);
  local = (root: string) => readdirSync(join(root, this.path)).sort();
  toString = () => `readdir(${this.path})`;
}
class WriteAt extends Operation {
  constructor(
    readonly path: string,
    readonly offset: number,
    readonly data: Buffer,
  ) {
    super();
  }
  mount = (k: Kernel) => k.writeAt(this.path, this.offset, this.data);
  local = (root: string) => {
    const fd = openSync(join(root, this.path), 'r+');
    try {
      writeSync(fd, this.data, 0, this.data.length, this.offset);
    } finally {
      closeSync(fd);
    }
  };
  toString = () => `writeAt(${this.path}, ${this.offset}, ${this.data.length} bytes)`;
}
class Symlink extends Operation<string> {
  constructor(
    readonly target: string,
    readonly path: string,
  ) {
    super();
  }
  mount = async (k: Kernel) => {
    await k.symlink(this.target, this.path);
    return k.readlink(this.path);
  };
  local = (root: string) => {
    symlinkSync(this.target, join(root, this.path));
    return readlinkSync(join(root, this.path));
  };
  toString = () => `symlink(${this.target}, ${this.path})`;
}
class Chmod extends Operation {
  constructor(
    readonly path: string,
    readonly mode: number,
  ) {
    super();
  }
  mount = (k: Kernel) => k.chmod(this.path, this.mode);
  local = (root: string) => chmodSync(join(root, this.path), this.mode);
  toString = () => `chmod(${this.path}, ${this.mode.toString(8)})`;
}
class Utimens extends Operation<number> {
  constructor(
    readonly path: string,
    readonly seconds: number,
  ) {
    super();
  }
  mount = async (k: Kernel) => {
    await k.utimes(this.path, this.seconds);
    return (await k.stat(this.path)).mtimeMs;
  };
  local = (root: string) => {
    utimesSync(join(root, this.path), this.seconds, this.seconds);
    return statSync(join(root, this.path)).mtimeMs;
  };
  toString = () => `utimens(${this.path}, ${this.seconds})`;
}

/** Another client puts an object where the model can have a new file; the mount sees it after the TTLs. */
class ExternalPut implements fc.AsyncCommand<object, World> {
  constructor(
    readonly path: string,
    readonly data: Buffer,
  ) {}
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    const where = join(w.local, WORK, this.path);
    if (!isDirectory(dirname(where)) || exists(where)) return; // a file could not appear there
    await w.fs.drain(); // async mode: what was acknowledged reaches the store first
    writeFileSync(where, this.data);
    await w.memory.put(w.key(this.path), this.data);
    w.clock.ms += ALL_TTLS;
  }
  toString = () => `externalPut(${this.path}, ${this.data.length} bytes)`;
}
/** Another client deletes a file's object. */
class ExternalDelete implements fc.AsyncCommand<object, World> {
  constructor(readonly path: string) {}
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    const where = join(w.local, WORK, this.path);
    if (!exists(where) || !lstatSync(where).isFile()) return;
    await w.fs.drain();
    unlinkSync(where);
    await w.memory.deleteMany([w.key(this.path)]);
    w.clock.ms += ALL_TTLS;
  }
  toString = () => `externalDelete(${this.path})`;
}
/** Time passes: cached entries expire, which must change no answer. */
class Tick implements fc.AsyncCommand<object, World> {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    w.clock.ms += this.ms;
  }
  toString = () => `tick(${this.ms} ms)`;
}
/** A new FileSystem over the same store: its whole tree is the local one. */
class Remount implements fc.AsyncCommand<object, World> {
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    await w.closeHandles();
    await w.remount();
    expect(await snapshotOf(w.kernel)).toEqual(snapshotOfLocal(w.local));
  }
  toString = () => 'remount()';
}

/** Opens a file and holds it open across the operations that follow. */
class OpenHeld implements fc.AsyncCommand<object, World> {
  constructor(
    readonly path: string,
    readonly mode: 'r' | 'r+' | 'a' | 'w',
  ) {}
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    // A directory opens for reading, but a held one has nothing to compare: fstat sizes differ.
    if (outcomeOfSync(() => statSync(join(w.local, WORK, this.path)).isDirectory()).value) return;
    const real = await outcomeOf(() => w.kernel.open(this.path, this.mode));
    const model = await outcomeOf(() => openSync(join(w.local, WORK, this.path), this.mode));
    expect(real.code, `${this}`).toBe(model.code);
    if (real.value !== undefined && model.value !== undefined) w.handles.push({ fh: real.value, fd: model.value, mode: this.mode });
    else if (model.value !== undefined) closeSync(model.value);
  }
  toString = () => `open(${this.path}, '${this.mode}')`;
}

/** An operation on the `index`th held handle (modulo how many are held); nothing if none is. */
abstract class OnHeld<T> implements fc.AsyncCommand<object, World> {
  constructor(readonly index: number) {}
  check = () => true;
  abstract mount: (k: Kernel, fh: number) => Promise<T>;
  abstract local: (fd: number) => T;
  async run(_: object, w: World): Promise<void> {
    if (w.handles.length === 0) return;
    const held = w.handles[this.index % w.handles.length]!;
    const real = await outcomeOf(() => this.mount(w.kernel, held.fh));
    const model = await outcomeOf(() => this.local(held.fd));
    expect(real.code, `${this} (handle opened '${held.mode}')`).toBe(model.code);
    if (real.code === undefined) expect(real.value, `${this}`).toEqual(model.value);
  }
  abstract toString: () => string;
}
class ReadHeld extends OnHeld<string> {
  constructor(
    index: number,
    readonly position: number,
    readonly length: number,
  ) {
    super(index);
  }
  mount = async (k: Kernel, fh: number) => (await k.pread(fh, this.length, this.position)).toString('hex');
  local = (fd: number) => {
    const into = Buffer.alloc(this.length);
    return into.subarray(0, readSync(fd, into, 0, this.length, this.position)).toString('hex');
  };
  toString = () => `held[${this.index}].read(${this.position}, ${this.length})`;
}
class WriteHeld extends OnHeld<void> {
  constructor(
    index: number,
    readonly position: number,
    readonly data: Buffer,
  ) {
    super(index);
  }
  mount = (k: Kernel, fh: number) => k.pwrite(fh, this.data, this.position);
  local = (fd: number) => {
    writeSync(fd, this.data, 0, this.data.length, this.position);
  };
  toString = () => `held[${this.index}].write(${this.position}, ${this.data.length} bytes)`;
}
class FstatHeld extends OnHeld<number> {
  mount = async (k: Kernel, fh: number) => (await k.fs.fgetattr(fh)).size;
  local = (fd: number) => fstatSync(fd).size;
  toString = () => `held[${this.index}].fstat()`;
}
class FsyncHeld extends OnHeld<void> {
  mount = (k: Kernel, fh: number) => k.fs.fsync(fh);
  local = (fd: number) => fsyncSync(fd);
  toString = () => `held[${this.index}].fsync()`;
}
class CloseHeld implements fc.AsyncCommand<object, World> {
  constructor(readonly index: number) {}
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    if (w.handles.length === 0) return;
    const [held] = w.handles.splice(this.index % w.handles.length, 1);
    const real = await outcomeOf(() => w.kernel.close(held!.fh));
    closeSync(held!.fd);
    expect(real.code, `${this}`).toBeUndefined();
  }
  toString = () => `held[${this.index}].close()`;
}

type FailingCall =
  | 'head'
  | 'get'
  | 'getStream'
  | 'put'
  | 'list'
  | 'copy'
  | 'deleteMany'
  | 'createMultipartUpload'
  | 'uploadPart'
  | 'uploadPartCopy'
  | 'completeMultipartUpload';

/**
 * `operation` with a store call failing: the `nth` call of `call` (and `times - 1` after it).
 * It succeeds as the model does, or fails with EIO or EACCES (the store's errors as the mount
 * reports them), leaving the store as before or as after (for operations of several objects:
 * each entry as before or as after, none of those it does not touch changed); no multipart
 * upload is left, and the mount shows what the store holds. The local tree then takes the
 * store's state and the run goes on.
 */
class Faulty implements fc.AsyncCommand<object, World> {
  constructor(
    readonly operation: Operation,
    readonly call: FailingCall,
    readonly nth: number,
    readonly times: number,
    readonly code: StoreErrorCode,
  ) {}
  check = () => true;
  async run(_: object, w: World): Promise<void> {
    const before = snapshotOfLocal(w.local);
    w.store.fail(this.call, { nth: this.nth, times: this.times, code: this.code });
    const real = await outcomeOf(() => this.operation.mount(w.kernel, w));
    w.store.clear();
    const model = await outcomeOf(() => this.operation.local(join(w.local, WORK)));
    if (real.code === undefined || real.code === model.code) {
      expect(real.code, `${this}`).toBe(model.code);
      if (real.code === undefined) this.operation.compare(real.value, model.value);
      // The operation may have failed and been retried inside (a release after a failed flush).
    } else {
      expect(['EIO', 'EACCES'], `${this} failed with ${real.code}`).toContain(real.code);
    }
    const after = snapshotOfLocal(w.local);
    await w.fs.drain();
    expect(w.memory.uploads.size, `${this}: multipart uploads left`).toBe(0);
    const stored = await snapshotOf(new Kernel(w.mount()));
    if (real.code === model.code) {
      expect(stored, `${this}`).toEqual(after);
    } else if (this.operation.singleObject) {
      expect([before, after], `${this}: the store is neither as before nor as after`).toContainEqual(stored);
    } else {
      for (const [path, entry] of Object.entries(stored)) {
        expect([before[path], after[path]], `${this}: ${path}`).toContainEqual(entry);
      }
      for (const [path, entry] of Object.entries(before)) {
        if (JSON.stringify(after[path]) === JSON.stringify(entry))
          expect(stored[path], `${this}: ${path} was not to change`).toEqual(entry);
      }
    }
    expect(await snapshotOf(w.kernel), `${this}: the mount and the store disagree`).toEqual(stored);
    restoreLocal(w.local, stored);
  }
  toString = () => `${this.operation} with ${this.call} #${this.nth}${this.times > 1 ? ` (x${this.times})` : ''} failing ${this.code}`;
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false; // lstat's one way to say "nothing there"
  }
}

function isDirectory(path: string): boolean {
  return exists(path) && lstatSync(path).isDirectory();
}

// ---- generators ----

/** A few names come up most, so that operations meet the same files (held open, renamed, unlinked). */
const names = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom('a', 'b', 'd/a') },
  { weight: 2, arbitrary: fc.constantFrom('c', 'd/b', 'e/f/g', 'd', 'e', 'e/f') },
);
const content = fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes));

/** Each operation with how often it comes: mostly what makes files and reads them back. */
/**
 * `truncateByPath`: also truncate(2) by path, not only as node's truncateSync does it (open,
 * ftruncate, close).
 */
function operationsOn(names: fc.Arbitrary<string>, truncateByPath = true): fc.WeightedArbitrary<Operation>[] {
  const byHandle = truncateByPath ? fc.boolean() : fc.constant(true);
  return [
    { weight: 5, arbitrary: fc.tuple(names, content, fc.boolean()).map(([p, d, s]) => new Write(p, d, s)) },
    { weight: 2, arbitrary: fc.tuple(names, content).map(([p, d]) => new Append(p, d)) },
    { weight: 2, arbitrary: fc.tuple(names, fc.nat({ max: 5000 }), byHandle).map(([p, n, h]) => new Truncate(p, n, h)) },
    { weight: 4, arbitrary: fc.tuple(names, fc.constantFrom(1, 7, 1000, 4096)).map(([p, c]) => new Read(p, c)) },
    { weight: 2, arbitrary: names.map((p) => new StatPath(p)) },
    { weight: 3, arbitrary: names.map((p) => new Mkdir(p)) },
    { weight: 1, arbitrary: names.map((p) => new Rmdir(p)) },
    { weight: 2, arbitrary: names.map((p) => new Unlink(p)) },
    { weight: 4, arbitrary: fc.tuple(names, names).map(([a, b]) => new Rename(a, b)) },
    { weight: 2, arbitrary: fc.constantFrom('.', 'd', 'e', 'e/f').map((p) => new List(p)) },
    { weight: 3, arbitrary: fc.tuple(names, fc.nat({ max: 4000 }), content).map(([p, o, d]) => new WriteAt(p, o, d)) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', '../x', 'd/a', 'nowhere', 'b'), names).map(([t, p]) => new Symlink(t, p)) },
    { weight: 2, arbitrary: fc.tuple(names, fc.constantFrom(0o600, 0o640, 0o755, 0o700, 0o444)).map(([p, m]) => new Chmod(p, m)) },
    { weight: 2, arbitrary: fc.tuple(names, fc.integer({ min: 1_000_000_000, max: 1_900_000_000 })).map(([p, t]) => new Utimens(p, t)) },
  ];
}
const operations = operationsOn(names);
const operation = fc.oneof(...operations);

const world: fc.WeightedArbitrary<fc.AsyncCommand<object, World>>[] = [
  { weight: 2, arbitrary: fc.tuple(names, content).map(([p, d]) => new ExternalPut(p, d)) },
  { weight: 2, arbitrary: names.map((p) => new ExternalDelete(p)) },
  { weight: 3, arbitrary: fc.nat({ max: 3000 }).map((ms) => new Tick(ms)) },
  { weight: 1, arbitrary: fc.constant(new Remount()) },
];

const failingCalls: FailingCall[] = [
  'head',
  'get',
  'getStream',
  'put',
  'list',
  'copy',
  'deleteMany',
  'createMultipartUpload',
  'uploadPart',
  'uploadPartCopy',
  'completeMultipartUpload',
];
function heldOn(names: fc.Arbitrary<string>): fc.WeightedArbitrary<fc.AsyncCommand<object, World>>[] {
  return [
    {
      weight: 3,
      arbitrary: fc.tuple(names, fc.constantFrom<'r' | 'r+' | 'a' | 'w'>('r', 'r+', 'a', 'w')).map(([p, m]) => new OpenHeld(p, m)),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(fc.nat(), fc.nat({ max: 4000 }), fc.integer({ min: 1, max: 3000 })).map(([i, p, n]) => new ReadHeld(i, p, n)),
    },
    { weight: 3, arbitrary: fc.tuple(fc.nat(), fc.nat({ max: 4000 }), content).map(([i, p, d]) => new WriteHeld(i, p, d)) },
    { weight: 1, arbitrary: fc.nat().map((i) => new FstatHeld(i)) },
    { weight: 1, arbitrary: fc.nat().map((i) => new FsyncHeld(i)) },
    { weight: 2, arbitrary: fc.nat().map((i) => new CloseHeld(i)) },
  ];
}

const faulty = fc
  .tuple(
    operation,
    fc.constantFrom(...failingCalls),
    fc.integer({ min: 1, max: 3 }),
    fc.constantFrom(1, 2, 100),
    fc.constantFrom<StoreErrorCode>('Transient', 'AccessDenied'),
  )
  .map(([op, call, nth, times, code]) => new Faulty(op, call, nth, times, code) as fc.AsyncCommand<object, World>);

const setups = fc.record({
  // Async mode fsyncs its journal at every close: a quarter of the runs, to keep the suite quick.
  writeMode: fc.oneof(
    { weight: 3, arbitrary: fc.constant<'sync' | 'async'>('sync') },
    { weight: 1, arbitrary: fc.constant<'sync' | 'async'>('async') },
  ),
  partSize: fc.constantFrom(KiB, 8 * 1024 * KiB),
  prefix: fc.constantFrom('', 'mount/'),
  seeded: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  caching: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
});

async function runSequence(setup: Setup, commands: Iterable<fc.AsyncCommand<object, World>>): Promise<void> {
  const w = new World(setup);
  await w.start();
  await fc.asyncModelRun(() => ({ model: {}, real: w }), commands);
  await w.end();
}

function property(commands: fc.WeightedArbitrary<fc.AsyncCommand<object, World>>[]) {
  return fc.asyncProperty(setups, fc.commands([fc.oneof(...commands)], { maxCommands: 40, size: 'max' }), (setup, cmds) =>
    runSequence(setup, cmds),
  );
}

describe('FileSystem behaves like a local directory', () => {
  it(
    `under random sequences of file operations (${RUNS} runs)`,
    async () => {
      await fc.assert(property(operations), { numRuns: RUNS });
    },
    PROPERTY_TIMEOUT,
  );

  it(
    `while other clients change the store, time passes and it is remounted (${RUNS} runs)`,
    async () => {
      await fc.assert(property([...operations, ...world]), { numRuns: RUNS });
    },
    PROPERTY_TIMEOUT,
  );

  it(
    `with files held open across operations (${RUNS} runs)`,
    async () => {
      // Fewer names, so that a file held open is often the one renamed, unlinked or written over.
      const few = fc.constantFrom('a', 'b', 'd/a', 'd');
      const held = heldOn(few).map(({ weight, arbitrary }) => ({ weight: weight * 2, arbitrary }));
      const tick = { weight: 2, arbitrary: fc.nat({ max: 3000 }).map((ms) => new Tick(ms)) };
      await fc.assert(property([...operationsOn(few), ...held, tick]), { numRuns: RUNS });
    },
    PROPERTY_TIMEOUT,
  );

  it(
    `while store calls fail (${RUNS} runs)`,
    async () => {
      await fc.assert(property([...operations, ...world, { weight: 8, arbitrary: faulty }]), { numRuns: RUNS });
    },
    PROPERTY_TIMEOUT,
  );
});

// ---- named sequences: found failures, shrunk, and paths worth keeping whatever the seed ----

// ---- bugs the model found, fixed: kept as regression cases ----

describe('FileSystem bugs the model found', () => {
  // rename(2) of a directory over an empty one removed the target before the copies: a failed
  // copy left neither (the target gone, the source where it was). (Found as: mkdir(a), mkdir(b),
  // rename(a, b) with copy #1 failing, in both write modes.)
  it.each(['sync', 'async'] as const)('keeps the directory a failed rename was to replace (%s)', async (writeMode) => {
    const setup: Setup = { writeMode, partSize: KiB, prefix: '', seeded: false, caching: true };
    await runSequence(setup, [new Mkdir('a'), new Mkdir('b'), new Faulty(new Rename('a', 'b'), 'copy', 1, 1, 'Transient')]);
    const seeded: Setup = { writeMode, partSize: KiB, prefix: '', seeded: true, caching: true };
    await runSequence(seeded, [
      new ExternalDelete('d/a'),
      new Mkdir('d/a'),
      new Faulty(new Rename('e/f', 'd/a'), 'copy', 1, 1, 'Transient'),
    ]);
  });

  // truncate(2) by path while the file is open only for reading: FileSystem.truncate changes the
  // open file (getattr says 0 bytes) but uploads nothing, and the release of a read-only handle
  // commits nothing, so at the last close the truncate is dropped: the size is back, the store
  // never changed. (Found as: open(d/a, 'r'), truncate(d/a, 0), close, remount.) When it is
  // fixed, this fails: make it an ordinary `it`, and give the held-open property truncate by
  // path again (operationsOn(few, true)).
  it('keeps a truncate by path of a file held open read-only', async () => {
    const seeded: Setup = { writeMode: 'sync', partSize: KiB, prefix: '', seeded: true, caching: true };
    await runSequence(seeded, [new OpenHeld('d/a', 'r'), new Truncate('d/a', 0), new CloseHeld(0), new StatPath('d/a'), new Remount()]);
  });

  // A file known as small (1 byte to 64 KiB) whose entry expired is looked up with a ranged GET of
  // its first 64 KiB (lookup -> readSmall). If another client replaced it with an empty object,
  // that range is past the end: the store answers InvalidRequest (S3's and Azure's 416), and
  // getattr fails with EINVAL, again at every lookup, since the expired entry stays as the hint.
  // (Found as: externalDelete(d/a), externalPut(d/a, 0 bytes), stat(d/a).) When it is fixed, this
  // fails: make it an ordinary `it`, and let ExternalPut put empty objects again.
  it('looks up a file another client emptied after its entry expired', async () => {
    const seeded: Setup = { writeMode: 'sync', partSize: KiB, prefix: '', seeded: true, caching: true };
    await runSequence(seeded, [new StatPath('a'), new ExternalDelete('a'), new ExternalPut('a', Buffer.alloc(0)), new StatPath('a')]);
  });
});

describe('FileSystem model sequences', () => {
  const seeded: Setup = { writeMode: 'sync', partSize: KiB, prefix: '', seeded: true, caching: true };
  const bytes = (n: number, fill = 'x') => Buffer.alloc(n, fill);

  // The shrunk case of a deliberate mutation (write() setting the size to the end of its last
  // write) that the properties caught: kept so they would catch it again.
  it('keeps the size of a file written inside its end', async () => {
    await runSequence(seeded, [new WriteAt('a', 0, bytes(1)), new StatPath('a')]);
  });

  it('keeps a file unlinked while held open readable and writable through its handle, and out of the store', async () => {
    await runSequence(seeded, [
      new OpenHeld('d/a', 'r+'),
      new Unlink('d/a'),
      new WriteHeld(0, 2000, bytes(1500, 'y')),
      new ReadHeld(0, 0, 4000),
      new FstatHeld(0),
      new CloseHeld(0),
      new Remount(),
    ]);
  });

  it('sends later writes of a file held open to where its directory was moved', async () => {
    await runSequence(seeded, [
      new OpenHeld('d/a', 'a'),
      new Rename('d', 'e/f/g'),
      new WriteHeld(0, 0, bytes(2000, 'z')),
      new CloseHeld(0),
      new Remount(),
    ]);
  });

  it('creates the target of a dangling symlink written through', async () => {
    await runSequence(seeded, [new Symlink('nowhere', 'b'), new Write('b', bytes(3000)), new Read('b', 7), new Remount()]);
  });

  it('leaves the store as before, with no multipart upload, when every part upload fails', async () => {
    await runSequence(seeded, [new Faulty(new Write('c', bytes(3000)), 'uploadPart', 1, 100, 'Transient'), new Read('c')]);
  });

  it('uploads the whole file at close when a streamed part fails once', async () => {
    await runSequence(seeded, [new Faulty(new Write('c', bytes(3000)), 'uploadPart', 2, 1, 'Transient'), new Read('c'), new Remount()]);
  });

  it('shows a delete and a put by another client once the TTLs have passed', async () => {
    await runSequence(seeded, [
      new Read('a'),
      new ExternalDelete('a'),
      new Read('a'),
      new ExternalPut('d/b', bytes(10)),
      new List('d'),
      new Read('d/b'),
    ]);
  });

  it('journals and uploads in async mode, held handles and remounts included', async () => {
    await runSequence({ ...seeded, writeMode: 'async' }, [
      new Write('b', bytes(2500)),
      new OpenHeld('b', 'r+'),
      new WriteHeld(0, 100, bytes(10, 'q')),
      new Rename('b', 'c'),
      new CloseHeld(0),
      new Remount(),
      new Read('c'),
    ]);
  });
});
