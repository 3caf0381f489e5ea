/**
 * File-system semantics over an `ObjectStore`: what each POSIX operation means for keys.
 *
 * `FileSystem` is the dispatcher FUSE calls (through `fuse/operations.ts`): it checks each
 * operation and hands it to the part that owns it —
 * - `Namespace` (namespace.ts): lookups, the metadata and negative caches, listings, the names
 *   made here, and how paths become keys;
 * - `OpenFileTable` (open-files.ts): the files open and the handles on them; each `OpenFile`
 *   stages its writes locally (open-file.ts);
 * - `Committer` (write/committer.ts): streaming a new file while it is written, and saving a
 *   file now (sync close, fsync) or later from the journal (async close);
 * - `Mover` (mover.ts): renames, as copies and deletes, with the files open below them;
 * - `Nodes` (nodes.ts): symlinks and what mknod makes, a name and metadata only;
 * - `AttributeChanges` (attribute-changes.ts): chmod, chown, utimens;
 * - `FileReader` (read/file-reader.ts) over the mount's `BlockCache`: reads of unmodified files.
 *
 * Files open for writing are staged locally and uploaded on flush/fsync/close, which return only
 * once the object is durable (in async write mode, close returns once the file is journaled on
 * local disk, and fsync still waits for the store). Nothing here knows about FUSE or an SDK.
 */

import { randomBytes } from 'node:crypto';

import type { Logger } from '../log/logger.js';
import type { ObjectStore } from '../storage/object-store.js';
import { type AttributeDefaults, type Attributes, type Owner, S_IFMT, contentTypeOf, metadataOf, newAttributes } from './attributes.js';
import { AttributeChanges } from './attribute-changes.js';
import type { Cancellation } from './cancellation.js';
import { FsError } from './errors.js';
import type { KeptMetadata } from './kept-metadata.js';
import type { MemoryBudget } from './memory-budget.js';
import type { CachedNode, MetadataCacheOptions } from './metadata-cache.js';
import { MAX_NAME_BYTES, Namespace } from './namespace.js';
import { Nodes } from './nodes.js';
import { Mover } from './mover.js';
import { OpenFile, stagingPathFor } from './open-file.js';
import { O_ACCMODE, O_CREAT, O_EXCL, O_RDWR, O_TRUNC, OpenFileTable } from './open-files.js';
import { BlockCache } from './read/block-cache.js';
import { StagingMemory } from './staging.js';
import { FileReader, type ReadAheadOptions } from './read/file-reader.js';
import type { StorePages } from './read/page-store.js';
import { Committer } from './write/committer.js';
import type { PageCacheDrop } from './write/streaming-upload.js';
import type { JournalStats } from './write/journal.js';
import type { PartBuffers } from './write/part-buffers.js';

export { O_ACCMODE, O_APPEND, O_CREAT, O_EXCL, O_RDWR, O_TRUNC, O_WRONLY } from './open-files.js';

export interface FileSystemOptions {
  /** Key prefix the mount shows ('' for the whole bucket, else ending in '/'). */
  prefix: string;
  defaults: AttributeDefaults;
  cache: MetadataCacheOptions;
  /** Directory for staging files of files being written. */
  stagingDir: string;
  partSize: number;
  uploadConcurrency: number;
  /**
   * 'sync' (default): close returns once the object is in the store. 'async': close returns once
   * the data is fsynced into `stagingDir` with a journal record; uploads follow in the background.
   */
  writeMode?: 'sync' | 'async';
  /** Shared by the block cache and upload buffers; default: no limit on uploads. */
  memoryBudget?: MemoryBudget;
  /** Buffers for upload parts, used again from one part to the next; default: a pool of this file system's own. */
  partBuffers?: PartBuffers;
  /** Wait before trying a failed close's upload again in the background (doubled each time); default 1 s. */
  retryDelayMs?: number;
  /** Drops a streamed file's staged bytes that the store has from the page cache; default: they stay cached. */
  dropFromPageCache?: PageCacheDrop;
  /** The mount's block cache; default: an 8 MiB-block cache of 64 MiB in memory. */
  blockCache?: BlockCache;
  readAhead?: ReadAheadOptions;
  logger: Logger;
  /** Wall clock for timestamps, injectable for tests. */
  now?: () => number;
  /** Files' metadata kept across mounts (kept-metadata.ts); none when undefined. */
  kept?: KeptMetadata;
}

