/**
 * The journal log of `--write-mode async`: small files that `close` acknowledged, with their
 * bytes, in one append-only file per mount.
 *
 * Why a log: an async close of a small file used to cost a journal round of its own (a
 * temporary record, an fsync of it and one of the staging file, a rename, a directory fsync,
 * and an unlink once uploaded): a dozen file-system calls on the daemon's one JS thread and
 * three fsyncs for every file a program writes one after the other (a shell loop, `tar x`).
 * A record in the log carries the file's bytes, so one append and one `fdatasync` make both the
 * record and the data durable; closes in flight share them (group commit, as a database's log
 * does). The staging file is then only the open file's working copy, never read by recovery.
 *
 * A record is a JSON line (key, size, metadata, content type, the bytes' SHA-256, the time) and
 * the bytes after it, then a newline. Once the object is in the store (or the file was deleted,
 * or journaled again), a `{"done":seq}` line is added with the log's next write (20 ms at most;
 * at once for a deleted file's), without an fsync of its own: it rides on the next one. A log past `ROTATE_BYTES` takes no more records and is removed, after an fsync
 * of its done lines, once every record in it is done; so is every finished log at unmount.
 *
 * After a crash the next mount reads the logs (`readLogs`): a record is taken only if its line
 * parses and its bytes match their hash, and the first that does not ends the log (a write the
 * crash cut short, never acknowledged: a write that fails retires its log, so nothing
 * acknowledged can follow a torn one). Records not done are uploaded, the latest per key.
 *
 * Only files up to `LOG_RECORD_MAX` go here: larger ones keep their per-file record beside
 * their staging file (journal.ts), which recovery reads from there.
 */

import { createHash } from 'node:crypto';
import { type FileHandle, open, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import type { ObjectMetadata } from '../../storage/object-store.js';
import { LOCAL, readLocalFile } from '../local-files.js';
import type { JournalRecord, JournalStats } from './journal.js';

/** Files up to this size are journaled in the log, bytes and all. */
export const LOG_RECORD_MAX = 1024 * 1024;
/** A log this large takes no more records (it goes once they are all done). */
const ROTATE_BYTES = 16 * 1024 * 1024;
const PREFIX = 'journal-';
const SUFFIX = '.log';

/** A record in a log: what `done` is given once the object is in the store. */
export interface LogEntry {
  readonly log: LogFile;
  readonly seq: number;
}

interface Append {
  frame: Buffer;
  /** Records wait for the fsync; done lines do not. */
  durable: boolean;
  settle: (error?: unknown) => void;
}

/** One log file: appended to by one write at a time, its records counted until all are done. */
class LogFile {
  private handle: Promise<FileHandle> | undefined;
  private readonly queued: Append[] = [];
  private writing = false;
  /** Bytes appended so far. */
  size = 0;
  nextSeq = 0;
  /** Records not yet done. */
  outstanding = 0;
  /** Takes no more records: too large, failed, or finished at unmount. */
  retired = false;
  /** A write failed: the file may end in a torn frame, so nothing more goes into it. */
  broken = false;
  /** Done lines not written yet: they go with the next write (`flushDone`, or a record's). */
  private doneLines = '';
  /** The directory was fsynced after the file was made: its name survives a power cut. */
  private directorySynced = false;

  constructor(
    readonly path: string,
    private readonly stats: JournalStats,
    private readonly onIdle: (log: LogFile) => void,
  ) {}

  append(frame: Buffer, durable: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queued.push({ frame, durable, settle: (error) => (error === undefined ? resolve() : reject(error)) });
      if (!this.writing) void this.writeRounds();
    });
  }

  private async writeRounds(): Promise<void> {
    this.writing = true;
    try {
      while (this.queued.length > 0) await this.round(this.queued.splice(0));
    } finally {
      this.writing = false;
      this.onIdle(this);
    }
  }

  /** Notes that record `seq` is done; the line is written with the next write. */
  noteDone(seq: number): void {
    this.doneLines += `{"done":${seq}}\n`;
  }

  /** Writes the done lines noted so far (`durable`: and fsyncs them). */
  flushDone(durable = false): Promise<void> {
    return this.doneLines === '' && !durable ? Promise.resolve() : this.append(EMPTY, durable);
  }

  private async round(batch: Append[]): Promise<void> {
    if (this.broken) {
      for (const append of batch) append.settle(new Error(`${this.path}: an earlier write to the journal log failed`));
      return;
    }
    try {
      this.handle ??= open(this.path, LOCAL.append, 0o600);
      const handle = await this.handle;
      const frames = batch.map((append) => append.frame);
      if (this.doneLines !== '') frames.unshift(Buffer.from(this.doneLines));
      this.doneLines = '';
      const bytes = frames.reduce((sum, frame) => sum + frame.length, 0);
      const { bytesWritten } = await handle.writev(frames);
      if (bytesWritten !== bytes) throw new Error(`${this.path}: wrote ${bytesWritten} of ${bytes} bytes (is the disk full?)`);
      this.size += bytes;
      if (batch.some((append) => append.durable)) {
        this.stats.rounds += 1;
        this.stats.fsyncs += 1;
        await handle.datasync();
        if (!this.directorySynced) {
          // Once per log: the new file's name in its directory, so a power cut cannot lose it.
          this.stats.fsyncs += 1;
          await syncDirectory(dirname(this.path));
          this.directorySynced = true;
        }
      }
    } catch (error) {
      this.broken = this.retired = true;
      for (const append of batch) append.settle(error);
      return;
    }
    for (const append of batch) append.settle();
  }

  get idle(): boolean {
    return !this.writing && this.queued.length === 0;
  }

  /** Makes the done lines durable, closes the file and removes it. */
  async remove(): Promise<void> {
    const handle = await this.handle?.catch(() => undefined);
    this.handle = undefined;
    if (handle) {
      await handle.datasync().catch(() => undefined);
      await handle.close().catch(() => undefined);
    }
    await rm(this.path, { force: true });
  }
}

