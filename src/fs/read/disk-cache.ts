/**
 * The disk tier of the block cache: blocks as files under `--cache-dir`, bounded by
 * `--cache-size`, least recently used evicted first, and found again after a remount.
 *
 * Each file starts with a header naming what it holds (store, key, ETag, index, length) and a
 * CRC-32 of the data. A read checks all of it against what was asked for: any mismatch (a torn
 * write, a flipped bit, a hash collision, another store's block) is a miss and the file is
 * removed, never wrong bytes. Files are written to a temporary name and renamed into place.
 *
 * When the disk is full (ENOSPC, EDQUOT), writing stops for a while (`FULL_PAUSE_MS`) and the log
 * says so once, not once per block; reads of the blocks already there go on.
 *
 * Layout: DIR/blocks/<2 hex>/<sha-256 of store, key, ETag and index>. The directory is private
 * (0700): it holds object data.
 */

import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';

import { LRUCache } from 'lru-cache';

import type { Logger } from '../../log/logger.js';
import type { ObjectVersion } from './object-version.js';
import { LOCAL } from '../local-files.js';

const MAGIC = Buffer.from('OBJMOUNT-BLOCK-1\n');

/** After a write found the disk full, no block is written for this long; then one tries again. */
const FULL_PAUSE_MS = 30_000;

interface Header {
  store: string;
  key: string;
  etag: string;
  index: number;
  length: number;
  crc32: number;
}

export interface DiskCacheOptions {
  directory: string;
  maxBytes: number;
  /** Names the store, so two mounts sharing a cache directory never mix their blocks. */
  store: string;
  logger: Logger;
}

export class DiskCache {
  /** File name → bytes on disk, in least-recently-used order. */
  private readonly index: LRUCache<string, number>;
  private readonly blocksDir: string;
  private readonly writes = new Set<Promise<void>>();
  /** When a write last found the disk full, while it is (undefined: not full). */
  private fullAt?: number;
  corrupt = 0;
  /** Blocks not written because the disk was full. */
  skippedFull = 0;

  private constructor(private readonly options: DiskCacheOptions) {
    this.blocksDir = join(options.directory, 'blocks');
    this.index = new LRUCache<string, number>({
      maxSize: options.maxBytes,
      sizeCalculation: (bytes) => Math.max(1, bytes),
      dispose: (_bytes, name, reason) => {
        if (reason === 'evict' || reason === 'delete') void rm(this.pathOf(name), { force: true }).catch(() => undefined);
      },
    });
  }

  /** Opens (creating) the cache directory and indexes the blocks a previous mount left, oldest first. */
  static async open(options: DiskCacheOptions): Promise<DiskCache> {
    const cache = new DiskCache(options);
    await mkdir(cache.blocksDir, { recursive: true, mode: 0o700 });
    const found: Array<{ name: string; bytes: number; used: number }> = [];
    for (const shard of await readdir(cache.blocksDir)) {
      for (const name of await readdir(join(cache.blocksDir, shard)).catch((): string[] => [])) {
        const path = join(cache.blocksDir, shard, name);
        if (name.includes('.tmp')) {
          await rm(path, { force: true }); // an interrupted write
          continue;
        }
        const info = await stat(path).catch(() => undefined);
        if (info?.isFile()) found.push({ name, bytes: info.size, used: info.mtimeMs });
      }
    }
    found.sort((a, b) => a.used - b.used);
    for (const { name, bytes } of found) cache.index.set(name, bytes); // over the limit: oldest go
    return cache;
  }

  /** Bytes of blocks on disk. */
  get size(): number {
    return this.index.calculatedSize;
  }

  /** Whether a copy of the block is on disk (not yet checked: `get` may still find it damaged). */
  has(version: ObjectVersion, index: number): boolean {
    return this.index.has(this.nameOf(version, index));
  }

