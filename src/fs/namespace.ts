/**
 * The namespace: which paths exist, what they are, and what their attributes are — answered
 * from the metadata cache where it can, from the store where it must.
 *
 * Paths are those FUSE hands us ("/a/b"); the key of "/a/b" is `prefix + "a/b"`, and a directory
 * "/a" may exist implicitly (some key starts with "a/") or explicitly (a zero-byte "a/" marker,
 * which mkdir writes). When a file and a directory share a name, the directory wins.
 *
 * Request budget, which is what a store bills and what its latency multiplies:
 * - A lookup of an unknown path asks for the object (HEAD key): one request for a file that
 *   exists. Only if that is missing does it ask for a directory (HEAD key/ and one key under
 *   key/, at once). A path known from a listing or an expired entry asks only for what it was.
 * - Answers are cached for a TTL, negatives included; concurrent lookups of a path share one.
 * - Listings are paged and never HEAD each entry. The first lookup in a fresh listing fetches
 *   the metadata of the rest in the background, paced by the lookups that follow
 *   (sibling-prefetch.ts: `ls -l`, `find`, `stat *`). Metadata read once
 *   stays true for the object's version (ETag and Last-Modified): a listing that shows the same
 *   version revalidates an expired entry without a request of its own.
 * - A directory whose every name is known answers a lookup of any other name "missing" without
 *   a request: one made here (until the directory TTL), or listed in full (until the negative TTL
 *   from the listing's start), with the names made here since. So what another client put there
 *   shows within the TTL, as a cached "missing" would. Past half that time, such an answer lists
 *   the directory again in the background, so that a program creating many files there (a shell
 *   loop, `tar x`, `cp -r`) keeps getting answers without a request: one LIST a half-TTL instead
 *   of a HEAD per new name. The second cold lookup in a directory lists it (`stat a b c …`).
 *   (A create that keeps what is there, neither O_TRUNC nor O_EXCL, asks the store itself:
 *   FileSystem.create; a file put by another client since is never replaced by an empty one.)
 */

import { posix } from 'node:path';

import type { Logger } from '../log/logger.js';
import {
  type ListPage,
  type ObjectInfo,
  type ObjectMetadata,
  type ObjectStore,
  type WrittenObject,
  isStoreError,
  listAll,
} from '../storage/object-store.js';
import { type AttributeDefaults, type Attributes, attributesOfObject, contentTypeOf, implicitDirectory, metadataOf } from './attributes.js';
import { type Cancellation, SharedCancellation } from './cancellation.js';
import { FsError, toFsError } from './errors.js';
import { type KeptMetadata, keptNode } from './kept-metadata.js';
import { type CachedNode, MetadataCache, type MetadataCacheOptions, isSameVersion, versionOf } from './metadata-cache.js';
import type { OpenFileTable } from './open-files.js';
import type { BlockCache } from './read/block-cache.js';
import { KnownNames, MAX_KNOWN } from './known-names.js';
import { SiblingPrefetch } from './sibling-prefetch.js';

export interface NamespaceOptions {
  /** Key prefix the mount shows ('' for the whole bucket, else ending in '/'). */
  prefix: string;
  defaults: AttributeDefaults;
  cache: MetadataCacheOptions;
  logger: Logger;
  /** Wall clock for timestamps. */
  now: () => number;
  /** Files' metadata kept across mounts (kept-metadata.ts), if the mount keeps it. */
  kept?: KeptMetadata;
}

export const MAX_KEY_BYTES = 1024;
export const MAX_NAME_BYTES = 255;
/** Files up to this size are read whole where a lookup would HEAD them. */
const SMALL_OBJECT_BYTES = 64 * 1024;
/** Entries of one listing whose metadata is fetched ahead of their lookups, how many at once, how far ahead. */
export const PREFETCH = { maxEntries: 10_000, concurrency: 32, window: 64 };
/**
 * A listing made for the cold lookups to come (`listAhead`) asks this many entries first: `stat` of
 * many names in a directory nobody listed has its first entries fetched ahead after a small page
 * (~10 ms on a local server), not after the whole first page of 1,000 (~100 ms), for one more
 * LIST per directory of more entries.
 */
const FIRST_PAGE_AHEAD = 100;
/** Most keys remembered as unshowable. */
const MAX_UNSHOWN = 10_000;

