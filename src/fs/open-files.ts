/**
 * The files open in a mount: one `OpenFile` per path, shared by all the handles FUSE holds on it,
 * and the table from handle numbers to those handles.
 *
 * A path's entry outlives its handles while an upload is pending (async mode) and goes when the
 * last handle is released and nothing is left to upload. Rename moves entries; unlink drops them
 * while the handles go on (POSIX keeps an unlinked file readable).
 */

import { FsError } from './errors.js';
import type { OpenFile } from './open-file.js';
import type { FileReader } from './read/file-reader.js';

/** Open flags as Linux defines them. */
export const O_ACCMODE = 0o3;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

/** Handle numbers wrap before they reach what FUSE could mistake for an error. */
const MAX_HANDLE = 0xfffffff0;

export interface Handle {
  file: OpenFile;
  writable: boolean;
  append: boolean;
  /** Reads of this handle from the store (each handle has its own read-ahead). */
  reader?: FileReader;
}

export class OpenFileTable {
  private readonly byPath = new Map<string, OpenFile>();
  private readonly handles = new Map<number, Handle>();
  private nextHandle = 1;

  get(path: string): OpenFile | undefined {
    return this.byPath.get(path);
  }

  set(path: string, file: OpenFile): void {
    this.byPath.set(path, file);
  }

  /** Drops `path`'s entry; with `file`, only if the entry still is that file. */
  delete(path: string, file?: OpenFile): void {
    if (file === undefined || this.byPath.get(path) === file) this.byPath.delete(path);
  }

  files(): IterableIterator<OpenFile> {
    return this.byPath.values();
  }

  entries(): IterableIterator<[string, OpenFile]> {
    return this.byPath.entries();
  }

  /** Whether a file below directory `path` is open. */
  hasBelow(path: string): boolean {
    for (const openPath of this.byPath.keys()) if (openPath.startsWith(`${path}/`)) return true;
    return false;
  }

  /** Whether some handle may still write `file` (and so will save it when released). */
  hasWriter(file: OpenFile): boolean {
    for (const handle of this.handles.values()) if (handle.file === file && handle.writable) return true;
    return false;
  }

  /** Opens a handle on `file` with open(2) `flags`; returns its number. */
  addHandle(file: OpenFile, flags: number): number {
    const fh = this.nextHandle++;
    if (this.nextHandle > MAX_HANDLE) this.nextHandle = 1;
    file.refs += 1;
    this.handles.set(fh, { file, writable: (flags & O_ACCMODE) !== 0, append: (flags & O_APPEND) !== 0 });
    return fh;
  }

  /** The open handle `fh`, or EBADF. */
  handle(fh: number): Handle {
    const handle = this.handles.get(fh);
    if (!handle) throw new FsError('EBADF', `handle ${fh} is not open`);
    return handle;
  }

  /** Closes handle `fh` (its file's reference is dropped by the caller once it is saved). */
  removeHandle(fh: number): Handle {
    const handle = this.handle(fh);
    this.handles.delete(fh);
    return handle;
  }
}