const MiB = 1024 * 1024;
const DEFAULT_READ_AHEAD: ReadAheadOptions = { minReadAhead: MiB, maxReadAhead: 64 * MiB };
/** A new file's staging copy stays in memory up to this size (and at most a part) ... */
const STAGED_IN_MEMORY = MiB;
/** ... while all of them together hold at most this much; past either, copies are files. */
const STAGING_MEMORY = 32 * MiB;

/** A name in a directory, with its attributes when they are known (readdirplus). */
export interface DirectoryEntry {
  name: string;
  attrs?: Attributes;
}

export interface StatFs {
  blockSize: number;
  blocks: number;
  blocksFree: number;
  files: number;
  filesFree: number;
  nameMax: number;
}

/** What the mount has done, for `objmount status` and metrics. */
export interface FileSystemStats {
  bytesRead: number;
  bytesWritten: number;
  /** Operations answered with an error other than an ordinary one (ENOENT, EEXIST...). */
  failedOperations: number;
}

export class FileSystem {
  readonly stats: FileSystemStats = { bytesRead: 0, bytesWritten: 0, failedOperations: 0 };
  /** Set by `stopWrites`: the mount is being stopped; only reads and closes are served. */
  private writesStopped = false;
  private readonly namespace: Namespace;
  private readonly openFiles = new OpenFileTable();
  private readonly committer: Committer;
  private readonly mover: Mover;
  private readonly nodes: Nodes;
  private readonly attributes: AttributeChanges;
  private readonly blocks: BlockCache;
  private readonly now: () => number;
  private nextStaging = 1;
  /** Names this mount's staging files apart from those a previous daemon left. */
  private readonly stagingPrefix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  /** Room for the staging copies of new small files, kept in memory (staging.ts). */
  private readonly stagingMemory: StagingMemory;

  constructor(
    private readonly store: ObjectStore,
    private readonly options: FileSystemOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.stagingMemory = new StagingMemory(Math.min(STAGED_IN_MEMORY, options.partSize), STAGING_MEMORY);
    this.blocks = options.blockCache ?? new BlockCache(store, { blockSize: 8 * MiB, memoryLimit: 64 * MiB, maxConnections: 16 });
    this.namespace = new Namespace(store, this.blocks, this.openFiles, {
      prefix: options.prefix,
      defaults: options.defaults,
      cache: options.cache,
      logger: options.logger,
      now: this.now,
      kept: options.kept,
    });
    this.committer = new Committer(store, this.namespace, this.openFiles, {
      stagingDir: options.stagingDir,
      partSize: options.partSize,
      uploadConcurrency: options.uploadConcurrency,
      writeMode: options.writeMode ?? 'sync',
      memoryBudget: options.memoryBudget,
      partBuffers: options.partBuffers,
      retryDelayMs: options.retryDelayMs,
      dropFromPageCache: options.dropFromPageCache,
      stagingMemory: this.stagingMemory,
      logger: options.logger,
    });
    this.mover = new Mover(store, this.namespace, this.openFiles, this.committer);
    this.nodes = new Nodes(store, this.namespace, options.defaults, this.now);
    this.attributes = new AttributeChanges(store, this.namespace, this.openFiles, this.committer, {
      writeMode: options.writeMode ?? 'sync',
      now: this.now,
      stagingPath: () => this.stagingPath(),
    });
  }

  // ---- attributes and directories ----
  // Operations that only read take an optional `Cancellation` (cancellation.ts): an interrupted
  // FUSE request cancels the store requests made for it.

  async getattr(path: string, cancel?: Cancellation): Promise<Attributes> {
    if (path === '/') return this.namespace.rootAttrs;
    const open = this.openFiles.get(path);
    if (open) return open.attrs;
    return (await this.namespace.resolve(path, cancel)).attrs;
  }

  /** The attributes of an open file, also once it was unlinked or renamed over (fstat). */
  async fgetattr(fh: number): Promise<Attributes> {
    return this.openFiles.handle(fh).file.attrs;
  }

