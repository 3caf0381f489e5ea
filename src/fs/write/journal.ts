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
 */

import { createHash } from 'node:crypto';
import { open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import PQueue from 'p-queue';

import { type ObjectMetadata, type PutOptions, isStoreError } from '../../storage/object-store.js';

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

/** Makes `record` durable: the staging file first, then the record that names it. */
export async function writeRecord(stagingPath: string, record: JournalRecord): Promise<void> {
  const staging = await open(stagingPath, 'r+');
  try {
    await staging.sync();
  } finally {
    await staging.close();
  }
  const path = recordPathFor(stagingPath);
  const temporary = `${path}.tmp`;
  await writeFile(temporary, JSON.stringify(record), { mode: 0o600, flush: true });
  await rename(temporary, path);
  await syncDirectory(stagingPath.slice(0, stagingPath.lastIndexOf('/')) || '/');
}

export async function removeRecord(stagingPath: string): Promise<void> {
  await rm(recordPathFor(stagingPath), { force: true });
}

/**
 * Multipart uploads in progress, each recorded in the staging directory from its creation to its
 * completion or abort, so that the next mount can abort those a killed daemon left in the store.
 */
export class UploadTracker {
  constructor(private readonly directory: string) {}

  async begun(key: string, uploadId: string): Promise<void> {
    await writeFile(this.pathOf(uploadId), JSON.stringify({ key, uploadId }), { mode: 0o600 });
  }

  async ended(uploadId: string): Promise<void> {
    await rm(this.pathOf(uploadId), { force: true });
  }

  private pathOf(uploadId: string): string {
    return join(this.directory, `upload-${createHash('sha256').update(uploadId).digest('hex').slice(0, 32)}${UPLOAD_SUFFIX}`);
  }
}

/** What recovery asks of the uploader (file-uploader.ts's `FileUploader`). */
export interface RecoveryUploader {
  upload(key: string, localPath: string, size: number, putOptions: PutOptions): Promise<unknown>;
  /** Aborts a multipart upload a previous daemon left. */
  abandon(key: string, uploadId: string): Promise<void>;
}

export interface RecoveryResult {
  uploaded: string[];
  failed: Array<{ key: string; error: unknown }>;
  /** Multipart uploads a previous daemon began and never ended, now aborted. */
  aborted: string[];
}

/**
 * Uploads every file a previous daemon acknowledged but did not upload, a few at a time;
 * removes each record (and its staging file) once its object is in the store. Records whose
 * staging file is missing or short are reported as failed and kept, for a person to look at.
 */
export async function recover(stagingDir: string, uploader: RecoveryUploader, concurrency: number): Promise<RecoveryResult> {
  const all = await readdir(stagingDir).catch((): string[] => []);
  const names = all.filter((name) => name.endsWith(SUFFIX));
  const result: RecoveryResult = { uploaded: [], failed: [], aborted: [] };
  for (const name of all.filter((entry) => entry.endsWith(UPLOAD_SUFFIX))) {
    const path = join(stagingDir, name);
    const { key, uploadId } = JSON.parse(await readFile(path, 'utf8').catch(() => '{}')) as { key?: string; uploadId?: string };
    if (key !== undefined && uploadId !== undefined) {
      try {
        await uploader.abandon(key, uploadId);
        result.aborted.push(key);
      } catch (error) {
        if (!isStoreError(error, 'NotFound')) {
          result.failed.push({ key, error });
          continue;
        }
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
        let record: JournalRecord | undefined;
        try {
          record = JSON.parse(await readFile(recordPath, 'utf8')) as JournalRecord;
          const info = await stat(stagingPath);
          if (info.size < record.size) throw new Error(`its staging file ${stagingPath} has ${info.size} of ${record.size} bytes`);
          await uploader.upload(record.key, stagingPath, record.size, { metadata: record.metadata, contentType: record.contentType });
          await rm(recordPath, { force: true });
          await rm(stagingPath, { force: true });
          result.uploaded.push(record.key);
        } catch (error) {
          result.failed.push({ key: record?.key ?? name, error });
        }
      }),
    ),
  );
  return result;
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
    (name) => (name.startsWith('staging-') && !name.includes('.') && !journaled.has(name)) || name.endsWith(`${SUFFIX}.tmp`),
  );
  await Promise.all(orphans.map((name) => rm(join(stagingDir, name), { force: true })));
  return orphans.length;
}
