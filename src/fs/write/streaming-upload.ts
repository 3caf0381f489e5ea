/**
 * A multipart upload that runs while a program is still writing a file from its start.
 *
 * The file is staged on local disk as always; as soon as the staged bytes complete a part, that
 * part is read back (from the page cache) and handed to the multipart engine
 * (multipart-upload.ts), which keeps up to `concurrency` parts in flight. When that many are in
 * flight, the next write waits for one to finish: memory stays at `concurrency × part size`, and
 * a writer faster than the store is slowed to its pace instead of the daemon growing. `finish`
 * uploads the rest as the last part and completes the upload, so a close after a long
 * sequential write waits only for the tail.
 *
 * The final size is unknown while writing, so part sizes grow with the part number (the one
 * policy, part-sizes.ts): no file ever needs more than the store's maximum part count, and files
 * far above 5 GiB work. Parts are fixed byte ranges; a write or truncate that changes bytes
 * already sent cannot be streamed: the caller aborts and uploads the whole file at close instead.
 * Every exit that does not complete the upload aborts it (the engine does on a failure; the
 * caller calls `abort` when it gives the stream up).
 *
 * The staged bytes of a part the store has are kept only for a rewrite or a failure: with
 * `dropFromPageCache`, each such range is written back to disk and dropped from the page cache,
 * one range at a time (a single thread of Node's pool, never all of them). Otherwise the page
 * cache holds the whole file until it is closed, in fresh pages, which cost the daemon more than
 * its copy into them and leave the store's host less memory to reuse (bench/RESULTS.md, Write
 * path); dropped, the stream's pages are used again part after part. A drop that fails changes
 * nothing but that (the bytes are on disk or in the cache either way). `finish` and `abort` wait
 * for the one in progress and skip the rest, so none outlives the staging file's descriptor.
 */

import type { FileHandle } from 'node:fs/promises';

import type { ObjectStore, PutOptions, WrittenObject } from '../../storage/object-store.js';
import { MultipartUpload, type MultipartUploadOptions } from './multipart-upload.js';
import { PartSizes } from './part-sizes.js';

/** Writes bytes [offset, offset + length) of open file `fd` back to disk and drops them from the page cache. */
export type PageCacheDrop = (fd: number, offset: number, length: number) => Promise<void>;

export interface StreamingUploadOptions extends MultipartUploadOptions {
  /** Size of the first parts, bytes (at least the store's minimum part size). */
  partSize: number;
  /** Drops the staged bytes of parts the store has from the page cache; default: they stay. */
  dropFromPageCache?: PageCacheDrop;
}

export class StreamingUpload {
  /** Bytes [0, sent) are in parts uploaded or uploading. */
  private sentBytes = 0;
  private readonly upload: MultipartUpload;
  private readonly sizes: PartSizes;
  /** The drops of stored parts' staged bytes, one after another; none starts once this ends. */
  private dropping: Promise<void> = Promise.resolve();
  private dropsEnded = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    putOptions: PutOptions,
    private readonly options: StreamingUploadOptions,
  ) {
    this.upload = new MultipartUpload(store, key, putOptions, options);
    this.sizes = new PartSizes(store.capabilities, options.partSize);
  }

  /** Bytes already handed to the store: a change below this offset cannot be streamed. */
  get sent(): number {
    return this.sentBytes;
  }

  /** Whether any part has been started (else there is nothing to abort or complete). */
  get started(): boolean {
    return this.upload.started;
  }

  /** The options the upload was created with (the caller compares them with the final ones). */
  get createdWith(): PutOptions {
    return this.upload.createdWith;
  }

  /**
   * Uploads every part that the staged bytes [0, stagedSize) complete; returns once fewer than
   * `concurrency` parts are in flight. Throws if a part failed (the upload is then aborted).
   */
  async advance(staging: FileHandle, stagedSize: number): Promise<void> {
    for (;;) {
      const number = this.upload.added + 1;
      // The store's last allowed part is left for `finish`, which makes it as large as the rest.
      if (number >= this.store.capabilities.maxParts) break;
      const size = this.sizes.sizeOf(number);
      if (stagedSize < this.sentBytes + size) break;
      const start = this.sentBytes;
      await this.upload.send(staging, start, start + size, () => this.dropWhenStored(staging, start, size));
      this.sentBytes += size;
    }
  }

  /** Uploads bytes [sent, size) as the last part and completes the upload; aborts it on failure. */
  async finish(staging: FileHandle, size: number): Promise<WrittenObject> {
    await this.endDrops();
    if (size < this.sentBytes) {
      await this.upload.abort().catch(() => undefined);
      throw new Error(`${this.key}: the file shrank below the bytes already uploaded`);
    }
    if (size > this.sentBytes) {
      await this.upload.send(staging, this.sentBytes, size);
      this.sentBytes = size;
    }
    return this.upload.complete();
  }

  /** Abandons the upload: waits for parts in flight, then aborts it in the store. Idempotent. */
  async abort(): Promise<void> {
    const aborting = this.upload.abort(); // at once, as before drops existed: it ends the upload now
    await this.endDrops();
    return aborting;
  }

  /** Queues the drop of a stored part's staged bytes [start, start + length) behind the others. */
  private dropWhenStored(staging: FileHandle, start: number, length: number): void {
    const drop = this.options.dropFromPageCache;
    if (!drop) return;
    this.dropping = this.dropping.then(async () => {
      if (this.dropsEnded || staging.fd < 0) return;
      await drop(staging.fd, start, length).catch(() => undefined);
    });
  }

  /** Stops the drops: waits for the one in progress, and skips those queued. */
  private async endDrops(): Promise<void> {
    this.dropsEnded = true;
    await this.dropping;
  }
}
