/** The read path: block cache (memory and disk tiers) and per-handle read-ahead, on the in-memory store. */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { BlockCache, type ObjectVersion } from '../../src/fs/read/block-cache.js';
import { DiskCache } from '../../src/fs/read/disk-cache.js';
import { FileReader, RANDOM_READS_BEFORE_LOAD, READS_BEFORE_STORE, STORE_UNIT } from '../../src/fs/read/file-reader.js';
import type { StorePages } from '../../src/fs/read/page-store.js';
import type { Logger } from '../../src/log/logger.js';
import { FaultyStore } from '../../src/storage/faulty-store.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BLOCK = 4 * MiB;

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** A store that records the byte range of every GET. */
function counting(inner: ObjectStore): { store: ObjectStore; gets: Array<{ start: number; length: number }> } {
  const gets: Array<{ start: number; length: number }> = [];
  const store = Object.create(inner) as ObjectStore;
  store.get = async (key, options) => {
    const result = await inner.get(key, options);
    gets.push({ start: options?.range?.start ?? 0, length: result.body.length });
    return result;
  };
  return { store, gets };
}

async function setup(size: number, options: { memoryLimit?: number; disk?: DiskCache; faulty?: boolean } = {}) {
  const memory = new MemoryStore();
  const data = randomBytes(size);
  const { etag } = await memory.put('obj', data);
  const faulty = new FaultyStore(memory);
  const { store, gets } = counting(options.faulty ? faulty : memory);
  const cache = new BlockCache(store, {
    blockSize: BLOCK,
    memoryLimit: options.memoryLimit ?? 64 * MiB,
    maxConnections: 8,
    disk: options.disk,
  });
  const version: ObjectVersion = { key: 'obj', etag, size };
  const reader = () => new FileReader(cache, () => version, { minReadAhead: MiB, maxReadAhead: 16 * MiB });
  return { memory, faulty, data, gets, cache, version, reader };
}

async function readAll(reader: FileReader, size: number, chunk = 128 * KiB): Promise<Buffer> {
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += chunk) {
    const into = Buffer.alloc(chunk);
    const n = await reader.read(into, chunk, at);
    into.copy(out, at, 0, n);
  }
  return out;
}

