/** Upload part buffers used again from one part to the next (fs/write/part-buffers.ts). */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it, vi } from 'vitest';

import { FileSystem } from '../../src/fs/file-system.js';
import { MemoryBudget } from '../../src/fs/memory-budget.js';
import { PartBuffers } from '../../src/fs/write/part-buffers.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import { StoreError } from '../../src/storage/object-store.js';

const KiB = 1024;
const PART = 16 * KiB;

describe('PartBuffers', () => {
  it('gives a buffer given back to the next part of its size, and new memory otherwise', () => {
    const allocated: number[] = [];
    const buffers = new PartBuffers(PART, 4, (bytes) => {
      allocated.push(bytes);
      return undefined;
    });
    const first = buffers.take(PART);
    expect(first.length).toBe(PART);
    buffers.give(first);
    expect(buffers.memoryUsed).toBe(PART);
    expect(buffers.take(PART)).toBe(first);
    expect(buffers.memoryUsed).toBe(0);
    const tail = buffers.take(PART + 1);
    expect(tail.length).toBe(PART + 1);
    expect(allocated).toEqual([PART, PART + 1]); // asked the allocator, which left it to Node
    buffers.give(tail); // not a whole number of parts: not kept
    expect(buffers.memoryUsed).toBe(0);
    buffers.give(buffers.take(2 * PART)); // a part of a later tier: kept
    expect(buffers.memoryUsed).toBe(2 * PART);
  });

  it('keeps at most its idle bytes, counts them in the budget, and gives them up to whoever needs room', () => {
    const budget = new MemoryBudget(10 * PART);
    const buffers = new PartBuffers(PART, 3, undefined, budget);
    for (const buffer of Array.from({ length: 5 }, () => buffers.take(PART))) buffers.give(buffer);
    expect(buffers.memoryUsed).toBe(3 * PART);
    expect(budget.cacheBytes).toBe(3 * PART);
    budget.shrinkCachesTo(PART);
    expect(buffers.memoryUsed).toBe(PART);
    buffers.close();
    expect(buffers.memoryUsed).toBe(0);
    expect(budget.cacheBytes).toBe(0);
  });

  it('drops idle buffers after ten seconds without a part', () => {
    vi.useFakeTimers();
    try {
      const buffers = new PartBuffers(PART, 4);
      buffers.give(buffers.take(PART));
      vi.advanceTimersByTime(9_000);
      buffers.give(buffers.take(PART)); // a part: the ten seconds start again
      vi.advanceTimersByTime(9_000);
      expect(buffers.memoryUsed).toBe(PART);
      vi.advanceTimersByTime(1_001);
      expect(buffers.memoryUsed).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('uploads through PartBuffers', () => {
  let stagingDir: string | undefined;
  afterEach(async () => {
    if (stagingDir) await rm(stagingDir, { recursive: true, force: true });
  });

  it('use a few buffers for a file of many parts, and never reuse the buffer of a part that failed', async () => {
    stagingDir = await mkdtemp(join(tmpdir(), 'objmount-parts-'));
    const memory = new MemoryStore({ minPartSize: PART });
    const store = Object.create(memory) as MemoryStore;
    const bodies: Buffer[] = [];
    let failNext = false;
    let failedBody: Buffer | undefined;
    let failedAt = 0;
    store.uploadPart = async (key, uploadId, partNumber, body) => {
      bodies.push(body);
      if (failNext) {
        failNext = false;
        failedBody = body;
        failedAt = bodies.length;
        throw new StoreError('Transient', 'the connection was reset');
      }
      return memory.uploadPart(key, uploadId, partNumber, body);
    };
    let fresh = 0;
    const buffers = new PartBuffers(PART, 2, () => {
      fresh++;
      return undefined;
    });
    const fs = new FileSystem(store, {
      prefix: '',
      defaults: { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755 },
      cache: { fileTtlMs: 1000, dirTtlMs: 1000, negativeTtlMs: 1000, maxEntries: 100 },
      stagingDir,
      partSize: PART,
      uploadConcurrency: 2,
      partBuffers: buffers,
      logger: silentLogger,
    });
    const write = async (path: string, data: Buffer) => {
      const fh = await fs.create(path, 0o644);
      for (let at = 0; at < data.length; at += 4 * KiB) await fs.write(fh, data.subarray(at, at + 4 * KiB), at);
      await fs.release(fh);
    };

    const data = randomBytes(40 * PART + 5);
    await write('/a', data);
    expect(memory.objects.get('a')?.body.equals(data)).toBe(true);
    expect(fresh).toBeLessThanOrEqual(4); // 40 parts of one size (and the tail), 2 at once
    expect(new Set(bodies).size).toBe(fresh);

    // A part fails while streaming: the file is uploaded whole at close instead, and the failed
    // part's buffer is never handed out again (the SDK may still be sending from it).
    failNext = true;
    const other = randomBytes(10 * PART);
    await write('/b', other);
    expect(memory.objects.get('b')?.body.equals(other)).toBe(true);
    expect(failedBody).toBeDefined();
    await write('/c', data);
    expect(memory.objects.get('c')?.body.equals(data)).toBe(true);
    expect(bodies.slice(failedAt).includes(failedBody!)).toBe(false);
  });
});
