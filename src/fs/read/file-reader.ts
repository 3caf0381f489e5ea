/**
 * Reads of one open handle, served from the block cache, with read-ahead.
 *
 * A read that starts where the previous one ended (or at 0 on a fresh handle) is sequential, and
 * so is one that starts within the window of where a sequential stream stands: the kernel keeps
 * several consecutive ranges in flight at once (its read-ahead), and a program reading with
 * several threads asks for them slightly out of order. Otherwise a read is a seek. Sequential reads:
 * their blocks are read through the cache, and the read-ahead window, which starts at
 * `minReadAhead` and doubles with every sequential read up to `maxReadAhead`, asks the cache
 * for the blocks after it, so they are on their way before the program gets there. A read
 * anywhere else is a seek: the window shrinks back, and unless its blocks are already cached
 * (in memory or on disk), or its bytes have arrived in a block on its way, exactly the bytes asked
 * for are fetched with one ranged GET (a 4 KiB random read waits for a 4 KiB GET, not for a block
 * or behind the streams fetching other blocks); the cache may fetch the block whole behind it,
 * for the reads that follow there (`BlockCache.readRange`). After `RANDOM_READS_BEFORE_LOAD` such
 * reads, the handle asks the cache to load the object whole (`BlockCache.loadWhole`: when it
 * fits in the free room), so the reads after that are served from memory: a program reading a
 * file at random is likely to go on doing so all over it, and one or two reads far apart (a
 * footer, then a header) do not start a download of the whole object.
 *
 * A sequential stream tells the cache which blocks it is past (all but the one just behind the
 * block it reads, which a read arriving out of order may still want): the cache drops those of a
 * large object and reuses their memory (`BlockCache.passed`).
 *
 * Every GET is pinned to the ETag the file was opened at, so a changed object fails with
 * PreconditionFailed (ESTALE above) and never mixes versions.
 *
 * Pages for the kernel (`storePages`, given by a handle that cannot write): a random read served
 * from a block in memory still costs a FUSE round trip (tens of µs), and the kernel's page cache
 * would serve it in a few. So a region a random reader comes back to (`STORE_UNIT`, within one
 * block) is handed to the kernel once reads of this handle have reached the daemon for it
 * `READS_BEFORE_STORE` times: from then on the kernel serves it, until it evicts the pages or a
 * program drops them (fio drops the file's pages at each pass over it, `posix_fadvise(DONTNEED)`,
 * on the same descriptor), and the count starts over. A read reaches the daemon only when the
 * kernel lacks its page, so the cost is bounded either way: a store of 1 MiB costs the kernel
 * about what two FUSE round trips cost, so even pages evicted before they are read again (a page
 * cache under pressure) cost at most about twice the reads that caused them. A few reads scattered
 * over a large object store little (one region per two reads in it); sequential readers never
 * store (the kernel's read-ahead fills their pages itself).
 */

import type { Cancellation } from '../cancellation.js';
import type { BlockCache, ObjectVersion } from './block-cache.js';
import type { StorePages } from './page-store.js';

/** Random reads that needed a GET before the handle asks for the object to be loaded whole. */
export const RANDOM_READS_BEFORE_LOAD = 4;

/** The region handed to the kernel at once (see above): the largest FUSE read, 256 pages. */
export const STORE_UNIT = 1024 * 1024;

/** Random reads served from memory in one region before it is first handed to the kernel. */
export const READS_BEFORE_STORE = 2;

/** A region's reads from memory since it was last handed to the kernel (see above). */
interface RegionStores {
  reads: number;
  storing: boolean;
}

export interface ReadAheadOptions {
  minReadAhead: number;
  maxReadAhead: number;
}

export class FileReader {
  private window: number;
  private nextSequential = 0;
  /** The last read was sequential: reads near `nextSequential` continue the stream. */
  private streaming = false;
  /** The first block this stream read that it has not told the cache it is past. */
  private notPassed = 0;
  /** Random reads that needed a GET. */
  private randomMisses = 0;
  /** Regions read at random from memory, by their start (see `considerStoring`). */
  private readonly regions = new Map<number, RegionStores>();