describe('sequential reads', () => {
  it('fetch each block once, whole and aligned, and return identical bytes', async () => {
    const size = 40 * MiB + 123;
    const { data, gets, reader } = await setup(size);
    expect((await readAll(reader(), size)).equals(data)).toBe(true);
    const blocks = Math.ceil(size / BLOCK);
    expect(gets.length).toBe(blocks);
    expect(new Set(gets.map((g) => g.start)).size).toBe(blocks);
    for (const get of gets) {
      expect(get.start % BLOCK).toBe(0);
      expect(get.length).toBe(Math.min(BLOCK, size - get.start));
    }
  });

  it('grow the read-ahead window geometrically; a seek shrinks it', async () => {
    const { reader: make } = await setup(64 * MiB);
    const reader = make();
    const windows: number[] = [];
    const into = Buffer.alloc(128 * KiB);
    for (let at = 0; at < 8 * 128 * KiB; at += 128 * KiB) {
      await reader.read(into, into.length, at);
      windows.push(reader.readAhead);
    }
    expect(windows).toEqual([2, 4, 8, 16, 16, 16, 16, 16].map((n) => n * MiB));
    await reader.read(into, 4 * KiB, 50 * MiB);
    expect(reader.readAhead).toBe(MiB);
  });

  it('stay sequential when reads arrive slightly out of order (FUSE serves them on several threads)', async () => {
    const size = 24 * MiB;
    const { data, gets, reader: make } = await setup(size);
    const reader = make();
    const out = Buffer.alloc(size);
    // The first read, then 1 MiB reads in swapped pairs: 0, 2, 1, 4, 3, ... (the last alone).
    const order = [0];
    for (let n = 1; n < size / MiB; n += 2) order.push(...(n + 1 < size / MiB ? [n + 1, n] : [n]));
    for (const n of order) {
      for (const at of [n * MiB]) {
        const into = Buffer.alloc(MiB);
        expect(await reader.read(into, MiB, at)).toBe(MiB);
        into.copy(out, at);
      }
    }
    expect(out.equals(data)).toBe(true);
    // Whole blocks, each fetched once; no ranged GET for a single read.
    expect(gets.every((g) => g.start % BLOCK === 0 && g.length === Math.min(BLOCK, size - g.start))).toBe(true);
    expect(new Set(gets.map((g) => g.start)).size).toBe(gets.length);
    expect(reader.readAhead).toBe(16 * MiB);
  });

  it('keep blocks ahead of the reader in flight', async () => {
    const { gets, reader: make } = await setup(64 * MiB);
    const reader = make();
    const into = Buffer.alloc(128 * KiB);
    for (let at = 0; at < 4 * 128 * KiB; at += 128 * KiB) await reader.read(into, into.length, at);
    await new Promise((resolve) => setTimeout(resolve, 10));
    // After 512 KiB the window is 16 MiB: blocks 0-4 are fetched or on their way.
    expect(gets.map((g) => g.start / BLOCK).sort()).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('random and strided reads', () => {
  /** Fills the cache's memory with blocks of another object, so it has no free room left. */
  function fill(cache: BlockCache, memoryLimit: number): void {
    const other: ObjectVersion = { key: 'other', etag: '"other"', size: memoryLimit };
    for (let index = 0; index < memoryLimit / BLOCK; index++) cache.offer(other, index, randomBytes(BLOCK));
    expect(cache.memoryUsed).toBe(memoryLimit);
  }

  it('fetch exactly the bytes asked for when the cache is full: a 4 KiB read is a 4 KiB GET', async () => {
    const size = 32 * MiB;
    const { data, gets, cache, reader: make } = await setup(size, { memoryLimit: 4 * BLOCK });
    fill(cache, 4 * BLOCK);
    const reader = make();
    const offsets = [9 * MiB + 17, 1 * MiB, 30 * MiB, 16 * MiB - 100, 20 * MiB]; // each into blocks not read before
    for (const at of offsets) {
      const into = Buffer.alloc(4 * KiB);
      expect(await reader.read(into, 4 * KiB, at)).toBe(4 * KiB);
      expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
    }
    expect(gets.map((g) => g.length)).toEqual(offsets.map(() => 4 * KiB));
    expect(cache.stats.promoted).toBe(0);
  });

  it('treat a strided pattern as random: no block is fetched for it when the cache is full', async () => {
    const { gets, cache, reader: make } = await setup(32 * MiB, { memoryLimit: 4 * BLOCK });
    fill(cache, 4 * BLOCK);
    const reader = make();
    const into = Buffer.alloc(64 * KiB);
    for (let at = MiB; at < 30 * MiB; at += 3 * MiB) await reader.read(into, into.length, at); // 2 or 3 reads a block
    expect(gets.every((g) => g.length === 64 * KiB)).toBe(true);
  });

  it("fetch a random read's block and the ones after it whole behind it while the budget has free room", async () => {
    const { data, gets, cache, version, reader: make } = await setup(64 * MiB); // 16 blocks, room for all
    const reader = make();
    const into = Buffer.alloc(4 * KiB);
    expect(await reader.read(into, 4 * KiB, 2 * BLOCK + 5000)).toBe(4 * KiB);
    expect(into.equals(data.subarray(2 * BLOCK + 5000, 2 * BLOCK + 5000 + 4 * KiB))).toBe(true);
    // Its block and the next ones, 8 at most at once: on their way or there, no GET of their own.
    const fetched = [2, 3, 4, 5, 6, 7, 8, 9];
    await Promise.all(fetched.map((index) => cache.readBlock(version, index)));
    expect(gets.filter((g) => g.length === 4 * KiB)).toHaveLength(1);
    expect(
      gets
        .filter((g) => g.length === BLOCK)
        .map((g) => g.start / BLOCK)
        .sort((a, b) => a - b),
    ).toEqual(fetched);
    for (const at of [2 * BLOCK, 3 * BLOCK - 4 * KiB, 9 * BLOCK + 77]) {
      expect(await reader.read(into, 4 * KiB, at)).toBe(4 * KiB);
      expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
    }
    expect(gets).toHaveLength(1 + fetched.length);
  });

  it('fetch a block whole once a random read comes back to it in a full cache; later reads there cost no GET', async () => {
    const size = 32 * MiB;
    const { data, gets, cache, version, reader: make } = await setup(size, { memoryLimit: 4 * BLOCK });
    fill(cache, 4 * BLOCK);
    const reader = make();
    const read = async (at: number) => {
      const into = Buffer.alloc(4 * KiB);
      expect(await reader.read(into, 4 * KiB, at)).toBe(4 * KiB);
      expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
    };
    await read(2 * BLOCK + 5000);
    await read(5 * BLOCK + 7);
    expect(gets.map((g) => g.length)).toEqual([4 * KiB, 4 * KiB]); // a region read once: its bytes only
    await read(2 * BLOCK + 3 * MiB); // back in block 2: its bytes now, the whole block behind them
    await cache.readBlock(version, 2);
    for (const at of [2 * BLOCK, 2 * BLOCK + 1234, 3 * BLOCK - 4 * KiB, 2 * BLOCK + 5000]) await read(at);
    expect(gets.map((g) => g.length).sort((a, b) => a - b)).toEqual([4 * KiB, 4 * KiB, 4 * KiB, BLOCK]);
    expect(gets.find((g) => g.length === BLOCK)!.start).toBe(2 * BLOCK);
    expect(cache.stats.promoted).toBe(1);
    expect(cache.memoryUsed).toBeLessThanOrEqual(4 * BLOCK); // it took an old block's place
    // Another handle (a program opening the file again) finds it too.
    const into = Buffer.alloc(4 * KiB);
    await make().read(into, 4 * KiB, 2 * BLOCK + 99);
    expect(gets).toHaveLength(4);
  });

  it('stay within the budget when random reads come back all over an object larger than it', async () => {
    const limit = 4 * BLOCK;
    const size = 64 * MiB; // 16 blocks
    const { data, gets, cache, reader: make } = await setup(size, { memoryLimit: limit });
    const reader = make();
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    let peak = 0;
    for (let n = 0; n < 400; n++) {
      const at = Math.floor(random() * (size - 4 * KiB));
      const into = Buffer.alloc(4 * KiB);
      expect(await reader.read(into, 4 * KiB, at)).toBe(4 * KiB);
      expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
      peak = Math.max(peak, cache.memoryUsed);
    }
    expect(peak).toBeLessThanOrEqual(limit);
    // Only blocks come back to while remembered (as many as the budget holds: a quarter of the
    // object) are fetched whole: far fewer than one per read, each read again on average.
    expect(cache.stats.promoted).toBeGreaterThan(0);
    expect(cache.stats.promoted).toBeLessThan(400 / 4);
    expect(cache.stats.hits).toBeGreaterThan(cache.stats.promoted);
    expect(gets.filter((g) => g.length === BLOCK).length).toBeLessThanOrEqual(cache.stats.promoted); // the last may be on their way
  });

  it('serve a random read from a cached block without a GET', async () => {
    const { data, gets, cache, reader: make } = await setup(16 * MiB);
    await readAll(make(), 16 * MiB);
    expect(cache.stats.passed).toBe(0); // a quarter of the limit: kept whole
    const before = gets.length;
    const into = Buffer.alloc(4 * KiB);
    await make().read(into, 4 * KiB, 5 * MiB + 3);
    expect(gets.length).toBe(before);
    expect(into.equals(data.subarray(5 * MiB + 3, 5 * MiB + 3 + 4 * KiB))).toBe(true);
  });

  it('load the object whole, within the budget, once a handle has read it at random a few times', async () => {
    const size = 16 * BLOCK + 5; // 17 blocks, the last of 5 bytes
    const limit = 24 * BLOCK;
    const { data, gets, cache, version, reader: make } = await setup(size, { memoryLimit: limit });
    // Peak memory, seen by the store at every GET.
    let peak = 0;
    const get = (cache as unknown as { store: ObjectStore }).store.get;
    (cache as unknown as { store: ObjectStore }).store.get = (key, options) => {
      peak = Math.max(peak, cache.memoryUsed);
      return get(key, options);
    };
    const reader = make();
    const read = async (at: number) => {
      const into = Buffer.alloc(4 * KiB);
      expect(await reader.read(into, 4 * KiB, at)).toBe(4 * KiB);
      expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
    };
    // Reads at random, each in a block no earlier read fetched (each fetches the blocks after it).
    const offsets = [15 * BLOCK + 9, 13 * BLOCK + 4096 * 3, 11 * BLOCK - 8 * KiB, 8 * BLOCK + 100];
    for (const at of offsets.slice(0, RANDOM_READS_BEFORE_LOAD - 1)) await read(at);
    expect(cache.stats.loaded).toBe(0); // a few reads far apart (a footer, a header) load nothing more
    await read(offsets[RANDOM_READS_BEFORE_LOAD - 1]!);
    await cache.loadEnded(version);
    expect(cache.stats.loaded).toBeGreaterThan(0);
    // Every block fetched whole exactly once, by the load or before it; nothing else but the reads' own GETs.
    const blocks = gets.filter((g) => g.length !== 4 * KiB);
    expect(blocks.map((g) => g.start / BLOCK).sort((a, b) => a - b)).toEqual(Array.from({ length: 17 }, (_, i) => i));
    expect(gets.length - blocks.length).toBe(RANDOM_READS_BEFORE_LOAD);
    expect(cache.memoryUsed).toBe(size);
    expect(peak).toBeLessThanOrEqual(limit);
    // The reads after it cost no GET.
    const before = gets.length;
    for (const at of [3 * BLOCK + 17, 16 * BLOCK + 1, 7 * BLOCK - 4 * KiB, 0]) {
      const into = Buffer.alloc(4 * KiB);
      const n = await reader.read(into, 4 * KiB, at);
      expect(into.subarray(0, n).equals(data.subarray(at, at + n))).toBe(true);
    }
    expect(gets.length).toBe(before);
  });

  it('never load whole an object larger than the free room, nor evict for it', async () => {
    const limit = 16 * BLOCK;
    const size = 12 * BLOCK;
    const { data, gets, cache, version, reader: make } = await setup(size, { memoryLimit: limit });
    fill(cache, 8 * BLOCK); // room for 8 of the 12 blocks
    const reader = make();
    for (const at of [11 * BLOCK + 5, 1 * BLOCK, 6 * BLOCK + 77, 3 * BLOCK + 9, 9 * BLOCK + 1]) {
      const into = Buffer.alloc(4 * KiB);
      expect(await reader.read(into, 4 * KiB, at)).toBe(4 * KiB);
      expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
    }
    await cache.loadEnded(version);
    expect(cache.stats.loaded).toBe(0);
    expect(cache.memoryUsed).toBeLessThanOrEqual(limit);
    // The other object's blocks are all still there: random reads took only free room.
    expect(gets.filter((g) => g.length === BLOCK).length).toBeLessThanOrEqual(8);
  });

  it("serve a read from the part of a block that has arrived, and one past it with its own GET, not after the block's", async () => {
    const memory = new MemoryStore();
    const data = randomBytes(4 * BLOCK);
    const { etag } = await memory.put('obj', data);
    // Whole blocks arrive in two halves: the second only once `release` is called.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    const small: number[] = [];
    const store = Object.create(memory) as ObjectStore;
    store.get = async (key, options = {}) => {
      const { start, end } = options.range!;
      if (end - start + 1 !== BLOCK || !options.into) {
        small.push(start);
        return memory.get(key, options);
      }
      data.copy(options.into, 0, start, start + BLOCK / 2);
      options.onProgress?.(BLOCK / 2);
      await held;
      data.copy(options.into, BLOCK / 2, start + BLOCK / 2, start + BLOCK);
      options.onProgress?.(BLOCK);
      return { info: await memory.head(key), body: options.into };
    };
    const cache = new BlockCache(store, { blockSize: BLOCK, memoryLimit: 64 * MiB, maxConnections: 8 });
    const version: ObjectVersion = { key: 'obj', etag, size: data.length };
    const reader = new FileReader(cache, () => version, { minReadAhead: MiB, maxReadAhead: 16 * MiB });
    const into = Buffer.alloc(4 * KiB);
    // A random read: its own GET, and its block (and the ones after) fetched whole behind it.
    expect(await reader.read(into, 4 * KiB, BLOCK + 12345)).toBe(4 * KiB);
    expect(small).toEqual([BLOCK + 12345]);
    // In the half that has arrived: no GET, nothing to wait for.
    expect(await reader.read(into, 4 * KiB, BLOCK + 100)).toBe(4 * KiB);
    expect(into.equals(data.subarray(BLOCK + 100, BLOCK + 100 + 4 * KiB))).toBe(true);
    expect(small).toHaveLength(1);
    expect(cache.stats.arrived).toBe(1);
    // In the half still on its way: a GET of its own, answered while the block is still held.
    const at = 2 * BLOCK - 8 * KiB;
    expect(await reader.read(into, 4 * KiB, at)).toBe(4 * KiB);
    expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
    expect(small).toEqual([BLOCK + 12345, at]);
    release();
    await cache.readBlock(version, 1);
    expect(await reader.read(into, 4 * KiB, at + 1)).toBe(4 * KiB); // the block now
    expect(into.equals(data.subarray(at + 1, at + 1 + 4 * KiB))).toBe(true);
    expect(small).toHaveLength(2);
  });

  it('stops at the end of the object', async () => {
    const { reader: make } = await setup(1000);
    const into = Buffer.alloc(4096);
    expect(await make().read(into, 4096, 900)).toBe(100);
    expect(await make().read(into, 4096, 1000)).toBe(0);
  });
});

describe('pages for the kernel', () => {
  /** A `StorePages` that records each store and settles it when the test says. */
  function kernel() {
    const stores: Array<{ offset: number; data: Buffer; bytes: Buffer; settle: (errno: number) => void }> = [];
    const store: StorePages = (offset, data) => new Promise((settle) => stores.push({ offset, data, bytes: Buffer.from(data), settle }));
    return { stores, store };
  }
  const read4k = async (reader: FileReader, at: number, store?: StorePages) => {
    const into = Buffer.alloc(4 * KiB);
    const n = await reader.read(into, 4 * KiB, at, undefined, store);
    return into.subarray(0, n);
  };

  it('hand a region to the kernel once a random reader has read it from memory twice; again once reads reach the daemon again', async () => {
    const { data, cache, reader: make } = await setup(2 * BLOCK);
    const { stores, store } = kernel();
    // Read sequentially, whole: the blocks are in memory, and a sequential reader stores nothing.
    expect((await readAll(make(), 2 * BLOCK)).equals(data)).toBe(true);
    const sequential = make();
    for (let at = 0; at < 2 * MiB; at += 4 * KiB) await read4k(sequential, at, store);
    expect(stores).toEqual([]);

    const reader = make();
    const at = BLOCK + STORE_UNIT + 3 * 4 * KiB; // in the second region of the second block
    for (let i = 1; i < READS_BEFORE_STORE; i++)
      expect((await read4k(reader, at + i * 8 * KiB, store)).equals(data.subarray(at + i * 8 * KiB, at + i * 8 * KiB + 4 * KiB))).toBe(
        true,
      );
    expect(stores).toEqual([]);
    await read4k(reader, at, store);
    expect(stores.map((s) => [s.offset, s.data.length])).toEqual([[BLOCK + STORE_UNIT, STORE_UNIT]]);
    expect(stores[0]!.bytes.equals(data.subarray(BLOCK + STORE_UNIT, BLOCK + 2 * STORE_UNIT))).toBe(true);
    // While the kernel copies, reads there store nothing more; another region is its own.
    for (let i = 0; i < 2 * READS_BEFORE_STORE; i++) await read4k(reader, at + 64 * KiB * i, store);
    expect(stores.length).toBe(1);
    stores[0]!.settle(0);
    await Promise.resolve();
    await Promise.resolve();
    expect(cache.stats).toMatchObject({ kernelStores: 1, kernelStoredBytes: STORE_UNIT, kernelStoresRefused: 0 });
    // Reads that reach the daemon there again (the kernel dropped the pages): stored again.
    for (let i = 0; i < READS_BEFORE_STORE; i++) await read4k(reader, at + 16 * KiB * i, store);
    expect(stores.length).toBe(2);
    expect(stores[1]!.offset).toBe(BLOCK + STORE_UNIT);
    stores[1]!.settle(-16); // refused: the file may be written
    await Promise.resolve();
    await Promise.resolve();
    expect(cache.stats).toMatchObject({ kernelStores: 1, kernelStoresRefused: 1 });
    // The last region of an object stops at its end.
    const tail = make();
    for (let i = 0; i < READS_BEFORE_STORE; i++) await read4k(tail, 2 * BLOCK - 4 * KiB * (2 * i + 1), store);
    expect(stores.at(-1)!.offset).toBe(2 * BLOCK - STORE_UNIT);
    expect(stores.at(-1)!.data.length).toBe(STORE_UNIT);
  });

  it("keep a block's buffer from being reused while the kernel copies from it, though the block is dropped", async () => {
    const size = 4 * BLOCK;
    const { data, cache, version, reader: make } = await setup(size, { memoryLimit: 2 * BLOCK });
    const { stores, store } = kernel();
    await read4k(make(), 0); // block 0 in memory
    const reader = make();
    for (let i = 0; i < READS_BEFORE_STORE; i++) await read4k(reader, (2 * i + 1) * 4 * KiB, store);
    expect(stores.length).toBe(1);
    // Another reader goes through the whole object: block 0 is dropped, and the blocks after it
    // are read into the buffers of the blocks before them, but not into the one the kernel is
    // copying from.
    expect((await readAll(make(), size)).equals(data)).toBe(true);
    expect(cache.stats.recycled + cache.stats.passed).toBeGreaterThan(0);
    expect(cache.isCached(version, 0)).toBe(false);
    expect(stores[0]!.data.equals(data.subarray(0, STORE_UNIT))).toBe(true);
    stores[0]!.settle(0);
  });
});

describe('the block cache', () => {
  it('shares one GET between concurrent readers of a block', async () => {
    const { data, gets, reader: make } = await setup(8 * MiB);
    const results = await Promise.all(Array.from({ length: 6 }, () => readAll(make(), 8 * MiB)));
    for (const result of results) expect(result.equals(data)).toBe(true);
    expect(gets.length).toBe(2);
  });

  it('holds at most the memory limit, evicting the least recently used blocks', async () => {
    const limit = 4 * BLOCK;
    const size = 40 * MiB;
    const { data, gets, cache, reader: make } = await setup(size, { memoryLimit: limit });
    const reader = make();
    const out = Buffer.alloc(size);
    let peak = 0;
    for (let at = 0; at < size; at += 128 * KiB) {
      const into = Buffer.alloc(128 * KiB);
      const n = await reader.read(into, into.length, at);
      into.copy(out, at, 0, n);
      peak = Math.max(peak, cache.memoryUsed);
    }
    expect(out.equals(data)).toBe(true);
    expect(peak).toBeLessThanOrEqual(limit);
    const before = gets.length;
    await make().read(Buffer.alloc(10), 10, 0); // block 0 was evicted long ago
    expect(gets.length).toBe(before + 1);
  });

  it('never fetches a block twice when the budget is smaller than the read-ahead window', async () => {
    const size = 40 * MiB;
    for (const memoryLimit of [2 * BLOCK, 3 * BLOCK]) {
      const { data, gets, cache, reader: make } = await setup(size, { memoryLimit }); // window: 16 MiB = 4 blocks
      expect((await readAll(make(), size)).equals(data)).toBe(true);
      const starts = gets.map((get) => get.start).sort((a, b) => a - b);
      expect(starts).toEqual(Array.from({ length: size / BLOCK }, (_, index) => index * BLOCK));
      expect(cache.stats.bytesFetched).toBe(size);
    }
  });

  it('reads new blocks into the buffers of evicted ones', async () => {
    const size = 40 * MiB;
    const { data, cache, reader: make } = await setup(size, { memoryLimit: 4 * BLOCK });
    expect((await readAll(make(), size)).equals(data)).toBe(true);
    expect(cache.stats.recycled).toBeGreaterThanOrEqual(size / BLOCK - 5);
    expect((await readAll(make(), size)).equals(data)).toBe(true); // and again, through recycled buffers
  });

  it("passes a large object read sequentially through a few recycled buffers, keeping other files' blocks", async () => {
    const size = 80 * MiB; // more than a quarter of the limit
    const { memory, data, gets, cache, reader: make } = await setup(size, { memoryLimit: 256 * MiB });
    const small = randomBytes(2 * BLOCK);
    const smallVersion: ObjectVersion = { key: 'small', etag: (await memory.put('small', small)).etag, size: small.length };
    const smallReader = () => new FileReader(cache, () => smallVersion, { minReadAhead: MiB, maxReadAhead: 16 * MiB });
    expect((await readAll(smallReader(), small.length)).equals(small)).toBe(true);

    for (let pass = 1; pass <= 2; pass++) {
      const reader = make();
      const out = Buffer.alloc(size);
      let peak = 0;
      for (let at = 0; at < size; at += 128 * KiB) {
        const into = Buffer.alloc(128 * KiB);
        into.subarray(0, await reader.read(into, into.length, at)).copy(out, at);
        peak = Math.max(peak, cache.memoryUsed);
      }
      expect(out.equals(data)).toBe(true);
      // The small file, the 16 MiB window ahead (and the block it ends in), the block being read,
      // the one behind it and a spare: not the whole object, which the limit has room for.
      expect(peak).toBeLessThanOrEqual(small.length + 16 * MiB + 4 * BLOCK);
      expect(cache.stats.passed).toBe(pass * (size / BLOCK - 2));
    }
    // Each block fetched once per pass but the last two, which the first pass was never past (a
    // second pass fetches again: the kernel's page cache is what serves a second read of a large
    // file), all but the first few of each pass (read ahead before the reader is past any block)
    // into recycled buffers.
    expect(gets.filter((get) => get.length === BLOCK).length).toBe(2 + (2 * size) / BLOCK - 2);
    expect(cache.stats.recycled).toBeGreaterThanOrEqual(2 * (size / BLOCK - 6));
    const before = gets.length;
    expect((await readAll(smallReader(), small.length)).equals(small)).toBe(true);
    expect(gets.length).toBe(before); // still cached

    cache.shrinkTo(0); // spare buffers count, and go first
    expect(cache.memoryUsed).toBe(0);
  });

  it('lets a reader that got a block before its eviction copy the bytes it held', async () => {
    const { data, version, cache } = await setup(3 * BLOCK, { memoryLimit: BLOCK });
    const first = await cache.readBlock(version, 0);
    expect(first.equals(data.subarray(0, BLOCK))).toBe(true);
    // Block 0 is in hand (a resolved promise) when block 1 evicts it and takes its buffer; the
    // store here fills buffers synchronously, so only the turn of the event loop protects it.
    const inHand = cache.readBlock(version, 0);
    const next = cache.readBlock(version, 1);
    const block0 = await inHand;
    expect(block0.equals(data.subarray(0, BLOCK))).toBe(true);
    const block1 = await next;
    expect(block1.equals(data.subarray(BLOCK, 2 * BLOCK))).toBe(true);
    expect(block1).toBe(block0); // the same memory, recycled
    expect(cache.stats.recycled).toBe(1);
  });

  it('fails with PreconditionFailed when the object changed, never mixing versions', async () => {
    const { memory, reader: make } = await setup(8 * MiB);
    const reader = make();
    await reader.read(Buffer.alloc(10), 10, 0);
    await memory.put('obj', randomBytes(8 * MiB));
    await expect(reader.read(Buffer.alloc(10), 10, 6 * MiB)).rejects.toMatchObject({ code: 'PreconditionFailed' });
  });

  it('surfaces a failed GET without retrying it (the store did) and without poisoning the cache', async () => {
    // Room for one block: the random read below gets no block fetched behind it (which would take a failure).
    const { data, faulty, reader: make } = await setup(8 * MiB, { faulty: true, memoryLimit: BLOCK });
    faulty.fail('get', { times: 1, code: 'Transient' });
    const into = Buffer.alloc(128 * KiB);
    // One failure only: a second try would have succeeded.
    await expect(make().read(into, into.length, 4 * MiB)).rejects.toMatchObject({ code: 'Transient' });
    expect(await make().read(into, into.length, 4 * MiB)).toBe(128 * KiB);
    expect(into.equals(data.subarray(4 * MiB, 4 * MiB + 128 * KiB))).toBe(true);
  });
});

describe('the disk tier', () => {
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'objmount-disk-cache-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const openDisk = (directory: string, maxBytes = 64 * MiB) => DiskCache.open({ directory, maxBytes, store: 's3://test', logger: quiet });
  const blockFiles = (directory: string) =>
    readdirSync(join(directory, 'blocks'), { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => join(entry.parentPath, entry.name));

  it('survives a remount: the blocks are read from disk, not the store', async () => {
    const directory = tempDir();
    const firstDisk = await openDisk(directory);
    const { memory, data, version, reader } = await setup(12 * MiB, { disk: firstDisk });
    await readAll(reader(), 12 * MiB);
    await firstDisk.settled();

    const { store, gets } = counting(memory); // a new mount of the same store and cache directory
    const cache = new BlockCache(store, { blockSize: BLOCK, memoryLimit: 64 * MiB, maxConnections: 4, disk: await openDisk(directory) });
    const out = await readAll(new FileReader(cache, () => version, { minReadAhead: MiB, maxReadAhead: 16 * MiB }), 12 * MiB);
    expect(out.equals(data)).toBe(true);
    expect(gets.length).toBe(0);
    expect(cache.stats.diskHits).toBe(3);
  });

  it('writes what a block held, even when its buffer is recycled before the write ends', async () => {
    const directory = tempDir();
    const disk = await openDisk(directory);
    const { memory, data, version, reader, cache } = await setup(40 * MiB, { disk, memoryLimit: 2 * BLOCK });
    expect((await readAll(reader(), 40 * MiB)).equals(data)).toBe(true);
    expect(cache.stats.recycled).toBeGreaterThan(0);
    await disk.settled();

    const { store, gets } = counting(memory);
    const remounted = new BlockCache(store, {
      blockSize: BLOCK,
      memoryLimit: 64 * MiB,
      maxConnections: 4,
      disk: await openDisk(directory),
    });
    const out = await readAll(new FileReader(remounted, () => version, { minReadAhead: MiB, maxReadAhead: 16 * MiB }), 40 * MiB);
    expect(out.equals(data)).toBe(true);
    expect(gets).toHaveLength(0);
  });

  it('rejects a block whose data or header does not match, and fetches it again', async () => {
    const directory = tempDir();
    const disk = await openDisk(directory);
    const { memory, data, version, reader } = await setup(8 * MiB, { disk });
    await readAll(reader(), 8 * MiB);
    await disk.settled();
    const [fileA, fileB] = blockFiles(directory);
    const a = readFileSync(fileA!);
    a[a.length - 1] ^= 0xff; // a flipped bit in the data
    writeFileSync(fileA!, a);
    const b = readFileSync(fileB!);
    const etagText = version.etag.replace(/"/g, ''); // the header holds it JSON-escaped
    expect(b.includes(etagText)).toBe(true);
    writeFileSync(fileB!, Buffer.from(b.toString('latin1').replace(etagText, 'f'.repeat(etagText.length)), 'latin1'));

    const remounted = await openDisk(directory);
    const again = new BlockCache(memory, { blockSize: BLOCK, memoryLimit: 64 * MiB, maxConnections: 4, disk: remounted });
    const out = await readAll(new FileReader(again, () => version, { minReadAhead: MiB, maxReadAhead: 16 * MiB }), 8 * MiB);
    expect(out.equals(data)).toBe(true);
    expect(remounted.corrupt).toBe(2);
    expect(again.stats.gets).toBe(2);
  });

  it('misses for another ETag, and stays within its size by evicting the oldest blocks', async () => {
    const directory = tempDir();
    const disk = await openDisk(directory, 2 * BLOCK + MiB);
    const { version, reader } = await setup(16 * MiB, { disk });
    await readAll(reader(), 16 * MiB);
    await disk.settled();
    await new Promise((resolve) => setTimeout(resolve, 20)); // evictions unlink in the background
    expect(blockFiles(directory)).toHaveLength(2);
    expect(disk.size).toBeLessThanOrEqual(2 * BLOCK + MiB);
    const kept = [];
    for (const index of [0, 1, 2, 3]) if (await disk.get(version, index, BLOCK)) kept.push(index);
    expect(kept).toHaveLength(2);
    expect(await disk.get({ ...version, etag: '"other"' }, kept[0]!, BLOCK)).toBeUndefined();
  });
});
