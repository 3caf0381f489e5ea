/**
 * The journal of `--write-mode async`: files that `close` acknowledged but that are not yet in
 * the store.
 *
 * When an async close is acknowledged, the file's staging copy has been fsynced and a record
 * naming it (key, size, metadata) is written next to it, atomically (a temporary file renamed
 * into place, then the directory fsynced). The record is removed once the object is in the
 * store. If the daemon dies first (kill -9, a crash, a power cut), the next mount of the same
 * source finds the records in its staging directory and uploads their files before it reports
 * ready (recovery.ts), so nothing acknowledged is lost. Small files take another way, with their
 * bytes in one append-only log per mount (journal-log.ts): one write and one fsync per close.
 *
 * Beside them, in either write mode, each multipart upload in progress has a record from its
 * creation to its end (`UploadTracker`): the next mount aborts those a killed daemon left, so no
 * incomplete upload stays in the store.
 *
 * Both kinds of record are written by `Journal`, which lets writes in flight share their fsyncs
 * (group commit).
 */

import { createHash } from 'node:crypto';
import { type FileHandle, open, rename, rm, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { ObjectMetadata } from '../../storage/object-store.js';
import { LOCAL } from '../local-files.js';

export const SUFFIX = '.pending.json';
export const UPLOAD_SUFFIX = '.upload.json';

export interface JournalRecord {
  /** Store key the staging file becomes. */
  key: string;
  /** Bytes of the staging file that make up the object. */
  size: number;
  metadata: ObjectMetadata;
  contentType?: string;
}

export function recordPathFor(stagingPath: string): string {
  return `${stagingPath}${SUFFIX}`;
}

/** What the journal has done, for tests and `objmount status`. */
export interface JournalStats {
  /** Rounds of writes: records written together share one directory fsync. */
  rounds: number;
  /** fsync calls made (staging files, records, the directory). */
  fsyncs: number;
  /** Records made durable. */
  records: number;
}

interface Waiting {
  /** Where the record goes. */
  path: string;
  /** The temporary file, written at once (so a killed daemon leaves it), open for its fsync. */
  temporary: Promise<FileHandle>;
  /** A file the record names, made durable before the record is (a staging file). */
  dataFile?: string;
  /** That file's open handle, if the caller has one: fsynced without an open and a close. */
  dataHandle?: FileHandle;
  done: (error?: unknown) => void;
}

/**
 * Writes records into one directory durably, many at a time (group commit).
 *
 * A record is written like a database's log entry: to a temporary file, fsynced, renamed into
 * place, and the directory fsynced, so a crash leaves either no record or a whole one. Records
 * asked for while a round is being written wait for the next round and share it: every one's
 * data file and temporary record are fsynced in parallel, renamed, and then the directory is
 * fsynced once for all of them. N closes in flight cost about one round of fsyncs, not 3N
 * fsyncs one after the other; each `write` still returns only once its own record is on disk.
 * The temporary file is written at once, not when its round comes: a daemon killed meanwhile
 * leaves it readable, and recovery aborts the upload a temporary upload record names.
 */
export class Journal {
  readonly stats: JournalStats = { rounds: 0, fsyncs: 0, records: 0 };
  private queued: Waiting[] = [];
  private running = false;

  constructor(private readonly directory: string) {}

  /**
   * Makes `record` durable: the staging file first (through `stagingHandle`, its open handle,
   * if given), then the record that names it.
   */
  add(stagingPath: string, record: JournalRecord, stagingHandle?: FileHandle): Promise<void> {
    return this.write(recordPathFor(stagingPath), JSON.stringify(record), stagingPath, stagingHandle);
  }

  /** Writes `contents` to `path` (in this journal's directory) durably, after `dataFile` is. */
  write(path: string, contents: string, dataFile?: string, dataHandle?: FileHandle): Promise<void> {
    const temporary = (async () => {
      const handle = await open(`${path}.tmp`, LOCAL.replace, 0o600);
      try {
        await handle.writeFile(contents);
      } catch (error) {
        await handle.close();
        throw error;
      }
      return handle;
    })();
    temporary.catch(() => undefined); // the round reports it
    return new Promise((resolve, reject) => {
      this.queued.push({ path, temporary, dataFile, dataHandle, done: (error) => (error === undefined ? resolve() : reject(error)) });
      if (!this.running) void this.runRounds();
    });
  }

  private async runRounds(): Promise<void> {
    this.running = true;
    try {
      while (this.queued.length > 0) await this.round(this.queued.splice(0));
    } finally {
      this.running = false;
    }
  }

  private async round(batch: Waiting[]): Promise<void> {
    this.stats.rounds += 1;
    const written = await Promise.allSettled(
      batch.map(async ({ path, temporary, dataFile, dataHandle }) => {
        try {
          const data = dataHandle ? this.syncHandle(dataHandle) : dataFile === undefined ? undefined : this.sync(dataFile, 'r+');
          await Promise.all([data, this.syncAndClose(temporary)]);
          await rename(`${path}.tmp`, path);
        } catch (error) {
          await rm(`${path}.tmp`, { force: true }).catch(() => undefined);
          throw error;
        }
      }),
    );
    const renamed = batch.filter((_, i) => written[i]!.status === 'fulfilled');
    let directoryError: unknown;
    if (renamed.length > 0) {
      try {
        await this.sync(this.directory, 'r');
      } catch (error) {
        directoryError = error;
        // Not durable, so not acknowledged: a record left behind would replay a failed close.
        await Promise.all(renamed.map(({ path }) => rm(path, { force: true }).catch(() => undefined)));
      }
    }
    batch.forEach((waiting, i) => {
      const result = written[i]!;
      if (result.status === 'rejected') waiting.done(result.reason);
      else if (directoryError !== undefined) waiting.done(directoryError);
      else {
        this.stats.records += 1;
        waiting.done();
      }
    });
  }

  private async syncAndClose(opening: Promise<FileHandle>): Promise<void> {
    const handle = await opening;
    try {
      this.stats.fsyncs += 1;
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  private async syncHandle(handle: FileHandle): Promise<void> {
    this.stats.fsyncs += 1;
    await handle.sync();
  }

  private async sync(path: string, flags: 'r' | 'r+'): Promise<void> {
    const handle = await open(path, flags === 'r' ? LOCAL.read : LOCAL.update);
    try {
      this.stats.fsyncs += 1;
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}

/** Makes `record` durable: the staging file first, then the record that names it. */
export async function writeRecord(stagingPath: string, record: JournalRecord): Promise<void> {
  await new Journal(dirname(stagingPath)).add(stagingPath, record);
}

export async function removeRecord(stagingPath: string): Promise<void> {
  await removeFile(recordPathFor(stagingPath));
}

/**
 * Removes a file if it is there: one unlink (rm with `force` stats it first), on the path of
 * every small file's upload.
 */
export async function removeFile(path: string): Promise<void> {
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/**
 * Multipart uploads in progress, each recorded in the staging directory from its creation to its
 * completion or abort, so that the next mount can abort those a killed daemon left in the store.
 * The records are written through the journal (whole or not at all).
 */
export class UploadTracker {
  private readonly journal: Journal;

  constructor(
    private readonly directory: string,
    journal?: Journal,
  ) {
    this.journal = journal ?? new Journal(directory);
  }

  async begun(key: string, uploadId: string): Promise<void> {
    await this.journal.write(this.pathOf(uploadId), JSON.stringify({ key, uploadId }));
  }

  async ended(uploadId: string): Promise<void> {
    await removeFile(this.pathOf(uploadId));
  }

  private pathOf(uploadId: string): string {
    return join(this.directory, uploadRecordName(uploadId));
  }
}

export function uploadRecordName(uploadId: string): string {
  return `upload-${createHash('sha256').update(uploadId).digest('hex').slice(0, 32)}${UPLOAD_SUFFIX}`;
}
