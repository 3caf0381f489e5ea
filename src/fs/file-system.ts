/**
 * File-system semantics over an `ObjectStore`: what each POSIX operation means for keys.
 *
 * Paths are those FUSE hands us ("/a/b"); the key of "/a/b" is `prefix + "a/b"`, and a directory
 * "/a" may exist implicitly (some key starts with "a/") or explicitly (a zero-byte "a/" marker,
 * which mkdir writes). When a file and a directory share a name, the directory wins.
 *
 * Lookups ask the store three things at once (HEAD key, HEAD key/, one key under key/) and the
 * answer is cached for a TTL, negatives included. Listings are paged and never HEAD each entry.
 * Files open for writing are staged locally (see OpenFile) and uploaded on flush/fsync/close,
 * which return only once the object is durable (in async write mode, close returns once the file
 * is journaled on local disk, and fsync still waits for the store). Nothing here knows about FUSE
 * or an SDK.
 */

import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';

import { LRUCache } from 'lru-cache';
import PQueue from 'p-queue';

import type { Logger } from '../log/logger.js';
import { type ObjectInfo, type ObjectStore, type PutOptions, isStoreError, listAll } from '../storage/object-store.js';
import {
  type AttributeDefaults,
  type Attributes,
  S_IFMT,
  attributesOfObject,
  contentTypeOf,
  implicitDirectory,
  metadataOf,
  metadataWithoutTimes,
  newAttributes,
} from './attributes.js';
import { FsError, toFsError } from './errors.js';
import { type CachedNode, MetadataCache, type MetadataCacheOptions } from './metadata-cache.js';
import { OpenFile, stagingPathFor } from './open-file.js';
import type { MemoryBudget } from './memory-budget.js';
import { BlockCache } from './read/block-cache.js';
import { FileReader, type ReadAheadOptions } from './read/file-reader.js';
import { FileUploader } from './write/file-uploader.js';
import { PartBuffers } from './write/part-buffers.js';
import { UploadTracker, removeRecord, writeRecord } from './write/journal.js';
import { StreamingUpload } from './write/streaming-upload.js';

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
  /** The mount's block cache; default: an 8 MiB-block cache of 64 MiB in memory. */
  blockCache?: BlockCache;
  readAhead?: ReadAheadOptions;
  logger: Logger;
  /** Wall clock for timestamps, injectable for tests. */
  now?: () => number;
}

/** Open flags as Linux defines them. */
export const O_ACCMODE = 0o3;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

const MAX_KEY_BYTES = 1024;
const MiB = 1024 * 1024;
const DEFAULT_READ_AHEAD: ReadAheadOptions = { minReadAhead: MiB, maxReadAhead: 64 * MiB };
const MAX_NAME_BYTES = 255;
/** Files up to this size are read whole where a lookup would HEAD them. */
const SMALL_OBJECT_BYTES = 64 * 1024;
/** Entries of one listing whose metadata is fetched ahead of their lookups. */
const MAX_BACKGROUND_LOOKUPS = 10_000;

interface Handle {
  file: OpenFile;
  writable: boolean;
  append: boolean;
  /** Reads of this handle from the store (each handle has its own read-ahead). */
  reader?: FileReader;
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
  private readonly cache: MetadataCache;
  private readonly uploader: FileUploader;
  private readonly partBuffers: PartBuffers;
  private readonly tracker: UploadTracker;
  private readonly blocks: BlockCache;
  private readonly now: () => number;
  private readonly openFiles = new Map<string, OpenFile>();
  private readonly handles = new Map<number, Handle>();
  private readonly lookups = new Map<string, Promise<CachedNode | undefined>>();
  /**
   * Directories this mount created, until the directory TTL: every name that can exist in them
   * was made here, so a lookup of any other name is answered "missing" without asking the store
   * (three requests saved per new file in `cp -r`, `tar x`, `mkdir -p`).
   */
  private readonly madeHere = new Map<string, { until: number; names: Set<string> }>();
  /** Keys a listing could not show, each logged once (at most 10,000 remembered). */
  private readonly unshowable = new Set<string>();
  /** Directories just listed → their entries still lacking POSIX metadata (the latest few). */
  private readonly listed = new LRUCache<string, string[]>({ max: 64 });
  /** HEADs that complete the entries of a listing, a bounded number at a time. */
  private readonly metadataQueue = new PQueue({ concurrency: 32 });
  private nextHandle = 1;
  private nextStaging = 1;
  /** Names this mount's staging files apart from those a previous daemon left. */
  private readonly stagingPrefix = `${process.pid}-${randomBytes(4).toString('hex')}`;
  /** Async mode: uploads of closed files, a few at a time. */
  private readonly backgroundUploads: PQueue;
  private rootAttrs: Attributes;

  constructor(
    private readonly store: ObjectStore,
    private readonly options: FileSystemOptions,
  ) {
    this.cache = new MetadataCache(options.cache);
    this.tracker = new UploadTracker(options.stagingDir);
    this.partBuffers = options.partBuffers ?? new PartBuffers(options.partSize, options.uploadConcurrency);
    this.uploader = new FileUploader(store, {
      partSize: options.partSize,
      concurrency: options.uploadConcurrency,
      budget: options.memoryBudget,
      tracker: this.tracker,
      buffers: this.partBuffers,
    });
    this.backgroundUploads = new PQueue({ concurrency: Math.max(4, options.uploadConcurrency) });
    this.blocks = options.blockCache ?? new BlockCache(store, { blockSize: 8 * MiB, memoryLimit: 64 * MiB, maxConnections: 16 });
    this.now = options.now ?? Date.now;
    this.rootAttrs = implicitDirectory(options.defaults, this.now());
  }

