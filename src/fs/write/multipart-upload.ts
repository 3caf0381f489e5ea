/**
 * The one multipart engine: every multipart upload of a mount (a file streamed while it is
 * written, a staged file uploaded at close, one that reuses the start of the object it replaces)
 * runs through a `MultipartUpload`.
 *
 * The caller adds parts in order, each a byte range of a local staging file (`send`) or a range
 * of an object already in the store, copied there (`copy`); part sizes are the caller's, from
 * the one part-size policy (part-sizes.ts). Up to `concurrency` parts are in flight; a sent part
 * also holds its bytes in the mount's memory budget until the store has them. `send` and `copy`
 * return once their part has started, so they wait while the upload is at its limit: a writer
 * faster than the store is slowed to its pace, and memory stays at `concurrency × part size`.
 *
 * The upload is created in the store with its first part, and recorded by the tracker from then
 * until it ends (for the next mount, after a crash). The first failure of any part ends it: the
 * next `send`, `copy` or `complete` aborts the upload in the store and throws that failure (a
 * failed abort is not what the writer needs to hear: its record stays, and the next mount aborts
 * it). `abort` gives the upload up for any other reason. So every exit that does not complete
 * the upload aborts it.
 */

import type { FileHandle } from 'node:fs/promises';

import type { CompletedPart, ObjectStore, PutOptions, WrittenObject } from '../../storage/object-store.js';
import type { MemoryBudget } from '../memory-budget.js';
import type { UploadTracker } from './journal.js';
import type { PartBuffers } from './part-buffers.js';

export interface MultipartUploadOptions {
  /** Parts in flight at once. */
  concurrency: number;
  /** The mount's memory budget: a sent part's bytes wait for room in it. */
  budget?: MemoryBudget;
  /** Records the upload while it runs, for the next mount after a crash. */
  tracker?: UploadTracker;
  /** Where part buffers come from and go back to; default: new memory for each part. */
  buffers?: PartBuffers;
}

/** An object in the store whose bytes become copied parts (at this ETag, or the copy fails). */
export interface CopySource {
  key: string;
  etag: string;
}

export class MultipartUpload {
  private readonly parts: CompletedPart[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private uploadId?: Promise<string>;
  private failure?: unknown;
  private ended = false;
  private partCount = 0;

  constructor(
    private readonly store: ObjectStore,
    private readonly key: string,
    private readonly putOptions: PutOptions,
    private readonly options: MultipartUploadOptions,
  ) {}

  /** Whether any part has been started (else there is nothing to abort or complete). */
  get started(): boolean {
    return this.uploadId !== undefined;
  }

  /** Parts added so far: the next one is number `added + 1`. */
  get added(): number {
    return this.partCount;
  }

  /** The options the upload was created with. */
  get createdWith(): PutOptions {
    return this.putOptions;
  }

  /**
   * Adds bytes [start, end) of `file` as the next part; returns once it has started. `onStored`
   * is called once the store has the part (never after a failure).
   */
  async send(file: FileHandle, start: number, end: number, onStored?: () => void): Promise<void> {
    await this.waitForRoom();
    const length = end - start;
    await this.options.budget?.acquire(length);
    this.start(
      async (uploadId, number) => {
        const body = await readPart(file, start, length, this.options.buffers);
        const etag = await this.store.uploadPart(this.key, uploadId, number, body);
        this.options.buffers?.give(body); // only after success: after a failure the SDK may still hold it
        onStored?.();
        return etag;
      },
      () => this.options.budget?.release(length),
    );
  }

  /** Adds bytes [start, end) of `source` as the next part, copied inside the store. */
  async copy(source: CopySource, start: number, end: number): Promise<void> {
    await this.waitForRoom();
    this.start((uploadId, number) =>
      this.store.uploadPartCopy(this.key, uploadId, number, { key: source.key, range: { start, end: end - 1 }, ifMatch: source.etag }),
    );
  }

  /** Waits for the parts in flight and completes the upload (at least one part must be added). */
  async complete(): Promise<WrittenObject> {
    await Promise.all(this.inflight);
    await this.throwIfFailed();
    if (!this.uploadId) throw new Error(`${this.key}: a multipart upload needs at least one part`);
    try {
      const uploadId = await this.uploadId;
      this.parts.sort((a, b) => a.partNumber - b.partNumber);
      const result = await this.store.completeMultipartUpload(this.key, uploadId, this.parts);
      this.ended = true;
      await this.options.tracker?.ended(uploadId).catch(() => undefined);
      return result;
    } catch (error) {
      this.failure ??= error;
      await this.throwIfFailed();
      throw error;
    }
  }

  /** Gives the upload up: waits for the parts in flight, then aborts it in the store. Idempotent. */
  async abort(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await Promise.allSettled(this.inflight);
    const uploadId = await this.uploadId?.catch(() => undefined);
    if (uploadId === undefined) return; // never created: nothing in the store
    await this.store.abortMultipartUpload(this.key, uploadId); // on failure the record stays for the next mount
    await this.options.tracker?.ended(uploadId).catch(() => undefined);
  }

  /** Waits until fewer than `concurrency` parts are in flight; throws (after aborting) if one failed. */
  private async waitForRoom(): Promise<void> {
    if (this.ended && this.failure === undefined) throw new Error(`${this.key}: the multipart upload has ended`);
    await this.throwIfFailed();
    while (this.inflight.size >= this.options.concurrency) {
      await Promise.race(this.inflight);
      await this.throwIfFailed();
    }
  }

  private start(upload: (uploadId: string, number: number) => Promise<string>, settled?: () => void): void {
    const number = ++this.partCount;
    this.uploadId ??= this.store.createMultipartUpload(this.key, this.putOptions).then(async (id) => {
      await this.options.tracker?.begun(this.key, id).catch(() => undefined); // only crash recovery needs it
      return id;
    });
    const uploadId = this.uploadId;
    const part = (async () => {
      const etag = await upload(await uploadId, number);
      this.parts.push({ partNumber: number, etag });
    })()
      .catch((error: unknown) => {
        this.failure ??= error;
      })
      .finally(() => {
        this.inflight.delete(part);
        settled?.();
      });
    this.inflight.add(part);
  }

  /** After a failure: aborts the upload (its own failure is not the one to report) and throws. */
  private async throwIfFailed(): Promise<void> {
    if (this.failure === undefined) return;
    await this.abort().catch(() => undefined);
    throw this.failure;
  }
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
