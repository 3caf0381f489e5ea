/**
 * Uploads a local staging file as one object, at close.
 *
 * A file that fits in its first part is a single PUT. A larger one is a multipart upload through
 * the one engine (multipart-upload.ts: parts in flight under the memory budget, an abort on every
 * failure exit), in the part sizes of the one policy (part-sizes.ts), its base raised only when
 * the store allows too few parts for the file. When the start of the file is unchanged from the
 * object in the store, that start is copied inside the store instead of sent (`uploadReusing`).
 *
 * Files written from their start stream their parts while they are written instead
 * (streaming-upload.ts), through the same engine.
 */

import { type FileHandle, open } from 'node:fs/promises';

import type { ObjectStore, PutOptions, WrittenObject } from '../../storage/object-store.js';
import { LOCAL } from '../local-files.js';
import type { MemoryBudget } from '../memory-budget.js';
import type { UploadTracker } from './journal.js';
import { type CopySource, MultipartUpload, readPart } from './multipart-upload.js';
import type { PartBuffers } from './part-buffers.js';
import { PartSizes } from './part-sizes.js';

export interface FileUploaderOptions {
  /** Preferred part size in bytes (the base of the growing part sizes: part-sizes.ts). */
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

/** A range of the new object: bytes [start, end), copied from `copyFrom` or sent from the staging file. */
interface PartPlan {
  start: number;
  end: number;
  copyFrom?: CopySource;
}

export class FileUploader {
  constructor(
    private readonly store: ObjectStore,
    private readonly options: FileUploaderOptions,
  ) {}

  /** Uploads bytes [0, size) of `local`: a path, or a file already open (read, never closed here). */
  async upload(key: string, local: string | FileHandle, size: number, putOptions: PutOptions): Promise<WrittenObject> {
    const sizes = new PartSizes(this.store.capabilities, this.options.partSize, size);
    if (size <= sizes.sizeOf(1)) return this.putFile(key, local, size, putOptions);
    return this.uploadMultipart(key, local, planParts(sizes, 0, 0, size), putOptions);
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
    source: CopySource & { bytes: number },
    putOptions: PutOptions,
  ): Promise<WrittenObject> {
    const sizes = new PartSizes(this.store.capabilities, this.options.partSize, size);
    const copyFrom = { key: source.key, etag: source.etag };
    // Copied parts are never last unless nothing follows: each must reach the minimum size.
    const copied = planParts(sizes, 0, 0, source.bytes, this.store.capabilities).map((part) => ({ ...part, copyFrom }));
    const sent = planParts(sizes, copied.length, source.bytes, size);
    return this.uploadMultipart(key, localPath, [...copied, ...sent], putOptions);
  }

  /** Aborts a multipart upload a previous daemon left, and forgets its record. */
  async abandon(key: string, uploadId: string): Promise<void> {
    await this.store.abortMultipartUpload(key, uploadId);
    await this.options.tracker?.ended(uploadId).catch(() => undefined);
  }

  /** Uploads `data` (a small file's bytes, held in memory) in one request. */
  put(key: string, data: Buffer, putOptions: PutOptions): Promise<WrittenObject> {
    return this.store.put(key, data, putOptions);
  }

  private async putFile(key: string, local: string | FileHandle, size: number, putOptions: PutOptions): Promise<WrittenObject> {
    const file = typeof local === 'string' ? await open(local, LOCAL.read) : local;
    try {
      await this.options.budget?.acquire(size);
      try {
        const body = await readPart(file, 0, size, this.options.buffers);
        const result = await this.store.put(key, body, putOptions);
        this.options.buffers?.give(body);
        return result;
      } finally {
        this.options.budget?.release(size);
      }
    } finally {
      if (typeof local === 'string') await file.close();
    }
  }

  private async uploadMultipart(key: string, local: string | FileHandle, plan: PartPlan[], putOptions: PutOptions): Promise<WrittenObject> {
    const file = typeof local === 'string' ? await open(local, LOCAL.read) : local;
    const upload = new MultipartUpload(this.store, key, putOptions, this.options);
    try {
      for (const { start, end, copyFrom } of plan) {
        if (copyFrom) await upload.copy(copyFrom, start, end);
        else await upload.send(file, start, end);
      }
      return await upload.complete();
    } catch (error) {
      // The engine has aborted after a part's failure; this covers any other exit. The upload
      // error is what the writer must see; a failed abort keeps its record for the next mount.
      await upload.abort().catch(() => undefined);
      throw error;
    } finally {
      if (typeof local === 'string') await file.close();
    }
  }
}

/**
 * Bytes [start, end) cut into parts numbered from `after + 1`, in the sizes `sizes` gives them.
 * With `limits`, a last piece below the store's minimum part size is joined to the one before
 * (or, where that would pass the maximum, takes the bytes it lacks from it): for ranges that
 * other parts follow, since every part but the last of an upload must reach the minimum.
 */
function planParts(
  sizes: PartSizes,
  after: number,
  start: number,
  end: number,
  limits?: { minPartSize: number; maxPartSize: number },
): PartPlan[] {
  const parts: PartPlan[] = [];
  for (let at = start, number = after + 1; at < end; number++) {
    const next = Math.min(end, at + sizes.sizeOf(number));
    parts.push({ start: at, end: next });
    at = next;
  }
  const last = parts[parts.length - 1];
  const before = parts[parts.length - 2];
  if (limits && last && before && last.end - last.start < limits.minPartSize) {
    if (last.end - before.start <= limits.maxPartSize) {
      parts.pop();
      before.end = last.end;
    } else {
      before.end = last.start = last.end - limits.minPartSize;
    }
  }
  return parts;
}
