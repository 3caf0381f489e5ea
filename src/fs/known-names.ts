/**
 * The directories whose every name is known, so that a lookup of any other name there is
 * "missing" without asking the store (three requests saved per new file in `cp -r`, `tar x`,
 * `mkdir -p`, a shell loop), and the cold lookups in the others, which decide when a directory
 * is worth listing ahead of the lookups to come.
 *
 * A directory's names are known when this mount made it (until the directory TTL, with the
 * names made here since), or listed it in full (until the negative TTL from the listing's start:
 * what another client puts since shows after that, as a cached "missing" would). Past half that
 * time, an answer given from them lists the directory again in the background, so the knowledge
 * outlives the TTL while a program keeps asking.
 */

import { posix } from 'node:path';

import { LRUCache } from 'lru-cache';

export interface KnownNamesOptions {
  now: () => number;
  /** How long the names of a directory made here are known, in ms. */
  dirTtlMs: number;
  /** How long the names a listing showed are known, in ms. */
  negativeTtlMs: number;
  /**
   * Lists a directory in the background (one listing at a time), calling `listed` when done;
   * `cold`: for the lookups of names nothing is known of, which want its first entries soon.
   */
  listAhead: (dir: string, cold: boolean) => void;
  /** Whether this mount saved `path` lately (its expired entry is still a hint): it exists. */
  savedHere: (path: string) => boolean;
}

/** Most directories (and names in one) whose names are known. */
export const MAX_KNOWN = 10_000;
/** Cold lookups in one directory, this close in time, after which it is listed (see `coldLookup`). */
const COLD_LOOKUPS_BEFORE_LISTING = 2;
const COLD_LOOKUP_WINDOW_MS = 1000;

export class KnownNames {
  private readonly known = new Map<string, { until: number; renewAfter: number; names: Set<string> }>();
  /** Directories → cold lookups in them since they were last listed. */
  private readonly coldLookups = new LRUCache<string, { count: number; since: number }>({ max: 256 });

  constructor(private readonly options: KnownNamesOptions) {}

  /** Notes a directory mkdir just made: until its TTL, only names made here exist in it. */
  made(path: string): void {
    this.know(path, new Set(), this.options.now(), this.options.dirTtlMs);
  }

  /** Notes the names a full listing of `path`, started at `started`, showed. */
  listed(path: string, names: Set<string>, started: number): void {
    this.coldLookups.delete(path);
    if (names.size > MAX_KNOWN) return;
    const before = this.known.get(path);
    // Names made here while the listing ran may be missing from it: keep them (a name kept that
    // is gone since only costs its lookup a request).
    const all = before ? new Set([...names, ...before.names]) : new Set(names);
    this.know(path, all, started, this.options.negativeTtlMs, before?.until);
  }

  /** Notes a name that now exists (or may) in its directory. */
  appeared(path: string): void {
    const dir = this.known.get(posix.dirname(path));
    if (!dir) return;
    dir.names.add(posix.basename(path));
    if (dir.names.size > MAX_KNOWN) this.known.delete(posix.dirname(path)); // ask the store again
  }

  /** Forgets the names known in `path` and below it: a removed or moved tree is asked for again. */
  forgetBelow(path: string): void {
    for (const dir of this.known.keys()) {
      if (dir === path || dir.startsWith(`${path}/`)) this.known.delete(dir);
    }
  }

  /**
   * Whether `path` is known to be missing: its directory's every name is known, and this is none
   * of them. An answer given past the knowledge's `renewAfter` lists the directory again.
   */
  absent(path: string): boolean {
    const parent = posix.dirname(path);
    const dir = this.known.get(parent);
    if (!dir) return false;
    const now = this.options.now();
    if (dir.until < now) {
      this.known.delete(parent);
      return false;
    }
    if (dir.names.has(posix.basename(path)) || this.options.savedHere(path)) return false;
    if (now >= dir.renewAfter) this.options.listAhead(parent, false);
    return true;
  }

  /**
   * A lookup of a name nothing is known of, in directory `dir`. A program that looks up several
   * names in one directory (`stat` of many files, `tar x`, a loop creating files) will look up
   * more: from the second on, list the directory in the background, so that later lookups are
   * answered by the listing (and what it lacks, the metadata of files, is fetched in parallel).
   */
  coldLookup(dir: string): void {
    const now = this.options.now();
    const known = this.known.get(dir);
    if (known && known.until >= now) return; // listed (or made) lately: nothing more to learn
    const before = this.coldLookups.get(dir);
    const count = before && now - before.since <= COLD_LOOKUP_WINDOW_MS ? before.count + 1 : 1;
    if (count < COLD_LOOKUPS_BEFORE_LISTING) {
      this.coldLookups.set(dir, { count, since: before && count > 1 ? before.since : now });
      return;
    }
    this.coldLookups.delete(dir);
    this.options.listAhead(dir, true);
  }

  /** Knows `names` as all of `path`'s from `from` for `ttlMs` (or until `knownUntil`, if later). */
  private know(path: string, names: Set<string>, from: number, ttlMs: number, knownUntil = 0): void {
    if (ttlMs <= 0) return;
    if (this.known.size >= MAX_KNOWN) {
      // Keep the map small in a long-lived mount: drop what has expired.
      const now = this.options.now();
      for (const [dir, entry] of this.known) if (entry.until < now) this.known.delete(dir);
      if (this.known.size >= MAX_KNOWN) return;
    }
    const until = Math.max(from + ttlMs, knownUntil);
    this.known.set(path, { until, renewAfter: Math.max(from + ttlMs / 2, until - ttlMs / 2), names });
  }
}