export class Namespace {
  readonly cache: MetadataCache;
  /** The mount's root: it has no object, so its attributes live as long as the mount. */
  readonly rootAttrs: Attributes;
  /** Lookups in flight, one per path, shared by whoever asks meanwhile (cancelled once none waits). */
  private readonly lookups = new Map<string, { node: Promise<CachedNode | undefined>; cancel: SharedCancellation }>();
  /** The directories whose every name is known, and the cold lookups in others (known-names.ts). */
  readonly names: KnownNames;
  /** Listings started ahead of lookups (`listAhead`), one per directory at a time. */
  private readonly listingsInFlight = new Set<string>();
  /** Keys a listing could not show, each logged once (at most MAX_UNSHOWN remembered). */
  private readonly unshowable = new Set<string>();
  /** Fetches the metadata a listing lacks, ahead of the lookups that follow it. */
  private readonly prefetch = new SiblingPrefetch((path) => this.resolveNode(path), PREFETCH);
  /**
   * Fetches the bytes of a listing's small files whose metadata it did not have to fetch (kept,
   * or still cached), ahead of the opens that follow the first (`cat *`, `grep -r`, a build).
   * A lookup does not start it: `ls -l` reads no file's bytes.
   */
  private readonly bytesAhead = new SiblingPrefetch((path) => this.fetchSmallFile(path), PREFETCH);

  constructor(
    private readonly store: ObjectStore,
    private readonly blocks: BlockCache,
    private readonly openFiles: OpenFileTable,
    private readonly options: NamespaceOptions,
  ) {
    this.cache = new MetadataCache(options.cache);
    this.names = new KnownNames({
      now: options.now,
      dirTtlMs: options.cache.dirTtlMs,
      negativeTtlMs: options.cache.negativeTtlMs,
      listAhead: (dir, cold) => this.listAhead(dir, cold),
      savedHere: (path) => this.cache.expired(path)?.exists === true,
    });
    this.rootAttrs = implicitDirectory(options.defaults, options.now());
  }

  // ---- lookup ----

  /**
   * The node at `path`, complete with metadata; ENOENT when nothing is there. `cancel`: the file
   * operation asking may be interrupted (cancellation.ts).
   */
  async resolve(path: string, cancel?: Cancellation): Promise<CachedNode> {
    const node = await this.tryResolve(path, cancel);
    if (!node) throw new FsError('ENOENT', `${path}: no such file or directory`);
    return node;
  }

  /** The node at `path`, complete with metadata, or undefined when nothing is there. */
  tryResolve(path: string, cancel?: Cancellation): Promise<CachedNode | undefined> {
    this.prefetch.lookedUp(path);
    return this.resolveNode(path, cancel);
  }

  /** `tryResolve`, but not a program's lookup: it moves no prefetch on. */
  private async resolveNode(path: string, cancel?: Cancellation): Promise<CachedNode | undefined> {
    if (path === '/') return { attrs: this.rootAttrs, etag: '', explicit: true, complete: true };
    if (path.includes('\0')) return undefined; // no file name holds one (isShowableName)
    const open = this.openFiles.get(path);
    // (A directory is open only as its marker waiting to be saved, in async mode: FileSystem.mkdir.)
    if (open) return { attrs: open.attrs, etag: open.etag, explicit: open.attrs.kind === 'directory', complete: true };
    const cached = this.cache.get(path);
    if (cached && !cached.exists) return undefined;
    if (cached?.exists && cached.node.complete) return cached.node;
    if (!cached && this.names.absent(path)) return undefined;
    const pending = this.lookups.get(path);
    // One cancelled (its waiters all interrupted) is still settling: it is no answer for this one.
    if (pending !== undefined && !pending.cancel.signal.aborted) {
      pending.cancel.join(cancel);
      return pending.node;
    }
    // A name known before (its entry expired) is asked for again as what it was: not cold.
    if (!cached && !this.cache.expired(path)?.exists) this.names.coldLookup(posix.dirname(path));
    return this.shareLookup(path, cancel, (signal) =>
      cached?.exists ? this.lookup(path, signal, cached.node) : this.lookupAgain(path, signal),
    );
  }

