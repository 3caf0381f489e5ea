// The one multipart engine (src/fs/write/multipart-upload.ts): parts in flight under the memory
// budget, copied and sent parts, and an abort on every exit that does not complete the upload.
// FileUploader and StreamingUpload run on it; their own tests cover it through them as well.

import { randomBytes } from 'node:crypto';
import { type FileHandle, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { MemoryBudget } from '../../src/fs/memory-budget.js';
import { UploadTracker } from '../../src/fs/write/journal.js';
import { MultipartUpload } from '../../src/fs/write/multipart-upload.js';
import { FaultyStore } from '../../src/storage/faulty-store.js';
import { MemoryStore } from '../../src/storage/memory-store.js';

const KiB = 1024;
const PART = 4 * KiB;

let dir: string;
let file: FileHandle;
let bytes: Buffer;
let memory: MemoryStore;
let faulty: FaultyStore;
let budget: MemoryBudget;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'objmount-multipart-'));
  bytes = randomBytes(6 * PART);
  await writeFile(join(dir, 'staging'), bytes);
  file = await open(join(dir, 'staging'), 'r');
  memory = new MemoryStore({ minPartSize: PART });
  faulty = new FaultyStore(memory);
  budget = new MemoryBudget(64 * PART);
});

afterEach(async () => {
  await file.close();
  await rm(dir, { recursive: true, force: true });
});

function upload(key = 'k'): MultipartUpload {
  return new MultipartUpload(faulty, key, { metadata: { mode: '33188' } }, { concurrency: 2, budget, tracker: new UploadTracker(dir) });
}

async function records(): Promise<string[]> {
  return (await readdir(dir)).filter((name) => name.endsWith('.upload.json'));
}

/** What every exit that does not complete must leave: no upload, no object, no record, no budget held. */
async function expectNothingLeft(key = 'k'): Promise<void> {
  expect(memory.uploads.size).toBe(0);
  expect(memory.objects.has(key)).toBe(false);
  expect(await records()).toEqual([]);
  expect(budget.uploadBytes).toBe(0);
}

describe('MultipartUpload', () => {
  it('joins copied and sent parts in order, with the options it was created with', async () => {
    const old = randomBytes(3 * PART);
    const { etag } = await memory.put('k', old, {});
    const up = upload();
    await up.copy({ key: 'k', etag }, 0, 2 * PART);
    for (let at = 2 * PART; at < bytes.length; at += PART) await up.send(file, at, at + PART);
    expect(await records()).toHaveLength(1); // recorded while it runs
    await up.complete();
    const stored = memory.objects.get('k');
    expect(stored?.body.equals(Buffer.concat([old.subarray(0, 2 * PART), bytes.subarray(2 * PART)]))).toBe(true);
    expect(stored?.metadata).toEqual({ mode: '33188' });
    expect(memory.uploads.size).toBe(0);
    expect(await records()).toEqual([]);
    expect(budget.uploadBytes).toBe(0);
  });

  it('holds a sent part in the memory budget until the store has it', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const slow = Object.create(faulty) as FaultyStore;
    slow.uploadPart = async (...args) => {
      await held;
      return faulty.uploadPart(...args);
    };
    const up = new MultipartUpload(slow, 'k', {}, { concurrency: 2, budget });
    await up.send(file, 0, PART);
    await up.send(file, PART, 3 * PART);
    expect(budget.uploadBytes).toBe(3 * PART);
    release();
    await up.complete();
    expect(budget.uploadBytes).toBe(0);
    expect(memory.objects.get('k')?.body.equals(bytes.subarray(0, 3 * PART))).toBe(true);
  });

  it('aborts when a sent part fails, and throws that failure from the next call', async () => {
    faulty.fail('uploadPart', { nth: 1, code: 'Transient' });
    const up = upload();
    const sending = (async () => {
      for (let at = 0; at < bytes.length; at += PART) await up.send(file, at, at + PART);
    })();
    await expect(sending).rejects.toMatchObject({ code: 'Transient' });
    expect(memory.calls.get('abortMultipartUpload')).toBe(1);
    await expectNothingLeft();
    await expect(up.complete()).rejects.toMatchObject({ code: 'Transient' });
  });

  it('aborts when a copied part fails (the source changed)', async () => {
    await memory.put('k', randomBytes(3 * PART), {});
    const up = upload();
    await up.copy({ key: 'k', etag: '"not-the-etag"' }, 0, 2 * PART);
    await up.send(file, 2 * PART, 3 * PART);
    await expect(up.complete()).rejects.toMatchObject({ code: 'PreconditionFailed' });
    expect(memory.calls.get('abortMultipartUpload')).toBe(1);
    expect(memory.uploads.size).toBe(0);
    expect(await records()).toEqual([]);
  });

  it('aborts when the staging file is shorter than a part', async () => {
    const up = upload();
    await up.send(file, 5 * PART, 7 * PART);
    await expect(up.complete()).rejects.toThrow(/staging file ended/);
    await expectNothingLeft();
  });

  it('aborts when the completion fails', async () => {
    faulty.fail('completeMultipartUpload', { code: 'Throttled' });
    const up = upload();
    await up.send(file, 0, PART);
    await expect(up.complete()).rejects.toMatchObject({ code: 'Throttled' });
    expect(memory.calls.get('abortMultipartUpload')).toBe(1);
    await expectNothingLeft();
  });

  it('creates nothing when the upload cannot be created', async () => {
    faulty.fail('createMultipartUpload', { code: 'AccessDenied' });
    const up = upload();
    await up.send(file, 0, PART);
    await expect(up.complete()).rejects.toMatchObject({ code: 'AccessDenied' });
    expect(memory.calls.get('uploadPart') ?? 0).toBe(0);
    await expectNothingLeft();
  });

  it('reports the part failure, not the abort failure, and keeps the record for the next mount', async () => {
    faulty.fail('uploadPart', { code: 'Transient' });
    faulty.fail('abortMultipartUpload', { code: 'Unreachable' });
    const up = upload();
    await up.send(file, 0, PART);
    await expect(up.complete()).rejects.toMatchObject({ code: 'Transient' });
    expect(memory.objects.has('k')).toBe(false);
    expect(await records()).toHaveLength(1);
  });

  it('aborts when given up, after its parts in flight, and only once', async () => {
    const up = upload();
    await up.send(file, 0, PART);
    await up.send(file, PART, 2 * PART);
    await up.abort();
    await up.abort();
    expect(memory.calls.get('abortMultipartUpload')).toBe(1);
    await expectNothingLeft();
    await expect(up.send(file, 2 * PART, 3 * PART)).rejects.toThrow(/has ended/);
  });

  it('sends nothing to abort when given up before its first part', async () => {
    const up = upload();
    await up.abort();
    expect(memory.calls.get('createMultipartUpload') ?? 0).toBe(0);
    expect(memory.calls.get('abortMultipartUpload') ?? 0).toBe(0);
  });
});