  // ---- attributes and directories ----

  async getattr(path: string): Promise<Attributes> {
    if (path === '/') return this.rootAttrs;
    const open = this.openFiles.get(path);
    if (open) return open.attrs;
    return (await this.resolve(path)).attrs;
  }

  /** The attributes of an open file, also once it was unlinked or renamed over (fstat). */
  async fgetattr(fh: number): Promise<Attributes> {
    return this.handle(fh).file.attrs;
  }

  async readdir(path: string): Promise<string[]> {
    const dir = path === '/' ? undefined : await this.resolve(path);
    if (dir && dir.attrs.kind !== 'directory') throw new FsError('ENOTDIR', `${path}: not a directory`);
    const dirKey = this.dirKey(path);
    const names = new Set<string>();
    const incomplete: string[] = [];
    for await (const page of this.pages(dirKey, path)) {
      for (const prefix of page.prefixes) {
        const name = prefix.slice(dirKey.length, -1);
        if (!isShowableName(name)) {
          this.notShown(prefix, unshowableReason(name));
          continue;
        }
        names.add(name);
        const childPath = posix.join(path, name);
        const known = this.cache.get(childPath);
        if (!(known?.exists && known.node.attrs.kind === 'directory')) {
          this.cache.setNode(childPath, {
            attrs: implicitDirectory(this.options.defaults, this.now()),
            etag: '',
            explicit: false,
            complete: false,
          });
        }
        if (!(known?.exists && known.node.complete)) incomplete.push(childPath);
      }
      for (const object of page.objects) {
        const name = object.key.slice(dirKey.length);
        if (name === '') continue; // the directory's own marker
        if (!isShowableName(name) || names.has(name)) {
          this.notShown(object.key, names.has(name) ? `a directory '${name}' of the same name hides it` : unshowableReason(name));
          continue;
        }
        names.add(name);
        const childPath = posix.join(path, name);
        const known = this.cache.get(childPath);
        if (known?.exists && known.node.etag === object.etag && known.node.complete) continue;
        this.cache.setNode(childPath, {
          attrs: attributesOfObject(object, 'file', this.options.defaults),
          etag: object.etag,
          explicit: false,
          complete: false,
        });
        incomplete.push(childPath);
      }
    }
    if (incomplete.length > 0) this.listed.set(path, incomplete);
    else this.listed.delete(path);
    for (const [openPath, file] of this.openFiles) {
      if (posix.dirname(openPath) === path && !file.existsInStore) names.add(posix.basename(openPath));
    }
    return ['.', '..', ...names];
  }

  /**
   * A listing gives size and mtime but not the POSIX metadata (mode, owner) kept in each object's
   * headers. A program that looks up one entry of a fresh listing (`ls -l`, `find`, `stat *`) is
   * about to look up all of them, one at a time: fetch the rest in parallel now, so each lookup
   * finds its answer cached or on its way. A plain `ls` costs no HEAD at all.
   */
  private completeSiblings(path: string): void {
    const siblings = this.listed.get(posix.dirname(path));
    if (!siblings) return;
    this.listed.delete(posix.dirname(path));
    for (const sibling of siblings.slice(0, MAX_BACKGROUND_LOOKUPS)) {
      if (sibling === path) continue;
      void this.metadataQueue.add(() => this.tryResolve(sibling)).catch(() => undefined); // its own lookup reports errors
    }
  }

  private pages(dirKey: string, path: string) {
    return wrapErrors(listAll(this.store, { prefix: dirKey, delimiter: '/' }), path);
  }

  async mkdir(path: string, permissions: number): Promise<void> {
    this.checkWritable(path);
    const key = this.checkedKey(path);
    if (await this.tryResolve(path)) throw new FsError('EEXIST', `${path}: already exists`);
    const attrs = newAttributes('directory', permissions, this.options.defaults, this.now());
    const { etag } = await this.guard(path, () =>
      this.store.put(`${key}/`, Buffer.alloc(0), { metadata: metadataOf(attrs), contentType: contentTypeOf('directory') }),
    );
    this.cache.setNode(path, { attrs, etag, explicit: true, complete: true });
    this.appeared(path);
    if (this.madeHere.size >= 10_000) {
      // Keep the map small in a long-lived mount: drop what has expired.
      const now = this.now();
      for (const [dir, entry] of this.madeHere) if (entry.until < now) this.madeHere.delete(dir);
    }
    this.madeHere.set(path, { until: this.now() + this.options.cache.dirTtlMs, names: new Set() });
  }

  /** Logs, once per key, that a listing skipped it and why. */
  private notShown(key: string, why: string): void {
    if (this.unshowable.has(key) || this.unshowable.size >= 10_000) return;
    this.unshowable.add(key);
    this.options.logger.warn(`key '${key}' is not shown in the mount: ${why}`);
  }

  /** Notes a name that now exists (or may) in its directory, for `madeHere`. */
  private appeared(path: string): void {
    const dir = this.madeHere.get(posix.dirname(path));
    if (!dir) return;
    dir.names.add(posix.basename(path));
    if (dir.names.size > 10_000) this.madeHere.delete(posix.dirname(path)); // ask the store again
  }