  /** The ETag of the object handle `fh` reads from the store ('' before the file's first upload). */
  versionOf(fh: number): string {
    return this.openFiles.handle(fh).file.etag;
  }

  readdir(path: string, cancel?: Cancellation): Promise<string[]> {
    return this.namespace.list(path, cancel);
  }

  /**
   * The names in directory `path` with the attributes of those whose attributes are known now
   * (readdirplus; see `Namespace.listWithAttributes`): a lookup of one would answer the same.
   */
  readdirPlus(path: string, cancel?: Cancellation): Promise<DirectoryEntry[]> {
    return this.namespace.listWithAttributes(path, cancel);
  }

  /**
   * A new directory, owned by `owner` (FUSE's caller; default: the mount's defaults): its marker
   * PUT now, or in async mode journaled and PUT in the background (`saveMarkerLater`).
   */
  async mkdir(path: string, permissions: number, owner?: Owner): Promise<void> {
    this.checkWritable(path);
    const key = this.namespace.checkedKey(path);
    if (await this.namespace.tryResolve(path)) throw new FsError('EEXIST', `${path}: already exists`);
    const attrs = newAttributes('directory', permissions, this.options.defaults, this.now(), owner);
    if (this.options.writeMode === 'async') {
      await this.committer.saveDirectoryLater(path, { attrs, etag: '' }, () => undefined, this.stagingPath());
      this.namespace.cache.setNode(path, { attrs: { ...attrs }, etag: '', explicit: true, complete: true });
    } else {
      const { etag } = await this.namespace.callStore(path, () =>
        this.store.put(`${key}/`, Buffer.alloc(0), { metadata: metadataOf(attrs), contentType: contentTypeOf('directory') }),
      );
      this.namespace.cache.setNode(path, { attrs, etag, explicit: true, complete: true });
    }
    this.namespace.names.appeared(path);
    this.namespace.names.made(path);
  }

  async rmdir(path: string): Promise<void> {
    this.checkWritable(path);
    this.namespace.names.forgetBelow(path);
    if (path === '/') throw new FsError('EPERM', `/: the mount's root cannot be removed`);
    const node = await this.namespace.resolve(path);
    if (node.attrs.kind !== 'directory') throw new FsError('ENOTDIR', `${path}: not a directory`);
    const dirKey = this.namespace.dirKey(path);
    const page = await this.namespace.checkEmpty(path);
    // Its marker waiting to be saved (async mode) is not saved now: its journal record goes.
    const marker = await this.committer.dropDirectory(path);
    // An explicit directory whose marker the listing does not show is a store's own kind of
    // marker (blobfuse's `hdi_isfolder` blob on Azure): deleting `dir/` removes it there.
    if ((node.explicit && !(marker && !marker.existsInStore)) || page.objects.some((o) => o.key === dirKey))
      await this.namespace.callStore(path, () => this.store.deleteMany([dirKey]));
    this.namespace.cache.deleteTree(path);
    this.namespace.cache.setMissing(path);
    await this.namespace.keepParent(path);
  }

  // ---- files ----

  /**
   * A new file, open for writing, owned by `owner` (FUSE's caller; default: the mount's defaults).
   * The kernel creates after a lookup said "missing", which a cache may have answered (up to the
   * TTL old, namespace.ts). A create with `flags` that keep what is there (neither O_TRUNC nor
   * O_EXCL: `>>`, `dd`, an open(O_CREAT) of a log or a database) asks the store first, and opens
   * a file another client put since instead of replacing it with an empty one. One that truncates
   * or must be new (`>`, `cp`, `tar x`, mkstemp) replaces what is there anyway: it asks nothing.
   */
  async create(path: string, permissions: number, owner?: Owner, flags?: number): Promise<number> {
    this.checkWritable(path);
    const key = this.namespace.checkedKey(path);
    if (flags !== undefined && (flags & (O_TRUNC | O_EXCL)) === 0 && !this.openFiles.get(path)) {
      const found = await this.namespace.fileInStore(path);
      if (found) return this.open(path, flags & ~O_CREAT);
    }
    const attrs = newAttributes('file', permissions, this.options.defaults, this.now(), owner);
    const file = new OpenFile(path, key, attrs, '', contentTypeOf('file'), this.stagingPath(), this.stagingMemory);
    const previous = this.openFiles.get(path);
    if (previous) previous.unlinked = true;
    this.openFiles.set(path, file);
    this.namespace.cache.delete(path);
    this.namespace.names.appeared(path);
    const fh = this.openFiles.addHandle(file, O_RDWR);
    // The replaced file's journal record must not bring it back at the next mount.
    if (previous) await this.committer.dropReplaced(previous);
    return fh;
  }

