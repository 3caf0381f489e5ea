/**
 * Files' POSIX metadata kept on local disk across mounts, by object version.
 *
 * A listing gives each object's ETag, size and Last-Modified, but not its POSIX metadata (mode,
 * owner, times: headers that only a HEAD or GET returns), so a fresh mount's `ls -l`, `find` or
 * `stat *` costs a request per file. What was read or written for one version of an object
 * stays true for that version. A later mount whose listing shows the same version takes the
 * metadata from here instead of asking the store again: a directory seen before costs its
 * listing alone. The listing itself is always asked, so another client's change shows up (as a
 * new version, whose metadata is fetched) exactly as on a mount that keeps nothing.
 *
 * A version is the ETag and Last-Modified (`versionOf`); for an object written here, whose
 * Last-Modified the store did not say, the ETag and a bound (`isSameVersion`), pinned to the
 * version the first matching listing shows.
 *
 * On disk: one file per store, bucket and prefix, in a directory of the user's own. A JSON line
 * is appended per record learned (in batches: every FLUSH_MS, and at close); the file is read
 * back at the next mount (a later line wins over an earlier one of its key, a line torn by a
 * crash is skipped), and rewritten compacted when most of its lines are stale. The newest
 * `maxRecords` are kept. Losing the file loses nothing but requests.
 */

import { open, rename } from 'node:fs/promises';

import { LRUCache } from 'lru-cache';

import type { Logger } from '../log/logger.js';
import type { ObjectInfo, ObjectMetadata } from '../storage/object-store.js';
import { type AttributeDefaults, attributesOfObject } from './attributes.js';
import { LOCAL } from './local-files.js';
import { type CachedNode, isSameVersion, versionOf } from './metadata-cache.js';

export interface KeptRecord {
  etag: string;
  /** The version the metadata was read from, or pinned to (`versionOf`). */
  version?: string;
  /** Written here: Last-Modified no later than this, in seconds (until a listing pins `version`). */
  modifiedBy?: number;
  /** The object's user metadata as stored (empty for an object without any). */
  metadata: ObjectMetadata;
  contentType?: string;
}

/** A record as held in memory: the metadata as its JSON text, one string instead of an object of many. */
interface Held {
  etag: string;
  version?: string;
  modifiedBy?: number;
  metadata: string;
  contentType?: string;
}

export interface KeptMetadataOptions {
  /** The file: one per store, bucket and prefix. Its directory must exist and be the user's alone. */
  file: string;
  /** Most records kept (the least recently used go first). */
  maxRecords: number;
  logger: Logger;
}

/** Records learned are appended at most this long after. */
const FLUSH_MS = 2_000;
/** The file is rewritten at open when it has more than this many lines per record in use (plus a slack). */
const STALE_LINES_FACTOR = 2;
const STALE_LINES_SLACK = 1_000;

/** One line of the file. */
interface Line {
  k: string;
  e: string;
  v?: string;
  b?: number;
  m: ObjectMetadata;
  t?: string;
}

export class KeptMetadata {
  private readonly records: LRUCache<string, Held>;
  /** Lines learned and not yet appended. */
  private unwritten: string[] = [];
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private closed = false;

  private constructor(private readonly options: KeptMetadataOptions) {
    this.records = new LRUCache<string, Held>({ max: options.maxRecords });
    this.timer = setInterval(() => void this.flush(), FLUSH_MS);
    this.timer.unref();
  }