  /** Whether `path` is certainly missing: its directory was made here and the name never was. */
  private knownMissing(path: string): boolean {
    const parent = posix.dirname(path);
    const dir = this.madeHere.get(parent);
    if (!dir) return false;
    if (dir.until < this.now()) {
      this.madeHere.delete(parent);
      return false;
    }
    return !dir.names.has(posix.basename(path));
  }

  async rmdir(path: string): Promise<void> {
    this.checkWritable(path);
    this.madeHere.delete(path);
    if (path === '/') throw new FsError('EPERM', `/: the mount's root cannot be removed`);
    const node = await this.resolve(path);
    if (node.attrs.kind !== 'directory') throw new FsError('ENOTDIR', `${path}: not a directory`);
    const dirKey = this.dirKey(path);
    const page = await this.guard(path, () => this.store.list({ prefix: dirKey, maxKeys: 2 }));
    const hasChildren = page.objects.some((o) => o.key !== dirKey) || page.prefixes.length > 0;
    if (hasChildren || this.hasOpenFilesBelow(path)) throw new FsError('ENOTEMPTY', `${path}: directory not empty`);
    // An explicit directory whose marker the listing does not show is a store's own kind of
    // marker (blobfuse's `hdi_isfolder` blob on Azure): deleting `dir/` removes it there.
    if (node.explicit || page.objects.some((o) => o.key === dirKey)) await this.guard(path, () => this.store.deleteMany([dirKey]));
    this.cache.deleteTree(path);
    this.cache.setMissing(path);
    await this.keepParent(path);
  }

  // ---- files ----

  async create(path: string, permissions: number): Promise<number> {
    this.checkWritable(path);
    const key = this.checkedKey(path);
    const attrs = newAttributes('file', permissions, this.options.defaults, this.now());
    const file = new OpenFile(path, key, attrs, '', contentTypeOf('file'), this.stagingPath());
    const previous = this.openFiles.get(path);
    if (previous) previous.unlinked = true;
    this.openFiles.set(path, file);
    this.cache.delete(path);
    this.appeared(path);
    return this.addHandle(file, O_RDWR);
  }