  async open(path: string, flags: number, cancel?: Cancellation): Promise<number> {
    let file = this.openFiles.get(path);
    const writable = (flags & O_ACCMODE) !== 0;
    if (writable) this.checkWritable(path);
    if (!file) {
      if (!writable) this.namespace.opening(path);
      const node = await this.namespace.resolve(path, cancel);
      if (node.attrs.kind === 'directory') {
        if (writable) throw new FsError('EISDIR', `${path}: is a directory`);
      }
      // The kernel opens FIFOs, sockets and devices itself and never asks; should a request come
      // anyway (another client made the name one since), there is no data here to serve.
      if (node.attrs.kind === 'special') throw new FsError('ENXIO', `${path}: a FIFO, socket or device node holds no data here`);
      file = this.openFileOf(path, node);
      this.openFiles.set(path, file);
    }
    if (writable && file.pending) {
      // Its journal record describes the closed version: upload that before it changes again.
      await this.committer.commit(file);
    }
    const fh = this.openFiles.addHandle(file, flags);
    if (writable && flags & O_TRUNC && file.attrs.size > 0) {
      try {
        await this.truncateOpen(file, 0);
      } catch (error) {
        await this.release(fh).catch(() => undefined);
        throw error;
      }
    }
    return fh;
  }

  /**
   * Copies up to `length` bytes at `position` into `into`; returns how many. Every byte counted
   * was written into `into` for this read (the FUSE binding sends exactly those to the kernel,
   * from memory that served earlier requests). `storePages` (the FUSE binding's, for this handle)
   * lets a reader of an unchanged object hand regions it keeps reading to the kernel's page cache
   * (read/file-reader.ts).
   */
  async read(fh: number, into: Buffer, length: number, position: number, cancel?: Cancellation, storePages?: StorePages): Promise<number> {
    const handle = this.openFiles.handle(fh);
    const { file } = handle;
    if (file.attrs.kind === 'directory') throw new FsError('EISDIR', `${file.path}: is a directory`);
    const wanted = Math.min(length, file.attrs.size - position);
    if (wanted <= 0) return 0;
    if (file.staged) {
      if (position < file.stagedFrom)
        await file.exclusive(() => this.namespace.callStore(file.path, () => file.fill(this.store, position)));
      return this.countRead(await file.readStaged(into, wanted, position));
    }
    if (!file.existsInStore) return 0;
    // The version read is the file's as it is now: a rename or an upload moves it along.
    handle.reader ??= new FileReader(
      this.blocks,
      () => ({ key: file.key, etag: file.etag, size: file.attrs.size }),
      this.options.readAhead ?? DEFAULT_READ_AHEAD,
    );
    const reader = handle.reader;
    // Pages go to the kernel only through a handle that cannot write (the FUSE binding also refuses
    // them while any handle may write the file).
    const store = handle.writable ? undefined : storePages;
    return this.countRead(await this.namespace.callStore(file.path, () => reader.read(into, wanted, position, cancel, store)));
  }

  private countRead(bytes: number): number {
    this.stats.bytesRead += bytes;
    return bytes;
  }