/**
 * The logs of one mount: records go to the current one, done lines to the log that holds their
 * record; a retired log goes once it is idle and all its records are done.
 */
export class JournalLog {
  private current: LogFile | undefined;
  private readonly logs = new Set<LogFile>();
  private made = 0;
  /** Logs being removed, and their removal. */
  private readonly removing = new Map<LogFile, Promise<void>>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly directory: string,
    private readonly stats: JournalStats,
  ) {}

  /** Makes `record`, with `data` (its `size` bytes), durable in the log; resolves once it is. */
  async append(record: JournalRecord, data: Buffer): Promise<LogEntry> {
    if (data.length !== record.size) throw new Error(`${record.key}: ${data.length} bytes for a record of ${record.size}`);
    let log = this.current;
    if (!log || log.retired) {
      log = this.current = new LogFile(join(this.directory, logName(Date.now(), process.pid, this.made++)), this.stats, (idle) =>
        this.removeIfFinished(idle),
      );
      this.logs.add(log);
    }
    const seq = log.nextSeq++;
    const header = { seq, ...record, sha256: sha256(data), at: Date.now() };
    log.outstanding += 1;
    try {
      await log.append(Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), data, NEWLINE]), true);
    } catch (error) {
      log.outstanding -= 1;
      this.removeIfFinished(log);
      throw error;
    }
    this.stats.records += 1;
    if (log.size >= ROTATE_BYTES) log.retired = true;
    return { log, seq };
  }

  /**
   * The object of `entry`'s record is in the store, or its file is journaled again. Its done
   * line goes with the log's next write, at most `DONE_DELAY_MS` later: a daemon killed before
   * then leaves the record to recovery, which uploads the file once more (a log that goes takes
   * its done lines with it).
   */
  done(entry: LogEntry): void {
    const { log, seq } = entry;
    log.outstanding -= 1;
    log.noteDone(seq);
    if (log.retired && log.outstanding === 0) {
      this.removeIfFinished(log);
      return;
    }
    if (log !== this.current) {
      // An older log's line goes at once: a newer version of the file, journaled since in the
      // current log, must not be marked done before this one is.
      void log.flushDone().catch(() => undefined); // a failed write retires its log
      return;
    }
    this.flushTimer ??= setTimeout(() => {
      this.flushTimer = undefined;
      for (const each of this.logs) void each.flushDone().catch(() => undefined); // a failed write retires its log
    }, DONE_DELAY_MS).unref();
  }

  /**
   * `done`, written at once (not fsynced): for a file deleted before its upload, which recovery
   * must never bring back after a daemon is killed.
   */
  async doneNow(entry: LogEntry): Promise<void> {
    this.done(entry);
    const removal = this.removing.get(entry.log);
    if (removal !== undefined) {
      await removal; // the log goes, with the record
      return;
    }
    // Made durable: a power cut must not bring the file back either. (A log whose write failed
    // takes no more lines: recovery then still finds the record.)
    await entry.log.flushDone(true).catch(() => undefined);
  }

  /** Writes every done line noted so far, in every log (before a per-file record goes, journal.ts). */
  async flushAll(): Promise<void> {
    await Promise.all([...this.logs].map((log) => log.flushDone().catch(() => undefined)));
  }

  /** Removes every log whose records are all done, and writes the others' done lines (at unmount, after the uploads). */
  async settle(): Promise<void> {
    for (const log of this.logs) if (log.outstanding === 0) log.retired = true;
    for (const log of this.logs) this.removeIfFinished(log);
    await this.flushAll();
    while (this.removing.size > 0) await Promise.all(this.removing.values());
  }

  private removeIfFinished(log: LogFile): void {
    if (!log.retired || log.outstanding > 0 || !log.idle || !this.logs.has(log)) return;
    this.logs.delete(log);
    if (this.current === log) this.current = undefined;
    const removal = log.remove().finally(() => this.removing.delete(log));
    this.removing.set(log, removal);
  }
}

