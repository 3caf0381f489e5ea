/**
 * Saving open files to the store: when and how a file's content and metadata are committed.
 *
 * - While a new file is written from its first byte, its parts stream into a multipart upload
 *   (`StreamingUpload`), so close has only the last part left; a write that goes back over bytes
 *   already sent gives the stream up, and close uploads the whole file instead.
 * - `commit` (sync close, fsync, rename, drain) uploads now and returns once the object is
 *   durable: the stream's end, else a whole-file upload (copying untouched leading bytes inside
 *   the store where it can), else a copy onto itself for metadata alone.
 * - `commitLater` (async close) makes the file durable on local disk and queues the upload: a
 *   small file's record and bytes are appended to the journal log (journal-log.ts), a larger
 *   file's staging copy gets a record beside it (journal.ts); a failed background upload is tried
 *   again, less and less often, while the journal keeps the data. Closes in flight share the
 *   journal's fsyncs (group commit), and small files are uploaded many at a time (`SMALL_UPLOADS`).
 * - Async mode saves a directory's marker (an empty `dir/` object) the same way, as an open file
 *   with no handle (`saveMarkerLater`: mkdir, chmod, chown, utimens of a directory): journaled at
 *   once, and PUT with its latest metadata a moment later (`MARKER_DELAY_MS`), so that `tar x`'s
 *   mkdir, then its times, then its mode cost one PUT in the background instead of a PUT and two
 *   COPYs waited for.
 * - A close whose upload failed (either mode) keeps the file, staged copy and all, in the table
 *   after its last handle is released, and tries again in the background the same way, until
 *   the upload succeeds (or the unmount's drain) or the file is deleted: the error was reported,
 *   but the bytes are not thrown away.
 *
 * Every commit of a file runs inside the file's `exclusive` queue, so it never races a write.
 */

import PQueue from 'p-queue';

import type { Logger } from '../../log/logger.js';
import type { ObjectStore, PutOptions, WrittenObject } from '../../storage/object-store.js';
import { contentTypeOf, metadataOf, metadataWithoutTimes } from '../attributes.js';
import { FsError, toFsError } from '../errors.js';
import type { MemoryBudget } from '../memory-budget.js';
import type { Namespace } from '../namespace.js';
import type { Attributes } from '../attributes.js';
import { OpenFile } from '../open-file.js';
import type { Staging, StagingMemory } from '../staging.js';
import type { OpenFileTable } from '../open-files.js';
import { FileUploader } from './file-uploader.js';
import { Journal, type JournalStats, UploadTracker, removeRecord } from './journal.js';
import { JournalLog, LOG_RECORD_MAX, type LogEntry } from './journal-log.js';
import { PartBuffers } from './part-buffers.js';
import { type PageCacheDrop, StreamingUpload } from './streaming-upload.js';

export interface CommitterOptions {
  /** Directory for staging files, journal records and records of uploads in progress. */
  stagingDir: string;
  partSize: number;
  uploadConcurrency: number;
  /** 'sync': close returns once the object is in the store; 'async': once it is journaled. */
  writeMode: 'sync' | 'async';
  /** Shared by the block cache and upload buffers; default: no limit on uploads. */
  memoryBudget?: MemoryBudget;
  /** Buffers for upload parts, used again from one part to the next; default: a pool of its own. */
  partBuffers?: PartBuffers;
  /** Wait before the first new try of a failed upload, doubled each time up to a minute; default 1 s. */
  retryDelayMs?: number;
  /** Drops a streamed file's staged bytes that the store has from the page cache (streaming-upload.ts). */
  dropFromPageCache?: PageCacheDrop;
  /** Room for staging copies in memory (a directory marker's empty one); default: always a file. */
  stagingMemory?: StagingMemory;
  logger: Logger;
}

/**
 * Background uploads of small files (one PUT each) at once: enough to keep a store busy that
 * answers each in milliseconds, while the memory they hold stays small (see `SMALL_FILE`).
 */
const SMALL_UPLOADS = 32;
/** Files up to this size count as small for the background queues. */
const SMALL_FILE = 1024 * 1024;
/**
 * How long a directory's marker waits before its upload: the changes that follow a mkdir or a
 * chmod (tar sets a directory's times, then its mode) go into the same PUT.
 */
export const MARKER_DELAY_MS = 100;

