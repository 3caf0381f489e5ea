import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { FileUploader } from '../../src/fs/write/file-uploader.js';
import { FaultyStore } from '../../src/storage/faulty-store.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let dir: string;
let fileCount = 0;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'objmount-uploader-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A local staging file of `size` random bytes. */
async function stagingFile(size: number): Promise<{ path: string; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const path = join(dir, `staging-${++fileCount}`);
  await writeFile(path, bytes);
  return { path, bytes };
}

function calls(store: MemoryStore, operation: string): number {
  return store.calls.get(operation) ?? 0;
}

describe('FileUploader', () => {
  it('uploads a file of at most one part with a single put, metadata included', async () => {
    const memory = new MemoryStore({ minPartSize: 4 * KiB });
    const uploader = new FileUploader(memory, { partSize: 16 * KiB, concurrency: 2 });
    const { path, bytes } = await stagingFile(16 * KiB);

    const { etag } = await uploader.upload('dir/one', path, bytes.length, {
      metadata: { mode: '33188' },
      contentType: 'application/octet-stream',
    });

    const stored = memory.objects.get('dir/one');
    expect(stored?.body.equals(bytes)).toBe(true);
    expect(stored?.etag).toBe(etag);
    expect(stored?.metadata).toEqual({ mode: '33188' });
    expect(stored?.contentType).toBe('application/octet-stream');
    expect(calls(memory, 'put')).toBe(1);
    expect(calls(memory, 'createMultipartUpload')).toBe(0);
  });

  it('uploads an empty file as an empty object', async () => {
    const memory = new MemoryStore();
    const uploader = new FileUploader(memory, { partSize: 8 * MiB, concurrency: 2 });
    const { path } = await stagingFile(0);

    await uploader.upload('empty', path, 0, {});

    expect(memory.objects.get('empty')?.body.length).toBe(0);
    expect(calls(memory, 'put')).toBe(1);
  });

  it('uploads a larger file as a multipart upload with the right bytes, in order', async () => {
    const memory = new MemoryStore({ minPartSize: 4 * KiB });
    const uploader = new FileUploader(memory, { partSize: 4 * KiB, concurrency: 3 });
    const size = 4 * KiB * 7 + 123; // seven full parts and a short last one
    const { path, bytes } = await stagingFile(size);

    const { etag } = await uploader.upload('big', path, size, { metadata: { uid: '7' } });

    const stored = memory.objects.get('big');
    expect(stored?.body.length).toBe(size);
    expect(stored?.body.equals(bytes)).toBe(true);
    expect(stored?.etag).toBe(etag);
    expect(stored?.metadata).toEqual({ uid: '7' });
    expect(calls(memory, 'createMultipartUpload')).toBe(1);
    expect(calls(memory, 'uploadPart')).toBe(8);
    expect(calls(memory, 'completeMultipartUpload')).toBe(1);
    expect(calls(memory, 'put')).toBe(0);
    expect(memory.uploads.size).toBe(0);
  });

  it('never has more than `concurrency` parts in flight', async () => {
    const memory = new MemoryStore({ minPartSize: 1 * KiB });
    let inFlight = 0;
    let most = 0;
    let started = 0;
    const parts = 20;
    // Each part is held until three are in flight (or the last has started), so the count does
    // not depend on how fast the staging file is read: a fourth would show, and so would fewer.
    let held: Array<() => void> = [];
    const counting: ObjectStore = Object.create(memory) as ObjectStore;
    counting.uploadPart = async (...args) => {
      inFlight += 1;
      started += 1;
      most = Math.max(most, inFlight);
      try {
        if (inFlight >= 3 || started === parts) {
          for (const release of held) release();
          held = [];
        } else {
          await new Promise<void>((resolve) => held.push(resolve));
        }
        return await memory.uploadPart(...args);
      } finally {
        inFlight -= 1;
      }
    };
    const uploader = new FileUploader(counting, { partSize: 1 * KiB, concurrency: 3 });
    const { path, bytes } = await stagingFile(parts * KiB);

    await uploader.upload('k', path, bytes.length, {});

    expect(most).toBe(3);
    expect(memory.objects.get('k')?.body.equals(bytes)).toBe(true);
  });

  it('grows the part size so that no file needs more than the store allows', async () => {
    const memory = new MemoryStore({ minPartSize: 64 * KiB, maxParts: 4 });
    const uploader = new FileUploader(memory, { partSize: 64 * KiB, concurrency: 4 });
    // 4 parts of 64 KiB would hold 256 KiB; 3 MiB + 1 byte needs parts of at least 768 KiB + 1.
    const size = 3 * MiB + 1;
    const { path, bytes } = await stagingFile(size);

    await uploader.upload('grown', path, size, {});

    expect(memory.objects.get('grown')?.body.equals(bytes)).toBe(true);
    expect(calls(memory, 'uploadPart')).toBeLessThanOrEqual(4);
    expect(calls(memory, 'uploadPart')).toBeGreaterThan(1);
  });

  describe('aborts the multipart upload on every failure exit', () => {
    async function failingUpload(
      setup: (faulty: FaultyStore) => void,
      declaredSize?: number,
    ): Promise<{ memory: MemoryStore; result: Promise<unknown> }> {
      const memory = new MemoryStore({ minPartSize: 4 * KiB });
      const faulty = new FaultyStore(memory);
      setup(faulty);
      const uploader = new FileUploader(faulty, { partSize: 4 * KiB, concurrency: 2 });
      const { path, bytes } = await stagingFile(4 * KiB * 5);
      return { memory, result: uploader.upload('doomed', path, declaredSize ?? bytes.length, {}) };
    }

    it('when the second uploadPart fails', async () => {
      const { memory, result } = await failingUpload((f) => f.fail('uploadPart', { nth: 2, code: 'Transient' }));
      await expect(result).rejects.toMatchObject({ name: 'StoreError', code: 'Transient' });
      expect(calls(memory, 'abortMultipartUpload')).toBe(1);
      expect(memory.uploads.size).toBe(0);
      expect(memory.objects.has('doomed')).toBe(false);
    });

    it('when completeMultipartUpload fails', async () => {
      const { memory, result } = await failingUpload((f) => f.fail('completeMultipartUpload', { code: 'Throttled' }));
      await expect(result).rejects.toMatchObject({ code: 'Throttled' });
      expect(calls(memory, 'uploadPart')).toBe(5);
      expect(calls(memory, 'abortMultipartUpload')).toBe(1);
      expect(memory.uploads.size).toBe(0);
      expect(memory.objects.has('doomed')).toBe(false);
    });

    it('when the staging file is shorter than the size to upload', async () => {
      const { memory, result } = await failingUpload(() => undefined, 4 * KiB * 6);
      await expect(result).rejects.toThrow(/staging file ended/);
      expect(calls(memory, 'abortMultipartUpload')).toBe(1);
      expect(memory.uploads.size).toBe(0);
      expect(memory.objects.has('doomed')).toBe(false);
    });

    it('when the upload cannot even start (nothing to abort, nothing created)', async () => {
      const { memory, result } = await failingUpload((f) => f.fail('createMultipartUpload', { code: 'AccessDenied' }));
      await expect(result).rejects.toMatchObject({ code: 'AccessDenied' });
      expect(calls(memory, 'uploadPart')).toBe(0);
      expect(memory.uploads.size).toBe(0);
      expect(memory.objects.has('doomed')).toBe(false);
    });

    it('reports the upload error, not the abort error, when the abort fails too', async () => {
      const { memory, result } = await failingUpload((f) => {
        f.fail('uploadPart', { nth: 1, code: 'Transient' });
        f.fail('abortMultipartUpload', { code: 'Unreachable' });
      });
      await expect(result).rejects.toMatchObject({ code: 'Transient' });
      expect(memory.objects.has('doomed')).toBe(false);
    });
  });

  it('a failed single put creates no object', async () => {
    const memory = new MemoryStore();
    const faulty = new FaultyStore(memory);
    faulty.fail('put', { code: 'Transient' });
    const uploader = new FileUploader(faulty, { partSize: 8 * MiB, concurrency: 2 });
    const { path, bytes } = await stagingFile(100);
    await expect(uploader.upload('small', path, bytes.length, {})).rejects.toMatchObject({ code: 'Transient' });
    expect(memory.objects.size).toBe(0);
  });
});
