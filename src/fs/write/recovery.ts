/**
 * Recovery after a crash: what a previous daemon left in its staging directory, found by the
 * next mount of the same source before it reports ready. Files journaled and not uploaded (async
 * mode: per-file records, journal.ts, and the journal log, journal-log.ts) are uploaded; multipart
 * uploads recorded as in progress are aborted. Records are read tolerantly: one that cannot be
 * read is renamed `.damaged` and reported, never a reason to refuse the mount.
 */

import { readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import { basename, join } from 'node:path';

import PQueue from 'p-queue';

import { type PutOptions, isStoreError, type ObjectMetadata } from '../../storage/object-store.js';
import { readLocalFile } from '../local-files.js';
import { type JournalRecord, SUFFIX, UPLOAD_SUFFIX, uploadRecordName } from './journal.js';
import { markDone, readLogs } from './journal-log.js';

/** What recovery asks of the uploader (file-uploader.ts's `FileUploader`). */
export interface RecoveryUploader {
  upload(key: string, localPath: string, size: number, putOptions: PutOptions): Promise<unknown>;
  /** Uploads a small file's bytes (a record of the journal log) in one request. */
  put(key: string, data: Buffer, putOptions: PutOptions): Promise<unknown>;
  /** Aborts a multipart upload a previous daemon left. */
  abandon(key: string, uploadId: string): Promise<void>;
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

/** A file to upload: the latest of its key's is uploaded, and all of them then finished. */
interface Pending {
  key: string;
  /** When it was journaled (ms). */
  at: number;
  upload: () => Promise<unknown>;
  /** Forgets its record once the key's latest file is in the store. */
  finish: () => Promise<void>;
}

/**
 * Uploads every file a previous daemon acknowledged but did not upload, a few at a time: the
 * latest journaled of each key, from its staging file or from the journal log; removes each
 * record (and its staging file) once its object is in the store. Records whose
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
  // Files: per-file records (large files) and the logs' records (small ones), the latest per key.
  const files: Pending[] = [];
  for (const name of names) {
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
      continue;
    }
    const { record } = read;
    files.push({
      key: record.key,
      at: (await stat(recordPath)).mtimeMs,
      upload: async () => {
        const info = await stat(stagingPath);
        if (info.size < record.size) throw new Error(`its staging file ${stagingPath} has ${info.size} of ${record.size} bytes`);
        await uploader.upload(record.key, stagingPath, record.size, { metadata: record.metadata, contentType: record.contentType });
      },
      finish: async () => {
        await rm(recordPath, { force: true });
        await rm(stagingPath, { force: true });
      },
    });
  }
  const logs = await readLogs(stagingDir);
  for (const { file, bytes } of logs.torn) {
    // Cut off, so that done lines added below are read by a later recovery.
    await truncate(file, (await stat(file)).size - bytes);
    result.setAside.push({
      file,
      problem: `its last ${bytes} bytes are not a whole record`,
      action: 'they were cut off (a write the crash cut short, never acknowledged)',
    });
  }
  const doneInLog = new Map<string, number[]>(logs.files.map((file) => [file, []]));
  for (const record of logs.records) {
    files.push({
      key: record.key,
      at: record.at,
      upload: () => uploader.put(record.key, record.data, { metadata: record.metadata, contentType: record.contentType }),
      finish: async () => void doneInLog.get(record.file)!.push(record.seq),
    });
  }
  const byKey = new Map<string, Pending[]>();
  for (const file of files) byKey.set(file.key, [...(byKey.get(file.key) ?? []), file]);
  const queue = new PQueue({ concurrency });
  await Promise.all(
    [...byKey].map(([key, versions]) =>
      queue.add(async () => {
        // Journaled more than once (written again while its upload waited): the latest is the file.
        const latest = versions.reduce((a, b) => (b.at >= a.at ? b : a));
        try {
          await latest.upload();
        } catch (error) {
          result.failed.push({ key, error });
          return;
        }
        for (const version of versions) await version.finish();
        result.uploaded.push(key);
      }),
    ),
  );
  // A log goes once all its records are in the store; otherwise it keeps only what is not.
  for (const [file, done] of doneInLog) {
    const left = logs.records.filter((record) => record.file === file).length - done.length;
    if (left === 0) await rm(file, { force: true });
    else await markDone(file, done);
  }
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
