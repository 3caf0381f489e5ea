/**
 * Uploads a local staging file as one object, at close.
 *
 * A file up to one part is a single PUT. A larger one is a multipart upload: the part size starts
 * at `partSize` and grows (in whole MiB) so the file never needs more than the store's maximum
 * part count; up to `concurrency` parts are read and in flight at once, so memory use is bounded
 * by `concurrency × part size` and by the mount's memory budget. When the start of the file is
 * unchanged from the object in the store, that start is copied inside the store instead of sent
 * (`uploadReusing`). Every failure exit aborts the multipart upload before the error is
 * rethrown, so no incomplete upload is left behind in the store.
 *
 * Files written from their start stream their parts while they are written instead
 * (streaming-upload.ts).
 */

import { type FileHandle, open } from 'node:fs/promises';

import PQueue from 'p-queue';

import type { CompletedPart, ObjectStore, PutOptions } from '../../storage/object-store.js';
import type { MemoryBudget } from '../memory-budget.js';
import type { UploadTracker } from './journal.js';
import type { PartBuffers } from './part-buffers.js';

const MiB = 1024 * 1024;

export interface FileUploaderOptions {
  /** Preferred part size in bytes (grown when a file would need too many parts). */
  partSize: number;
  /** Parts in flight at once per file. */
  concurrency: number;
  /** The mount's memory budget: part buffers wait for room in it. */
  budget?: MemoryBudget;
  /** Records each multipart upload while it runs, for the next mount after a crash. */
  tracker?: UploadTracker;
  /** Where part buffers come from and go back to; default: new memory for each part. */
  buffers?: PartBuffers;
}

export class FileUploader {
  constructor(
    private readonly store: ObjectStore,
    private readonly options: FileUploaderOptions,
  ) {}

  /** The part size used for a file of `size` bytes. */
  partSizeFor(size: number): number {
    const { maxParts, minPartSize, maxPartSize } = this.store.capabilities;
    const needed = Math.ceil(size / maxParts);
    const preferred = Math.max(this.options.partSize, minPartSize);
    // Grow in whole MiB only when the preferred size would need too many parts.
    const partSize = needed > preferred ? Math.ceil(needed / MiB) * MiB : preferred;
    if (partSize > maxPartSize) {
      throw new RangeError(`a ${size}-byte file needs parts larger than the store's ${maxPartSize}-byte maximum`);
    }
    return partSize;
  }

  /** Uploads bytes [0, size) of `local`: a path, or a file already open (read, never closed here). */
  async upload(key: string, local: string | FileHandle, size: number, putOptions: PutOptions): Promise<{ etag: string }> {
    const partSize = this.partSizeFor(size);
    const file = typeof local === 'string' ? await open(local, 'r') : local;
    try {
      if (size <= partSize) {
        await this.options.budget?.acquire(size);
        try {
          const body = await readPart(file, 0, size, this.options.buffers);
          const result = await this.store.put(key, body, putOptions);
          this.options.buffers?.give(body);
          return result;
        } finally {
          this.options.budget?.release(size);
        }
      }
      return await this.uploadMultipart(key, file, splitRange(0, size, partSize), putOptions);
    } finally {
      if (typeof local === 'string') await file.close();
    }
  }

  /**
   * Whether `uploadReusing` can keep the first `unchangedBytes` in the store: the store copies
   * parts, and they make at least one part of the minimum size.
   */
  canReuse(unchangedBytes: number): boolean {
    return this.store.capabilities.partCopy && unchangedBytes >= this.store.capabilities.minPartSize;
  }