  /** Reads what an earlier mount kept in `options.file` (nothing, if it is missing or unreadable). */
  static async open(options: KeptMetadataOptions): Promise<KeptMetadata> {
    const kept = new KeptMetadata(options);
    let text = '';
    try {
      const handle = await open(options.file, LOCAL.read);
      try {
        text = await handle.readFile('utf8');
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
        options.logger.warn(`cannot read the metadata kept in ${options.file}, starting without it: ${(error as Error).message}`);
      }
      return kept;
    }
    let lines = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      lines += 1;
      const record = parseLine(line);
      if (record) kept.records.set(record.key, held(record.record));
    }
    if (lines > STALE_LINES_FACTOR * kept.records.size + STALE_LINES_SLACK) await kept.compact();
    return kept;
  }

  /** The metadata kept for the version of `object` a listing shows, if any. */
  find(key: string, object: { etag: string; lastModified: Date }): KeptRecord | undefined {
    const found = this.records.get(key);
    if (!found || !isSameVersion(found, object)) return undefined;
    const record = unheld(found);
    if (record.version === undefined) {
      // Written here: the listing tells its exact version, which is what is kept from now on.
      this.remember(key, { ...record, version: versionOf(object), modifiedBy: undefined });
    }
    return record;
  }

  /** Keeps `record` as what `key`'s version holds. */
  remember(key: string, record: KeptRecord): void {
    if (this.closed) return;
    const known = this.records.get(key);
    const now = held(record);
    if (
      known &&
      known.etag === now.etag &&
      known.version === now.version &&
      known.modifiedBy === now.modifiedBy &&
      known.contentType === now.contentType &&
      known.metadata === now.metadata
    ) {
      return; // nothing new: no line
    }
    this.records.set(key, now);
    this.unwritten.push(lineOf(key, now));
  }

  /** Appends what was learned since the last flush. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.unwritten.length === 0) return;
      const text = `${this.unwritten.join('\n')}\n`;
      this.unwritten = [];
      try {
        const handle = await open(this.options.file, LOCAL.append, 0o600);
        try {
          await handle.writeFile(text);
        } finally {
          await handle.close();
        }
      } catch (error) {
        this.options.logger.warn(`cannot keep metadata in ${this.options.file}: ${(error as Error).message}`);
      }
    });
    return this.flushing;
  }

  /** Appends the rest and stops. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
    this.closed = true;
  }

  get size(): number {
    return this.records.size;
  }

  /** Rewrites the file with only the records in use (oldest first, so the order of use survives). */
  private async compact(): Promise<void> {
    const temporary = `${this.options.file}.compacting`;
    const lines: string[] = [];
    for (const key of this.records.rkeys()) {
      const record = this.records.peek(key);
      if (record) lines.push(lineOf(key, record));
    }
    try {
      const handle = await open(temporary, LOCAL.replace, 0o600);
      try {
        await handle.writeFile(lines.length > 0 ? `${lines.join('\n')}\n` : '');
      } finally {
        await handle.close();
      }
      await rename(temporary, this.options.file);
    } catch (error) {
      this.options.logger.warn(`cannot compact the metadata kept in ${this.options.file}: ${(error as Error).message}`);
    }
  }
}

function held(record: KeptRecord): Held {
  // Sorted, so the same metadata is the same text.
  const sorted = Object.fromEntries(Object.entries(record.metadata).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return { ...record, metadata: JSON.stringify(sorted) };
}

function unheld(record: Held): KeptRecord {
  return { ...record, metadata: JSON.parse(record.metadata) as ObjectMetadata };
}

/** A record as a line of the file (JSON, the metadata's text spliced in as it is held). */
function lineOf(key: string, record: Held): string {
  const fields = [`"k":${JSON.stringify(key)}`, `"e":${JSON.stringify(record.etag)}`, `"m":${record.metadata}`];
  if (record.version !== undefined) fields.push(`"v":${JSON.stringify(record.version)}`);
  if (record.modifiedBy !== undefined) fields.push(`"b":${record.modifiedBy}`);
  if (record.contentType !== undefined) fields.push(`"t":${JSON.stringify(record.contentType)}`);
  return `{${fields.join(',')}}`;
}

/** A line as a record, or undefined when it is not one (torn by a crash, or from elsewhere). */
function parseLine(text: string): { key: string; record: KeptRecord } | undefined {
  let line: Partial<Line>;
  try {
    line = JSON.parse(text) as Partial<Line>;
  } catch {
    return undefined;
  }
  if (typeof line !== 'object' || line === null || typeof line.k !== 'string' || typeof line.e !== 'string') return undefined;
  if (typeof line.m !== 'object' || line.m === null || Object.values(line.m).some((v) => typeof v !== 'string')) return undefined;
  if (line.v !== undefined && typeof line.v !== 'string') return undefined;
  if (line.b !== undefined && typeof line.b !== 'number') return undefined;
  if (line.v === undefined && line.b === undefined) return undefined; // matches no version
  return {
    key: line.k,
    record: {
      etag: line.e,
      version: line.v,
      modifiedBy: line.b,
      metadata: line.m,
      contentType: typeof line.t === 'string' ? line.t : undefined,
    },
  };
}

/** A listed file's node from the metadata an earlier mount kept for its version (`kept`). */
export function keptNode(object: ObjectInfo, kept: Pick<KeptRecord, 'metadata' | 'contentType'>, defaults: AttributeDefaults): CachedNode {
  // To the second, as a HEAD tells it (a listing gives milliseconds).
  const lastModified = new Date(Math.floor(object.lastModified.getTime() / 1000) * 1000);
  return {
    attrs: attributesOfObject({ size: object.size, lastModified, metadata: kept.metadata }, 'file', defaults),
    etag: object.etag,
    explicit: false,
    complete: true,
    contentType: kept.contentType,
    version: versionOf(object),
  };
}
