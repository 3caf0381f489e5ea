/** Files written from their start are uploaded while they are written (fs/write/streaming-upload.ts). */

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { S_IFREG } from '../../src/fs/attributes.js';
import { FileSystem, O_RDWR } from '../../src/fs/file-system.js';
import { silentLogger } from '../../src/log/logger.js';
import { FaultyStore } from '../../src/storage/faulty-store.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import type { PageCacheDrop } from '../../src/fs/write/streaming-upload.js';

const KiB = 1024;
const PART = 16 * KiB;
const CHUNK = 4 * KiB; // one kernel write

let stagingDir: string;
let memory: MemoryStore;
let faulty: FaultyStore;
let fs: FileSystem;

function mount(store: ObjectStore, concurrency = 3, dropFromPageCache?: PageCacheDrop): FileSystem {
  return new FileSystem(store, {
    dropFromPageCache,
    prefix: '',
    defaults: { uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755 },
    cache: { fileTtlMs: 1000, dirTtlMs: 1000, negativeTtlMs: 1000, maxEntries: 1000 },
    stagingDir,
    partSize: PART,
    uploadConcurrency: concurrency,
    logger: silentLogger,
  });
}

beforeEach(async () => {
  stagingDir = await mkdtemp(join(tmpdir(), 'objmount-stream-'));
  memory = new MemoryStore({ minPartSize: PART });
  faulty = new FaultyStore(memory);
  fs = mount(faulty);
});

afterEach(async () => {
  await rm(stagingDir, { recursive: true, force: true });
});

async function writeAll(fh: number, data: Buffer, from = 0): Promise<void> {
  for (let at = from; at < data.length; at += CHUNK) await fs.write(fh, data.subarray(at, at + CHUNK), at);
}

function partsInFlightOrDone(): number {
  return [...memory.uploads.values()].reduce((n, upload) => n + upload.parts.size, 0);
}

