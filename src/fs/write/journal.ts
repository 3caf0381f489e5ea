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
 */

import { open, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import PQueue from 'p-queue';

import type { ObjectMetadata } from '../../storage/object-store.js';
import type { FileUploader } from './file-uploader.js';

const SUFFIX = '.pending.json';

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

export interface RecoveryResult {
  uploaded: string[];
  failed: Array<{ key: string; error: unknown }>;
}

/**
 * Uploads every file a previous daemon acknowledged but did not upload, a few at a time;
 * removes each record (and its staging file) once its object is in the store. Records whose
 * staging file is missing or short are reported as failed and kept, for a person to look at.
 */
export async function recover(stagingDir: string, uploader: FileUploader, concurrency: number): Promise<RecoveryResult> {
  const names = (await readdir(stagingDir).catch((): string[] => [])).filter((name) => name.endsWith(SUFFIX));
  const result: RecoveryResult = { uploaded: [], failed: [] };
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
