/**
 * A file's local copy while it is written (its staging copy): in memory while it is new and
 * small, in a file of the staging directory otherwise.
 *
 * Why memory: a program that writes many small files (a shell loop, `tar x`, `cp -r`) made the
 * daemon open, write, close and unlink one staging file per file, four file-system calls on its
 * one JS thread for bytes that are uploaded in one PUT (and, in async mode, journaled with the
 * record, journal-log.ts) straight from memory. So a copy that starts empty (a new file, or one
 * truncated to nothing) is held in a buffer, until it grows past `maxBytes` or the mount's
 * `StagingMemory` is spent: then it goes to its file (`spill`) and stays there. A copy that needs
 * bytes from the store (a rewrite in the middle of an object) starts in its file, as the
 * downloads write there.
 *
 * The calls mirror a `FileHandle`'s (positional `write`, `read`, `truncate`), so the writers
 * need not care where the bytes are; what needs a real file (a multipart upload's parts, a
 * large file's journal record, downloads) asks for it with `onDisk()`.
 */

import { type FileHandle, open, rm } from 'node:fs/promises';

import { LOCAL } from './local-files.js';
import { removeFile } from './write/journal.js';

/** What the in-memory copies of one mount may hold together, and each at most. */
export class StagingMemory {
  private used = 0;

  constructor(
    /** Most bytes one file keeps in memory. */
    readonly maxBytes: number,
    /** Most bytes all of them keep. */
    readonly totalBytes: number,
  ) {}

  take(bytes: number): boolean {
    if (this.used + bytes > this.totalBytes) return false;
    this.used += bytes;
    return true;
  }

  give(bytes: number): void {
    this.used -= bytes;
  }

  get inUse(): number {
    return this.used;
  }
}

/** Capacity of a new in-memory copy; it doubles as the file grows. */
const FIRST_CAPACITY = 16 * 1024;

export class Staging {
  /** The bytes while in memory; those past `length` are zeros. */
  private memory: Buffer | undefined;
  private length = 0;
  /** `memory` was handed out (`bytes`): it is copied before the next change, not changed in place. */
  private lent = false;
  private handle: FileHandle | undefined;

  private constructor(
    readonly path: string,
    private readonly budget: StagingMemory | undefined,
  ) {}

  /** A copy in its file at `path` (made new: nothing may be there). */
  static async onDisk(path: string): Promise<Staging> {
    const staging = new Staging(path, undefined);
    staging.handle = await open(path, LOCAL.create, 0o600);
    return staging;
  }

  /** An empty copy in memory, with `path` for its file if it spills; undefined if `budget` is spent. */
  static inMemory(path: string, budget: StagingMemory): Staging | undefined {
    const capacity = Math.min(FIRST_CAPACITY, budget.maxBytes);
    if (!budget.take(capacity)) return undefined;
    const staging = new Staging(path, budget);
    staging.memory = Buffer.alloc(capacity);
    return staging;
  }

  get inMemory(): boolean {
    return this.memory !== undefined;
  }

  /** The file's handle, once the copy is on disk. */
  get fileHandle(): FileHandle | undefined {
    return this.handle;
  }

  /** The first `size` bytes, while in memory (a view: valid until the next change). */
  bytes(size: number): Buffer | undefined {
    if (!this.memory) return undefined;
    if (size > this.length) throw new Error(`${this.path}: ${size} bytes asked of a copy of ${this.length}`);
    // A request that outlived its deadline may still be reading it: later writes go elsewhere.
    this.lent = true;
    return this.memory.subarray(0, size);
  }

  async write(data: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }> {
    if (this.memory && this.grow(position + length)) {
      this.unlend();
      data.copy(this.memory, position, offset, offset + length);
      this.length = Math.max(this.length, position + length);
      return { bytesWritten: length };
    }
    const handle = await this.onDisk();
    const { bytesWritten } = await handle.write(data, offset, length, position);
    return { bytesWritten };
  }

  async read(into: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
    if (this.memory) {
      const end = Math.min(this.length, position + length);
      return { bytesRead: end > position ? this.memory.copy(into, offset, position, end) : 0 };
    }
    const { bytesRead } = await this.handle!.read(into, offset, length, position);
    return { bytesRead };
  }

  async truncate(size: number): Promise<void> {
    if (this.memory && this.grow(size)) {
      this.unlend();
      if (size < this.length) this.memory.fill(0, size, this.length);
      this.length = size;
      return;
    }
    await (await this.onDisk()).truncate(size);
  }

  /** The copy's file, with every byte in it (a copy in memory goes there now, and stays). */
  async onDisk(): Promise<FileHandle> {
    if (this.handle) return this.handle;
    const handle = await open(this.path, LOCAL.create, 0o600);
    try {
      if (this.length > 0) await handle.write(this.memory!, 0, this.length, 0);
    } catch (error) {
      await handle.close();
      await rm(this.path, { force: true });
      throw error;
    }
    this.handle = handle;
    this.release();
    return handle;
  }

  /** Closes and removes the copy. */
  async discard(): Promise<void> {
    this.release();
    const handle = this.handle;
    this.handle = undefined;
    if (handle) {
      await handle.close().catch(() => undefined);
      await removeFile(this.path);
    }
  }

  /** Makes room in memory for `size` bytes; false when the copy must go to its file instead. */
  private grow(size: number): boolean {
    const memory = this.memory!;
    if (size <= memory.length) return true;
    if (size > this.budget!.maxBytes) return false;
    const capacity = Math.min(this.budget!.maxBytes, Math.max(size, memory.length * 2));
    if (!this.budget!.take(capacity - memory.length)) return false;
    const larger = Buffer.alloc(capacity);
    memory.copy(larger, 0, 0, this.length);
    this.memory = larger;
    this.lent = false;
    return true;
  }

  /** A copy of the memory handed out, to change instead of it. */
  private unlend(): void {
    if (!this.lent) return;
    this.memory = Buffer.from(this.memory!);
    this.lent = false;
  }

  private release(): void {
    if (!this.memory) return;
    this.budget!.give(this.memory.length);
    this.memory = undefined;
    this.length = 0;
  }
}