export class Committer {
  private readonly uploader: FileUploader;
  private readonly partBuffers: PartBuffers;
  private readonly journal: Journal;
  /** Where async closes of small files are journaled, bytes and all (journal-log.ts). */
  private readonly log: JournalLog;
  private readonly tracker: UploadTracker;
  /** Uploads of closed files (async mode, or a close that failed): large files a few at a time. */
  private readonly backgroundUploads: PQueue;
  /** The same for small files, many at a time. */
  private readonly smallBackgroundUploads = new PQueue({ concurrency: SMALL_UPLOADS });
  /** Files with a background upload queued or waiting for its next try. */
  private readonly inBackground = new Set<OpenFile>();

  constructor(
    private readonly store: ObjectStore,
    private readonly namespace: Namespace,
    private readonly openFiles: OpenFileTable,
    private readonly options: CommitterOptions,
  ) {
    this.journal = new Journal(options.stagingDir);
    this.log = new JournalLog(options.stagingDir, this.journal.stats);
    this.tracker = new UploadTracker(options.stagingDir, this.journal);
    this.partBuffers = options.partBuffers ?? new PartBuffers(options.partSize, options.uploadConcurrency);
    this.uploader = new FileUploader(store, {
      partSize: options.partSize,
      concurrency: options.uploadConcurrency,
      budget: options.memoryBudget,
      tracker: this.tracker,
      buffers: this.partBuffers,
    });
    this.backgroundUploads = new PQueue({ concurrency: Math.max(4, options.uploadConcurrency) });
  }

  // ---- while the file is written ----

  /**
   * Starts streaming `file` into a multipart upload if this write, at `at`, begins a file written
   * from its start. Call inside the file's `exclusive`, before the bytes are staged.
   */
  streamIfFromStart(file: OpenFile, at: number): void {
    if (file.stream || file.streamStopped || at !== 0 || file.attrs.size !== 0 || file.unlinked) return;
    const createdWith = { metadata: metadataWithoutTimes(file.attrs), contentType: file.contentType ?? contentTypeOf('file') };
    file.stream = new StreamingUpload(this.store, file.key, createdWith, {
      partSize: this.options.partSize,
      concurrency: this.options.uploadConcurrency,
      budget: this.options.memoryBudget,
      tracker: this.tracker,
      buffers: this.partBuffers,
      dropFromPageCache: this.options.dropFromPageCache,
    });
  }

  /** Sends the parts a write completed (waiting while the part queue is full); a failure gives the stream up. */
  async advanceStream(file: OpenFile, staging: Staging): Promise<void> {
    // A copy in memory is no larger than a part (staging.ts): no part to send yet.
    if (!file.stream || staging.inMemory) return;
    try {
      await file.stream.advance(await staging.onDisk(), file.attrs.size);
    } catch (error) {
      this.options.logger.warn(
        `${file.path}: streaming upload failed, the whole file is uploaded at close: ${toFsError(error, file.path).message}`,
      );
      await this.stopStream(file);
    }
  }

  /** Gives up the file's streaming upload (aborting it in the store); close uploads the whole file. */
  async stopStream(file: OpenFile): Promise<void> {
    const stream = file.stream;
    if (!stream) return;
    file.stream = undefined;
    file.streamStopped = true;
    await stream.abort().catch((error: unknown) => {
      this.options.logger.warn(`${file.path}: could not abort its multipart upload: ${toFsError(error, file.path).message}`);
    });
  }

  // ---- saving ----

  /** A writer's close: commits now (sync mode) or journals and commits later (async mode). */
  close(file: OpenFile): Promise<void> {
    return this.options.writeMode === 'async' ? this.commitLater(file) : this.commit(file);
  }

  /** Uploads `file` if it has unsaved content or metadata, after any queued write. */
  commit(file: OpenFile): Promise<void> {
    return file.exclusive(() => this.commitNow(file));
  }

  /**
   * Async mode's close: makes the staged content durable on local disk with a journal record,
   * and queues the upload. Metadata-only changes are uploaded at once (one small copy).
   */
  commitLater(file: OpenFile): Promise<void> {
    return file.exclusive(() => this.journalNow(file));
  }

  /**
   * Async mode's save of a directory's marker, `marker` (an open file with no handle, whose key
   * ends in '/' and whose staging file is empty): `change` is made to its attributes in its
   * queue, and the marker journaled with them, to be PUT in the background (an empty object: the
   * PUT carries the metadata, as a copy onto itself would). Nothing waits for the store.
   */
  saveMarkerLater(marker: OpenFile, change: () => void): Promise<void> {
    return marker.exclusive(async () => {
      change();
      marker.dirty = true;
      await this.journalNow(marker);
    });
  }