describe('streaming upload', () => {
  it('uploads parts while the file is written; close sends only the tail', async () => {
    const data = randomBytes(10 * PART + 123);
    const fh = await fs.create('/big', 0o640);
    await writeAll(fh, data);
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(memory.uploads.size).toBe(1);
    expect(partsInFlightOrDone()).toBe(10); // every whole part is in the store before close
    await fs.release(fh);
    expect(memory.objects.get('big')?.body.equals(data)).toBe(true);
    expect(memory.uploads.size).toBe(0);
  });

  it('never has more than the concurrency of parts in flight: writes wait instead', async () => {
    let inflight = 0;
    let peak = 0;
    const slow = Object.create(memory) as ObjectStore;
    slow.uploadPart = async (...args) => {
      inflight += 1;
      peak = Math.max(peak, inflight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inflight -= 1;
      return memory.uploadPart(...args);
    };
    fs = mount(slow, 2);
    const data = randomBytes(12 * PART);
    const fh = await fs.create('/slow', 0o644);
    await writeAll(fh, data);
    expect(inflight).toBeLessThanOrEqual(2);
    await fs.release(fh);
    expect(peak).toBe(2);
    expect(memory.objects.get('slow')?.body.equals(data)).toBe(true);
  });

  it('never uses more parts than the store allows: the last one takes the rest', async () => {
    memory = new MemoryStore({ minPartSize: PART, maxParts: 3 });
    let parts = 0;
    const counting = Object.create(memory) as ObjectStore;
    counting.uploadPart = async (...args) => {
      parts += 1;
      return memory.uploadPart(...args);
    };
    fs = mount(counting);
    const data = randomBytes(20 * PART + 9);
    const fh = await fs.create('/capped', 0o644);
    await writeAll(fh, data);
    await fs.release(fh);
    expect(parts).toBe(3);
    expect(memory.objects.get('capped')?.body.equals(data)).toBe(true);
  });

  it('gives the object its mode, and the store time as mtime', async () => {
    const fh = await fs.create('/moded', 0o600);
    await writeAll(fh, randomBytes(3 * PART));
    await fs.release(fh);
    const object = memory.objects.get('moded')!;
    expect(Number(object.metadata.mode)).toBe(S_IFREG | 0o600);
    expect(object.metadata.mtime).toBeUndefined();
    expect((await fs.getattr('/moded')).mtimeMs).toBe(object.lastModified.getTime());
  });

  it('keeps a chmod and times set before close', async () => {
    const fh = await fs.create('/later', 0o644);
    await writeAll(fh, randomBytes(3 * PART));
    await fs.chmod('/later', 0o700);
    await fs.utimens('/later', 1_000_000, 2_000_000);
    await fs.release(fh);
    const object = memory.objects.get('later')!;
    expect(Number(object.metadata.mode)).toBe(S_IFREG | 0o700);
    expect(Number(object.metadata.mtime)).toBe(2_000);
  });

  it('gives up streaming when bytes already sent are rewritten, and uploads the whole file', async () => {
    const data = randomBytes(6 * PART);
    const fh = await fs.create('/rewritten', 0o644);
    await writeAll(fh, data);
    data.write('patched', 10);
    await fs.write(fh, Buffer.from('patched'), 10);
    expect(memory.uploads.size).toBe(0); // aborted
    await fs.release(fh);
    expect(memory.objects.get('rewritten')?.body.equals(data)).toBe(true);
  });

  it('gives up streaming when truncated below the bytes sent', async () => {
    const data = randomBytes(6 * PART);
    const fh = await fs.create('/cut', 0o644);
    await writeAll(fh, data);
    await fs.ftruncate(fh, PART + 5);
    expect(memory.uploads.size).toBe(0);
    await fs.release(fh);
    expect(memory.objects.get('cut')?.body.equals(data.subarray(0, PART + 5))).toBe(true);
  });

  it('aborts the upload of a file unlinked while being written', async () => {
    const fh = await fs.create('/doomed', 0o644);
    await writeAll(fh, randomBytes(5 * PART));
    expect(memory.uploads.size).toBe(1);
    await fs.unlink('/doomed');
    await fs.release(fh);
    expect(memory.uploads.size).toBe(0);
    expect(memory.objects.has('doomed')).toBe(false);
  });

  it('completes at fsync, and a later write is uploaded whole at close', async () => {
    const data = randomBytes(5 * PART);
    const fh = await fs.create('/synced', 0o644);
    await writeAll(fh, data.subarray(0, 3 * PART));
    await fs.fsync(fh);
    expect(memory.objects.get('synced')?.body.equals(data.subarray(0, 3 * PART))).toBe(true);
    await writeAll(fh, data, 3 * PART);
    await fs.release(fh);
    expect(memory.objects.get('synced')?.body.equals(data)).toBe(true);
    expect(memory.uploads.size).toBe(0);
  });

  it('streams a file opened with O_TRUNC over an existing object', async () => {
    await memory.put('old', randomBytes(2 * PART));
    const data = randomBytes(4 * PART + 1);
    const fh = await fs.open('/old', O_RDWR | 0o1000);
    await writeAll(fh, data);
    expect(memory.uploads.size).toBe(1);
    await fs.release(fh);
    expect(memory.objects.get('old')?.body.equals(data)).toBe(true);
  });

  it('leaves nothing behind when the store keeps failing, and reports it at close', async () => {
    faulty.fail('uploadPart', { nth: 3, times: 1_000, code: 'Transient' });
    const fh = await fs.create('/failing', 0o644);
    await writeAll(fh, randomBytes(8 * PART));
    await expect(fs.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    expect(memory.uploads.size).toBe(0);
    faulty.clear();
    await fs.release(fh);
    expect(memory.uploads.size).toBe(0);
  });
});

describe("streaming upload: stored parts' staged bytes leave the page cache", () => {
  /** Records each drop, and checks when it starts that the store has the part and no other drop runs. */
  function recorder(behaviour: (index: number) => Promise<void> = async () => undefined) {
    const drops: Array<{ offset: number; length: number }> = [];
    const problems: string[] = [];
    let running = 0;
    const drop: PageCacheDrop = async (fd, offset, length) => {
      const number = offset / PART + 1;
      const stored = [...memory.uploads.values()].some((upload) => upload.parts.has(number));
      if (!stored) problems.push(`part ${number} dropped before the store had it`);
      if (running > 0) problems.push(`part ${number} dropped while another drop ran`);
      if (!(fd >= 0)) problems.push(`part ${number} dropped through a closed descriptor`);
      running += 1;
      drops.push({ offset, length });
      try {
        await behaviour(drops.length - 1);
      } finally {
        running -= 1;
      }
    };
    return { drop, drops, problems };
  }

  it('drops each part the store has, once, one at a time, and uploads the file whole', async () => {
    const { drop, drops, problems } = recorder(() => new Promise((resolve) => setImmediate(resolve)));
    fs = mount(faulty, 3, drop);
    const data = randomBytes(10 * PART + 123);
    const fh = await fs.create('/dropped', 0o644);
    await writeAll(fh, data);
    await fs.release(fh);
    expect(memory.objects.get('dropped')?.body.equals(data)).toBe(true);
    expect(problems).toEqual([]);
    expect(drops.length).toBeGreaterThan(0);
    // Whole parts, each once, in the order the store acknowledged them.
    const offsets = drops.map((d) => d.offset).sort((a, b) => a - b);
    expect(new Set(offsets).size).toBe(drops.length);
    for (const d of drops) expect(d.offset % PART === 0 && d.length === PART && d.offset < 10 * PART).toBe(true);
  });

  it('waits at close for the drop in progress and starts none after it', async () => {
    const events: string[] = [];
    let finishFirst: () => void = () => undefined;
    const { drop, drops, problems } = recorder((index) => {
      events.push(`drop ${index}`);
      if (index > 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        finishFirst = () => {
          events.push('first drop done');
          resolve();
        };
      });
    });
    const completing = Object.create(faulty) as ObjectStore;
    completing.completeMultipartUpload = async (...args) => {
      events.push('complete');
      return faulty.completeMultipartUpload(...args);
    };
    fs = mount(completing, 3, drop);
    const data = randomBytes(8 * PART);
    const fh = await fs.create('/waits', 0o644);
    await writeAll(fh, data); // writes never wait for a drop
    expect(drops).toHaveLength(1);
    const closing = fs.release(fh);
    finishFirst();
    await closing;
    expect(memory.objects.get('waits')?.body.equals(data)).toBe(true);
    expect(events.indexOf('first drop done')).toBeLessThan(events.indexOf('complete'));
    expect(events[events.length - 1]).toBe('complete'); // no drop after the stream ended
    expect(problems).toEqual([]);
  });

  it('never drops a part that failed, and a drop that fails changes nothing', async () => {
    const failing = recorder(() => Promise.reject(new Error('EIO from the disk')));
    fs = mount(faulty, 3, failing.drop);
    const data = randomBytes(6 * PART + 5);
    let fh = await fs.create('/drop-fails', 0o644);
    await writeAll(fh, data);
    await fs.release(fh);
    expect(memory.objects.get('drop-fails')?.body.equals(data)).toBe(true);
    expect(failing.drops.length).toBeGreaterThan(0);
    expect(failing.problems).toEqual([]);

    const recorded = recorder();
    fs = mount(faulty, 3, recorded.drop);
    faulty.fail('uploadPart', { nth: 3, times: 1, code: 'AccessDenied' });
    fh = await fs.create('/part-fails', 0o644);
    await writeAll(fh, data); // the stream gives up at the failure; close uploads the whole file
    await fs.release(fh);
    expect(memory.objects.get('part-fails')?.body.equals(data)).toBe(true);
    expect(recorded.problems).toEqual([]); // every drop was of a part the store had
    expect(memory.uploads.size).toBe(0);
  });
});
