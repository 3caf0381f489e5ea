/**
 * The state of one file while any handle has it open, shared by all its handles.
 *
 * Until the first write, reads go to the store (ranged GETs pinned to the ETag seen at open).
 * The first write or truncate makes a local staging copy, downloading only the part of the object
 * from the first byte changed on (nothing for an append or a truncate); from then on reads and
 * writes use that copy (filling in the start from the store when they reach below it) and the
 * file is dirty until `flush`/`fsync` uploads it. Operations that change the file run one at a time (`exclusive`)
 * so an upload never races a write.
 */

import { createWriteStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';

import type { ObjectStore } from '../storage/object-store.js';
import type { Attributes } from './attributes.js';
import { FsError } from './errors.js';
import { Staging, type StagingMemory } from './staging.js';
import type { LogEntry } from './write/journal-log.js';
import type { StreamingUpload } from './write/streaming-upload.js';

export class OpenFile {
  /** Open handles. */
  refs = 0;
  /** Local copy, once written or truncated: in memory while new and small (staging.ts). */
  private staging?: Staging;
  /** Changes made so far (each write, truncate or attribute change counts one). */
  changes = 0;
  /** Async mode: `changes` when the pending journal record was made (the record holds them all). */
  journaledChanges = -1;
  private contentDirty: boolean;
  private attributesDirty = false;
  /** Unlinked while open: never upload again. */
  unlinked = false;
  /** The upload running while the file is written from its start (see StreamingUpload). */
  stream?: StreamingUpload;
  /** A stream was given up since the last upload: upload the whole file at close instead. */
  streamStopped = false;
  /** utimens set the times since the last upload (they are then kept, not the upload time). */
  timesSet = false;
  /** Async mode: a close was acknowledged, its journal record written, its upload not done yet. */
  pending = false;
  /** Async mode: the pending record, when it is in the journal log (a small file's). */
  logged?: LogEntry;
  /**
   * Bytes [0, stagedFrom) are not in the staging file: they are the store's object (at `etag`),
   * unchanged. Reads and writes below it download that range first; an upload copies it inside
   * the store where it can (UploadPartCopy).
   */
  stagedFrom = 0;
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    /** Path in the mount and store key; both change when the file is renamed while open. */
    public path: string,
    public key: string,
    public attrs: Attributes,
    /** ETag of the store's object ('' when it does not exist yet). */
    public etag: string,
    public contentType: string | undefined,
    private readonly stagingPath: string,
    /** Room for copies in memory; without it, every copy is a file. */
    private readonly stagingMemory?: StagingMemory,
  ) {
    this.contentDirty = etag === '';
  }

  /** Content differs from the store's object. */
  get dirty(): boolean {
    return this.contentDirty;
  }

  set dirty(value: boolean) {
    if (value) this.changes += 1;
    this.contentDirty = value;
  }

  /** Attributes changed (chmod, utimens, ...) and are not yet in the store. */
  get metadataDirty(): boolean {
    return this.attributesDirty;
  }

  set metadataDirty(value: boolean) {
    if (value) this.changes += 1;
    this.attributesDirty = value;
  }

  /** Async mode: a journal record holds every change made so far (a release after the close's flush journals nothing more). */
  get journaled(): boolean {
    return this.pending && this.journaledChanges === this.changes;
  }

  get existsInStore(): boolean {
    return this.etag !== '';
  }

  /**
   * Made by create and not written, truncated or saved since: all a save could store is an
   * empty object (the file's existence, and its metadata).
   */
  get untouchedSinceCreate(): boolean {
    return this.etag === '' && !this.staging && !this.stream && this.attrs.size === 0 && !this.pending && !this.unlinked;
  }

  get staged(): boolean {
    return this.staging !== undefined;
  }

  /** Runs `task` after every task queued before it. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.tail.then(task, task);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Makes the local copy, keeping the first `keepBytes` of the store's object. Only bytes from
   * `from` on are downloaded: [0, from) stay in the store (see `stagedFrom`), so appending to a
   * large object downloads nothing.
   */
  async stage(store: ObjectStore, keepBytes: number, from = 0): Promise<Staging> {
    if (this.staging) return this.staging;
    const start = this.existsInStore ? Math.min(from, keepBytes) : 0;
    const download = this.existsInStore && keepBytes > start;
    const memory = download || !this.stagingMemory ? undefined : Staging.inMemory(this.stagingPath, this.stagingMemory);
    const staging = memory ?? (await Staging.onDisk(this.stagingPath));
    try {
      if (download) await this.download(store, await staging.onDisk(), start, keepBytes);
    } catch (error) {
      await staging.discard();
      throw error;
    }
    this.staging = staging;
    this.stagedFrom = start;
    return staging;
  }

  /** Downloads [from, stagedFrom) into the staging file, so it holds everything from `from` on. */
  async fill(store: ObjectStore, from = 0): Promise<void> {
    if (!this.staging || from >= this.stagedFrom) return;
    await this.download(store, await this.staging.onDisk(), from, this.stagedFrom);
    this.stagedFrom = from;
  }

  /** After a truncate to `size`: nothing of the store's object above it is needed any more. */
  truncatedTo(size: number): void {
    this.stagedFrom = Math.min(this.stagedFrom, size);
  }

  private async download(store: ObjectStore, handle: FileHandle, start: number, end: number): Promise<void> {
    const { body } = await store.getStream(this.key, { ifMatch: this.etag, range: { start, end: end - 1 } });
    const sink = createWriteStream('', { fd: handle.fd, autoClose: false, start });
    await pipeline(body, sink);
    // A body cut short must not leave a hole that would later be uploaded as zeros.
    if (sink.bytesWritten !== end - start) {
      throw new FsError('EIO', `${this.path}: the store sent ${sink.bytesWritten} of ${end - start} bytes`);
    }
  }

  get stagingFile(): string | undefined {
    return this.staging?.path;
  }

  /** The staging file's open handle, once the copy is on disk (positional reads only: it is shared with the writes). */
  get stagingHandle(): FileHandle | undefined {
    return this.staging?.fileHandle;
  }

  /** The staged bytes [0, size) while the copy is in memory (a view, valid until the next change). */
  stagedBytes(size: number): Buffer | undefined {
    return this.staging?.bytes(size);
  }

  /** The staging copy's file, with every staged byte (a copy in memory goes there now). */
  async stagedOnDisk(): Promise<FileHandle> {
    return this.staging!.onDisk();
  }

  async readStaged(into: Buffer, length: number, position: number): Promise<number> {
    const staging = this.staging!;
    let done = 0;
    while (done < length) {
      const { bytesRead } = await staging.read(into, done, length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  async discard(): Promise<void> {
    const staging = this.staging;
    this.staging = undefined;
    await staging?.discard();
  }
}

export function stagingPathFor(directory: string, id: string): string {
  return join(directory, `staging-${id}`);
}