  async write(fh: number, data: Buffer, position: number): Promise<number> {
    const handle = this.openFiles.handle(fh);
    this.checkWritable(handle.file.path);
    if (!handle.writable) throw new FsError('EBADF', `${handle.file.path}: not open for writing`);
    const file = handle.file;
    return file.exclusive(async () => {
      const at = handle.append ? file.attrs.size : position;
      // Only what follows the first byte written is downloaded; an append downloads nothing.
      const staging = await this.namespace.callStore(file.path, () => file.stage(this.store, file.attrs.size, at));
      if (at < file.stagedFrom) await this.namespace.callStore(file.path, () => file.fill(this.store, at));
      if (at + data.length > this.maxObjectSize()) throw new FsError('EFBIG', `${file.path}: larger than the store allows`);
      if (file.stream && at < file.stream.sent) await this.committer.stopStream(file); // rewrites bytes already sent
      this.committer.streamIfFromStart(file, at); // upload parts while the program writes the rest
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await staging.write(data, done, data.length - done, at + done);
        done += bytesWritten;
      }
      file.attrs.size = Math.max(file.attrs.size, at + data.length);
      this.touch(file.attrs);
      file.dirty = true;
      this.stats.bytesWritten += data.length;
      await this.committer.advanceStream(file, staging);
      return data.length;
    });
  }

  /**
   * A close(2) of descriptor `fh` (FUSE FLUSH: one per descriptor, dups included). A reader's
   * saves nothing (and so never waits for an upload); a writer's saves the file. `laterClose`
   * tells whether the closing process still holds another descriptor open for writing on the
   * file: then the close of a new file nothing was written to yet is left to that one, which is
   * sure to come (at the latest when the process exits) and saves the file with its content.
   * A shell's `echo x > f` closes such a duplicate before it writes: one PUT instead of two.
   */
  async flush(fh: number, laterClose?: () => Promise<boolean>): Promise<void> {
    const { file, writable } = this.openFiles.handle(fh);
    if (!writable) return;
    if (file.untouchedSinceCreate && laterClose && (await laterClose()) && file.untouchedSinceCreate) return;
    await this.committer.close(file);
  }

  async fsync(fh: number): Promise<void> {
    await this.committer.commit(this.openFiles.handle(fh).file);
  }

  async release(fh: number): Promise<void> {
    const handle = this.openFiles.removeHandle(fh);
    const file = handle.file;
    try {
      if (handle.writable) await this.committer.close(file);
    } finally {
      file.refs -= 1;
      if (file.refs === 0) await this.committer.forgetIfDone(file);
    }
  }

  async truncate(path: string, size: number): Promise<void> {
    this.checkWritable(path);
    const open = this.openFiles.get(path);
    if (open) {
      await this.truncateOpen(open, size);
      // Held open only for reading: no release will save it, so save it now, as when not open.
      if (!this.openFiles.hasWriter(open)) await this.committer.commit(open);
      return;
    }
    const node = await this.namespace.resolve(path);
    if (node.attrs.kind === 'directory') throw new FsError('EISDIR', `${path}: is a directory`);
    if (node.attrs.kind === 'special') throw new FsError('EINVAL', `${path}: only a regular file can be truncated`);
    const file = this.openFileOf(path, node);
    file.refs = 1;
    this.openFiles.set(path, file);
    try {
      await this.truncateOpen(file, size);
      await this.committer.commit(file);
    } finally {
      await file.exclusive(async () => {
        // As in forgetIfDone: leave the table before the staging copy goes away.
        if (file.refs === 1) this.openFiles.delete(path, file);
        if (file.refs === 1) await file.discard();
      });
      file.refs -= 1;
    }
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const handle = this.openFiles.handle(fh);
    this.checkWritable(handle.file.path);
    if (!handle.writable) throw new FsError('EBADF', `${handle.file.path}: not open for writing`);
    await this.truncateOpen(handle.file, size);
  }

  private truncateOpen(file: OpenFile, size: number): Promise<void> {
    if (size > this.maxObjectSize()) throw new FsError('EFBIG', `${file.path}: larger than the store allows`);
    return file.exclusive(async () => {
      if (file.stream && size < file.stream.sent) await this.committer.stopStream(file);
      const kept = Math.min(size, file.attrs.size);
      const staging = await this.namespace.callStore(file.path, () => file.stage(this.store, kept, kept));
      file.truncatedTo(size);
      await staging.truncate(size);
      file.attrs.size = size;
      this.touch(file.attrs);
      file.dirty = true;
    });
  }

  async unlink(path: string): Promise<void> {
    this.checkWritable(path);
    const open = this.openFiles.get(path);
    const node = open ? undefined : await this.namespace.resolve(path);
    if (node?.attrs.kind === 'directory') throw new FsError('EISDIR', `${path}: is a directory`);
    const key = this.namespace.key(path);
    const remove = async () => {
      if (!open || open.existsInStore) await this.namespace.callStore(path, () => this.store.deleteMany([key]));
    };
    if (open) {
      await open.exclusive(async () => {
        open.unlinked = true;
        await this.committer.dropPending(open);
        await this.mover.keepForHandles(open);
        await remove();
      });
      this.openFiles.delete(path);
      if (open.refs === 0) await this.committer.forgetIfDone(open); // closed, and was waiting for its upload
    } else {
      await remove();
    }
    this.namespace.cache.setMissing(path);
    await this.namespace.keepParent(path);
  }

  // ---- entries that are a name and metadata only (nodes.ts) ----

  async symlink(target: string, path: string, owner?: Owner): Promise<void> {
    this.checkWritable(path);
    await this.nodes.symlink(target, path, owner);
  }

  readlink(path: string, cancel?: Cancellation): Promise<string> {
    return this.nodes.readlink(path, cancel);
  }

  async link(from: string, to: string): Promise<void> {
    throw new FsError('EPERM', `${to}: hard links are not supported on object storage (link from ${from})`);
  }

  async mknod(path: string, mode: number, rdev: number, owner?: Owner): Promise<void> {
    this.checkWritable(path);
    await this.nodes.mknod(path, mode, rdev, owner);
  }

  // ---- rename ----

  async rename(from: string, to: string): Promise<void> {
    this.checkWritable(from);
    await this.mover.rename(from, to);
  }

  // ---- attributes that change ----

  async chmod(path: string, mode: number): Promise<void> {
    this.checkWritable(path);
    await this.attributes.change(path, (a) => {
      a.mode = (a.mode & S_IFMT) | (mode & 0o7777);
    });
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    this.checkWritable(path);
    await this.attributes.change(path, (a) => {
      if (uid !== -1 && uid !== 0xffffffff) a.uid = uid;
      if (gid !== -1 && gid !== 0xffffffff) a.gid = gid;
    });
  }

  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    this.checkWritable(path);
    const open = this.openFiles.get(path);
    if (open) open.timesSet = true;
    await this.attributes.change(path, (a) => {
      a.atimeMs = atimeMs;
      a.mtimeMs = mtimeMs;
    });
  }

  statfs(): StatFs {
    // Object stores have no fixed capacity; report a large, constant one so tools that check
    // free space before writing (cp, rsync, installers) proceed.
    return {
      blockSize: 4096,
      blocks: 0xffffffff,
      blocksFree: 0xffffffff,
      files: 0xffffffff,
      filesFree: 0xffffffff,
      nameMax: MAX_NAME_BYTES,
    };
  }

  /** From now on, changes fail with EROFS, so that draining for an unmount has an end. */
  stopWrites(): void {
    this.writesStopped = true;
  }

  private checkWritable(path: string): void {
    if (this.writesStopped) throw new FsError('EROFS', `${path}: the mount is being stopped`);
  }

  /** Uploads everything still dirty; for a clean unmount. */
  drain(): Promise<void> {
    return this.committer.drain();
  }

  /** Files with unsaved changes, for the unmount message. */
  get pendingFiles(): string[] {
    return this.committer.pendingFiles;
  }

  /** Uploads queued by async closes (or kept after a failed close) that have not finished yet. */
  get backgroundUploadCount(): number {
    return this.committer.backgroundUploadCount;
  }

  /** What the async mode's journal has written (rounds of records sharing their fsyncs). */
  get journalStats(): JournalStats {
    return this.committer.journalStats;
  }

  // ---- internals ----

  private touch(attrs: Attributes): void {
    attrs.mtimeMs = attrs.ctimeMs = this.now();
  }

  /** An open file for the object `node` describes at `path`. */
  private openFileOf(path: string, node: CachedNode): OpenFile {
    const { attrs, etag, contentType } = node;
    return new OpenFile(path, this.namespace.key(path), { ...attrs }, etag, contentType, this.stagingPath(), this.stagingMemory);
  }

  private stagingPath(): string {
    return stagingPathFor(this.options.stagingDir, `${this.stagingPrefix}-${this.nextStaging++}`);
  }

  private maxObjectSize(): number {
    const { maxParts, maxPartSize } = this.store.capabilities;
    return maxParts * maxPartSize;
  }
}
