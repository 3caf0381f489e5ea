/**
 * The block cache: objects read from the store in fixed-size blocks, shared by every open file of
 * a mount.
 *
 * A block is identified by key, ETag and index, so a changed object never meets its old blocks.
 * Blocks live in a memory tier bounded in bytes (least recently used goes first) and, when a
 * disk tier is configured, are also written there and found again after a remount. Concurrent
 * misses for one block share one GET. Every GET goes through one bounded queue, where reads a
 * program is waiting for go before read-ahead.
 *
 * Memory: one budget covers the blocks held and the blocks being fetched. Read-ahead that does
 * not fit after evicting cached blocks is skipped; a read a program waits for always proceeds
 * (FUSE bounds how many of those run at once). Read-ahead never evicts a block that read-ahead
 * fetched and no read has used yet, nor the block read last: with a budget smaller than the
 * read-ahead window, that would fetch the same block twice (once ahead, once again when the
 * program gets there). Several caches (the root view's buckets) may share one `MemoryBudget`: a
 * cache that needs room gives up its own least recently used blocks first, then the others give
 * way, the one holding the most first (so a newly busy bucket takes room from idle ones).
 *
 * Recycling: when a whole block needs room and the least recently used block is one this cache
 * filled, its buffer becomes the new block's (the store reads the body straight into it), instead
 * of being left to the garbage collector while a new 8 MiB buffer is allocated. Fresh memory is
 * what a cold read costs most (every page faulted in, then zeroed by the kernel), and dropped
 * block buffers make V8 run major GCs for their external memory. A recycled buffer is handed to
 * the store only after a turn of the event loop: a reader that got the evicted block before the
 * eviction copies from it in its continuation (a microtask), which has run by then.
 *
 * Large sequential reads pass through: once a sequential reader is past a block of an object
 * larger than a quarter of the memory limit, the block is dropped and its buffer kept as a spare
 * for the next block fetched (`passed`). Such a read then cycles through a few warm buffers
 * instead of filling the whole cache with fresh memory, and does not push out the blocks of
 * smaller, hotter files (PostgreSQL reads tables larger than a quarter of its buffer pool through a
 * small ring of buffers for the same two reasons). The kernel's page cache keeps the file's pages
 * for a second read (`auto_cache`), and the disk tier, when there is one, keeps its blocks.
 *
 * Random reads (`readRange`): a read whose blocks are neither here nor on their way waits only for a
 * GET of exactly its bytes (a 4 KiB read into a large file waits for 4 KiB, not for a block).
 * Behind it, its block is fetched whole in the background, so the next reads there cost no GET
 * (a read there meanwhile waits for the block rather than adding a GET). While the budget has
 * free room (memory nobody uses), that happens at once, and the blocks after it are fetched too,
 * so an object read at random is loaded at the speed of the connections rather than one block
 * per read. In a full cache it happens once a random read comes back to a block (the cache
 * remembers as many blocks read at random as it can hold, least recently read forgotten first),
 * taking room as read-ahead does: the regions a program keeps coming back to become cached.
 * Remembering no more blocks than fit limits the blocks fetched for random reads all over an
 * object much larger than the budget to about the budget's share of the object. At most
 * `MAX_RANDOM_FETCHES` such fetches run at once: GETs run `maxConnections` at a time, and random
 * reads' own small GETs must find one free.
 *
 * Whole-object loads (`loadWhole`, object-loads.ts): once a reader has read an object at random
 * a few times (file-reader.ts decides), the object is loaded whole, a few blocks at once, if what
 * of it is not here fits in the budget's free room. An object larger than the budget is never
 * loaded whole: its random reads take the per-block path above.
 *
 * Bytes that have arrived (`readArrived`): a block being fetched into a buffer of its own is
 * filled from its first byte on, and the store says how far it has got (`GetOptions.onProgress`).
 * A random read whose bytes are there is served from the part already filled; one whose bytes are
 * not yet there takes its own small GET (`readRange`), rather than waiting for the rest of an
 * 8 MiB block that shares the server and the connections with the other streams of a load.
 *
 * Pages for the kernel (`storeInKernel`): part of a block in memory is handed to the kernel's page
 * cache (file-reader.ts decides when); until the kernel has copied it, the block's buffer is
 * neither recycled nor kept as a spare, even if the block is evicted (page-store.ts).
 */

