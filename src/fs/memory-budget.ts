/**
 * One memory budget per mount (`--memory-limit`) for the two things that hold object data in
 * memory: blocks of the read caches and part buffers of uploads. A mount of one bucket has one
 * block cache; the root view has one per open bucket, and they all share the mount's budget.
 *
 * Uploads take bytes with `acquire` and give them back with `release`. When a part does not fit,
 * the block caches are asked to shrink first (cached blocks are only a speed-up); if it still
 * does not fit, the upload waits for another part to finish, so a writer faster than the store is
 * slowed down instead of the daemon growing. One part is always let through, so a part larger
 * than the whole budget cannot wait forever. A block cache, in turn, makes room in the budget
 * (`shrinkCachesTo`, down to `cacheRoom` less the block) before it keeps or fetches a block: the
 * room is the limit less the upload bytes and every cache's blocks together.
 *
 * Whichever asks, eviction takes from the cache that holds the most first (each evicts its least
 * recently used blocks), so one bucket read at full speed does not push out another bucket's few
 * hot blocks, and an idle bucket's cache gives way to a busy one.
 *
 * The process holds more than what is counted here: Buffers dropped but not yet collected,
 * memory the allocator keeps after frees (libuv's worker threads' arenas among them). With `followRss`,
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
  private readonly caches = new Set<ShrinkableCache>();

  /** Resident bytes neither the cache nor the uploads account for, beyond the process's start. */
  private overhead = 0;
  private timer?: NodeJS.Timeout;

  constructor(readonly limit: number) {}

  /** Bytes held by upload part buffers. */
  get uploadBytes(): number {
    return this.uploads;
  }

  /** Bytes all attached caches hold (or are fetching) now. */
  get cacheBytes(): number {
    let total = 0;
    for (const cache of this.caches) total += cache.memoryUsed;
    return total;
  }

  /** What the block caches together may hold now: the limit, less upload buffers and uncounted overhead. */
  get cacheRoom(): number {
    return Math.max(0, this.limit - this.uploads - Math.min(this.overhead, Math.floor((this.limit * 3) / 4)));
  }

  /** Starts measuring the process's resident size (see above); `stop` ends it. */
  followRss(residentBytes: () => number = () => process.memoryUsage.rss()): void {
    const baseline = residentBytes();
    this.timer = setInterval(() => {
      const counted = this.uploads + this.cacheBytes;
      this.overhead = Math.max(0, residentBytes() - baseline - counted);
      this.shrinkCachesTo(this.cacheRoom);
    }, RSS_SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** A block cache that holds its blocks in this budget (a mount's, or one of the root view's buckets'). */
  attachCache(cache: ShrinkableCache): void {
    this.caches.add(cache);
  }

  /** Stops counting `cache` (its bucket is closed). */
  detachCache(cache: ShrinkableCache): void {
    this.caches.delete(cache);
  }

  /**
   * Evicts until the caches together hold at most `bytes`, the one holding the most first: the
   * largest are brought down to one level, the smaller ones keep what they hold.
   */
  shrinkCachesTo(bytes: number): void {
    const excess = this.cacheBytes - Math.max(0, bytes);
    if (excess <= 0) return;
    const sizes = [...this.caches].map((cache) => ({ cache, used: cache.memoryUsed })).sort((a, b) => b.used - a.used);
    // The level the k largest come down to, so that together they give up `excess`.
    let level = 0;
    let top = 0;
    for (let k = 1; k <= sizes.length; k++) {
      top += sizes[k - 1]!.used;
      const next = sizes[k]?.used ?? 0;
      const candidate = (top - excess) / k;
      if (candidate >= next) {
        level = Math.max(0, Math.floor(candidate));
        break;
      }
    }
    const asked = new Map<ShrinkableCache, number>();
    for (const { cache, used } of sizes) {
      if (used <= level) continue;
      cache.shrinkTo(level);
      asked.set(cache, level);
    }
    // Blocks being fetched cannot be evicted: what is still over is taken from whoever can give more.
    let over = this.cacheBytes - Math.max(0, bytes);
    for (const { cache } of sizes) {
      if (over <= 0) break;
      const before = cache.memoryUsed;
      const target = Math.max(0, before - over);
      if (target >= (asked.get(cache) ?? Infinity)) continue; // asked for that already
      cache.shrinkTo(target);
      over -= before - cache.memoryUsed;
    }
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
    this.shrinkCachesTo(Math.max(0, room));
    if (this.uploads === 0) return true;
    return room >= 0 && this.cacheBytes <= room;
  }
}
