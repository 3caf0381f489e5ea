/**
 * The only module that loads the FUSE binding (fuse-native 2.2.6, libfuse 2.9).
 *
 * Its limits, and how we meet them:
 * - It asks for 4 KiB writes unless told otherwise: we add `big_writes` and `max_write=131072`
 *   (libfuse 2.9's ceiling), so each write carries up to 128 KiB.
 * - It answers any operation that takes longer than 15 s with ETIMEDOUT: we turn that off
 *   (`timeout: false`); every store request has its own connect/idle timeouts and bounded
 *   retries, so an operation always ends, and a long flush of a large file is not cut short.
 * - Write buffers belong to native code and are reused once the callback returns: `operations.ts`
 *   copies them before any asynchronous use.
 * - Its utimens glue drops the mtime; scripts/build-fuse-native rebuilds it with the fix. A
 *   missing rebuild is reported by `hasUtimensFix` so the daemon can warn.
 */

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);

/** The callback-style operations fuse-native calls. */
export type FuseOperations = Record<string, (...args: never[]) => void>;

interface FuseNativeInstance {
  mount(cb: (error: Error | null) => void): void;
  unmount(cb: (error: Error | null) => void): void;
  _fuseOptions(): string;
}

type FuseNativeClass = new (mountpoint: string, ops: FuseOperations, options: object) => FuseNativeInstance;

const FuseNative = require('fuse-native') as FuseNativeClass & { unmount(mnt: string, cb: (e: Error | null) => void): void };

export interface FuseMountOptions {
  /** Shown as the source in /proc/mounts, e.g. `s3://bucket/prefix`. */
  fsName: string;
  allowOther: boolean;
  /** Kernel attribute and entry cache, in seconds. */
  attrTimeoutSeconds: number;
  debug: boolean;
}

/** FUSE's per-write ceiling with libfuse 2.9. */
export const MAX_WRITE = 128 * 1024;

/** A mounted (or mountable) FUSE session. */
export class FuseSession {
  private readonly fuse: FuseNativeInstance;

  constructor(
    readonly mountpoint: string,
    operations: FuseOperations,
    options: FuseMountOptions,
  ) {
    const fuse = new FuseNative(mountpoint, operations, {
      timeout: false,
      fsname: options.fsName.replace(/,/g, '_'),
      subtype: 'objmount',
      allowOther: options.allowOther,
      defaultPermissions: true,
      // The kernel keeps a file's pages across opens while its mtime and size are unchanged (a
      // changed object has a new mtime), so a second read of a hot file costs no request.
      autoCache: true,
      debug: options.debug,
    });
    const base = fuse._fuseOptions.bind(fuse);
    fuse._fuseOptions = () => {
      // The timeouts go here, not through fuse-native's options: it drops a 0 (libfuse then
      // keeps entries for its default second, and --metadata-ttl 0 would not mean "ask again").
      const timeouts = `entry_timeout=${options.attrTimeoutSeconds},attr_timeout=${options.attrTimeoutSeconds}`;
      const extra = `big_writes,max_write=${MAX_WRITE},${timeouts}`;
      const given = base();
      return given ? `${given},${extra}` : `-o${extra}`;
    };
    this.fuse = fuse;
  }

  /** Resolves once the kernel has the mount and FUSE's init has run. */
  mount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.mount((error) => (error ? reject(error) : resolve())));
  }

  /** Detaches the mount (lazily, so a busy mount still goes) and stops serving it. */
  unmount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.unmount((error) => (error ? reject(error) : resolve())));
  }
}

/** True when fuse-native was rebuilt with the utimens fix (see scripts/build-fuse-native). */
export function hasUtimensFix(): boolean {
  const packageDir = dirname(require.resolve('fuse-native/package.json'));
  return existsSync(join(packageDir, 'build', 'Release', 'fuse.node'));
}