  /** The block, if a valid copy is on disk. */
  async get(version: ObjectVersion, index: number, length: number): Promise<Buffer | undefined> {
    const name = this.nameOf(version, index);
    if (!this.index.get(name)) return undefined;
    const path = this.pathOf(name);
    let file: Buffer;
    try {
      const handle = await open(path, LOCAL.read);
      try {
        file = await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch {
      this.index.delete(name);
      return undefined;
    }
    const data = this.check(file, { store: this.options.store, key: version.key, etag: version.etag, index, length });
    if (!data) {
      this.corrupt += 1;
      this.options.logger.warn(`cache: discarded a damaged block of ${version.key} (block ${index})`);
      this.index.delete(name);
      return undefined;
    }
    const now = new Date();
    void utimes(path, now, now).catch(() => undefined); // recency survives a remount
    return data;
  }

  /**
   * Writes the block in the background; a failure only costs the cache entry. `data` is copied
   * before this returns (the block cache may recycle its buffer once it is evicted).
   */
  put(version: ObjectVersion, index: number, data: Buffer): void {
    if (data.length > this.options.maxBytes) return;
    if (this.fullAt !== undefined && Date.now() - this.fullAt < FULL_PAUSE_MS) {
      this.skippedFull += 1;
      return;
    }
    const name = this.nameOf(version, index);
    const header: Header = {
      store: this.options.store,
      key: version.key,
      etag: version.etag,
      index,
      length: data.length,
      crc32: crc32(data),
    };
    const headerBytes = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(4);
    length.writeUInt32BE(headerBytes.length);
    const path = this.pathOf(name);
    const temporary = `${path}.tmp${process.pid}-${Math.random().toString(36).slice(2)}`;
    const file = Buffer.concat([MAGIC, length, headerBytes, data]);
    const write = (async () => {
      await mkdir(join(this.blocksDir, name.slice(0, 2)), { recursive: true, mode: 0o700 });
      await writeFile(temporary, file, { mode: 0o600, flag: LOCAL.create });
      await rename(temporary, path);
      this.index.set(name, MAGIC.length + 4 + headerBytes.length + data.length);
      if (this.fullAt !== undefined) {
        this.fullAt = undefined;
        this.options.logger.info(`cache: ${this.options.directory} has room again; blocks are written to it again`);
      }
    })()
      .catch((error: unknown) => {
        void rm(temporary, { force: true }).catch(() => undefined);
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOSPC' || code === 'EDQUOT') {
          if (this.fullAt === undefined) {
            this.options.logger.warn(
              `cache: the disk of ${this.options.directory} is full (${code}): no blocks are written to it for now (tried again every ${FULL_PAUSE_MS / 1000} s); free some space or lower --cache-size`,
            );
          }
          this.fullAt = Date.now();
          this.skippedFull += 1;
          return;
        }
        this.options.logger.warn(`cache: could not write a block of ${version.key}: ${(error as Error).message}`);
      })
      .finally(() => this.writes.delete(write));
    this.writes.add(write);
  }

  /** Resolves once every block write started so far has finished. */
  async settled(): Promise<void> {
    await Promise.all([...this.writes]);
  }

  /** The data of a cache file if its header and checksum match what was asked for. */
  private check(file: Buffer, expected: Omit<Header, 'crc32'>): Buffer | undefined {
    if (file.length < MAGIC.length + 4 || !file.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    const headerLength = file.readUInt32BE(MAGIC.length);
    const dataStart = MAGIC.length + 4 + headerLength;
    if (dataStart > file.length) return undefined;
    let header: Header;
    try {
      header = JSON.parse(file.subarray(MAGIC.length + 4, dataStart).toString('utf8')) as Header;
    } catch {
      return undefined;
    }
    const data = file.subarray(dataStart);
    const matches =
      header.store === expected.store &&
      header.key === expected.key &&
      header.etag === expected.etag &&
      header.index === expected.index &&
      header.length === expected.length &&
      data.length === expected.length &&
      header.crc32 === crc32(data);
    return matches ? data : undefined;
  }

  private nameOf(version: ObjectVersion, index: number): string {
    return createHash('sha256').update(`${this.options.store}\0${version.key}\0${version.etag}\0${index}`).digest('hex');
  }

  private pathOf(name: string): string {
    return join(this.blocksDir, name.slice(0, 2), name);
  }
}