  /**
   * Async mode: makes `change` to the attributes of directory `path` (as `node` has them) and
   * journals its marker with them, to be PUT in the background (`saveMarkerLater`). The marker
   * waits in the open-file table, with no handle, until it is saved: lookups, listings, rmdir
   * (`dropDirectory`) and rename (`saveDirectoryNow`, Mover) find it there. `stagingPath` is for
   * its empty staging file, if it needs one.
   */
  async saveDirectoryLater(
    path: string,
    node: { attrs: Attributes; etag: string; contentType?: string },
    change: (attrs: Attributes) => void,
    stagingPath: string,
  ): Promise<void> {
    let marker = this.openFiles.get(path);
    if (!marker) {
      const contentType = node.contentType ?? contentTypeOf('directory');
      const made = new OpenFile(
        path,
        this.namespace.dirKey(path),
        { ...node.attrs },
        node.etag,
        contentType,
        stagingPath,
        this.options.stagingMemory,
      );
      await this.namespace.callStore(path, () => made.stage(this.store, 0)); // empty: what the journal keeps
      marker = this.openFiles.get(path);
      if (marker)
        await made.discard(); // another change made one meanwhile
      else this.openFiles.set(path, (marker = made));
    }
    const saving = marker;
    try {
      await this.saveMarkerLater(saving, () => change(saving.attrs));
    } catch (error) {
      if (!saving.pending) {
        this.openFiles.delete(path, saving);
        await saving.discard();
      }
      throw error;
    }
  }

  /** Saves the marker of directory `path` now, if one waits (async mode), and forgets it. */
  async saveDirectoryNow(path: string): Promise<void> {
    const marker = this.openFiles.get(path);
    if (marker?.attrs.kind !== 'directory') return;
    await this.commit(marker);
    await this.forgetIfDone(marker);
  }

  /** Gives up the marker of directory `path` waiting to be saved (rmdir), its journal record too; returns it. */
  async dropDirectory(path: string): Promise<OpenFile | undefined> {
    const marker = this.openFiles.get(path);
    if (marker?.attrs.kind !== 'directory') return undefined;
    await marker.exclusive(async () => {
      marker.unlinked = true;
      await this.dropPending(marker);
    });
    this.openFiles.delete(path, marker);
    await this.forgetIfDone(marker);
    return marker;
  }

  /** `commitLater`'s work. Call inside the file's `exclusive`. */
  private async journalNow(file: OpenFile): Promise<void> {
    if (file.unlinked || (!file.dirty && !file.metadataDirty) || file.journaled) return;
    if (!file.dirty || !file.stagingFile) return this.commitNow(file);
    const changes = file.changes;
    const record = {
      key: file.key,
      size: file.attrs.size,
      metadata: metadataOf(file.attrs),
      contentType: file.contentType ?? contentTypeOf('file'),
    };
    // The journal must hold the whole file: a crash could outlive the object it came from.
    await this.namespace.callStore(file.path, () => file.fill(this.store, 0));
    try {
      if (record.size <= LOG_RECORD_MAX) {
        // A small file goes into the log with its bytes: one write and one fsync, shared.
        let data = file.stagedBytes(record.size);
        if (!data) {
          data = Buffer.allocUnsafe(record.size);
          const read = await file.readStaged(data, record.size, 0);
          if (read !== record.size) throw new Error(`its staging file has ${read} of ${record.size} bytes`);
        }
        const logged = await this.log.append(record, data);
        // An earlier close's record, its upload still waiting: this one supersedes it.
        const [hadRecord, earlier] = [file.pending, file.logged];
        file.logged = logged;
        if (hadRecord) {
          await this.forget(earlier, file.stagingFile, false).catch((error: unknown) => {
            this.options.logger.warn(`${file.path}: could not remove an earlier journal record: ${toFsError(error, file.path).message}`);
          });
        }
      } else {
        await this.journal.add(file.stagingFile, record, await file.stagedOnDisk());
        if (file.logged) this.log.done(file.logged);
        file.logged = undefined;
      }
    } catch (error) {
      const { code, message } = toFsError(error, file.path);
      throw new FsError(code, `${file.path}: could not journal the file in ${this.options.stagingDir}: ${message}`, { cause: error });
    }
    file.pending = true;
    file.journaledChanges = changes;
    this.uploadInBackground(file);
  }

  /** Whether `file` has changes the store does not have yet, and is still to be uploaded. */
  private unsaved(file: OpenFile): boolean {
    return !file.unlinked && (file.dirty || file.metadataDirty);
  }

  /**
   * Uploads `file` in the background (once per file at a time); a failure tries again later,
   * less and less often, while the file is unsaved. With `failures` > 0 (its upload has just
   * failed that many times) the first try waits too.
   */
  private uploadInBackground(file: OpenFile, failures = 0): void {
    if (this.inBackground.has(file)) return;
    this.inBackground.add(file);
    this.tryInBackground(file, failures);
  }