  /**
   * Uploads a file whose first `source.bytes` are unchanged from the object `source.key` (at
   * ETag `source.etag`): those become parts copied inside the store (UploadPartCopy), and only
   * the rest is read from the staging file and sent. Appending 1 MiB to a 1 GiB object sends
   * about 1 MiB.
   */
  async uploadReusing(
    key: string,
    localPath: string,
    size: number,
    source: { key: string; etag: string; bytes: number },
    putOptions: PutOptions,
  ): Promise<{ etag: string }> {
    const partSize = this.partSizeFor(size);
    const { minPartSize, maxPartSize } = this.store.capabilities;
    // Copied parts are never last unless nothing follows: each must reach the minimum size.
    const copied = splitRange(0, source.bytes, Math.min(maxPartSize, Math.max(partSize, minPartSize)), minPartSize).map(
      (part) => ({ ...part, copyFrom: source }),
    );
    const sent = splitRange(source.bytes, size, partSize);
    const file = await open(localPath, 'r');
    try {
      return await this.uploadMultipart(key, file, [...copied, ...sent], putOptions);
    } finally {
      await file.close();
    }
  }

  private async uploadMultipart(key: string, file: FileHandle, plan: PartPlan[], putOptions: PutOptions): Promise<{ etag: string }> {
    const uploadId = await this.store.createMultipartUpload(key, putOptions);
    await this.options.tracker?.begun(key, uploadId).catch(() => undefined); // only crash recovery needs it
    try {
      const parts: CompletedPart[] = new Array(plan.length);
      const queue = new PQueue({ concurrency: this.options.concurrency });
      let failure: unknown;
      for (const [index, { start, end, copyFrom }] of plan.entries()) {
        void queue.add(async () => {
          if (failure) return;
          const partNumber = index + 1;
          try {
            if (copyFrom) {
              const range = { start, end: end - 1 };
              parts[index] = { partNumber, etag: await this.store.uploadPartCopy(key, uploadId, partNumber, { key: copyFrom.key, range, ifMatch: copyFrom.etag }) };
              return;
            }
            const length = end - start;
            await this.options.budget?.acquire(length);
            try {
              const body = await readPart(file, start, length, this.options.buffers);
              parts[index] = { partNumber, etag: await this.store.uploadPart(key, uploadId, partNumber, body) };
              this.options.buffers?.give(body);
            } finally {
              this.options.budget?.release(length);
            }
          } catch (error) {
            failure ??= error;
          }
        });
      }
      await queue.onIdle();
      if (failure) throw failure;
      const result = await this.store.completeMultipartUpload(key, uploadId, parts);
      await this.options.tracker?.ended(uploadId).catch(() => undefined);
      return result;
    } catch (error) {
      // The upload error is what the writer must see; a failed abort keeps its record, so the
      // next mount tries again.
      await this.abandon(key, uploadId).catch(() => undefined);
      throw error;
    }
  }

  /** Aborts a multipart upload and forgets its record. */
  async abandon(key: string, uploadId: string): Promise<void> {
    await this.store.abortMultipartUpload(key, uploadId);
    await this.options.tracker?.ended(uploadId).catch(() => undefined);
  }
}

interface PartPlan {
  start: number;
  /** Exclusive. */
  end: number;
  copyFrom?: { key: string; etag: string };
}

/**
 * [start, end) in parts of `partSize`. With `minPartSize`, a last piece smaller than that is
 * merged into the one before it: for ranges that other parts follow, since every part but the
 * last of an upload must reach the store's minimum.
 */
function splitRange(start: number, end: number, partSize: number, minPartSize = 0): PartPlan[] {
  const parts: PartPlan[] = [];
  for (let at = start; at < end; at += partSize) parts.push({ start: at, end: Math.min(end, at + partSize) });
  const last = parts[parts.length - 1];
  if (parts.length > 1 && last && last.end - last.start < minPartSize) {
    parts.pop();
    parts[parts.length - 1]!.end = last.end;
  }
  return parts;
}

/**
 * Bytes [position, position + length) of a staged file, in a buffer of their own (from `buffers`:
 * give it back once the store has the part).
 */
export async function readPart(file: FileHandle, position: number, length: number, buffers?: PartBuffers): Promise<Buffer> {
  const into = buffers?.take(length) ?? Buffer.allocUnsafe(length); // every byte is read into it, or it is dropped
  let done = 0;
  while (done < length) {
    const { bytesRead } = await file.read(into, done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`the staging file ended ${length - done} bytes early`);
    done += bytesRead;
  }
  return into;
}
