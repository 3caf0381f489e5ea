/**
 * The journal of `--write-mode async`: files that `close` acknowledged but that are not yet in
 * the store.
 *
 * When an async close is acknowledged, the file's staging copy has been fsynced and a record
 * naming it (key, size, metadata) is written next to it, atomically (a temporary file renamed
 * into place, then the directory fsynced). The record is removed once the object is in the
 * store. If the daemon dies first (kill -9, a crash, a power cut), the next mount of the same
 * source finds the records in its staging directory and uploads their files before it reports
 * ready (`recover`), so nothing acknowledged is lost.
 *
 * Beside them, in either write mode, each multipart upload in progress has a record from its
 * creation to its end (`UploadTracker`): the next mount aborts those a killed daemon left, so no
 * incomplete upload stays in the store.
 *
 * Both kinds of record are written by `Journal`, which lets writes in flight share their fsyncs
 * (group commit). Recovery reads them tolerantly: a record that cannot be read is renamed
 * `.damaged` and reported, never a reason to refuse the mount.
 */

import { createHash } from 'node:crypto';
import { type FileHandle, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

import PQueue from 'p-queue';

import { type ObjectMetadata, type PutOptions, isStoreError } from '../../storage/object-store.js';
import { LOCAL, readLocalFile } from '../local-files.js';

const SUFFIX = '.pending.json';
const UPLOAD_SUFFIX = '.upload.json';

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

/** What recovery asks of the uploader (file-uploader.ts's `FileUploader`). */
export interface RecoveryUploader {
  upload(key: string, localPath: string, size: number, putOptions: PutOptions): Promise<unknown>;
  /** Aborts a multipart upload a previous daemon left. */
  abandon(key: string, uploadId: string): Promise<void>;
}

function uploadRecordName(uploadId: string): string {
  return `upload-${createHash('sha256').update(uploadId).digest('hex').slice(0, 32)}${UPLOAD_SUFFIX}`;
}

/** A record that could not be read, and what recovery did with it. */
export interface SetAside {
  /** The record's file. */
  file: string;
  /** What is wrong with it. */
  problem: string;
  /** What was done with it, as a phrase ("set aside as ….damaged; its upload aborted"). */
  action: string;
}

export interface RecoveryResult {
  uploaded: string[];
  failed: Array<{ key: string; error: unknown }>;
  /** Multipart uploads a previous daemon began and never ended, now aborted. */
  aborted: string[];
  /** Damaged or empty records, renamed out of the way so that they never stop a mount. */
  setAside: SetAside[];
}

const DAMAGED = '.damaged';

/**
 * Uploads every file a previous daemon acknowledged but did not upload, a few at a time;
 * removes each record (and its staging file) once its object is in the store. Records whose
 * staging file is missing or short are reported as failed and kept, for a person to look at.
 * A record that cannot be read (empty, cut short, not a record) is renamed with `.damaged`
 * (a journal record with its staging file) and reported in `setAside`; for an upload record,
 * the upload it names is aborted if its key and id can still be read from it.
 */
export async function recover(stagingDir: string, uploader: RecoveryUploader, concurrency: number): Promise<RecoveryResult> {
  const all = await readdir(stagingDir).catch((): string[] => []);
  const names = all.filter((name) => name.endsWith(SUFFIX));
  const result: RecoveryResult = { uploaded: [], failed: [], aborted: [], setAside: [] };
  // A temporary upload record is one a killed daemon was still making durable: its upload was
  // created all the same, so it is aborted like any other (an unreadable one is just removed).
  for (const name of all.filter((entry) => entry.endsWith(UPLOAD_SUFFIX) || entry.endsWith(`${UPLOAD_SUFFIX}.tmp`))) {
    const path = join(stagingDir, name);
    const temporary = name.endsWith('.tmp');
    const read = await readRecord(path, parseUploadRecord);
    if ('problem' in read) {
      // Only an id whose hash is this record's name: never abort an upload the record did not name.
      const named = salvageUploadRecord(read.text);
      const namesIt = named !== undefined && uploadRecordName(named.uploadId) === name.replace(/\.tmp$/, '');
      if (temporary) {
        if (namesIt)
          await uploader.abandon(named.key, named.uploadId).then(
            () => result.aborted.push(named.key),
            () => undefined,
          );
        await rm(path, { force: true });
        continue;
      }
      await rename(path, `${path}${DAMAGED}`);
      let action = `set aside as ${name}${DAMAGED}`;
      if (namesIt) {
        try {
          await uploader.abandon(named.key, named.uploadId);
          result.aborted.push(named.key);
          action += `; its upload of ${named.key} aborted`;
        } catch (error) {
          action += isStoreError(error, 'NotFound')
            ? `; its upload of ${named.key} was already gone`
            : `; its upload of ${named.key} could not be aborted (${(error as Error).message})`;
        }
      } else {
        action += '; no upload id could be read from it, so none was aborted';
      }
      result.setAside.push({ file: path, problem: read.problem, action });
      continue;
    }
    const { key, uploadId } = read.record;
    try {
      await uploader.abandon(key, uploadId);
      result.aborted.push(key);
    } catch (error) {
      if (!isStoreError(error, 'NotFound')) {
        result.failed.push({ key, error });
        continue;
      }
    }
    await rm(path, { force: true });
  }
  const queue = new PQueue({ concurrency });
  await Promise.all(
    names.map((name) =>
      queue.add(async () => {
        const recordPath = join(stagingDir, name);
        const stagingPath = recordPath.slice(0, -SUFFIX.length);
        const read = await readRecord(recordPath, parseJournalRecord);
        if ('problem' in read) {
          await rename(recordPath, `${recordPath}${DAMAGED}`);
          const kept = await rename(stagingPath, `${stagingPath}${DAMAGED}`).then(
            () => ` with its staging file (${basename(stagingPath)}${DAMAGED})`,
            () => '',
          );
          result.setAside.push({ file: recordPath, problem: read.problem, action: `set aside as ${name}${DAMAGED}${kept}` });
          return;
        }
        const { record } = read;
        try {
          const info = await stat(stagingPath);
          if (info.size < record.size) throw new Error(`its staging file ${stagingPath} has ${info.size} of ${record.size} bytes`);
          await uploader.upload(record.key, stagingPath, record.size, { metadata: record.metadata, contentType: record.contentType });
          await rm(recordPath, { force: true });
          await rm(stagingPath, { force: true });
          result.uploaded.push(record.key);
        } catch (error) {
          result.failed.push({ key: record.key, error });
        }
      }),
    ),
  );
  return result;
}

/** Reads a record file; anything unreadable comes back as the problem, never as an exception. */
async function readRecord<T>(path: string, parse: (value: unknown) => T): Promise<{ record: T } | { problem: string; text: string }> {
  let text: string;
  try {
    text = (await readLocalFile(path)).toString('utf8');
  } catch (error) {
    return { problem: `cannot be read: ${(error as Error).message}`, text: '' };
  }
  if (text.trim() === '') return { problem: 'empty', text };
  try {
    return { record: parse(JSON.parse(text)) };
  } catch (error) {
    return { problem: error instanceof SyntaxError ? `not JSON: ${error.message}` : (error as Error).message, text };
  }
}

function parseUploadRecord(value: unknown): { key: string; uploadId: string } {
  const { key, uploadId } = (value ?? {}) as Record<string, unknown>;
  if (typeof key !== 'string' || typeof uploadId !== 'string') throw new Error('no key and upload id in it');
  return { key, uploadId };
}

function parseJournalRecord(value: unknown): JournalRecord {
  const { key, size, metadata, contentType } = (value ?? {}) as Record<string, unknown>;
  if (typeof key !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new Error('no key and size in it');
  }
  if (typeof metadata !== 'object' || metadata === null || Object.values(metadata).some((v) => typeof v !== 'string')) {
    throw new Error('its metadata is not a set of strings');
  }
  if (contentType !== undefined && typeof contentType !== 'string') throw new Error('its content type is not a string');
  return { key, size, metadata: metadata as ObjectMetadata, contentType };
}

/** The key and upload id of a damaged upload record, if both can still be read in its text. */
function salvageUploadRecord(text: string): { key: string; uploadId: string } | undefined {
  const field = (name: string) => {
    const match = new RegExp(`"${name}"\\s*:\\s*("(?:[^"\\\\]|\\\\.)*")`).exec(text);
    try {
      return match ? (JSON.parse(match[1]!) as string) : undefined;
    } catch {
      return undefined;
    }
  };
  const key = field('key');
  const uploadId = field('uploadId');
  return key !== undefined && uploadId !== undefined ? { key, uploadId } : undefined;
}

/**
 * Removes staging files a previous daemon left without a journal record: writes nobody was told
 * were saved. Only for a staging directory that no other live mount can share (the default
 * one, per source and mountpoint). Returns how many were removed.
 */
export async function removeUnjournaled(stagingDir: string): Promise<number> {
  const names = await readdir(stagingDir).catch((): string[] => []);
  const journaled = new Set(names.filter((name) => name.endsWith(SUFFIX)).map((name) => name.slice(0, -SUFFIX.length)));
  const orphans = names.filter(
    (name) =>
      (name.startsWith('staging-') && !name.includes('.') && !journaled.has(name)) ||
      name.endsWith(`${SUFFIX}.tmp`) ||
      name.endsWith(`${UPLOAD_SUFFIX}.tmp`),
  );
  await Promise.all(orphans.map((name) => rm(join(stagingDir, name), { force: true })));
  return orphans.length;
}