  private tryInBackground(file: OpenFile, failures: number): void {
    if (failures > 0 || file.attrs.kind === 'directory') {
      const retry = Math.min(60_000, (this.options.retryDelayMs ?? 1000) * 2 ** Math.min(failures - 1, 6));
      const delay = failures > 0 ? retry : MARKER_DELAY_MS;
      setTimeout(() => this.queueUpload(file, failures), delay).unref();
    } else {
      this.queueUpload(file, failures);
    }
  }

  private queueUpload(file: OpenFile, failures: number): void {
    const queue = file.attrs.size <= SMALL_FILE ? this.smallBackgroundUploads : this.backgroundUploads;
    void queue.add(async () => {
      if (!file.pending && file.refs > 0) {
        // A failed close's file opened again: its handles own it now, and their close uploads it
        // (a try now could publish a rewrite half done).
        this.inBackground.delete(file);
        return;
      }
      try {
        await this.commit(file);
      } catch {
        // commitNow logged it. The journal (or the kept staging copy) has the data.
        if (this.unsaved(file)) return this.tryInBackground(file, failures + 1);
      }
      // Attributes changed while it uploaded (a closed file's chmod or utimens): save them now.
      if (this.unsaved(file) && file.refs === 0) return this.tryInBackground(file, 0);
      this.inBackground.delete(file);
      if (file.refs === 0) await this.forgetIfDone(file);
    });
  }

  /** Uploads queued by async closes (or kept after a failed close) that have not finished yet. */
  get backgroundUploadCount(): number {
    const { smallBackgroundUploads: small, backgroundUploads: large } = this;
    return small.size + small.pending + large.size + large.pending;
  }

  /** What the journal has written: rounds, fsyncs and records. */
  get journalStats(): JournalStats {
    return this.journal.stats;
  }

  /** The upload itself. Call inside the file's `exclusive` (as `commit` does). */
  async commitNow(file: OpenFile): Promise<void> {
    if (file.unlinked || (!file.dirty && !file.metadataDirty)) return;
    // A chmod or utimens may arrive while this upload runs (they do not wait for the file's
    // queue): what it changed is not in `options`, and stays to be saved by the next commit.
    const changes = file.changes;
    const options = { metadata: metadataOf(file.attrs), contentType: file.contentType ?? contentTypeOf('file') };
    let written: WrittenObject;
    try {
      const streamed = file.dirty ? await this.finishStream(file, options) : undefined;
      if (streamed) {
        written = { etag: streamed }; // its metadata may not be what `options` holds: nothing to keep
      } else if (file.dirty) {
        const staged = file.stagingFile;
        if (!staged) {
          written = await this.store.put(file.key, Buffer.alloc(0), options);
        } else if (file.stagedFrom > 0 && this.uploader.canReuse(file.stagedFrom)) {
          await file.stagedOnDisk(); // read from its path
          const source = { key: file.key, etag: file.etag, bytes: file.stagedFrom };
          written = await this.uploader.uploadReusing(file.key, staged, file.attrs.size, source, options);
        } else {
          await file.fill(this.store, 0);
          const inMemory = file.stagedBytes(file.attrs.size);
          // From memory (a new small file), or through the handle the file already has: no
          // second open and close per small file.
          written = inMemory
            ? await this.uploader.put(file.key, inMemory, options)
            : await this.uploader.upload(file.key, file.stagingHandle ?? staged, file.attrs.size, options);
        }
      } else {
        written = await this.store.copy(file.key, file.key, options);
      }
    } catch (error) {
      const fsError = toFsError(error, file.path);
      this.options.logger.error(`upload of ${file.path} failed: ${fsError.message}`);
      throw fsError;
    }
    const { etag } = written;
    file.etag = etag;
    file.dirty = false;
    file.streamStopped = false;
    if (file.changes === changes) {
      file.metadataDirty = false;
      file.timesSet = false;
    }
    if (file.pending) {
      file.pending = false;
      await this.forgetRecord(file);
    }
    this.namespace.wrote(
      file.path,
      {
        attrs: { ...file.attrs },
        etag,
        explicit: file.attrs.kind === 'directory', // a directory's marker (saveMarkerLater)
        complete: true,
        contentType: file.contentType,
      },
      written,
      options,
    );
  }