  /** Runs a lookup of `path` that whoever asks for it meanwhile shares (see `lookups`). */
  private shareLookup(
    path: string,
    cancel: Cancellation | undefined,
    run: (signal: AbortSignal) => Promise<CachedNode | undefined>,
  ): Promise<CachedNode | undefined> {
    const shared = new SharedCancellation(cancel);
    const lookup: Promise<CachedNode | undefined> = run(shared.signal).finally(() => {
      if (this.lookups.get(path)?.node === lookup) this.lookups.delete(path);
    });
    this.lookups.set(path, { node: lookup, cancel: shared });
    return lookup;
  }

  /**
   * A lookup of a path not known now. If it was known when its entry expired (`ls -l` or `cat *`
   * of a large directory outlasting the TTL, a directory walked again), only what it was is asked
   * for: a file's object, one request instead of three; a directory's marker and first key, at
   * once. Only if that is gone is it looked up as anything.
   */
  private async lookupAgain(path: string, signal: AbortSignal): Promise<CachedNode | undefined> {
    const was = this.cache.expired(path);
    if (was?.exists) {
      const found = await this.lookup(path, signal, was.node, was.node.attrs.kind === 'directory' ? 'verify' : 'trust');
      if (found) return found;
    }
    return this.lookup(path, signal, undefined, 'trust');
  }

  /**
   * Asks the store what `path` is. `partial` is what it was last known as (from a listing, or an
   * expired entry): then only that kind is asked for. A directory is trusted to exist when a
   * listing has just shown it (`trust`); an expired one is `verify`ed by its first key.
   */
  private async lookup(
    path: string,
    signal: AbortSignal,
    partial: CachedNode | undefined,
    kindIs: 'trust' | 'verify' = 'trust',
  ): Promise<CachedNode | undefined> {
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
    const small = partial !== undefined && isSmallFile(partial.attrs, this.blocks.blockSize);
    const [file, marker, children] = await this.callStore(path, async () => {
      if (partial) {
        return Promise.all([
          wantFile ? notFound(small ? this.readSmall(key, signal) : this.store.head(key, { signal })) : undefined,
          wantDir ? notFound(this.store.head(dirKey, { signal })) : undefined,
          wantDir && kindIs === 'verify' ? this.store.list({ prefix: dirKey, maxKeys: 1, signal }) : undefined,
        ]);
      }
      // Nothing known: most names looked up are files that exist, and one HEAD settles those.
      // (A name that is both an object and a prefix shows as the file here until its directory
      // is listed, as s3fs shows it; a listing shows the directory.)
      const object = await notFound(this.store.head(key, { signal }));
      if (object) return [object, undefined, undefined] as const;
      return Promise.all([
        undefined,
        notFound(this.store.head(dirKey, { signal })),
        this.store.list({ prefix: dirKey, maxKeys: 1, signal }),
      ]);
    });
    let node: CachedNode | undefined;
    const isDirectory = marker !== undefined || (children && children.objects.length + children.prefixes.length > 0);
    if (marker) {
      node = {
        attrs: attributesOfObject(marker, 'directory', this.options.defaults),
        etag: marker.etag,
        explicit: true,
        complete: true,
        contentType: marker.contentType,
        version: versionOf(marker),
      };
    } else if (isDirectory || (partial?.attrs.kind === 'directory' && kindIs === 'trust' && !file)) {
      node = {
        attrs: partial?.attrs ?? implicitDirectory(this.options.defaults, this.options.now()),
        etag: '',
        explicit: false,
        complete: true,
      };
    } else if (file) {
      node = this.fileNode(key, file);
    }
    if (node) this.cache.setNode(path, node);
    else this.cache.setMissing(path);
    return node;
  }

  /** A program opens `path` to read it: fetch the small files listed after it ahead. */
  opening(path: string): void {
    this.bytesAhead.lookedUp(path);
  }

  /**
   * Brings a small file's bytes to the block cache, where a read finds them or waits for them.
   * If its entry has expired meanwhile (the program took longer than the TTL to get there), with
   * the GET a lookup of it makes, which makes the entry fresh again too: the lookup that comes
   * for it waits for that one instead of asking again.
   */
  private async fetchSmallFile(path: string): Promise<void> {
    const fresh = this.cache.get(path);
    const known = fresh ?? this.cache.expired(path);
    if (!known?.exists || !isSmallFile(known.node.attrs, this.blocks.blockSize) || this.openFiles.get(path)) return;
    const version = { key: this.key(path), etag: known.node.etag, size: known.node.attrs.size };
    if (fresh) return this.blocks.prefetch(version, 0);
    if (this.blocks.isAvailable(version, 0)) return;
    const pending = this.lookups.get(path);
    await (pending?.node ?? this.shareLookup(path, undefined, (signal) => this.lookup(path, signal, known.node))).catch(() => undefined);
  }

