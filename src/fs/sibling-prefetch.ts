/**
 * The metadata of a listing's entries, fetched ahead of their lookups and paced by them.
 *
 * A listing gives each object's size and mtime but not the POSIX metadata (mode, owner) kept in
 * its headers. A program that looks up one entry of a fresh listing (`ls -l`, `find`, `stat *`,
 * `cat *`) is about to look up the rest, one at a time and mostly in the listing's order: fetch
 * them in parallel now, so that each lookup finds its answer cached or on its way. A plain `ls`
 * looks nothing up and costs no request per entry.
 *
 * Paced: the fetches run at most `window` entries past the furthest entry looked up. Unpaced, a
 * directory of thousands of entries is fetched faster than `ls -l` consumes it, and the first
 * answers outlive the metadata TTL before their lookup comes: each is then fetched again (40 %
 * of a 1,000-file `ls -l` was). Paced, an answer waits at most the time the program takes for
 * `window` entries.
 */

import { posix } from 'node:path';

import { LRUCache } from 'lru-cache';
import PQueue from 'p-queue';

export interface SiblingPrefetchOptions {
  /** Fetches running at once. */
  concurrency: number;
  /** How far past the furthest entry looked up the fetches may run. */
  window: number;
  /** Most entries of one listing fetched ahead. */
  maxEntries: number;
}

/** The entries of one directory being fetched ahead, in the listing's order. */
interface Run {
  paths: string[];
  index: Map<string, number>;
  /** The next entry to fetch; -1 until a program looks one of them up. */
  next: number;
  /** The furthest entry a program has looked up. */
  reached: number;
  /** The listing's last page is in: a run that has fetched every entry is over. */
  complete: boolean;
}

export class SiblingPrefetch {
  /** Directories → the entries of their latest listing lacking metadata, started or not. */
  private readonly runs = new LRUCache<string, Run>({ max: 64 });
  private readonly queue: PQueue;

  /** `fetch` looks an entry up (its errors are its own lookup's to report, not ours). */
  constructor(
    private readonly fetch: (path: string) => Promise<unknown>,
    private readonly options: SiblingPrefetchOptions,
  ) {
    this.queue = new PQueue({ concurrency: options.concurrency });
  }

  /** A listing of `dir` (its first page, or all of it) showed `incomplete` without their metadata (in its order). */
  listedDirectory(dir: string, incomplete: string[], complete = true): void {
    if (incomplete.length === 0) {
      this.runs.delete(dir);
      return;
    }
    const paths = incomplete.slice(0, this.options.maxEntries);
    this.runs.set(dir, { paths, index: new Map(paths.map((p, i) => [p, i])), next: -1, reached: -1, complete });
  }

  /** A later page of `dir`'s listing showed `incomplete` too: they join its run (or start one). */
  listedMore(dir: string, incomplete: string[], complete: boolean): void {
    const run = this.runs.get(dir);
    if (!run) {
      this.listedDirectory(dir, incomplete, complete);
      return;
    }
    run.complete = complete;
    for (const path of incomplete) {
      if (run.paths.length >= this.options.maxEntries) break;
      run.index.set(path, run.paths.length);
      run.paths.push(path);
    }
  }

  /** A program looked `path` up: start or move on the fetches of its directory's listing. */
  lookedUp(path: string): void {
    if (this.runs.size === 0) return;
    const dir = posix.dirname(path);
    const run = this.runs.get(dir);
    if (!run) return;
    if (run.next < 0) {
      // Only the lookup of one of these entries shows a program going through the listing (a
      // name it did not show, `stat` of a new file, does not). Entries before the first one
      // looked up are left to their own lookups.
      const first = run.index.get(path);
      if (first === undefined) return;
      run.next = first;
      run.reached = first;
    }
    const at = run.index.get(path);
    if (at !== undefined && at > run.reached) run.reached = at;
    while (run.next < run.paths.length && run.next <= run.reached + this.options.window) {
      const sibling = run.paths[run.next++]!;
      if (sibling !== path) void this.queue.add(() => this.fetch(sibling)).catch(() => undefined);
    }
    if (run.next >= run.paths.length && run.complete) this.runs.delete(dir);
  }
}