import { setImmediate as nextTurn } from 'node:timers/promises';

import PQueue from 'p-queue';
import { LRUCache } from 'lru-cache';

import type { ObjectStore } from '../../storage/object-store.js';
import { type Cancellation, SharedCancellation } from '../cancellation.js';
import type { MemoryBudget } from '../memory-budget.js';
import type { DiskCache } from './disk-cache.js';
import type { ObjectVersion } from './object-version.js';
import { ObjectLoads } from './object-loads.js';
import { type PageStoreStats, PageStores, type StorePages } from './page-store.js';

export type { ObjectVersion };

export interface BlockCacheOptions {
  blockSize: number;
  /** Bytes of blocks held in memory plus blocks being fetched (with `budget`, what all its caches share). */
  memoryLimit: number;
  /** GETs in flight at once. */
  maxConnections: number;
  disk?: DiskCache;
  /** Shared with uploads: their part buffers leave less room for blocks. */
  budget?: MemoryBudget;
  /**
   * Objects larger than this that are read sequentially pass through (see `passed`); default: a
   * quarter of the memory limit (of the budget's, when shared).
   */
  passThroughAbove?: number;
  /** Memory for a new block's buffer (undefined from it, or no function: `Buffer.allocUnsafe`). */
  allocate?: (bytes: number) => Buffer | undefined;
}

/** With the regions handed to the kernel's page cache (see `storeInKernel`). */
export interface BlockCacheStats extends PageStoreStats {
  hits: number;
  diskHits: number;
  misses: number;
  gets: number;
  bytesFetched: number;
  skippedReadAhead: number;
  /** Blocks fetched into the buffer of an evicted block instead of fresh memory. */
  recycled: number;
  /** Blocks of large objects dropped once a sequential reader was past them (see `passed`). */
  passed: number;
  /** Blocks fetched whole in the background for random reads (see `readRange`). */
  promoted: number;
  /** Blocks fetched by whole-object loads (see `loadWhole`). */
  loaded: number;
  /** Random reads served from the part of a block that had arrived (see `readArrived`). */
  arrived: number;
}

/** Buffers of passed blocks kept for the next blocks fetched; more are left to the collector. */
const MAX_SPARES = 4;

/** Blocks fetched whole for random reads at once (fewer than connections: see `readRange`). */
const MAX_RANDOM_FETCHES = 8;

/** A block being fetched into a buffer of its own: its first `received` bytes are there. */
interface Arriving {
  buffer: Buffer;
  received: number;
}

export class BlockCache {
  readonly blockSize: number;
  readonly stats: BlockCacheStats = {
    hits: 0,
    diskHits: 0,
    misses: 0,
    gets: 0,
    bytesFetched: 0,
    skippedReadAhead: 0,
    recycled: 0,
    passed: 0,
    promoted: 0,
    loaded: 0,
    arrived: 0,
    kernelStores: 0,
    kernelStoredBytes: 0,
    kernelStoresRefused: 0,
  };
  private readonly memory: LRUCache<string, Buffer>;
  /** Block buffers this cache allocated and the store filled: only these are ever recycled. */
  private readonly own = new WeakSet<Buffer>();
  /** Blocks being fetched, each shared by the reads waiting for it (cancelled once none waits). */
  private readonly inflight = new Map<string, { block: Promise<Buffer>; cancel: SharedCancellation }>();
  /** Blocks being fetched into a buffer of their own, and how far they have got. */
  private readonly arriving = new Map<string, Arriving>();
  /** Whole-object loads in progress (object-loads.ts). */
  private readonly loads = new ObjectLoads({
    blockCount: (version) => this.blockCount(version),
    blockLength: (version, index) => this.blockLength(version, index),
    isAvailable: (version, index) => this.isAvailable(version, index),
    room: () => this.room(),
    fetch: (version, index) => {
      const loading = this.loadBlock(version, index, false, false);
      if (loading !== undefined) this.stats.loaded += 1;
      return loading;
    },
  });
  /** Blocks read ahead that no read has asked for yet; read-ahead does not evict them. */
  private readonly unread = new Set<string>();
  /** Blocks being read ahead that a read has since asked for. */
  private readonly wanted = new Set<string>();
  /** Blocks that random reads went into (a GET of their bytes only), least recently read first. */
  private readonly randomlyRead: LRUCache<string, true>;
  /** Blocks being fetched whole for random reads (see `fetchWholeInBackground`). */
  private randomFetches = 0;
  /** The blocks the last random read went into. */
  private lastRanged: string[] = [];
  /** The block a read asked for last. */
  private lastRead?: string;
  private inflightBytes = 0;
  /** Buffers of passed blocks (block-sized, filled by this cache), for the next blocks fetched. */
  private readonly spares: Buffer[] = [];
  /** Stores for the kernel in flight, and the buffers they pin (see `storeInKernel`). */
  private readonly pageStores = new PageStores(this.stats);
  private readonly queue: PQueue;