const NEWLINE = Buffer.from('\n');
const EMPTY = Buffer.alloc(0);
/**
 * How long a done line may wait for the log's next write: a program writing files one after
 * another closes the next within a few milliseconds, and the line rides on that record's write.
 */
const DONE_DELAY_MS = 20;

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, LOCAL.read);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Sorts as made: the time, then the process and a counter. */
function logName(time: number, pid: number, counter: number): string {
  return `${PREFIX}${String(time).padStart(15, '0')}-${pid}-${String(counter).padStart(6, '0')}${SUFFIX}`;
}

// ---- recovery ----

/** A record read back from a log, not done. */
export interface LoggedRecord extends JournalRecord {
  data: Buffer;
  /** When it was journaled (ms): the latest record of a key wins. */
  at: number;
  /** The log it is in, and its number there (for its done line). */
  file: string;
  seq: number;
}

export interface ReadLogs {
  /** Records not done, in the order they were made. */
  records: LoggedRecord[];
  /** Each log, by path. */
  files: string[];
  /** Logs whose end is not a whole record, and how many bytes were ignored. */
  torn: Array<{ file: string; bytes: number }>;
}

/** The logs a previous daemon left in `directory`, read as the module comment says. */
export async function readLogs(directory: string): Promise<ReadLogs> {
  const names = (await readdir(directory).catch((): string[] => [])).filter((name) => name.startsWith(PREFIX) && name.endsWith(SUFFIX));
  const result: ReadLogs = { records: [], files: [], torn: [] };
  for (const name of names.sort()) {
    const file = join(directory, name);
    result.files.push(file);
    const buffer = await readLocalFile(file);
    const records = new Map<number, LoggedRecord>();
    let at = 0;
    while (at < buffer.length) {
      const frame = parseFrame(buffer, at);
      if (!frame) {
        result.torn.push({ file, bytes: buffer.length - at });
        break;
      }
      at = frame.next;
      if ('done' in frame) records.delete(frame.done);
      else records.set(frame.record.seq, { ...frame.record, file });
    }
    result.records.push(...[...records.values()].sort((a, b) => a.seq - b.seq));
  }
  return result;
}

/** The frame at `at`: a done line or a whole record; undefined if there is none whole there. */
function parseFrame(
  buffer: Buffer,
  at: number,
): (({ done: number } | { record: Omit<LoggedRecord, 'file'> }) & { next: number }) | undefined {
  const end = buffer.indexOf(0x0a, at);
  if (end < 0) return undefined;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buffer.toString('utf8', at, end)) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null) return undefined;
  if (Number.isSafeInteger(header.done)) return { done: header.done as number, next: end + 1 };
  const { seq, key, size, metadata, contentType, sha256: hash, at: time } = header;
  if (!Number.isSafeInteger(seq) || typeof key !== 'string' || !Number.isSafeInteger(size) || (size as number) < 0) return undefined;
  if (typeof hash !== 'string' || typeof time !== 'number') return undefined;
  if (typeof metadata !== 'object' || metadata === null || Object.values(metadata).some((v) => typeof v !== 'string')) return undefined;
  if (contentType !== undefined && typeof contentType !== 'string') return undefined;
  const dataEnd = end + 1 + (size as number);
  if (dataEnd >= buffer.length || buffer[dataEnd] !== 0x0a) return undefined;
  const data = buffer.subarray(end + 1, dataEnd);
  if (sha256(data) !== hash) return undefined;
  return {
    record: { seq: seq as number, key, size: size as number, metadata: metadata as ObjectMetadata, contentType, data, at: time },
    next: dataEnd + 1,
  };
}

/** Adds done lines for `seqs` to the log `file` (recovery's uploads, so a later recovery skips them). */
export async function markDone(file: string, seqs: number[]): Promise<void> {
  if (seqs.length === 0) return;
  const handle = await open(file, LOCAL.append);
  try {
    await handle.writeFile(seqs.map((seq) => `{"done":${seq}}\n`).join(''));
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