  /** What a HEAD (or a small file's GET) of `key` tells of its file; kept across mounts when it can be. */
  private fileNode(key: string, file: ObjectInfo): CachedNode {
    const node: CachedNode = {
      attrs: attributesOfObject(file, 'file', this.options.defaults),
      etag: file.etag,
      explicit: false,
      complete: true,
      contentType: file.contentType,
      version: versionOf(file),
    };
    // Kept only if read in a later second than it was written: no other version can share its
    // ETag and Last-Modified then (a chmod copies the object onto itself, keeping its ETag).
    if (file.readAt && Math.floor(file.readAt.getTime() / 1000) > Math.floor(file.lastModified.getTime() / 1000)) {
      this.options.kept?.remember(key, {
        etag: file.etag,
        version: node.version,
        metadata: file.metadata ?? {},
        contentType: file.contentType,
      });
    }
    return node;
  }

  /**
   * The file at `path` as the store has it now, whatever the caches say (one HEAD), cached; or
   * undefined. For a create that keeps what is there (FileSystem.create): a file put by another
   * client since a cached "missing" must not be replaced by an empty one.
   */
  async fileInStore(path: string): Promise<CachedNode | undefined> {
    const key = this.checkedKey(path);
    const info = await this.callStore(path, () =>
      this.store.head(key).catch((error: unknown) => {
        if (isStoreError(error, 'NotFound')) return undefined;
        throw error;
      }),
    );
    if (!info) return undefined;
    const node = this.fileNode(key, info);
    this.cache.setNode(path, node);
    this.names.appeared(path);
    return node;
  }

  /**
   * HEAD's answer through a GET that also brings the bytes of a small object to the block cache
   * (at most SMALL_OBJECT_BYTES of it, should it have grown since it was listed).
   */
  private async readSmall(key: string, signal: AbortSignal): Promise<ObjectInfo> {
    try {
      const { info, body } = await this.store.get(key, { range: { start: 0, end: SMALL_OBJECT_BYTES - 1 }, signal });
      if (body.length === info.size) this.blocks.offer({ key, etag: info.etag, size: info.size }, 0, body);
      return info;
    } catch (error) {
      // Emptied since it was listed: a range of an empty object is refused (416); HEAD it.
      if (isStoreError(error, 'InvalidRequest')) return this.store.head(key, { signal });
      throw error;
    }
  }

  // ---- listing ----

  /** The names in directory `path` (with '.' and '..'), caching what the listing tells of each. */
  async list(path: string, cancel?: Cancellation): Promise<string[]> {
    const names = (await this.listNames(path, Number.POSITIVE_INFINITY, cancel))!;
    return ['.', '..', ...names];
  }

  /**
   * The names in directory `path`, as `list` gives them, each with its attributes where a lookup
   * would answer at once from what is known (a file open here, a complete entry not expired:
   * written or looked up here, or revalidated by this listing's version), for readdirplus. The
   * others get none and no HEAD: the listing lacks their POSIX metadata, and a plain `ls` must
   * not pay for it (a lookup of one starts the prefetch of the rest, sibling-prefetch.ts).
   */
  async listWithAttributes(path: string, cancel?: Cancellation): Promise<Array<{ name: string; attrs?: Attributes }>> {
    const names = await this.list(path, cancel);
    return names.map((name) => {
      if (name === '.' || name === '..') return { name };
      const entry = posix.join(path, name);
      const open = this.openFiles.get(entry);
      if (open) return { name, attrs: open.attrs };
      const cached = this.cache.get(entry);
      return cached?.exists && cached.node.complete ? { name, attrs: cached.node.attrs } : { name };
    });
  }

