import { randomBytes } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { Prefetcher } from '../../src/fs/read/prefetcher.js';
import { MemoryStore } from '../../src/storage/memory-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;

async function setup(size: number) {
  const store = new MemoryStore();
  const data = randomBytes(size);
  const { etag } = await store.put('obj', data);
  const prefetcher = new Prefetcher(store, () => 'obj', () => etag, () => size, { minWindow: MiB, maxWindow: 4 * MiB, ahead: 2 });
  return { store, data, prefetcher };
}

describe('Prefetcher', () => {
  it('serves a sequential read of 128 KiB requests with a few large GETs, byte-identical', async () => {
    const size = 20 * MiB + 123;
    const { store, data, prefetcher } = await setup(size);
    const out = Buffer.alloc(size);
    for (let at = 0; at < size; at += 128 * KiB) {
      const chunk = Buffer.alloc(128 * KiB);
      const n = await prefetcher.read(chunk, chunk.length, at);
      chunk.copy(out, at, 0, n);
    }
    expect(out.equals(data)).toBe(true);
    // 161 kernel reads; windows grow to 4 MiB, so about a dozen GETs.
    expect(store.calls.get('get')).toBeLessThan(15);
  });

  it('fetches only what a random read asks for', async () => {
    const { store, data, prefetcher } = await setup(32 * MiB);
    const into = Buffer.alloc(4 * KiB);
    for (const at of [17 * MiB, 3 * MiB, 29 * MiB]) {
      expect(await prefetcher.read(into, into.length, at)).toBe(4 * KiB);
      expect(into.equals(data.subarray(at, at + 4 * KiB))).toBe(true);
    }
    expect(store.calls.get('get')).toBe(3);
  });

  it('stops at the end of the object', async () => {
    const { prefetcher } = await setup(1000);
    const into = Buffer.alloc(4096);
    expect(await prefetcher.read(into, 4096, 900)).toBe(100);
    expect(await prefetcher.read(into, 4096, 1000)).toBe(0);
  });

  it('fails with PreconditionFailed when the object changed, then recovers nothing stale', async () => {
    const { store, prefetcher } = await setup(4 * MiB);
    await store.put('obj', Buffer.from('replaced'));
    await expect(prefetcher.read(Buffer.alloc(10), 10, 0)).rejects.toMatchObject({ code: 'PreconditionFailed' });
    await expect(prefetcher.read(Buffer.alloc(10), 10, 0)).rejects.toMatchObject({ code: 'PreconditionFailed' });
  });
});