  constructor(
    private readonly store: ObjectStore,
    private readonly options: BlockCacheOptions,
  ) {
    this.blockSize = options.blockSize;
    this.memory = new LRUCache<string, Buffer>({
      maxSize: options.memoryLimit,
      sizeCalculation: (block) => Math.max(1, block.length),
      dispose: (_block, id) => this.unread.delete(id),
    });
    // As many as the budget holds blocks: a block read at random again after more distinct
    // blocks than that would have been evicted before the read came back, had it been fetched.
    this.randomlyRead = new LRUCache<string, true>({ max: Math.max(4, Math.floor(this.limit / options.blockSize)) });
    this.queue = new PQueue({ concurrency: options.maxConnections });
    options.budget?.attachCache(this);
  }

  /** Bytes of blocks held in memory and being fetched, and of spare buffers. */
  get memoryUsed(): number {
    return this.memory.calculatedSize + this.inflightBytes + this.spares.length * this.blockSize;
  }

  /** How many blocks the object has. */
  blockCount(version: ObjectVersion): number {
    return Math.ceil(version.size / this.blockSize);
  }

  private blockLength(version: ObjectVersion, index: number): number {
    return Math.min(this.blockSize, version.size - index * this.blockSize);
  }

  /** Whether block `index` is in memory, on its way or on disk, so reading it costs no new GET. */
  isAvailable(version: ObjectVersion, index: number): boolean {
    return this.inflight.has(blockId(version, index)) || this.isCached(version, index);
  }

  /** Whether block `index` is in memory or on disk: reading it waits for no GET. */
  isCached(version: ObjectVersion, index: number): boolean {
    return this.memory.has(blockId(version, index)) || this.options.disk?.has(version, index) === true;
  }

  /**
   * Copies bytes [start, end) into `into` if they lie in one block that is on its way and has
   * received them already (see above); returns whether it did.
   */
  readArrived(version: ObjectVersion, start: number, end: number, into: Buffer): boolean {
    const index = Math.floor(start / this.blockSize);
    if (Math.floor((end - 1) / this.blockSize) !== index) return false;
    const arriving = this.arriving.get(blockId(version, index));
    const from = start - index * this.blockSize;
    if (!arriving || arriving.received < end - index * this.blockSize) return false;
    arriving.buffer.copy(into, 0, from, from + end - start);
    this.stats.arrived += 1;
    return true;
  }

  /**
   * Starts loading the object whole for random reads, unless what of it is not here needs more
   * than the budget's free room (see above). Returns whether the object is loaded or loading.
   */
  loadWhole(version: ObjectVersion): boolean {
    if (this.loads.has(version)) return true;
    return version.size <= this.limit && this.loads.start(version);
  }

