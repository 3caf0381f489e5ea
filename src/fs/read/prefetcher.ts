/**
 * Read-ahead for one open file that is read from the store.
 *
 * The kernel asks for at most 128 KiB per read; one GET per read would cap throughput at a
 * fraction of what the store gives. The prefetcher keeps a few windows of the object in flight:
 * a read that continues where the last one ended is sequential, and each sequential miss doubles
 * the window (from `minWindow` up to `maxWindow`) and starts fetching the windows after it
 * (`ahead`), so the next reads find their bytes already arriving. A read elsewhere (a seek)
 * drops the windows and starts again small, so random reads fetch little more than they need.
 * Every GET is pinned to the ETag seen at open (If-Match): a changed object fails the read
 * (PreconditionFailed → ESTALE) rather than mixing versions.
 *
 * Memory: at most (ahead + 1) × maxWindow bytes per open file. The block cache with one memory
 * budget for all files replaces this in fs/read/ later.
 */

import type { ObjectStore } from '../../storage/object-store.js';

export interface PrefetcherOptions {
  minWindow: number;
  maxWindow: number;
  /** Windows fetched beyond the one being read, once reads are sequential. */
  ahead: number;
}

interface Window {
  start: number;
  end: number; // exclusive
  data: Promise<Buffer>;
}

export class Prefetcher {
  private windows: Window[] = [];
  private windowSize: number;
  private nextSequential = -1;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: () => string,
    private readonly etag: () => string,
    private readonly size: () => number,
    private readonly options: PrefetcherOptions,
  ) {
    this.windowSize = options.minWindow;
  }

  /** Copies up to `length` bytes at `position` into `into`; returns how many. */
  async read(into: Buffer, length: number, position: number): Promise<number> {
    const size = this.size();
    const wanted = Math.min(length, size - position);
    if (wanted <= 0) return 0;
    const sequential = position === this.nextSequential;
    this.nextSequential = position + wanted;
    if (!sequential && !this.covers(position, position + wanted)) {
      this.windows = [];
      this.windowSize = this.options.minWindow;
    }
    let done = 0;
    while (done < wanted) {
      const at = position + done;
      let window = this.windows.find((w) => w.start <= at && at < w.end);
      if (!window) {
        if (sequential) this.windowSize = Math.min(this.windowSize * 2, this.options.maxWindow);
        // A random read fetches what it asked for; a sequential one a whole window.
        window = this.fetch(at, sequential ? this.windowSize : wanted - done);
      }
      let data: Buffer;
      try {
        data = await window.data;
      } catch (error) {
        this.reset();
        throw error;
      }
      const from = at - window.start;
      const count = Math.min(wanted - done, data.length - from);
      if (count <= 0) break;
      data.copy(into, done, from, from + count);
      done += count;
    }
    // Drop windows behind the reader, then keep `ahead` windows in flight after it.
    this.windows = this.windows.filter((w) => w.end > position);
    if (sequential) this.fillAhead(size);
    return done;
  }

  private covers(start: number, end: number): boolean {
    return this.windows.some((w) => w.start <= start && end <= w.end);
  }

  private fillAhead(size: number): void {
    let last = this.windows.reduce((max, w) => Math.max(max, w.end), 0);
    while (this.windows.length <= this.options.ahead && last < size) {
      this.fetch(last, this.windowSize);
      last = Math.min(size, last + this.windowSize);
    }
  }

  private fetch(start: number, length: number): Window {
    const end = Math.min(this.size(), start + length);
    const data = this.store
      .get(this.key(), { range: { start, end: end - 1 }, ifMatch: this.etag() })
      .then((r) => r.body);
    // A window nobody reads must not become an unhandled rejection.
    data.catch(() => undefined);
    const window = { start, end, data };
    this.windows.push(window);
    return window;
  }

  /** Forgets fetched data (the object changed or the file was written). */
  reset(): void {
    this.windows = [];
    this.nextSequential = -1;
    this.windowSize = this.options.minWindow;
  }
}
