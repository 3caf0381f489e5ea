/**
 * A small in-memory file system served directly on the libfuse 3 addon (src/fuse/binding.ts),
 * for tests of the binding itself: no store, no FileSystem. Every mount it makes is unmounted in
 * every outcome by `unmount()`, with `fusermount3 -uz` as the last resort.
 */

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { FuseSession, type FuseOperations } from '../../src/fuse/binding.js';
import { isMounted } from './objmount.js';

const ENOENT = -2;
const EEXIST = -17;

interface Node {
  mode: number;
  data: Buffer;
  mtimeMs: number;
  atimeMs: number;
}

type Callback = (code: number, ...results: unknown[]) => void;

/** Files and directories by path; '/' always exists. */
export class MemoryTree {
  readonly nodes = new Map<string, Node>([['/', { mode: 0o40755, data: Buffer.alloc(0), mtimeMs: Date.now(), atimeMs: Date.now() }]]);

  file(path: string, content: string | Buffer): void {
    this.nodes.set(path, { mode: 0o100644, data: Buffer.from(content), mtimeMs: Date.now(), atimeMs: Date.now() });
  }

  /** FUSE operations over this tree, with `overrides` in place of some. */
  operations(overrides: Record<string, unknown> = {}): FuseOperations {
    const nodes = this.nodes;
    const ops = {
      getattr: (path: string, cb: Callback) => {
        const n = nodes.get(path);
        if (!n) return cb(ENOENT);
        const dir = (n.mode & 0o170000) === 0o40000;
        cb(0, {
          mode: n.mode,
          size: n.data.length,
          nlink: dir ? 2 : 1,
          uid: 0,
          gid: 0,
          mtime: n.mtimeMs,
          atime: n.atimeMs,
          ctime: n.mtimeMs,
        });
      },
      readdir: (path: string, cb: Callback) => {
        const prefix = path === '/' ? '/' : `${path}/`;
        const names = [...nodes.keys()].filter((p) => p !== path && p.startsWith(prefix) && !p.slice(prefix.length).includes('/'));
        cb(
          0,
          names.map((p) => p.slice(prefix.length)),
        );
      },
      mkdir: (path: string, mode: number, _uid: number, _gid: number, cb: Callback) => {
        if (nodes.has(path)) return cb(EEXIST);
        nodes.set(path, { mode: 0o40000 | mode, data: Buffer.alloc(0), mtimeMs: Date.now(), atimeMs: Date.now() });
        cb(0);
      },
      create: (path: string, mode: number, _uid: number, _gid: number, _flags: number, cb: Callback) => {
        nodes.set(path, { mode: 0o100000 | mode, data: Buffer.alloc(0), mtimeMs: Date.now(), atimeMs: Date.now() });
        cb(0, 1);
      },
      open: (path: string, _flags: number, cb: Callback) => (nodes.has(path) ? cb(0, 1) : cb(ENOENT)),
      read: (path: string, _fh: number, buffer: Buffer, length: number, position: number, cb: (n: number) => void) => {
        const n = nodes.get(path);
        if (!n) return cb(ENOENT);
        cb(n.data.copy(buffer, 0, Math.min(position, n.data.length), Math.min(n.data.length, position + length)));
      },
      write: (path: string, _fh: number, buffer: Buffer, length: number, position: number, cb: (n: number) => void) => {
        const n = nodes.get(path);
        if (!n) return cb(ENOENT);
        if (position + length > n.data.length) {
          const grown = Buffer.alloc(position + length);
          n.data.copy(grown);
          n.data = grown;
        }
        buffer.copy(n.data, position, 0, length);
        n.mtimeMs = Date.now();
        cb(length);
      },
      truncate: (path: string, size: number, cb: Callback) => {
        const n = nodes.get(path);
        if (!n) return cb(ENOENT);
        const resized = Buffer.alloc(size);
        n.data.copy(resized, 0, 0, Math.min(size, n.data.length));
        n.data = resized;
        cb(0);
      },
      unlink: (path: string, cb: Callback) => (nodes.delete(path) ? cb(0) : cb(ENOENT)),
      // Moves a file or a whole directory; whatever was at the target is replaced.
      rename: (from: string, to: string, cb: Callback) => {
        if (!nodes.has(from)) return cb(ENOENT);
        for (const [path, node] of [...nodes]) {
          if (path === from || path.startsWith(`${from}/`)) {
            nodes.delete(path);
            nodes.set(to + path.slice(from.length), node);
          }
        }
        cb(0);
      },
      utimens: (path: string, atime: number | null, mtime: number | null, cb: Callback) => {
        const n = nodes.get(path);
        if (!n) return cb(ENOENT);
        if (atime !== null) n.atimeMs = atime;
        if (mtime !== null) n.mtimeMs = mtime;
        cb(0);
      },
      chmod: (path: string, mode: number, cb: Callback) => {
        const n = nodes.get(path);
        if (!n) return cb(ENOENT);
        n.mode = (n.mode & 0o170000) | (mode & 0o7777);
        cb(0);
      },
      flush: (_path: string, _fh: number, _pid: number, _ino: number, cb: Callback) => cb(0),
      release: (_path: string, _fh: number, cb: Callback) => cb(0),
      ...overrides,
    };
    return ops as unknown as FuseOperations;
  }
}

export interface MemoryMount {
  mountpoint: string;
  session: FuseSession;
  /** Unmounts (idempotent); detaches with fusermount3 -uz if the binding could not. */
  unmount(): Promise<void>;
}

export interface MemoryMountOptions {
  attrTimeoutSeconds?: number;
  writebackCache?: boolean;
  onOperationError?: (operation: string, error: unknown) => void;
}

export async function mountMemory(operations: FuseOperations, options: MemoryMountOptions = {}): Promise<MemoryMount> {
  const mountpoint = join(mkdtempSync(join(tmpdir(), 'objmount-fuse3-')), 'mnt');
  mkdirSync(mountpoint);
  const session = new FuseSession(mountpoint, operations, {
    fsName: 'memory',
    allowOther: false,
    attrTimeoutSeconds: options.attrTimeoutSeconds ?? 0,
    debug: false,
    writebackCache: options.writebackCache,
    onOperationError: options.onOperationError,
  });
  let done: Promise<void> | undefined;
  const unmount = () =>
    (done ??= session.unmount().finally(() => {
      if (isMounted(session.mountpoint)) execFileSync('fusermount3', ['-uz', session.mountpoint]);
    }));
  try {
    await session.mount();
  } catch (error) {
    await unmount().catch(() => undefined);
    throw error;
  }
  return { mountpoint: session.mountpoint, session, unmount };
}
