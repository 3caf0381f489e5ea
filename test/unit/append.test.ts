/**
 * Changing the end of a large object: only what follows the first changed byte is downloaded
 * and sent; the unchanged start is copied inside the store (UploadPartCopy).
 */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { FileSystem, O_APPEND, O_RDWR, O_WRONLY } from '../../src/fs/file-system.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { ObjectStore, StoreCapabilities } from '../../src/storage/object-store.js';

const KiB = 1024;
const PART = 64 * KiB;
const SIZE = 40 * PART + 123; // the "large" object

let stagingDir: string;
let memory: MemoryStore;
let traffic: { downloaded: number; sent: number; copied: number };
let fs: FileSystem;
let original: Buffer;

/** The in-memory store, counting bytes downloaded (GET), sent (PUT, parts) and copied in the store. */
function metered(inner: MemoryStore): ObjectStore {
  const store = Object.create(inner) as ObjectStore;
  store.getStream = async (key, options) => {
    const result = await inner.getStream(key, options);
    traffic.downloaded += options?.range ? options.range.end - options.range.start + 1 : result.info.size;
    return result;
  };
  store.get = async (key, options) => {
    const result = await inner.get(key, options);
    traffic.downloaded += result.body.length;
    return result;
  };
  store.put = async (key, body, options) => {
    traffic.sent += body.length;
    return inner.put(key, body, options);
  };
  store.uploadPart = async (key, id, n, body) => {
    traffic.sent += body.length;
    return inner.uploadPart(key, id, n, body);
  };
  store.uploadPartCopy = async (key, id, n, source) => {
    traffic.copied += source.range.end - source.range.start + 1;
    return inner.uploadPartCopy(key, id, n, source);
  };
  return store;
}

function mount(capabilities: Partial<StoreCapabilities> = {}, writeMode: 'sync' | 'async' = 'sync'): FileSystem {
  memory = new MemoryStore({ minPartSize: PART, ...capabilities });
  return new FileSystem(metered(memory), {
    prefix: '',
    defaults: { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755 },
    cache: { fileTtlMs: 1000, dirTtlMs: 1000, negativeTtlMs: 1000, maxEntries: 100 },
    stagingDir,
    partSize: PART,
    uploadConcurrency: 4,
    writeMode,
    logger: silentLogger,
  });
}

beforeEach(async () => {
  stagingDir = await mkdtemp(join(tmpdir(), 'objmount-append-'));
  traffic = { downloaded: 0, sent: 0, copied: 0 };
  fs = mount();
  original = randomBytes(SIZE);
  await memory.put('big', original);
});

afterEach(async () => {
  await rm(stagingDir, { recursive: true, force: true });
});

const stored = () => memory.objects.get('big')!.body;

describe('appending to a large object', () => {
  it('downloads nothing and sends only the new bytes; the start is copied in the store', async () => {
    const tail = randomBytes(3 * KiB);
    const fh = await fs.open('/big', O_WRONLY | O_APPEND);
    await fs.write(fh, tail, 0);
    await fs.release(fh);
    expect(stored().equals(Buffer.concat([original, tail]))).toBe(true);
    expect(traffic.downloaded).toBe(0);
    expect(traffic.sent).toBe(tail.length);
    expect(traffic.copied).toBe(SIZE);
    expect(memory.uploads.size).toBe(0);
  });

  it('overwrites near the end: downloads and sends only from the first changed byte', async () => {
    const at = SIZE - 1000;
    const fh = await fs.open('/big', O_RDWR);
    await fs.write(fh, Buffer.from('patched'), at);
    await fs.release(fh);
    const expected = Buffer.from(original);
    expected.write('patched', at);
    expect(stored().equals(expected)).toBe(true);
    expect(traffic.downloaded).toBe(1000);
    expect(traffic.sent).toBe(1000);
  });

  it('fills in the start when a later write or a read reaches below it', async () => {
    const fh = await fs.open('/big', O_RDWR);
    await fs.write(fh, Buffer.from('END'), SIZE);
    const head = Buffer.alloc(10);
    expect(await fs.read(fh, head, 10, 5 * PART)).toBe(10);
    expect(head.equals(original.subarray(5 * PART, 5 * PART + 10))).toBe(true);
    await fs.write(fh, Buffer.from('MID'), 20 * PART);
    await fs.release(fh);
    const expected = Buffer.concat([original, Buffer.from('END')]);
    expected.write('MID', 20 * PART);
    expect(stored().equals(expected)).toBe(true);
    expect(traffic.copied).toBe(5 * PART); // the part below the first byte read or written
  });

  it('shrinks without downloading anything', async () => {
    await fs.truncate('/big', 30 * PART);
    expect(stored().equals(original.subarray(0, 30 * PART))).toBe(true);
    expect(traffic.downloaded + traffic.sent).toBe(0);
  });

  it('falls back to a whole upload where the store cannot copy parts', async () => {
    fs = mount({ partCopy: false });
    await memory.put('big', original);
    const fh = await fs.open('/big', O_WRONLY | O_APPEND);
    await fs.write(fh, Buffer.from('!'), 0);
    await fs.release(fh);
    expect(stored().equals(Buffer.concat([original, Buffer.from('!')]))).toBe(true);
    expect(traffic.downloaded).toBe(SIZE);
    expect(traffic.sent).toBe(SIZE + 1);
  });

  it('fails the close with ESTALE if the object changed meanwhile, and leaves no upload', async () => {
    const fh = await fs.open('/big', O_WRONLY | O_APPEND);
    await fs.write(fh, Buffer.from('late'), 0);
    await memory.put('big', randomBytes(SIZE)); // another client
    await expect(fs.flush(fh)).rejects.toMatchObject({ code: 'ESTALE' });
    expect(memory.uploads.size).toBe(0);
    // The release tries once more, as the kernel's RELEASE after a failed FLUSH does: same answer.
    await expect(fs.release(fh)).rejects.toMatchObject({ code: 'ESTALE' });
    expect(memory.uploads.size).toBe(0);
  });

  it('journals the whole file in async mode', async () => {
    fs = mount({}, 'async');
    await memory.put('big', original);
    const fh = await fs.open('/big', O_WRONLY | O_APPEND);
    await fs.write(fh, Buffer.from('!'), 0);
    await fs.release(fh);
    await fs.drain();
    expect(stored().equals(Buffer.concat([original, Buffer.from('!')]))).toBe(true);
  });

  it('keeps an unlinked file readable from its open handle', async () => {
    const fh = await fs.open('/big', O_RDWR | O_APPEND);
    await fs.write(fh, Buffer.from('!'), 0);
    await fs.unlink('/big');
    const start = Buffer.alloc(100);
    expect(await fs.read(fh, start, 100, 0)).toBe(100);
    expect(start.equals(original.subarray(0, 100))).toBe(true);
    await fs.release(fh);
    expect(memory.objects.has('big')).toBe(false);
  });
});