  /** Lists `path`, caching what the listing tells; stops (undefined) past `maxNames` names. */
  private async listNames(path: string, maxNames: number, cancel?: Cancellation, firstPage?: number): Promise<Set<string> | undefined> {
    const started = this.options.now();
    const dir = path === '/' ? undefined : await this.resolve(path, cancel);
    if (dir && dir.attrs.kind !== 'directory') throw new FsError('ENOTDIR', `${path}: not a directory`);
    const dirKey = this.dirKey(path);
    const names = new Set<string>();
    const incomplete: string[] = [];
    /** Small files whose metadata is known without a request: their bytes are fetched ahead of opens. */
    const smallKnown: string[] = [];
    let fed = 0;
    for await (const page of this.pages(path, { prefix: dirKey, delimiter: '/', signal: cancel?.signal, firstPage })) {
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
            attrs: implicitDirectory(this.options.defaults, this.options.now()),
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
        const was = known ? undefined : this.cache.expired(childPath);
        let node: CachedNode | undefined;
        if (known?.exists && known.node.etag === object.etag && known.node.complete) {
          node = known.node;
        } else if (was?.exists && was.node.complete && isSameVersion(was.node, object)) {
          // The same version: its metadata still holds.
          node = { ...was.node, version: versionOf(object), modifiedBy: undefined };
          this.cache.setNode(childPath, node);
        } else {
          const kept = this.options.kept?.find(object.key, object);
          if (kept) {
            node = keptNode(object, kept, this.options.defaults);
            this.cache.setNode(childPath, node);
          }
        }
        if (node) {
          if (isSmallFile(node.attrs, this.blocks.blockSize)) smallKnown.push(childPath);
          continue;
        }
        this.cache.setNode(childPath, {
          attrs: attributesOfObject(object, 'file', this.options.defaults),
          etag: object.etag,
          explicit: false,
          complete: false,
        });
        incomplete.push(childPath);
      }
      if (names.size > maxNames) return undefined;
      // Each page's entries may be fetched ahead at once: lookups need not wait for the last page.
      if (fed === 0) this.prefetch.listedDirectory(path, [...incomplete], !page.nextToken);
      else this.prefetch.listedMore(path, incomplete.slice(fed), !page.nextToken);
      fed = incomplete.length;
    }
    if (incomplete.length === 0) this.prefetch.listedDirectory(path, []);
    this.bytesAhead.listedDirectory(path, smallKnown);
    for (const [openPath, file] of this.openFiles.entries()) {
      if (posix.dirname(openPath) === path && !file.existsInStore) names.add(posix.basename(openPath));
    }
    this.names.listed(path, names, started);
    return names;
  }

  /**
   * The object at `path` this mount has just written (`stored`: the metadata it was written
   * with, which `node.attrs` may have moved past since): cached, and kept for later mounts.
   */
  wrote(path: string, node: CachedNode, written: WrittenObject, stored: { metadata?: ObjectMetadata; contentType?: string }): void {
    const modifiedBy = written.modifiedBy ? Math.floor(written.modifiedBy.getTime() / 1000) : undefined;
    this.cache.setNode(path, { ...node, etag: written.etag, version: undefined, modifiedBy });
    if (modifiedBy === undefined || node.attrs.kind === 'directory') return;
    this.options.kept?.remember(this.key(path), {
      etag: written.etag,
      modifiedBy,
      metadata: stored.metadata ?? {},
      contentType: stored.contentType,
    });
  }

  /** The pages of a listing, its failures as FsErrors for `path` (`firstPage`: see `listAll`). */
  async *pages(
    path: string,
    options: { prefix: string; delimiter?: string; signal?: AbortSignal; firstPage?: number },
  ): AsyncGenerator<ListPage> {
    const { firstPage, ...listOptions } = options;
    try {
      yield* listAll(this.store, listOptions, firstPage);
    } catch (error) {
      throw toFsError(error, path);
    }
  }

  /** Logs, once per key, that a listing skipped it and why. */
  private notShown(key: string, why: string): void {
    if (this.unshowable.has(key) || this.unshowable.size >= MAX_UNSHOWN) return;
    this.unshowable.add(key);
    this.options.logger.warn(`key '${printable(key)}' is not shown in the mount: ${why}`);
  }

  /**
   * Lists `dir` in the background (one listing per directory at a time), for the lookups to come;
   * `cold` (nothing is known of it): a small first page, so its entries' fetches start sooner.
   */
  private listAhead(dir: string, cold: boolean): void {
    if (this.listingsInFlight.has(dir)) return;
    this.listingsInFlight.add(dir);
    void this.listNames(dir, MAX_KNOWN, undefined, cold ? FIRST_PAGE_AHEAD : undefined)
      .catch(() => undefined) // a listing ahead of time only saves requests; lookups report errors
      .finally(() => this.listingsInFlight.delete(dir));
  }

  /** The first keys in directory `path`, or ENOTEMPTY if it holds anything (in the store, or open here). */
  async checkEmpty(path: string): Promise<ListPage> {
    const dirKey = this.dirKey(path);
    const page = await this.callStore(path, () => this.store.list({ prefix: dirKey, maxKeys: 2 }));
    const hasChildren = page.objects.some((o) => o.key !== dirKey) || page.prefixes.length > 0;
    if (hasChildren || this.openFiles.hasBelow(path)) throw new FsError('ENOTEMPTY', `${path}: directory not empty`);
    return page;
  }

  /**
   * After the last entry of a directory goes away, the directory would vanish with it if it was
   * only implicit; write its marker so it stays, as it would on a local disk.
   */
  async keepParent(path: string): Promise<void> {
    const parent = posix.dirname(path);
    if (parent === '/') return;
    if (this.openFiles.get(parent)?.attrs.kind === 'directory') return; // its marker is on its way (async mkdir)
    const cached = this.cache.get(parent);
    if (cached?.exists && cached.node.explicit) return;
    const dirKey = this.dirKey(parent);
    const page = await this.callStore(parent, () => this.store.list({ prefix: dirKey, maxKeys: 1 }));
    if (page.objects.length + page.prefixes.length > 0) return;
    const attrs = cached?.exists ? cached.node.attrs : implicitDirectory(this.options.defaults, this.options.now());
    const { etag } = await this.callStore(parent, () =>
      this.store.put(dirKey, Buffer.alloc(0), { metadata: metadataOf(attrs), contentType: contentTypeOf('directory') }),
    );
    this.cache.setNode(parent, { attrs, etag, explicit: true, complete: true });
  }

  // ---- keys ----

  key(path: string): string {
    return this.options.prefix + path.slice(1);
  }

  dirKey(path: string): string {
    return path === '/' ? this.options.prefix : `${this.key(path)}/`;
  }

  /** The key for a new entry at `path`, or ENAMETOOLONG. */
  checkedKey(path: string): string {
    const key = this.key(path);
    if (Buffer.byteLength(posix.basename(path)) > MAX_NAME_BYTES || Buffer.byteLength(key) + 1 > MAX_KEY_BYTES) {
      throw new FsError('ENAMETOOLONG', `${path}: name too long for the store (keys hold at most ${MAX_KEY_BYTES} bytes)`);
    }
    return key;
  }

  /**
   * Runs a store call for `path`, turning its failure into an FsError; a stale answer (the store
   * holds a newer object than the one cached) also drops the cached one, so the next open sees it.
   */
  async callStore<T>(path: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      const fsError = toFsError(error, path);
      if (fsError.code === 'ESTALE') this.cache.delete(path);
      throw fsError;
    }
  }
}

/** A file whose bytes one request brings with its metadata (`readSmall`). */
function isSmallFile(attrs: Attributes, blockSize: number): boolean {
  return attrs.kind === 'file' && attrs.size > 0 && attrs.size <= SMALL_OBJECT_BYTES && attrs.size <= blockSize;
}

/** Why a key component cannot be a POSIX name (for the log). */
function unshowableReason(name: string): string {
  if (name === '') return 'it has an empty path component (//)';
  if (name === '.' || name === '..') return `'${name}' cannot be a file name`;
  if (name.includes('\0')) return 'it contains a NUL byte, which no file name can hold';
  return `a path component is longer than ${MAX_NAME_BYTES} bytes`;
}

/**
 * A key component that POSIX can show as a name. A NUL would end the name in C: `a\0b` would show
 * as `a`, and a lookup of `a` would find another object or none.
 */
function isShowableName(name: string): boolean {
  return (
    name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0') && Buffer.byteLength(name) <= MAX_NAME_BYTES
  );
}

/** A key as a log line may hold it: control characters (a NUL above all) as `\xNN`. */
function printable(key: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it escapes
  return key.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
