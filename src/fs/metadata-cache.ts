/**
 * What we last learned about each path, for a short time.
 *
 * Entries expire after a TTL (files and directories apart) so that changes made by other clients
 * show up; a negative entry ("no such path") has its own TTL. The cache is bounded in entries.
 * An entry learned from a listing has no POSIX metadata (`complete: false`): `getattr` then
 * fetches it with one HEAD, while `readdir` itself never issues a HEAD per entry.
 *
 * An expired entry is not trusted, but it is kept (until the LRU bound pushes it out) as a hint
 * of what the path was (`expired`): a lookup of a path that was a file then asks the store for
 * that one object first, instead of for a file, a directory marker and a listing at once.
 */

import { LRUCache } from 'lru-cache';

import type { Attributes } from './attributes.js';

export interface CachedNode {
  attrs: Attributes;
  /** The ETag of the object that backs a file or symlink ('' when not yet in the store). */
  etag: string;
  /** For directories: a `dir/` marker object exists. */
  explicit: boolean;
  /** False when learned from a listing: metadata (mode, uid, ...) still to be fetched. */
  complete: boolean;
  /**
   * The version of the object the metadata was read from: its ETag and Last-Modified, to the
   * second (see `versionOf`). A listing that shows the same version revalidates the whole node;
   * the ETag alone would not do, since copying an object onto itself with new metadata (a chmod
   * by s3fs or objmount) keeps a single-part object's ETag on S3.
   */
  version?: string;
  /**
   * For an object written here whose Last-Modified the store did not tell: no later than this
   * (seconds since the epoch). See `isSameVersion`.
   */
  modifiedBy?: number;
  /** Symlink target, once read. */
  target?: string;
  contentType?: string;
}

/** An object's version as a listing and a HEAD both tell it (listings give ms, HEAD seconds). */
export function versionOf(info: { etag: string; lastModified: Date }): string {
  return `${info.etag}@${Math.floor(info.lastModified.getTime() / 1000)}`;
}

/**
 * Whether `object`, as a listing shows it, is the version `known` describes: the same version
 * (ETag and Last-Modified), or, for an object written here whose Last-Modified the store did not
 * give (an S3 PUT), the same ETag and a Last-Modified no later than the store's clock when it
 * answered the write. Another client's rewrite of the same bytes with other metadata in that same
 * second would pass for this one: a window of one second, once (the match pins the version).
 */
export function isSameVersion(
  known: { etag: string; version?: string; modifiedBy?: number },
  object: { etag: string; lastModified: Date },
): boolean {
  if (known.version !== undefined) return known.version === versionOf(object);
  if (known.modifiedBy === undefined || known.etag !== object.etag) return false;
  return Math.floor(object.lastModified.getTime() / 1000) <= known.modifiedBy;
}

export type CacheEntry = { exists: true; node: CachedNode } | { exists: false };

export interface MetadataCacheOptions {
  /** How long a file's or symlink's attributes are trusted, in ms. */
  fileTtlMs: number;
  /** How long a directory's attributes are trusted, in ms. */
  dirTtlMs: number;
  /** How long "does not exist" is trusted, in ms. 0 disables negative caching. */
  negativeTtlMs: number;
  /** Most entries kept. */
  maxEntries: number;
  /** The clock, injectable for tests. */
  clock?: { now(): number };
}

export class MetadataCache {
  private readonly cache: LRUCache<string, CacheEntry>;

  constructor(private readonly options: MetadataCacheOptions) {
    this.cache = new LRUCache<string, CacheEntry>({
      max: options.maxEntries,
      ttlAutopurge: false,
      noDeleteOnStaleGet: true, // expired entries stay as hints (see above)
      perf: options.clock,
      // lru-cache otherwise reuses one reading of the clock until a 1 ms real-time timer fires,
      // so an injected clock that jumps would not expire entries until the event loop turns.
      ttlResolution: options.clock ? 0 : 1,
    });
  }

  get(path: string): CacheEntry | undefined {
    return this.cache.get(path);
  }

  /** What `path` was when last known, if that has expired (a hint, never an answer). */
  expired(path: string): CacheEntry | undefined {
    if (this.cache.has(path)) return undefined; // still fresh
    return this.cache.get(path, { allowStale: true });
  }

  setNode(path: string, node: CachedNode): void {
    const ttl = node.attrs.kind === 'directory' ? this.options.dirTtlMs : this.options.fileTtlMs;
    if (ttl > 0) this.cache.set(path, { exists: true, node }, { ttl });
    else this.cache.delete(path);
  }

  setMissing(path: string): void {
    if (this.options.negativeTtlMs > 0) this.cache.set(path, { exists: false }, { ttl: this.options.negativeTtlMs });
    else this.cache.delete(path);
  }

  delete(path: string): void {
    this.cache.delete(path);
  }

  /** Forgets `path` and everything below it. */
  deleteTree(path: string): void {
    const below = path === '/' ? '/' : `${path}/`;
    for (const key of [...this.cache.keys()]) {
      if (key === path || key.startsWith(below)) this.cache.delete(key);
    }
  }
}
