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
 */

import type { Cancellation } from '../cancellation.js';
import type { BlockCache, ObjectVersion } from './block-cache.js';

/** Random reads that needed a GET before the handle asks for the object to be loaded whole. */
export const RANDOM_READS_BEFORE_LOAD = 4;

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
  async read(into: Buffer, length: number, position: number, cancel?: Cancellation): Promise<number> {
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
    return done;
  }
}