  /**
   * Block `index` for a read a program is waiting for: from memory, disk, or one shared GET, which
   * `cancel` (an interrupted read) ends once no other read waits for it.
   */
  readBlock(version: ObjectVersion, index: number, cancel?: Cancellation): Promise<Buffer> {
    return this.loadBlock(version, index, true, false, cancel) as Promise<Buffer>;
  }

  /**
   * Starts fetching block `index` ahead of need, unless it is there already or memory is full;
   * settles when that fetch has (the reader that needs the block sees its error, not this).
   */
  prefetch(version: ObjectVersion, index: number): Promise<void> {
    if (index >= this.blockCount(version)) return Promise.resolve();
    return (this.loadBlock(version, index, false) ?? Promise.resolve()).then(
      () => undefined,
      () => undefined,
    );
  }

  /**
   * Exactly the bytes [start, end) through the GET queue, not cached: a random read whose blocks
   * are not available. Its blocks may also be fetched whole in the background (see above).
   */
  async readRange(version: ObjectVersion, start: number, end: number, cancel?: Cancellation): Promise<Buffer> {
    // A whole-object load fetches every block already.
    if (this.loads.has(version)) return this.getFromStore(version, start, end, true, undefined, cancel?.signal);
    const last = Math.floor((end - 1) / this.blockSize);
    const previous = this.lastRanged;
    this.lastRanged = [];
    for (let index = Math.floor(start / this.blockSize); index <= last; index++) {
      const id = blockId(version, index);
      this.lastRanged.push(id);
      // Back in a block read at random before, after reading elsewhere (a strided or backward
      // scan moving through a block is not coming back).
      const cameBack = this.randomlyRead.get(id) === true && !previous.includes(id);
      this.randomlyRead.set(id, true);
      this.fetchWholeInBackground(version, index, cameBack);
    }
    // While memory is free, the blocks after it too: the object is then loaded at the speed of
    // the connections, not of one block per random read (a program waiting for each read).
    const after = Math.min(this.blockCount(version), last + 1 + MAX_RANDOM_FETCHES);
    for (let index = last + 1; index < after && this.randomFetches < MAX_RANDOM_FETCHES; index++) {
      this.fetchWholeInBackground(version, index, false);
    }
    return this.getFromStore(version, start, end, true, undefined, cancel?.signal);
  }

  /**
   * Hands bytes [start, end) of `version`, which lie in one block, to the kernel's page cache if
   * that block is in memory (see above and `PageStores.store`).
   */
  storeInKernel(version: ObjectVersion, start: number, end: number, storePages: StorePages): Promise<boolean> | undefined {
    const index = Math.floor(start / this.blockSize);
    const block = this.memory.peek(blockId(version, index));
    if (!block || Math.floor((end - 1) / this.blockSize) !== index) return undefined;
    return this.pageStores.store(block, start - index * this.blockSize, end - index * this.blockSize, start, storePages);
  }

  /** Keeps a block fetched some other way (a small object read whole during a lookup). */
  offer(version: ObjectVersion, index: number, data: Buffer): void {
    const expected = Math.min(this.blockSize, version.size - index * this.blockSize);
    if (data.length !== expected || this.memory.has(blockId(version, index))) return;
    if (this.reserve(data.length, false)) this.memory.set(blockId(version, index), data);
  }

  /**
   * A sequential reader is past block `index`. Of an object larger than a quarter of the memory
   * limit, the block is dropped, and its buffer is kept for the next block fetched (see above).
   */
  passed(version: ObjectVersion, index: number): void {
    if (version.size <= (this.options.passThroughAbove ?? this.limit / 4)) return;
    const id = blockId(version, index);
    const block = this.memory.peek(id);
    if (!block) return;
    this.memory.delete(id);
    this.stats.passed += 1;
    if (block.length === this.blockSize && this.own.has(block) && !this.pageStores.pinned(block) && this.spares.length < MAX_SPARES)
      this.spares.push(block);
  }

