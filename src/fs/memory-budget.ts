/**
 * One memory budget per mount (`--memory-limit`) for the two things that hold object data in
 * memory: blocks of the read cache and part buffers of uploads.
 *
 * Uploads take bytes with `acquire` and give them back with `release`. When a part does not fit,
 * the block cache is asked to shrink first (cached blocks are only a speed-up); if it still does
 * not fit, the upload waits for another part to finish, so a writer faster than the store is
 * slowed down instead of the daemon growing. One part is always let through, so a part larger
 * than the whole budget cannot wait forever. The block cache, in turn, counts the upload bytes
 * when it decides what to keep and whether read-ahead fits.
 *
 * The process holds more than what is counted here: Buffers dropped but not yet collected,
 * memory the allocator keeps after frees (FUSE threads' arenas among them). With `followRss`,
 * the budget measures the process four times a second and gives that overhead to no one: the room for
 * cached blocks shrinks by what the resident size has grown beyond its size at start plus the
 * counted bytes, so that the whole process stays near its start + the limit. The overhead takes
 * at most three quarters of the limit, so blocks keep room when nothing is uploading.
 */

export interface ShrinkableCache {
  /** Bytes the cache holds (or is fetching) now. */
  readonly memoryUsed: number;
  /** Evicts until it holds at most `bytes` (in-flight reads cannot be evicted). */
  shrinkTo(bytes: number): void;
}

/** How often the resident size is read (a cheap read of /proc/self/statm): peaks between reads overshoot. */
const RSS_SAMPLE_MS = 250;

export class MemoryBudget {
  private uploads = 0;
  private readonly waiting: Array<{ bytes: number; grant: () => void }> = [];
  private cache?: ShrinkableCache;

  /** Resident bytes neither the cache nor the uploads account for, beyond the process's start. */
  private overhead = 0;
  private timer?: NodeJS.Timeout;

  constructor(readonly limit: number) {}

  /** Bytes held by upload part buffers. */
  get uploadBytes(): number {
    return this.uploads;
  }

  /** What the block cache may hold now: the limit, less upload buffers and uncounted overhead. */
  get cacheRoom(): number {
    return Math.max(0, this.limit - this.uploads - Math.min(this.overhead, Math.floor((this.limit * 3) / 4)));
  }

  /** Starts measuring the process's resident size (see above); `stop` ends it. */
  followRss(residentBytes: () => number = () => process.memoryUsage.rss()): void {
    const baseline = residentBytes();
    this.timer = setInterval(() => {
      const counted = this.uploads + (this.cache?.memoryUsed ?? 0);
      this.overhead = Math.max(0, residentBytes() - baseline - counted);
      const room = this.cacheRoom;
      if (this.cache && this.cache.memoryUsed > room) this.cache.shrinkTo(room);
    }, RSS_SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  attachCache(cache: ShrinkableCache): void {
    this.cache = cache;
  }

  /** Resolves once `bytes` more of upload buffers fit in the budget. */
  acquire(bytes: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(bytes)) {
      this.uploads += bytes;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiting.push({
        bytes,
        grant: () => {
          this.uploads += bytes;
          resolve();
        },
      }),
    );
  }

  release(bytes: number): void {
    this.uploads -= bytes;
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.bytes)) this.waiting.shift()!.grant();
  }

  private fits(bytes: number): boolean {
    const room = this.limit - this.uploads - bytes;
    if (this.cache && this.cache.memoryUsed > room) this.cache.shrinkTo(Math.max(0, room));
    if (this.uploads === 0) return true;
    return room >= 0 && (this.cache?.memoryUsed ?? 0) <= room;
  }
}