  /**
   * Completes the file's streaming upload, if it has one; returns the new ETag, or undefined when
   * the whole file must be uploaded instead (no stream, or it failed and was aborted).
   *
   * A streamed object was created before its last write, so it carries no times: its mtime is
   * the store's LastModified, read back here. If times were set explicitly (utimens) or the
   * mode or owner changed meanwhile, the object is copied onto itself with the final metadata.
   */
  private async finishStream(file: OpenFile, options: PutOptions): Promise<string | undefined> {
    const stream = file.stream;
    if (!stream?.started) {
      file.stream = undefined;
      return undefined;
    }
    file.stream = undefined;
    const staged = await (await file.stage(this.store, file.attrs.size)).onDisk();
    let etag: string;
    try {
      ({ etag } = await stream.finish(staged, file.attrs.size));
    } catch (error) {
      this.options.logger.warn(`${file.path}: streaming upload failed, uploading the whole file: ${toFsError(error, file.path).message}`);
      await stream.abort().catch(() => undefined);
      return undefined;
    }
    const created = stream.createdWith.metadata ?? {};
    const final = options.metadata ?? {};
    const changed = file.timesSet || ['mode', 'uid', 'gid'].some((name) => created[name] !== final[name]);
    if (changed && file.attrs.size <= this.store.capabilities.maxPutSize) {
      ({ etag } = await this.store.copy(file.key, file.key, options));
    } else {
      if (changed) this.options.logger.warn(`${file.path}: too large to copy onto itself; its new mode, owner or times are not saved`);
      const head = await this.store.head(file.key);
      file.attrs.mtimeMs = file.attrs.ctimeMs = head.lastModified.getTime();
      etag = head.etag;
    }
    return etag;
  }

  /**
   * A file whose name now belongs to another (created or renamed over it; already marked
   * `unlinked`): its pending upload is dropped with its journal record, and it is forgotten once
   * no handle has it.
   */
  async dropReplaced(file: OpenFile): Promise<void> {
    await file.exclusive(() => this.dropPending(file));
    if (file.refs === 0) await this.forgetIfDone(file);
  }

  /** An unlinked file's pending upload is dropped with its journal record. Call inside `exclusive`. */
  async dropPending(file: OpenFile): Promise<void> {
    await this.stopStream(file);
    if (file.pending) await this.forgetRecord(file, true);
  }

  /** Forgets `file`'s journal record: in the log (`now`: its done line written at once), or beside its staging file. */
  private async forgetRecord(file: OpenFile, now = false): Promise<void> {
    const logged = file.logged;
    file.logged = undefined;
    await this.forget(logged, file.stagingFile, now);
  }

  /** Forgets a journal record: `logged` in the log, or else the one beside `stagingFile`. */
  private async forget(logged: LogEntry | undefined, stagingFile: string | undefined, now: boolean): Promise<void> {
    if (logged) {
      if (now) await this.log.doneNow(logged);
      else this.log.done(logged);
    } else if (stagingFile) {
      // An older version's done line first: recovery must not find it once this record is gone.
      await this.log.flushAll();
      await removeRecord(stagingFile);
    }
  }

  // ---- forgetting ----

  /**
   * Drops a file nobody has open and nothing is pending for (its staging copy too). A file whose
   * upload failed is kept, and uploaded in the background until that succeeds or it is deleted.
   */
  async forgetIfDone(file: OpenFile): Promise<void> {
    const busy = () => file.refs > 0 || this.unsaved(file);
    // Its close failed (or is journaled): upload it later; that forgets the file when done.
    if (file.refs === 0 && this.unsaved(file)) this.uploadInBackground(file, file.pending ? 0 : 1);
    if (busy()) return;
    // Only if nobody reopened it, and no upload is waiting, by the time the queue gets here.
    await file.exclusive(async () => {
      if (busy()) return;
      // Out of the table before the first await: an open arriving meanwhile must not pick up a
      // file whose staging copy is going away (it would then write to a discarded copy).
      this.openFiles.delete(file.path, file);
      await this.stopStream(file); // only left when the upload failed or the file was unlinked
      await file.discard();
    });
  }

  // ---- the whole mount ----

  /** Uploads everything still dirty; for a clean unmount. */
  async drain(): Promise<void> {
    const files = [...this.openFiles.files()];
    const results = await Promise.allSettled(files.map((f) => this.commit(f)));
    await Promise.all(files.filter((f) => f.refs === 0).map((f) => this.forgetIfDone(f)));
    await this.log.settle();
    const failed = results.filter((r) => r.status === 'rejected');
    if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason;
  }

  /** Files with unsaved changes, for the unmount message. */
  get pendingFiles(): string[] {
    return [...this.openFiles.files()].filter((f) => (f.dirty || f.metadataDirty) && !f.unlinked).map((f) => f.path);
  }
}