  /**
   * Starts fetching block `index` whole for random reads, without holding up the read that asked
   * (it has its own ranged GET): when the budget has free room for it, or, when a random read
   * came back to it, with the room read-ahead may take. At most `MAX_RANDOM_FETCHES` at once, so
   * random reads' own GETs always find a free connection.
   */
  private fetchWholeInBackground(version: ObjectVersion, index: number, cameBack: boolean): void {
    if (this.randomFetches >= MAX_RANDOM_FETCHES || this.isAvailable(version, index)) return;
    const length = Math.min(this.blockSize, version.size - index * this.blockSize);
    if (!cameBack && this.room() < length) return; // a read here once: free room only
    const loading = this.loadBlock(version, index, false, false);
    if (!loading) return; // no room: a later read here tries again
    this.randomFetches += 1;
    this.stats.promoted += 1;
    this.randomlyRead.delete(blockId(version, index));
    loading.then(
      () => (this.randomFetches -= 1),
      () => (this.randomFetches -= 1), // a read of the block sees the error
    );
  }

  /** Settles once the whole-object load of `version` (if one runs) has ended: for tests. */
  loadEnded(version: ObjectVersion): Promise<void> {
    return this.loads.ended(version);
  }

  /** Drops every block from memory (the disk tier keeps its own). */
  clear(): void {
    this.memory.clear();
    this.spares.length = 0;
  }

  /** The memory limit of this cache, or of all the caches sharing its budget. */
  private get limit(): number {
    return this.options.budget?.limit ?? this.options.memoryLimit;
  }

  /**
   * Block `index` from memory, disk or the store: for a read that waits for it (`demand`), or
   * ahead of need, when the budget has room; a block fetched ahead is `unread` until a read asks
   * for it, unless a read wanted it already (`markUnread` false: a random read's block).
   */
  private loadBlock(
    version: ObjectVersion,
    index: number,
    demand: boolean,
    markUnread = !demand,
    cancel?: Cancellation,
  ): Promise<Buffer> | undefined {
    const id = blockId(version, index);
    if (demand) this.lastRead = id;
    const cached = this.memory.get(id);
    if (cached) {
      if (demand) {
        this.stats.hits += 1;
        this.unread.delete(id);
      }
      return Promise.resolve(cached);
    }
    const pending = this.inflight.get(id);
    // A fetch cancelled (its readers all interrupted) is still settling: fetch the block anew.
    if (pending !== undefined && !pending.cancel.signal.aborted) {
      if (demand) {
        this.stats.hits += 1;
        this.wanted.add(id);
      }
      pending.cancel.join(cancel); // read-ahead joins as a waiter that cannot be interrupted
      return pending.block;
    }
    const start = index * this.blockSize;
    const length = Math.min(this.blockSize, version.size - start);
    if (length <= 0) return Promise.resolve(Buffer.alloc(0));
    // A spare buffer is counted already: it becomes the new block's without asking for room,
    // unless the room has shrunk below what the caches hold since (`reserve` then drops spares).
    const spare = length === this.blockSize && this.room() >= 0 ? this.spares.pop() : undefined;
    const room = spare ? { recycled: spare } : this.reserve(length, demand);
    if (!room) {
      this.stats.skippedReadAhead += 1;
      return undefined;
    }
    if (demand) this.stats.misses += 1;
    this.inflightBytes += length;
    const shared = new SharedCancellation(cancel);
    const loading = (async () => {
      try {
        const fromDisk = await this.options.disk?.get(version, index, length);
        if (fromDisk) {
          this.stats.diskHits += 1;
          return fromDisk;
        }
        let into = room.recycled;
        if (into) {
          await nextTurn(); // readers of the evicted block have copied from it by now (see above)
          this.stats.recycled += 1;
        } else if (length === this.blockSize) {
          into = this.options.allocate?.(length) ?? Buffer.allocUnsafe(length);
        }
        let arriving: Arriving | undefined;
        if (into) this.arriving.set(id, (arriving = { buffer: into, received: 0 }));
        const data = await this.getFromStore(version, start, start + length, demand, into, shared.signal, arriving);
        if (data === into) this.own.add(data);
        this.options.disk?.put(version, index, data);
        return data;
      } finally {
        this.inflightBytes -= length;
      }
    })();
    this.inflight.set(id, { block: loading, cancel: shared });
    // Only this fetch's entry is dropped: a cancelled one may have been replaced meanwhile.
    const settled = () => {
      if (this.inflight.get(id)?.block !== loading) return false;
      this.inflight.delete(id);
      return true;
    };
    loading.then(
      (data) => {
        if (!settled()) return;
        this.arriving.delete(id);
        this.memory.set(id, data);
        if (markUnread && !this.wanted.has(id)) this.unread.add(id);
        this.wanted.delete(id);
      },
      () => {
        if (!settled()) return; // a failure is not cached: the next read tries again
        this.arriving.delete(id);
        this.wanted.delete(id);
      },
    );
    return loading;
  }

