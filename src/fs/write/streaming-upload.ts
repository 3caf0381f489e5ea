/**
 * A multipart upload that runs while a program is still writing a file from its start.
 *
 * The file is staged on local disk as always; as soon as the staged bytes complete a part, that
 * part is read back (from the page cache) and uploaded, up to `concurrency` parts at once. When
 * that many are in flight, the next write waits for one to finish: memory stays at
 * `concurrency × part size`, and a writer faster than the store is slowed to its pace instead of
 * the daemon growing. `finish` uploads the rest as the last part and completes the upload, so a
 * close after a long sequential write waits only for the tail.
 *
 * The final size is unknown while writing, so part sizes grow with the part number (see
 * `partSizeOf`): no file ever needs more than the store's maximum part count, and files far
 * above 5 GiB work. Parts are fixed byte ranges; a write or truncate that changes bytes already
 * sent cannot be streamed: the caller aborts and uploads the whole file at close instead.
 * Every exit that does not complete the upload aborts it.
 */

import type { FileHandle } from 'node:fs/promises';

import type { CompletedPart, ObjectStore, PutOptions, StoreCapabilities } from '../../storage/object-store.js';
import type { MemoryBudget } from '../memory-budget.js';
import { readPart } from './file-uploader.js';
import type { UploadTracker } from './journal.js';
import type { PartBuffers } from './part-buffers.js';

export interface StreamingUploadOptions {
  /** Size of the first parts, bytes (at least the store's minimum part size). */
  partSize: number;
  /** Parts in flight at once. */
  concurrency: number;
  /** The mount's memory budget: part buffers wait for room in it. */
  budget?: MemoryBudget;
  /** Records the upload while it runs, for the next mount after a crash. */
  tracker?: UploadTracker;
  /** Where part buffers come from and go back to; default: new memory for each part. */
  buffers?: PartBuffers;
}

/** How many tiers of part sizes: each tier has maxParts / TIERS parts, each tier's twice the last. */
const TIERS = 10;

/** The size of part `number` (1-based) of a file whose size is not known in advance. */
export function partSizeOf(number: number, partSize: number, capabilities: StoreCapabilities): number {
  const perTier = Math.max(1, Math.floor(capabilities.maxParts / TIERS));
  const tier = Math.min(TIERS - 1, Math.floor((number - 1) / perTier));
  return Math.min(capabilities.maxPartSize, Math.max(partSize, capabilities.minPartSize) * 2 ** tier);
}

export class StreamingUpload {
  /** Bytes [0, sent) are in parts uploaded or uploading. */
  private sentBytes = 0;
  private readonly parts: CompletedPart[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private uploadId?: Promise<string>;
  private failure?: unknown;
  private ended = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    private readonly putOptions: PutOptions,
    private readonly options: StreamingUploadOptions,
  ) {}

  /** Bytes already handed to the store: a change below this offset cannot be streamed. */
  get sent(): number {
    return this.sentBytes;
  }

  /** Whether any part has been started (else there is nothing to abort or complete). */
  get started(): boolean {
    return this.uploadId !== undefined;
  }

  /** The options the upload was created with (the caller compares them with the final ones). */
  get createdWith(): PutOptions {
    return this.putOptions;
  }

  /**
   * Uploads every part that the staged bytes [0, stagedSize) complete; returns once fewer than
   * `concurrency` parts are in flight. Throws if a part failed (the caller then aborts).
   */
  async advance(staging: FileHandle, stagedSize: number): Promise<void> {
    this.throwIfFailed();
    for (;;) {
      const number = this.parts.length + this.inflight.size + 1;
      // The store's last allowed part is left for `finish`, which makes it as large as the rest.
      if (number >= this.store.capabilities.maxParts) break;
      const size = partSizeOf(number, this.options.partSize, this.store.capabilities);
      if (stagedSize < this.sentBytes + size) break;
      while (this.inflight.size >= this.options.concurrency) {
        await Promise.race(this.inflight);
        this.throwIfFailed();
      }
      await this.options.budget?.acquire(size);
      this.startPart(staging, number, this.sentBytes, size, true);
      this.sentBytes += size;
    }
  }

  /** Uploads bytes [sent, size) as the last part and completes the upload. */
  async finish(staging: FileHandle, size: number): Promise<{ etag: string }> {
    if (size < this.sentBytes) throw new Error(`${this.key}: the file shrank below the bytes already uploaded`);
    if (size > this.sentBytes) {
      await this.options.budget?.acquire(size - this.sentBytes);
      this.startPart(staging, this.parts.length + this.inflight.size + 1, this.sentBytes, size - this.sentBytes, true);
      this.sentBytes = size;
    }
    await Promise.all(this.inflight);
    this.throwIfFailed();
    const uploadId = await this.uploadId!;
    this.parts.sort((a, b) => a.partNumber - b.partNumber);
    const result = await this.store.completeMultipartUpload(this.key, uploadId, this.parts);
    this.ended = true;
    await this.options.tracker?.ended(uploadId).catch(() => undefined);
    return result;
  }

  /** Abandons the upload: waits for parts in flight, then aborts it in the store. Idempotent. */
  async abort(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await Promise.allSettled(this.inflight);
    const uploadId = await this.uploadId?.catch(() => undefined);
    if (uploadId === undefined) return;
    await this.store.abortMultipartUpload(this.key, uploadId); // on failure the record stays for the next mount
    await this.options.tracker?.ended(uploadId).catch(() => undefined);
  }

  private startPart(staging: FileHandle, number: number, offset: number, size: number, budgeted = false): void {
    this.uploadId ??= this.store.createMultipartUpload(this.key, this.putOptions).then(async (id) => {
      await this.options.tracker?.begun(this.key, id).catch(() => undefined); // only crash recovery needs it
      return id;
    });
    const part = (async () => {
      const body = await readPart(staging, offset, size, this.options.buffers);
      const uploadId = await this.uploadId!;
      const etag = await this.store.uploadPart(this.key, uploadId, number, body);
      this.options.buffers?.give(body);
      this.parts.push({ partNumber: number, etag });
    })()
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.inflight.delete(part);
        if (budgeted) this.options.budget?.release(size);
      });
    this.inflight.add(part);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
