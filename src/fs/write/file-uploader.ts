/**
 * Uploads a local staging file as one object.
 *
 * A file up to one part is a single PUT. A larger one is a multipart upload: the part size starts
 * at `partSize` and grows (in whole MiB) so the file never needs more than the store's maximum
 * part count; up to `concurrency` parts are read and in flight at once, so memory use is bounded
 * by `concurrency × part size` and by the mount's memory budget. Every failure exit aborts the multipart upload before the error
 * is rethrown, so no incomplete upload is left behind in the store.
 *
 * This is the simple, close-time uploader of the foundation; the streaming uploader that starts
 * while a program is still writing replaces it in fs/write/ later.
 */

import { open } from 'node:fs/promises';

import PQueue from 'p-queue';

import type { CompletedPart, ObjectStore, PutOptions } from '../../storage/object-store.js';
import type { MemoryBudget } from '../memory-budget.js';

const MiB = 1024 * 1024;

export interface FileUploaderOptions {
  /** Preferred part size in bytes (grown when a file would need too many parts). */
  partSize: number;
  /** Parts in flight at once per file. */
  concurrency: number;
  /** The mount's memory budget: part buffers wait for room in it. */
  budget?: MemoryBudget;
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

  async upload(key: string, localPath: string, size: number, putOptions: PutOptions): Promise<{ etag: string }> {
    const partSize = this.partSizeFor(size);
    const file = await open(localPath, 'r');
    try {
      if (size <= partSize) {
        await this.options.budget?.acquire(size);
        try {
          const body = Buffer.alloc(size);
          await readFully(file, body, 0);
          return await this.store.put(key, body, putOptions);
        } finally {
          this.options.budget?.release(size);
        }
      }
      return await this.uploadMultipart(key, file, size, partSize, putOptions);
    } finally {
      await file.close();
    }
  }

  private async uploadMultipart(
    key: string,
    file: import('node:fs/promises').FileHandle,
    size: number,
    partSize: number,
    putOptions: PutOptions,
  ): Promise<{ etag: string }> {
    const uploadId = await this.store.createMultipartUpload(key, putOptions);
    try {
      const partCount = Math.ceil(size / partSize);
      const parts: CompletedPart[] = new Array(partCount);
      const queue = new PQueue({ concurrency: this.options.concurrency });
      let failure: unknown;
      for (let index = 0; index < partCount; index++) {
        void queue.add(async () => {
          if (failure) return;
          try {
            const offset = index * partSize;
            const length = Math.min(partSize, size - offset);
            await this.options.budget?.acquire(length);
            try {
              const body = Buffer.alloc(length);
              await readFully(file, body, offset);
              const etag = await this.store.uploadPart(key, uploadId, index + 1, body);
              parts[index] = { partNumber: index + 1, etag };
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
      return await this.store.completeMultipartUpload(key, uploadId, parts);
    } catch (error) {
      await this.store.abortMultipartUpload(key, uploadId).catch(() => {
        // The upload error is what the writer must see; a failed abort is logged by the store's
        // retries and left to the bucket's lifecycle rule.
      });
      throw error;
    }
  }
}

async function readFully(file: import('node:fs/promises').FileHandle, into: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const { bytesRead } = await file.read(into, done, into.length - done, position + done);
    if (bytesRead === 0) throw new Error(`staging file ended ${into.length - done} bytes early`);
    done += bytesRead;
  }
}
