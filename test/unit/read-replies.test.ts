/**
 * The FUSE binding lends a read the memory its reply is sent from, which served earlier requests
 * (native/src/block_pool.h) and is not cleared: the kernel gets the first `n` bytes, `n` being what
 * the read returned. So every byte a read counts must have been written for it. Each way a read
 * is served (a block fetched, a block cached, a ranged GET at random, a read across blocks, the
 * end of the object, a staged file, a file past its end) is checked here with the buffer full of
 * an earlier request's bytes beforehand: the count covers only the file's bytes, every one of
 * them the file's. A block shorter than its place in the object fails the read, never counts
 * stale bytes.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { FileSystem, O_RDWR } from '../../src/fs/file-system.js';
import { BlockCache } from '../../src/fs/read/block-cache.js';
import { FileReader } from '../../src/fs/read/file-reader.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';

const BLOCK = 4096;
/** What an earlier request left in the lent memory. */
const STALE = 0xee;

let stagingDir: string;
let store: MemoryStore;
let fs: FileSystem;
/** 2.5 blocks of bytes that are never STALE. */
const data = Buffer.from(Array.from({ length: BLOCK * 2 + BLOCK / 2 }, (_, i) => i % 251));

beforeEach(async () => {
  stagingDir = await mkdtemp(join(tmpdir(), 'objmount-replies-'));
  store = new MemoryStore({ minPartSize: BLOCK });
  fs = new FileSystem(store, {
    prefix: '',
    defaults: { uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755 },
    cache: { fileTtlMs: 60_000, dirTtlMs: 60_000, negativeTtlMs: 0, maxEntries: 1000 },
    stagingDir,
    partSize: BLOCK,
    uploadConcurrency: 1,
    logger: silentLogger,
    blockCache: new BlockCache(store, { blockSize: BLOCK, memoryLimit: 16 * BLOCK, maxConnections: 4 }),
    readAhead: { minReadAhead: BLOCK, maxReadAhead: 2 * BLOCK },
  });
  await store.put('file.bin', data);
});

afterEach(async () => {
  await rm(stagingDir, { recursive: true, force: true });
});

/** Reads into a lent-like buffer full of stale bytes: the bytes the count covers. */
async function readReply(fh: number, length: number, position: number): Promise<Buffer> {
  const lent = Buffer.alloc(length + 512, STALE);
  const n = await fs.read(fh, lent, length, position);
  expect(n).toBeGreaterThanOrEqual(0);
  expect(n).toBeLessThanOrEqual(length);
  return lent.subarray(0, n);
}

describe('a read counts only bytes it wrote', () => {
  it('from a block fetched, the same block cached, and across blocks to the end of the object', async () => {
    const fh = await fs.open('/file.bin', 0);
    expect(await readReply(fh, 1000, 0)).toEqual(data.subarray(0, 1000)); // fetched
    expect(await readReply(fh, 1000, 1000)).toEqual(data.subarray(1000, 2000)); // cached
    expect(await readReply(fh, BLOCK * 3, 2000)).toEqual(data.subarray(2000)); // across blocks, cut at the end
    expect(await readReply(fh, BLOCK, data.length)).toEqual(Buffer.alloc(0)); // at the end
    expect(await readReply(fh, BLOCK, data.length + 10)).toEqual(Buffer.alloc(0)); // past it
    await fs.release(fh);
  });

  it('from a ranged GET at random, and the end of the object read at random', async () => {
    const fh = await fs.open('/file.bin', 0);
    expect(await readReply(fh, 100, BLOCK + 7)).toEqual(data.subarray(BLOCK + 7, BLOCK + 107));
    expect(await readReply(fh, BLOCK, data.length - 100)).toEqual(data.subarray(data.length - 100));
    await fs.release(fh);
  });

  it('from a staged file, with a hole the program never wrote', async () => {
    const fh = await fs.create('/new.bin', 0o644);
    await fs.write(fh, Buffer.from('head'), 0);
    await fs.write(fh, Buffer.from('tail'), 1000); // [4, 1000) is a hole: zeros, as on a disk
    const reply = await readReply(fh, 4096, 0);
    expect(reply.length).toBe(1004);
    expect(reply.subarray(0, 4).toString()).toBe('head');
    expect(reply.subarray(4, 1000).equals(Buffer.alloc(996))).toBe(true);
    expect(reply.subarray(1000).toString()).toBe('tail');
    await fs.release(fh);
    const again = await fs.open('/new.bin', O_RDWR);
    expect((await readReply(again, 4096, 998)).toString('latin1')).toBe('\0\0tail');
    await fs.release(again);
  });
});

describe('a block shorter than its place in the object', () => {
  it('fails the read instead of counting bytes it did not write', async () => {
    const shortBlock = Buffer.alloc(10, 1);
    const cache = {
      blockSize: BLOCK,
      isAvailable: () => true,
      readBlock: async () => shortBlock,
      prefetch: () => undefined,
      passed: () => undefined,
    } as unknown as BlockCache;
    const reader = new FileReader(cache, () => ({ key: 'k', etag: 'e', size: BLOCK * 2 }), { minReadAhead: BLOCK, maxReadAhead: BLOCK });
    const lent = Buffer.alloc(100, STALE);
    await expect(reader.read(lent, 100, 0)).rejects.toThrow(/block 0 holds 10 bytes, short of 100/);
  });
});
