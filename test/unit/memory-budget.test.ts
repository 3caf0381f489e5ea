/** One memory budget for cached blocks and upload buffers (fs/memory-budget.ts). */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it, vi } from 'vitest';

import { FileSystem } from '../../src/fs/file-system.js';
import { MemoryBudget } from '../../src/fs/memory-budget.js';
import { BlockCache } from '../../src/fs/read/block-cache.js';
import { FileReader } from '../../src/fs/read/file-reader.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('MemoryBudget', () => {
  it('following the resident size, gives the cache less room by what the process holds uncounted, at most three quarters', () => {
    vi.useFakeTimers();
    try {
      const budget = new MemoryBudget(100 * MiB);
      let resident = 80 * MiB; // the process at start
      const shrunk: number[] = [];
      const cache = { memoryUsed: 90 * MiB, shrinkTo: (bytes: number) => shrunk.push(bytes) };
      budget.attachCache(cache);
      budget.followRss(() => resident);
      expect(budget.cacheRoom).toBe(100 * MiB);

      resident = 80 * MiB + 90 * MiB + 30 * MiB; // 30 MiB beyond start + what the cache holds
      vi.advanceTimersByTime(250);
      expect(budget.cacheRoom).toBe(70 * MiB);
      expect(shrunk).toEqual([70 * MiB]);

      resident = 80 * MiB + 90 * MiB + 500 * MiB; // never below a quarter of the limit
      vi.advanceTimersByTime(250);
      expect(budget.cacheRoom).toBe(25 * MiB);

      resident = 80 * MiB + 90 * MiB; // collected: the room comes back
      vi.advanceTimersByTime(250);
      expect(budget.cacheRoom).toBe(100 * MiB);
      budget.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('grants what fits at once and makes the rest wait, in order', async () => {
    const budget = new MemoryBudget(10);
    await budget.acquire(6);
    const order: number[] = [];
    const second = budget.acquire(6).then(() => order.push(2));
    const third = budget.acquire(1).then(() => order.push(3)); // fits, but waits its turn
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(order).toEqual([]);
    budget.release(6);
    await Promise.all([second, third]);
    expect(order).toEqual([2, 3]);
    expect(budget.uploadBytes).toBe(7);
  });

  it('lets one request larger than the whole budget through when nothing else is held', async () => {
    const budget = new MemoryBudget(10);
    await budget.acquire(50);
    expect(budget.uploadBytes).toBe(50);
  });

  it('shrinks the block cache before it makes an upload wait', async () => {
    let held = 8;
    const budget = new MemoryBudget(10);
    budget.attachCache({
      get memoryUsed() {
        return held;
      },
      shrinkTo(bytes) {
        held = Math.min(held, bytes);
      },
    });
    await budget.acquire(1); // the first is always granted; the cache makes room anyway
    expect(held).toBe(8);
    await budget.acquire(4);
    expect(held).toBe(5);
  });
});

describe('the budget shared by reads and writes', () => {
  it('keeps cached blocks plus upload buffers within the limit', async () => {
    const memory = new MemoryStore();
    const data = randomBytes(32 * MiB);
    const { etag } = await memory.put('obj', data);
    const budget = new MemoryBudget(16 * MiB);
    // The object is read sequentially to fill the cache: it must not pass through.
    const cache = new BlockCache(memory, {
      blockSize: 2 * MiB,
      memoryLimit: 16 * MiB,
      maxConnections: 4,
      budget,
      passThroughAbove: Infinity,
    });
    const reader = new FileReader(cache, () => ({ key: 'obj', etag, size: data.length }), { minReadAhead: MiB, maxReadAhead: 4 * MiB });
    const into = Buffer.alloc(128 * KiB);
    for (let at = 0; at < 16 * MiB; at += into.length) await reader.read(into, into.length, at);
    expect(cache.memoryUsed).toBeGreaterThan(8 * MiB);

    await budget.acquire(10 * MiB); // an upload takes room: the cache gives it up
    expect(cache.memoryUsed + budget.uploadBytes).toBeLessThanOrEqual(16 * MiB);
    for (let at = 16 * MiB; at < 32 * MiB; at += into.length) {
      await reader.read(into, into.length, at);
      expect(cache.memoryUsed + budget.uploadBytes).toBeLessThanOrEqual(16 * MiB);
    }
  });

  it('makes writers wait so that part buffers never exceed the budget', async () => {
    const stagingDir = await mkdtemp(join(tmpdir(), 'objmount-budget-'));
    try {
      const memory = new MemoryStore({ minPartSize: 64 * KiB });
      const budget = new MemoryBudget(256 * KiB);
      let peak = 0;
      const slow = Object.create(memory) as ObjectStore;
      slow.uploadPart = async (...args) => {
        peak = Math.max(peak, budget.uploadBytes);
        await new Promise((resolve) => setTimeout(resolve, 2));
        return memory.uploadPart(...args);
      };
      const fs = new FileSystem(slow, {
        prefix: '',
        defaults: { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755 },
        cache: { fileTtlMs: 1000, dirTtlMs: 1000, negativeTtlMs: 1000, maxEntries: 100 },
        stagingDir,
        partSize: 64 * KiB,
        uploadConcurrency: 8, // 8 × 64 KiB per file would be 512 KiB: the budget allows 256 KiB
        memoryBudget: budget,
        logger: silentLogger,
      });
      const files = await Promise.all(
        ['/a', '/b', '/c'].map(async (path) => {
          const data = randomBytes(1 * MiB + 3);
          const fh = await fs.create(path, 0o644);
          for (let at = 0; at < data.length; at += 16 * KiB) await fs.write(fh, data.subarray(at, at + 16 * KiB), at);
          await fs.release(fh);
          return { key: path.slice(1), data };
        }),
      );
      for (const { key, data } of files) expect(memory.objects.get(key)?.body.equals(data)).toBe(true);
      expect(peak).toBeLessThanOrEqual(256 * KiB);
      expect(budget.uploadBytes).toBe(0);
    } finally {
      await rm(stagingDir, { recursive: true, force: true });
    }
  });
});

describe('one budget shared by several block caches (the root view)', () => {
  /** Two buckets' caches on one budget, each with an object of `size` bytes. */
  async function twoCaches(limit: number, size: number) {
    const budget = new MemoryBudget(limit);
    const buckets = await Promise.all(
      ['one', 'two'].map(async () => {
        const memory = new MemoryStore();
        const data = randomBytes(size);
        const { etag } = await memory.put('obj', data);
        // Objects read sequentially to fill the caches: they must not pass through.
        const cache = new BlockCache(memory, { blockSize: MiB, memoryLimit: limit, maxConnections: 4, budget, passThroughAbove: Infinity });
        const reader = new FileReader(cache, () => ({ key: 'obj', etag, size }), { minReadAhead: MiB, maxReadAhead: 4 * MiB });
        return { cache, reader, data };
      }),
    );
    return { budget, one: buckets[0]!, two: buckets[1]! };
  }

  async function readThrough(bucket: { reader: FileReader; data: Buffer }, from: number, to: number, check: () => void): Promise<void> {
    const into = Buffer.alloc(128 * KiB);
    for (let at = from; at < to; at += into.length) {
      const n = await bucket.reader.read(into, into.length, at);
      expect(into.subarray(0, n).equals(bucket.data.subarray(at, at + n))).toBe(true);
      check();
    }
  }

  it('keeps both caches together within the limit, and either gives way to the other', async () => {
    const limit = 12 * MiB;
    const { budget, one, two } = await twoCaches(limit, 24 * MiB);
    const within = () => expect(one.cache.memoryUsed + two.cache.memoryUsed + budget.uploadBytes).toBeLessThanOrEqual(limit);

    await readThrough(one, 0, 12 * MiB, within);
    expect(one.cache.memoryUsed).toBeGreaterThan(8 * MiB); // alone, the first holds (nearly) all of it
    expect(budget.cacheBytes).toBe(one.cache.memoryUsed);

    await readThrough(two, 0, 12 * MiB, within); // the second reads: the first gives way
    expect(two.cache.memoryUsed).toBeGreaterThan(4 * MiB);
    expect(one.cache.memoryUsed).toBeLessThan(8 * MiB);

    await readThrough(one, 12 * MiB, 24 * MiB, within); // and the other way round
    expect(one.cache.memoryUsed).toBeGreaterThan(4 * MiB);
    expect(two.cache.memoryUsed).toBeLessThan(8 * MiB);
  });

  it('takes an upload part from whichever cache holds the memory', async () => {
    const limit = 12 * MiB;
    const { budget, one, two } = await twoCaches(limit, 24 * MiB);
    await readThrough(one, 0, 6 * MiB, () => undefined);
    await readThrough(two, 0, 6 * MiB, () => undefined);
    await budget.acquire(8 * MiB);
    expect(one.cache.memoryUsed + two.cache.memoryUsed + budget.uploadBytes).toBeLessThanOrEqual(limit);
    budget.release(8 * MiB);
  });

  it('evicts from the cache that holds the most first, evening the largest out', () => {
    const budget = new MemoryBudget(100);
    const fake = (held: number) => ({
      held,
      get memoryUsed() {
        return this.held;
      },
      shrinkTo(bytes: number) {
        this.held = Math.min(this.held, bytes);
      },
    });
    const [big, middle, small] = [fake(50), fake(30), fake(10)];
    for (const cache of [big, middle, small]) budget.attachCache(cache);
    budget.shrinkCachesTo(80); // 10 to give: the largest alone
    expect([big.held, middle.held, small.held]).toEqual([40, 30, 10]);
    budget.shrinkCachesTo(50); // 30 more: the two largest, down to one level
    expect([big.held, middle.held, small.held]).toEqual([20, 20, 10]);
    budget.shrinkCachesTo(0);
    expect([big.held, middle.held, small.held]).toEqual([0, 0, 0]);

    budget.detachCache(big);
    big.held = 90;
    expect(budget.cacheBytes).toBe(0); // a closed bucket's cache no longer counts
  });

  it('following the resident size, shrinks the caches together to their room', () => {
    vi.useFakeTimers();
    try {
      const budget = new MemoryBudget(100 * MiB);
      let resident = 50 * MiB;
      const caches = [40, 40].map((mib) => {
        const cache = { memoryUsed: mib * MiB, shrinkTo: (bytes: number) => (cache.memoryUsed = Math.min(cache.memoryUsed, bytes)) };
        budget.attachCache(cache);
        return cache;
      });
      budget.followRss(() => resident);
      resident = 50 * MiB + 80 * MiB + 40 * MiB; // 40 MiB held beyond start and what the caches count
      vi.advanceTimersByTime(250);
      expect(budget.cacheRoom).toBe(60 * MiB);
      expect(caches.map((cache) => cache.memoryUsed)).toEqual([30 * MiB, 30 * MiB]);
      budget.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