  /**
   * Drops spare buffers, then evicts least recently used blocks, until at most `bytes` are held
   * (blocks being fetched stay).
   */
  shrinkTo(bytes: number): void {
    while (this.memoryUsed > bytes && this.spares.length > 0) this.spares.pop();
    while (this.memoryUsed > bytes && this.memory.size > 0) this.memory.pop();
  }

  /**
   * Makes room for `bytes` by dropping spare buffers, then evicting cached blocks, least recently
   * used first; read-ahead gives up if that is not enough. This cache gives up its own blocks
   * first: for a whole block, the first evicted buffer of that size that it filled is returned as
   * `recycled`, for the new block to be read into. With a shared budget, the other caches then
   * give way, the largest first.
   */
  private reserve(bytes: number, demand: boolean): { recycled?: Buffer } | undefined {
    const budget = this.options.budget;
    let recycled: Buffer | undefined;
    while (this.room() < bytes && this.spares.length > 0) this.spares.pop(); // they hold no data
    while (this.room() < bytes && this.memory.size > 0) {
      if (!demand && this.keptFromReadAhead()) break;
      const evicted = this.memory.pop();
      if (!recycled && bytes === this.blockSize && evicted?.length === bytes && this.own.has(evicted) && !this.pageStores.pinned(evicted))
        recycled = evicted;
    }
    if (budget && this.room() < bytes) budget.shrinkCachesTo(Math.max(0, budget.cacheRoom - bytes));
    return demand || this.room() >= bytes ? { recycled } : undefined;
  }

  /** Bytes this cache may still take: of its limit, or of its budget's room for all caches (negative when over). */
  private room(): number {
    const budget = this.options.budget;
    return budget ? budget.cacheRoom - budget.cacheBytes : this.options.memoryLimit - this.memoryUsed;
  }

  /**
   * Whether read-ahead must leave the least recently used block alone: a block read ahead that no
   * read has used yet, or the block read last (most likely the one a program is in the middle of).
   */
  private keptFromReadAhead(): boolean {
    const oldest = this.memory.rkeys().next().value!;
    return this.unread.has(oldest) || oldest === this.lastRead;
  }

  /**
   * One GET of bytes [start, end) through the queue. No retry here: the store has retried what
   * another try can cure (storage/get-retry.ts), so a failure is final for this read.
   */
  private async getFromStore(
    version: ObjectVersion,
    start: number,
    end: number,
    demand: boolean,
    into?: Buffer,
    signal?: AbortSignal,
    arriving?: Arriving,
  ): Promise<Buffer> {
    const onProgress = arriving && ((received: number) => (arriving.received = received));
    const body = await this.queue.add(
      async () => {
        this.stats.gets += 1;
        const { body } = await this.store.get(version.key, {
          range: { start, end: end - 1 },
          ifMatch: version.etag,
          into,
          signal,
          onProgress,
        });
        this.stats.bytesFetched += body.length;
        return body;
      },
      { priority: demand ? 1 : 0 },
    );
    if (body.length !== end - start) {
      throw new Error(`${version.key}: the store returned ${body.length} bytes for a range of ${end - start}`);
    }
    return body;
  }
}

function blockId(version: ObjectVersion, index: number): string {
  return `${version.etag}\0${index}\0${version.key}`;
}