  async open(path: string, flags: number): Promise<number> {
    let file = this.openFiles.get(path);
    const writable = (flags & O_ACCMODE) !== 0;
    if (writable) this.checkWritable(path);
    if (!file) {
      const node = await this.resolve(path);
      if (node.attrs.kind === 'directory') {
        if (writable) throw new FsError('EISDIR', `${path}: is a directory`);
      }
      file = new OpenFile(path, this.key(path), { ...node.attrs }, node.etag, node.contentType, this.stagingPath());
      this.openFiles.set(path, file);
    }
    if (writable && file.pending) {
      // Its journal record describes the closed version: upload that before it changes again.
      await this.commit(file);
    }
    const fh = this.addHandle(file, flags);
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

  async read(fh: number, into: Buffer, length: number, position: number): Promise<number> {
    const handle = this.handle(fh);
    const { file } = handle;
    if (file.attrs.kind === 'directory') throw new FsError('EISDIR', `${file.path}: is a directory`);
    const wanted = Math.min(length, file.attrs.size - position);
    if (wanted <= 0) return 0;
    if (file.staged) {
      if (position < file.stagedFrom) await file.exclusive(() => this.guard(file.path, () => file.fill(this.store, position)));
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
    return this.countRead(await this.guard(file.path, () => reader.read(into, wanted, position)));
  }

  private countRead(bytes: number): number {
    this.stats.bytesRead += bytes;
    return bytes;
  }

  async write(fh: number, data: Buffer, position: number): Promise<number> {
    const handle = this.handle(fh);
    this.checkWritable(handle.file.path);
    if (!handle.writable) throw new FsError('EBADF', `${handle.file.path}: not open for writing`);
    const file = handle.file;
    return file.exclusive(async () => {
      const at = handle.append ? file.attrs.size : position;
      // Only what follows the first byte written is downloaded; an append downloads nothing.
      const staging = await this.guard(file.path, () => file.stage(this.store, file.attrs.size, at));
      if (at < file.stagedFrom) await this.guard(file.path, () => file.fill(this.store, at));
      if (at + data.length > this.maxObjectSize()) throw new FsError('EFBIG', `${file.path}: larger than the store allows`);
      if (file.stream && at < file.stream.sent) await this.stopStream(file); // rewrites bytes already sent
      if (!file.stream && !file.streamStopped && at === 0 && file.attrs.size === 0 && !file.unlinked) {
        // Written from its start: upload parts while the program writes the rest.
        const createdWith = { metadata: metadataWithoutTimes(file.attrs), contentType: file.contentType ?? contentTypeOf('file') };
        file.stream = new StreamingUpload(this.store, file.key, createdWith, {
          partSize: this.options.partSize,
          concurrency: this.options.uploadConcurrency,
          budget: this.options.memoryBudget,
          tracker: this.tracker,
          buffers: this.partBuffers,
        });
      }
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await staging.write(data, done, data.length - done, at + done);
        done += bytesWritten;
      }
      file.attrs.size = Math.max(file.attrs.size, at + data.length);
      this.touch(file.attrs);
      file.dirty = true;
      this.stats.bytesWritten += data.length;
      if (file.stream) {
        try {
          await file.stream.advance(staging, file.attrs.size); // waits while the part queue is full
        } catch (error) {
          this.options.logger.warn(`${file.path}: streaming upload failed, the whole file is uploaded at close: ${toFsError(error, file.path).message}`);
          await this.stopStream(file);
        }
      }
      return data.length;
    });
  }

  async flush(fh: number): Promise<void> {
    const { file, writable } = this.handle(fh);
    // A reader's close saves nothing (and so never waits for an upload); a writer's saves the file.
    if (!writable) return;
    await (this.options.writeMode === 'async' ? this.commitLater(file) : this.commit(file));
  }

  async fsync(fh: number): Promise<void> {
    await this.commit(this.handle(fh).file);
  }

  async release(fh: number): Promise<void> {
    const handle = this.handle(fh);
    this.handles.delete(fh);
    const file = handle.file;
    try {
      if (handle.writable) await (this.options.writeMode === 'async' ? this.commitLater(file) : this.commit(file));
    } finally {
      file.refs -= 1;
      if (file.refs === 0) await this.forgetIfDone(file);
    }
  }

  /** Drops a file nobody has open and nothing is pending for (its staging copy too). */
  private async forgetIfDone(file: OpenFile): Promise<void> {
    const busy = () => file.refs > 0 || (file.pending && !file.unlinked);
    if (busy()) return; // the background upload forgets it when done
    // Only if nobody reopened it, and no upload is waiting, by the time the queue gets here.
    await file.exclusive(async () => {
      if (busy()) return;
      // Out of the table before the first await: an open arriving meanwhile must not pick up a
      // file whose staging copy is going away (it would then write to a discarded copy).
      if (this.openFiles.get(file.path) === file) this.openFiles.delete(file.path);
      await this.stopStream(file); // only left when the upload failed or the file was unlinked
      await file.discard();
    });
  }

  async truncate(path: string, size: number): Promise<void> {
    this.checkWritable(path);
    const open = this.openFiles.get(path);
    if (open) return this.truncateOpen(open, size);
    const node = await this.resolve(path);
    if (node.attrs.kind === 'directory') throw new FsError('EISDIR', `${path}: is a directory`);
    const file = new OpenFile(path, this.key(path), { ...node.attrs }, node.etag, node.contentType, this.stagingPath());
    file.refs = 1;
    this.openFiles.set(path, file);
    try {
      await this.truncateOpen(file, size);
      await this.commit(file);
    } finally {
      await file.exclusive(async () => {
        // As in forgetIfDone: leave the table before the staging copy goes away.
        if (file.refs === 1 && this.openFiles.get(path) === file) this.openFiles.delete(path);
        if (file.refs === 1) await file.discard();
      });
      file.refs -= 1;
    }
  }

  async ftruncate(fh: number, size: number): Promise<void> {
    const handle = this.handle(fh);
    this.checkWritable(handle.file.path);
    if (!handle.writable) throw new FsError('EBADF', `${handle.file.path}: not open for writing`);
    await this.truncateOpen(handle.file, size);
  }

  private truncateOpen(file: OpenFile, size: number): Promise<void> {
    if (size > this.maxObjectSize()) throw new FsError('EFBIG', `${file.path}: larger than the store allows`);
    return file.exclusive(async () => {
      if (file.stream && size < file.stream.sent) await this.stopStream(file);
      const kept = Math.min(size, file.attrs.size);
      const staging = await this.guard(file.path, () => file.stage(this.store, kept, kept));
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
    const node = open ? undefined : await this.resolve(path);
    if (node?.attrs.kind === 'directory') throw new FsError('EISDIR', `${path}: is a directory`);
    const key = this.key(path);
    const remove = async () => {
      if (!open || open.existsInStore) await this.guard(path, () => this.store.deleteMany([key]));
    };
    if (open) {
      await open.exclusive(async () => {
        open.unlinked = true;
        await this.stopStream(open);
        if (open.pending && open.stagingFile) await removeRecord(open.stagingFile);
        await this.keepForHandles(open);
        await remove();
      });
      this.openFiles.delete(path);
      if (open.refs === 0) await this.forgetIfDone(open); // closed, and was waiting for its upload
    } else {
      await remove();
    }
    this.cache.setMissing(path);
    await this.keepParent(path);
  }

  async symlink(target: string, path: string): Promise<void> {
    this.checkWritable(path);
    const key = this.checkedKey(path);
    if (await this.tryResolve(path)) throw new FsError('EEXIST', `${path}: already exists`);
    this.appeared(path);
    const attrs = newAttributes('symlink', 0o777, this.options.defaults, this.now());
    const body = Buffer.from(target, 'utf8');
    attrs.size = body.length;
    const { etag } = await this.guard(path, () =>
      this.store.put(key, body, { metadata: metadataOf(attrs), contentType: contentTypeOf('symlink') }),
    );
    this.cache.setNode(path, { attrs, etag, explicit: false, complete: true, target });
  }

  async readlink(path: string): Promise<string> {
    const node = await this.resolve(path);
    if (node.attrs.kind !== 'symlink') throw new FsError('EINVAL', `${path}: not a symbolic link`);
    if (node.target !== undefined) return node.target;
    const { body } = await this.guard(path, () => this.store.get(this.key(path)));
    node.target = body.toString('utf8');
    return node.target;
  }

  async link(from: string, to: string): Promise<void> {
    throw new FsError('EPERM', `${to}: hard links are not supported on object storage (link from ${from})`);
  }

  async mknod(path: string): Promise<void> {
    throw new FsError('EPERM', `${path}: only regular files, directories and symlinks can be stored`);
  }

  // ---- rename ----

  async rename(from: string, to: string): Promise<void> {
    this.checkWritable(from);
    if (from === to) return;
    if (from === '/' || to === '/') throw new FsError('EBUSY', 'the mount root cannot be renamed');
    this.checkedKey(to);
    const source = this.openFiles.get(from)?.attrs ?? (await this.resolve(from)).attrs;
    const target = this.openFiles.get(to)?.attrs ?? (await this.tryResolve(to))?.attrs;
    this.appeared(to);
    for (const dir of this.madeHere.keys()) {
      // A moved tree is looked up in the store again (its names are not tracked where it lands).
      if (dir === from || dir.startsWith(`${from}/`) || dir === to || dir.startsWith(`${to}/`)) this.madeHere.delete(dir);
    }
    if (source.kind === 'directory') {
      if (to.startsWith(`${from}/`)) throw new FsError('EINVAL', `${to}: cannot move a directory into itself`);
      if (target && target.kind !== 'directory') throw new FsError('ENOTDIR', `${to}: not a directory`);
      if (target) await this.rmdir(to);
      await this.renameDirectory(from, to);
    } else {
      if (target?.kind === 'directory') throw new FsError('EISDIR', `${to}: is a directory`);
      await this.renameFile(from, to);
    }
    await this.keepParent(from);
  }

  /**
   * Before a file's object goes (unlink, or a rename over it): handles still open go on reading
   * the whole file from its staging copy, as POSIX keeps it readable; a file only read so far is
   * downloaded now. Call inside the file's `exclusive`.
   */
  private async keepForHandles(file: OpenFile): Promise<void> {
    if (!file.staged && !(file.refs > 0 && file.existsInStore)) return;
    await this.guard(file.path, () => file.stage(this.store, file.attrs.size, 0));
    await this.guard(file.path, () => file.fill(this.store, 0));
  }

  private async renameFile(from: string, to: string): Promise<void> {
    const open = this.openFiles.get(from);
    const fromKey = this.key(from);
    const toKey = this.key(to);
    const replaced = this.openFiles.get(to);
    if (replaced && replaced !== open) await replaced.exclusive(() => this.keepForHandles(replaced));
    const move = async () => {
      if (open) await this.commitNow(open);
      const { etag } = await this.guard(from, () => this.store.copy(fromKey, toKey));
      // A copy can have a new ETag (on S3, always for a multipart object); reads are pinned to it.
      if (open) open.etag = etag;
      await this.guard(from, () => this.store.deleteMany([fromKey]));
    };
    if (open) await open.exclusive(move);
    else await move();
    if (replaced) {
      // The replaced file lives on only in its handles; the name now belongs to the moved file.
      replaced.unlinked = true;
      this.openFiles.delete(to);
    }
    this.openFiles.delete(from);
    if (open) {
      open.path = to;
      open.key = toKey;
      this.openFiles.set(to, open);
    }
    this.cache.setMissing(from);
    this.cache.delete(to);
  }

  private async renameDirectory(from: string, to: string): Promise<void> {
    const below = [...this.openFiles.values()].filter((f) => f.path.startsWith(`${from}/`));
    for (const file of below) await this.commit(file);
    const fromKey = this.dirKey(from);
    const toKey = this.dirKey(to);
    const keys: string[] = [];
    for await (const page of wrapErrors(listAll(this.store, { prefix: fromKey }), from)) {
      for (const object of page.objects) keys.push(object.key);
    }
    // A marker the listing does not show (see rmdir) is moved too, so an empty directory moves.
    const known = this.cache.get(from);
    if (known?.exists && known.node.explicit && !keys.includes(fromKey)) keys.unshift(fromKey);
    const tooLong = keys.find((k) => Buffer.byteLength(toKey + k.slice(fromKey.length)) > MAX_KEY_BYTES);
    if (tooLong) throw new FsError('ENAMETOOLONG', `${to}: '${tooLong}' would exceed ${MAX_KEY_BYTES} bytes`);
    const queue = new PQueue({ concurrency: 16 });
    const copied = await Promise.all(
      keys.map((k) => queue.add(() => this.guard(from, () => this.store.copy(k, toKey + k.slice(fromKey.length))))),
    );
    const copiedEtags = new Map(keys.map((k, i) => [k, copied[i]!.etag]));
    await this.guard(from, () => this.store.deleteMany(keys));
    for (const file of below) {
      this.openFiles.delete(file.path);
      file.etag = copiedEtags.get(file.key) ?? file.etag;
      file.path = to + file.path.slice(from.length);
      file.key = this.key(file.path);
      this.openFiles.set(file.path, file);
    }
    this.cache.deleteTree(from);
    this.cache.deleteTree(to);
    this.cache.setMissing(from);
  }

  // ---- attributes that change ----

  async chmod(path: string, mode: number): Promise<void> {
    this.checkWritable(path);
    await this.changeAttributes(path, (a) => {
      a.mode = (a.mode & S_IFMT) | (mode & 0o7777);
    });
  }

  async chown(path: string, uid: number, gid: number): Promise<void> {
    this.checkWritable(path);
    await this.changeAttributes(path, (a) => {
      if (uid !== -1 && uid !== 0xffffffff) a.uid = uid;
      if (gid !== -1 && gid !== 0xffffffff) a.gid = gid;
    });
  }

  async utimens(path: string, atimeMs: number, mtimeMs: number): Promise<void> {
    this.checkWritable(path);
    const open = this.openFiles.get(path);
    if (open) open.timesSet = true;
    await this.changeAttributes(path, (a) => {
      a.atimeMs = atimeMs;
      a.mtimeMs = mtimeMs;
    });
  }

  private async changeAttributes(path: string, change: (attrs: Attributes) => void): Promise<void> {
    if (path === '/') {
      // The root has no object to carry metadata: the change lasts as long as the mount.
      change(this.rootAttrs);
      this.rootAttrs.ctimeMs = this.now();
      return;
    }
    const open = this.openFiles.get(path);
    if (open) {
      change(open.attrs);
      open.attrs.ctimeMs = this.now();
      open.metadataDirty = true;
      // A file with unsaved content gets its metadata at flush; a clean one right away.
      if (!open.dirty) await this.commit(open);
      return;
    }
    const node = await this.resolve(path);
    const attrs = { ...node.attrs };
    change(attrs);
    attrs.ctimeMs = this.now();
    const options = { metadata: metadataOf(attrs), contentType: node.contentType ?? contentTypeOf(attrs.kind) };
    let etag: string;
    if (attrs.kind === 'directory') {
      const dirKey = this.dirKey(path);
      ({ etag } = await this.guard(path, () =>
        node.explicit ? this.store.copy(dirKey, dirKey, options) : this.store.put(dirKey, Buffer.alloc(0), options),
      ));
    } else {
      const key = this.key(path);
      ({ etag } = await this.guard(path, () => this.store.copy(key, key, options)));
    }
    this.cache.setNode(path, { ...node, attrs, etag, explicit: attrs.kind === 'directory' || node.explicit });
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
  async drain(): Promise<void> {
    const results = await Promise.allSettled([...this.openFiles.values()].map((f) => this.commit(f)));
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason;
  }

  /** Files with unsaved changes, for the unmount message. */
  get pendingFiles(): string[] {
    return [...this.openFiles.values()].filter((f) => (f.dirty || f.metadataDirty) && !f.unlinked).map((f) => f.path);
  }

  // ---- internals ----

  /** Uploads `file` if it has unsaved content or metadata, after any queued write. */
  private commit(file: OpenFile): Promise<void> {
    return file.exclusive(() => this.commitNow(file));
  }

  /**
   * Async mode's close: makes the staged content durable on local disk with a journal record,
   * and queues the upload. Metadata-only changes are uploaded at once (one small copy).
   */
  private commitLater(file: OpenFile): Promise<void> {
    return file.exclusive(async () => {
      if (file.unlinked || (!file.dirty && !file.metadataDirty)) return;
      if (!file.dirty || !file.stagingFile) return this.commitNow(file);
      const record = {
        key: file.key,
        size: file.attrs.size,
        metadata: metadataOf(file.attrs),
        contentType: file.contentType ?? contentTypeOf('file'),
      };
      try {
        // The journal must hold the whole file: a crash could outlive the object it came from.
        await this.guard(file.path, () => file.fill(this.store, 0));
        await writeRecord(file.stagingFile, record);
      } catch (error) {
        throw new FsError('EIO', `${file.path}: could not journal the file in ${this.options.stagingDir}: ${(error as Error).message}`, { cause: error });
      }
      file.pending = true;
      this.uploadInBackground(file);
    });
  }

  private uploadInBackground(file: OpenFile, attempt = 1): void {
    void this.backgroundUploads.add(async () => {
      try {
        await this.commit(file);
      } catch {
        // commitNow logged it. The journal keeps the data; try again, less and less often.
        if (!file.pending) return;
        const delay = Math.min(60_000, 1000 * 2 ** Math.min(attempt, 6));
        setTimeout(() => this.uploadInBackground(file, attempt + 1), delay).unref();
        return;
      }
      if (file.refs === 0) await this.forgetIfDone(file);
    });
  }

  /** Uploads queued by async closes that have not finished yet. */
  get backgroundUploadCount(): number {
    return this.backgroundUploads.size + this.backgroundUploads.pending;
  }

  private async commitNow(file: OpenFile): Promise<void> {
    if (file.unlinked || (!file.dirty && !file.metadataDirty)) return;
    const options = { metadata: metadataOf(file.attrs), contentType: file.contentType ?? contentTypeOf('file') };
    let etag: string;
    try {
      const streamed = file.dirty ? await this.finishStream(file, options) : undefined;
      if (streamed) {
        etag = streamed;
      } else if (file.dirty) {
        const staged = file.stagingFile;
        if (!staged) {
          ({ etag } = await this.store.put(file.key, Buffer.alloc(0), options));
        } else if (file.stagedFrom > 0 && this.uploader.canReuse(file.stagedFrom)) {
          const source = { key: file.key, etag: file.etag, bytes: file.stagedFrom };
          ({ etag } = await this.uploader.uploadReusing(file.key, staged, file.attrs.size, source, options));
        } else {
          await file.fill(this.store, 0);
          ({ etag } = await this.uploader.upload(file.key, staged, file.attrs.size, options));
        }
      } else {
        ({ etag } = await this.store.copy(file.key, file.key, options));
      }
    } catch (error) {
      const fsError = toFsError(error, file.path);
      this.options.logger.error(`upload of ${file.path} failed: ${fsError.message}`);
      throw fsError;
    }
    file.etag = etag;
    file.dirty = false;
    file.metadataDirty = false;
    file.streamStopped = false;
    file.timesSet = false;
    if (file.pending) {
      file.pending = false;
      if (file.stagingFile) await removeRecord(file.stagingFile);
    }
    this.cache.setNode(file.path, {
      attrs: { ...file.attrs },
      etag,
      explicit: false,
      complete: true,
      contentType: file.contentType,
    });
  }

  /**
   * Completes the file's streaming upload, if it has one; returns the new ETag, or undefined when
   * the whole file must be uploaded instead (no stream, or it failed and was aborted).
   *
   * A streamed object was created before its last write, so it carries no times: its mtime is
   * the store's LastModified, read back here. If times were set explicitly (utimens) or the
   * mode or owner changed meanwhile, the object is copied onto itself with the final metadata.
   */
  private async finishStream(file: OpenFile, options: PutOptions): Promise<string | undefined> {
    const stream = file.stream;
    if (!stream || !stream.started) {
      file.stream = undefined;
      return undefined;
    }
    file.stream = undefined;
    const staged = await file.stage(this.store, file.attrs.size);
    let etag: string;
    try {
      ({ etag } = await stream.finish(staged, file.attrs.size));
    } catch (error) {
      this.options.logger.warn(`${file.path}: streaming upload failed, uploading the whole file: ${toFsError(error, file.path).message}`);
      await stream.abort().catch(() => undefined);
      return undefined;
    }
    const created = stream.createdWith.metadata ?? {};
    const final = options.metadata ?? {};
    const changed = file.timesSet || ['mode', 'uid', 'gid'].some((name) => created[name] !== final[name]);
    if (changed && file.attrs.size <= this.store.capabilities.maxPutSize) {
      ({ etag } = await this.store.copy(file.key, file.key, options));
    } else {
      if (changed) this.options.logger.warn(`${file.path}: too large to copy onto itself; its new mode, owner or times are not saved`);
      const head = await this.store.head(file.key);
      file.attrs.mtimeMs = file.attrs.ctimeMs = head.lastModified.getTime();
      etag = head.etag;
    }
    return etag;
  }

  /** Gives up the file's streaming upload (aborting it in the store); close uploads the whole file. */
  private async stopStream(file: OpenFile): Promise<void> {
    const stream = file.stream;
    if (!stream) return;
    file.stream = undefined;
    file.streamStopped = true;
    await stream.abort().catch((error: unknown) => {
      this.options.logger.warn(`${file.path}: could not abort its multipart upload: ${toFsError(error, file.path).message}`);
    });
  }

  /** The node at `path`, complete with metadata; ENOENT when nothing is there. */
  private async resolve(path: string): Promise<CachedNode> {
    const node = await this.tryResolve(path);
    if (!node) throw new FsError('ENOENT', `${path}: no such file or directory`);
    return node;
  }

  private async tryResolve(path: string): Promise<CachedNode | undefined> {
    if (path === '/') return { attrs: this.rootAttrs, etag: '', explicit: true, complete: true };
    const open = this.openFiles.get(path);
    if (open) return { attrs: open.attrs, etag: open.etag, explicit: false, complete: true };
    const cached = this.cache.get(path);
    if (cached && !cached.exists) return undefined;
    if (cached?.exists && cached.node.complete) return cached.node;
    if (!cached && this.knownMissing(path)) return undefined;
    const pending = this.lookups.get(path);
    if (pending) return pending;
    if (cached?.exists) this.completeSiblings(path);
    const lookup = (cached?.exists ? this.lookup(path, cached.node) : this.lookupAgain(path)).finally(() => this.lookups.delete(path));
    this.lookups.set(path, lookup);
    return lookup;
  }

  /**
   * A lookup of a path not known now. If it was a file when last known (an expired entry: `ls -l`
   * or `cat *` of a large directory outlasting the TTL), its object is asked for alone, one
   * request instead of three; only if that is gone is it looked up as anything.
   */
  private async lookupAgain(path: string): Promise<CachedNode | undefined> {
    const was = this.cache.expired(path);
    if (was?.exists && was.node.attrs.kind !== 'directory') {
      const found = await this.lookup(path, was.node);
      if (found) return found;
    }
    return this.lookup(path, undefined);
  }

  private async lookup(path: string, partial: CachedNode | undefined): Promise<CachedNode | undefined> {
    const key = this.checkedKey(path);
    const dirKey = `${key}/`;
    const notFound = <T>(promise: Promise<T>) =>
      promise.catch((error: unknown) => {
        if (isStoreError(error, 'NotFound')) return undefined;
        throw error;
      });
    // A partial node from a listing already says which kind it is: ask only what is missing.
    const wantFile = partial?.attrs.kind !== 'directory';
    const wantDir = partial === undefined || partial.attrs.kind === 'directory';
    // A small file is read whole instead: the same one request brings its metadata and the
    // bytes that `cat`, `grep` or a build will ask for next.
    const small = partial?.attrs.kind === 'file' && partial.attrs.size > 0 && partial.attrs.size <= SMALL_OBJECT_BYTES && partial.attrs.size <= this.blocks.blockSize;
    const [file, marker, children] = await this.guard(path, () =>
      Promise.all([
        wantFile ? notFound(small ? this.readSmall(key) : this.store.head(key)) : undefined,
        wantDir ? notFound(this.store.head(dirKey)) : undefined,
        wantDir && !partial ? this.store.list({ prefix: dirKey, maxKeys: 1 }) : undefined,
      ]),
    );
    let node: CachedNode | undefined;
    const isDirectory = marker !== undefined || (children && children.objects.length + children.prefixes.length > 0);
    if (marker) {
      node = {
        attrs: attributesOfObject(marker, 'directory', this.options.defaults),
        etag: marker.etag,
        explicit: true,
        complete: true,
        contentType: marker.contentType,
      };
    } else if (isDirectory || (partial?.attrs.kind === 'directory' && !file)) {
      node = { attrs: partial?.attrs ?? implicitDirectory(this.options.defaults, this.now()), etag: '', explicit: false, complete: true };
    } else if (file) {
      node = {
        attrs: attributesOfObject(file, 'file', this.options.defaults),
        etag: file.etag,
        explicit: false,
        complete: true,
        contentType: file.contentType,
      };
    }
    if (node) this.cache.setNode(path, node);
    else this.cache.setMissing(path);
    return node;
  }

  /**
   * HEAD's answer through a GET that also brings the bytes of a small object to the block cache
   * (at most SMALL_OBJECT_BYTES of it, should it have grown since it was listed).
   */
  private async readSmall(key: string): Promise<ObjectInfo> {
    const { info, body } = await this.store.get(key, { range: { start: 0, end: SMALL_OBJECT_BYTES - 1 } });
    if (body.length === info.size) this.blocks.offer({ key, etag: info.etag, size: info.size }, 0, body);
    return info;
  }

  /**
   * After the last entry of a directory goes away, the directory would vanish with it if it was
   * only implicit; write its marker so it stays, as it would on a local disk.
   */
  private async keepParent(path: string): Promise<void> {
    const parent = posix.dirname(path);
    if (parent === '/') return;
    const cached = this.cache.get(parent);
    if (cached?.exists && cached.node.explicit) return;
    const dirKey = this.dirKey(parent);
    const page = await this.guard(parent, () => this.store.list({ prefix: dirKey, maxKeys: 1 }));
    if (page.objects.length + page.prefixes.length > 0) return;
    const attrs = cached?.exists ? cached.node.attrs : implicitDirectory(this.options.defaults, this.now());
    const { etag } = await this.guard(parent, () =>
      this.store.put(dirKey, Buffer.alloc(0), { metadata: metadataOf(attrs), contentType: contentTypeOf('directory') }),
    );
    this.cache.setNode(parent, { attrs, etag, explicit: true, complete: true });
  }

  private hasOpenFilesBelow(path: string): boolean {
    for (const openPath of this.openFiles.keys()) if (openPath.startsWith(`${path}/`)) return true;
    return false;
  }

  private addHandle(file: OpenFile, flags: number): number {
    const fh = this.nextHandle++;
    if (this.nextHandle > 0xfffffff0) this.nextHandle = 1;
    file.refs += 1;
    this.handles.set(fh, { file, writable: (flags & O_ACCMODE) !== 0, append: (flags & O_APPEND) !== 0 });
    return fh;
  }

  private handle(fh: number): Handle {
    const handle = this.handles.get(fh);
    if (!handle) throw new FsError('EBADF', `handle ${fh} is not open`);
    return handle;
  }

  private touch(attrs: Attributes): void {
    attrs.mtimeMs = attrs.ctimeMs = this.now();
  }

  private stagingPath(): string {
    return stagingPathFor(this.options.stagingDir, `${this.stagingPrefix}-${this.nextStaging++}`);
  }

  private maxObjectSize(): number {
    const { maxParts, maxPartSize } = this.store.capabilities;
    return maxParts * maxPartSize;
  }

  private key(path: string): string {
    return this.options.prefix + path.slice(1);
  }

  private dirKey(path: string): string {
    return path === '/' ? this.options.prefix : `${this.key(path)}/`;
  }

  /** The key for a new entry at `path`, or ENAMETOOLONG. */
  private checkedKey(path: string): string {
    const key = this.key(path);
    if (Buffer.byteLength(posix.basename(path)) > MAX_NAME_BYTES || Buffer.byteLength(key) + 1 > MAX_KEY_BYTES) {
      throw new FsError('ENAMETOOLONG', `${path}: name too long for the store (keys hold at most ${MAX_KEY_BYTES} bytes)`);
    }
    return key;
  }

  /** Runs a store call, turning its failure into an FsError for `path`. */
  private async guard<T>(path: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      const fsError = toFsError(error, path);
      // The store holds a newer object than the one cached: forget it, so the next open sees it.
      if (fsError.code === 'ESTALE') this.cache.delete(path);
      throw fsError;
    }
  }
}

/** Why a key component cannot be a POSIX name (for the log). */
function unshowableReason(name: string): string {
  if (name === '') return 'it has an empty path component (//)';
  if (name === '.' || name === '..') return `'${name}' cannot be a file name`;
  return `a path component is longer than ${MAX_NAME_BYTES} bytes`;
}

/** A key component that POSIX can show as a name. */
function isShowableName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && Buffer.byteLength(name) <= MAX_NAME_BYTES;
}

async function* wrapErrors<T>(pages: AsyncGenerator<T>, path: string): AsyncGenerator<T> {
  try {
    yield* pages;
  } catch (error) {
    throw toFsError(error, path);
  }
}