  constructor(
    private readonly cache: BlockCache,
    private readonly version: () => ObjectVersion,
    private readonly options: ReadAheadOptions,
  ) {
    this.window = options.minReadAhead;
  }

  /** The current read-ahead window in bytes (for tests and metrics). */
  get readAhead(): number {
    return this.window;
  }

  /**
   * Copies up to `length` bytes at `position` into `into`; returns how many, every one of them
   * written into `into` by this read (a block shorter than its place in the object is an error,
   * never a count over bytes left from before).
   */
  async read(into: Buffer, length: number, position: number, cancel?: Cancellation, storePages?: StorePages): Promise<number> {
    const version = this.version();
    const wanted = Math.min(length, version.size - position);
    if (wanted <= 0) return 0;
    const end = position + wanted;
    const sequential = position === this.nextSequential || (this.streaming && Math.abs(position - this.nextSequential) <= this.window);
    this.nextSequential = sequential ? Math.max(this.nextSequential, end) : end;
    this.streaming = sequential;
    const blockSize = this.cache.blockSize;
    const first = Math.floor(position / blockSize);
    const last = Math.floor((end - 1) / blockSize);

    if (!sequential) {
      this.window = this.options.minReadAhead;
      this.notPassed = first;
      let cached = true;
      for (let index = first; index <= last; index++) cached &&= this.cache.isCached(version, index);
      if (!cached) {
        if (this.cache.readArrived(version, position, end, into)) return wanted;
        if (++this.randomMisses >= RANDOM_READS_BEFORE_LOAD) this.cache.loadWhole(version);
        const bytes = await this.cache.readRange(version, position, end, cancel);
        return bytes.copy(into, 0, 0, wanted);
      }
    } else {
      this.window = Math.min(this.window * 2, this.options.maxReadAhead);
      const aheadEnd = Math.min(version.size, end + this.window);
      const lastAhead = Math.floor((aheadEnd - 1) / blockSize);
      // Past blocks first: their buffers are then there for the blocks read ahead.
      for (; this.notPassed < first - 1; this.notPassed++) this.cache.passed(version, this.notPassed);
      for (let index = last + 1; index <= lastAhead; index++) void this.cache.prefetch(version, index);
    }

    let done = 0;
    for (let index = first; index <= last; index++) {
      const block = await this.cache.readBlock(version, index, cancel);
      const blockStart = index * blockSize;
      const from = position + done - blockStart;
      const count = Math.min(wanted - done, blockSize - from);
      if (block.length < from + count)
        throw new Error(`${version.key}: block ${index} holds ${block.length} bytes, short of ${from + count}`);
      done += block.copy(into, done, from, from + count);
    }
    if (!sequential && storePages) this.considerStoring(version, position, storePages);
    return done;
  }

  /**
   * A random read at `position` was served from memory: hands its region to the kernel once it
   * has been read so often from here (see above).
   */
  private considerStoring(version: ObjectVersion, position: number, storePages: StorePages): void {
    const blockSize = this.cache.blockSize;
    const unit = Math.min(STORE_UNIT, blockSize);
    const blockStart = Math.floor(position / blockSize) * blockSize;
    const start = blockStart + Math.floor((position - blockStart) / unit) * unit;
    let region = this.regions.get(start);
    if (!region) this.regions.set(start, (region = { reads: 0, storing: false }));
    if (region.storing) return;
    region.reads += 1;
    if (region.reads < READS_BEFORE_STORE) return;
    const end = Math.min(version.size, blockStart + blockSize, start + unit);
    const storing = this.cache.storeInKernel(version, start, end, storePages);
    if (!storing) return;
    const stored = region;
    stored.storing = true;
    stored.reads = 0;
    void storing.then(() => (stored.storing = false));
  }
}
