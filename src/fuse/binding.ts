/**
 * The only module that loads a FUSE binding: our own libfuse 3 addon (native/, the default), or
 * fuse-native 2.2.6 (libfuse 2.9) while it is still selectable.
 *
 * The addon (see native/src/session.h for how it works):
 * - serves FUSE on native threads with libfuse's multithreaded loop; each operation is handed to
 *   the JS thread and its FUSE thread waits for the answer, so one slow operation (a flush
 *   uploading a large file) does not hold up the others;
 * - carries up to 1 MiB per read and write (`MAX_WRITE`), and pages large directories;
 * - gives each `write` a Buffer of its own, which the file system may keep;
 * - passes both times to `utimens` (null for a time left as it is);
 * - on unmount, answers every operation still waiting for JS with ENOTCONN and ends its loop
 *   even while the mount is busy, so neither the kernel nor the process is left hanging.
 *
 * fuse-native's limits, met here while it remains: 128 KiB writes (`big_writes,max_write`), its
 * 15 s operation timeout (off), reused write buffers (`operations.ts` copies them), and a utimens
 * that drops the mtime unless scripts/build-fuse-native rebuilt it (`hasUtimensFix`).
 */

import { execFile } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const EIO = 5;

/** The callback-style operations the binding calls. */
export type FuseOperations = Record<string, (...args: never[]) => void>;

/** Which binding serves the mount. */
export type FuseBindingName = 'fuse3' | 'fuse-native';

export interface FuseMountOptions {
  /** Shown as the source in /proc/mounts, e.g. `s3://bucket/prefix`. */
  fsName: string;
  allowOther: boolean;
  /** Kernel attribute and entry cache, in seconds. */
  attrTimeoutSeconds: number;
  debug: boolean;
  /** Let the kernel gather writes in its page cache (fuse3 only). */
  writebackCache?: boolean;
  /** Defaults to fuse3. */
  binding?: FuseBindingName;
  /** Told about a JS operation that threw (the kernel got EIO). */
  onOperationError?: (operation: string, error: unknown) => void;
}

/** The most one FUSE write (and read) carries with the libfuse 3 addon. */
export const MAX_WRITE = 1024 * 1024;
/** FUSE's per-write ceiling with fuse-native (libfuse 2.9). */
export const FUSE_NATIVE_MAX_WRITE = 128 * 1024;

/** How long unmount waits for the FUSE loop to end before letting it go. */
const LOOP_END_TIMEOUT_MS = 5000;

type Dispatch = (op: number, id: number, ...args: unknown[]) => void;

interface Fuse3Addon {
  /** Operation names, indexed by the `op` that dispatch receives. */
  opNames: string[];
  create(mountpoint: string, options: object, ops: FuseOperations, dispatch: Dispatch): unknown;
  reply(handle: unknown, id: number, code: unknown, result?: unknown): void;
  mount(handle: unknown, onMounted: (error: Error | null) => void, onEnded: () => void, onOpError?: (op: string, error: unknown) => void): void;
  unmount(handle: unknown): void;
  unref(handle: unknown): void;
  invalidatePath(handle: unknown, path: string, callback: (errno: number) => void): void;
}

const ADDON_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'native', 'build', 'Release', 'objmount_fuse3.node');

let addon: Fuse3Addon | undefined;
/** The libfuse 3 addon; throws one clear line when it was not built. */
export function loadFuse3Addon(): Fuse3Addon {
  if (!addon) {
    if (!existsSync(ADDON_PATH)) throw new Error(`the FUSE 3 addon is not built (${ADDON_PATH} is missing): run scripts/setup`);
    addon = require(ADDON_PATH) as Fuse3Addon;
  }
  return addon;
}

/** A mounted (or mountable) FUSE session. */
export interface FuseSession {
  readonly mountpoint: string;
  /** Resolves once the kernel has the mount and FUSE's init has run. */
  mount(): Promise<void>;
  /** Detaches the mount (lazily, so a busy mount still goes) and stops serving it. */
  unmount(): Promise<void>;
}

export function createFuseSession(mountpoint: string, operations: FuseOperations, options: FuseMountOptions): FuseSession {
  return options.binding === 'fuse-native'
    ? new FuseNativeSession(mountpoint, operations, options)
    : new Fuse3Session(mountpoint, operations, options);
}

/** A session on our libfuse 3 addon. */
export class Fuse3Session implements FuseSession {
  readonly mountpoint: string;
  private readonly handle: unknown;
  private readonly addon = loadFuse3Addon();
  private endedResolve!: () => void;
  /** Resolves when the FUSE loop has ended: after unmount(), or an unmount from outside. */
  readonly ended = new Promise<void>((resolve) => (this.endedResolve = resolve));

  constructor(
    mountpoint: string,
    operations: FuseOperations,
    private readonly options: FuseMountOptions,
  ) {
    // Canonical, as the mount table shows it: the addon finds its kernel connection there.
    this.mountpoint = canonical(mountpoint);
    const { opNames, reply } = this.addon;
    const onError = options.onOperationError;
    // Every request comes through here with an id; the op answers through a closure over it.
    // (A closure made here costs far less than a native function made per request.)
    const dispatch: Dispatch = (op, id, ...args) => {
      const name = opNames[op]!;
      try {
        (operations[name] as (...a: unknown[]) => void)(...args, (code: unknown, result?: unknown) => reply(handle, id, code, result));
      } catch (error) {
        reply(handle, id, -EIO); // ignored if the op had answered before throwing
        onError?.(name, error);
      }
    };
    const handle = this.addon.create(this.mountpoint, {
      fsName: options.fsName.replace(/[,\\]/g, '_') || 'objmount',
      subtype: 'objmount',
      allowOther: options.allowOther,
      defaultPermissions: true,
      // The kernel keeps a file's pages across opens while its mtime and size are unchanged (a
      // changed object has a new mtime), so a second read of a hot file costs no request.
      autoCache: true,
      writebackCache: options.writebackCache ?? false,
      attrTimeout: options.attrTimeoutSeconds,
      entryTimeout: options.attrTimeoutSeconds,
      maxWrite: MAX_WRITE,
      maxRead: MAX_WRITE,
      debug: options.debug,
    }, operations, dispatch);
    this.handle = handle;
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) =>
      this.addon.mount(
        this.handle,
        (error) => {
          if (!error) return resolve();
          this.endedResolve(); // a loop that never started has nothing to end
          reject(error);
        },
        () => this.endedResolve(),
        this.options.onOperationError,
      ),
    );
  }

  async unmount(): Promise<void> {
    // Detach first, so nothing new arrives; then answer what is in flight and end the loop.
    await detachLazily(this.mountpoint);
    this.addon.unmount(this.handle);
    // Stopping wakes the FUSE loop with a signal, which can slip in just before the loop waits:
    // repeat it (it is idempotent) until the loop has ended.
    const kick = setInterval(() => this.addon.unmount(this.handle), 100);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), LOOP_END_TIMEOUT_MS)));
    const late = await Promise.race([this.ended.then(() => false), timedOut]);
    clearInterval(kick);
    clearTimeout(timer);
    // Should the loop still not end, it must not hold the process.
    if (late) this.addon.unref(this.handle);
  }

  /** Drops the kernel's cached attributes and pages of `path`; resolves with 0 or -errno. */
  invalidate(path: string): Promise<number> {
    return new Promise((resolve) => this.addon.invalidatePath(this.handle, path, resolve));
  }
}

function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

function detachLazily(mountpoint: string): Promise<void> {
  return new Promise((resolve) => execFile('fusermount3', ['-uz', mountpoint], () => resolve()));
}

interface FuseNativeInstance {
  mount(cb: (error: Error | null) => void): void;
  unmount(cb: (error: Error | null) => void): void;
  _fuseOptions(): string;
}

type FuseNativeClass = new (mountpoint: string, ops: FuseOperations, options: object) => FuseNativeInstance;

/** A session on fuse-native 2.2.6 (libfuse 2.9), kept selectable while the addon is new. */
class FuseNativeSession implements FuseSession {
  private readonly fuse: FuseNativeInstance;

  constructor(
    readonly mountpoint: string,
    operations: FuseOperations,
    options: FuseMountOptions,
  ) {
    const FuseNative = require('fuse-native') as FuseNativeClass;
    const fuse = new FuseNative(mountpoint, operations, {
      timeout: false,
      fsname: options.fsName.replace(/,/g, '_'),
      subtype: 'objmount',
      allowOther: options.allowOther,
      defaultPermissions: true,
      autoCache: true,
      attrTimeout: options.attrTimeoutSeconds,
      entryTimeout: options.attrTimeoutSeconds,
      debug: options.debug,
    });
    const base = fuse._fuseOptions.bind(fuse);
    fuse._fuseOptions = () => {
      const extra = `big_writes,max_write=${FUSE_NATIVE_MAX_WRITE}`;
      const options = base();
      return options ? `${options},${extra}` : `-o${extra}`;
    };
    this.fuse = fuse;
  }

  mount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.mount((error) => (error ? reject(error) : resolve())));
  }

  unmount(): Promise<void> {
    return new Promise((resolve, reject) => this.fuse.unmount((error) => (error ? reject(error) : resolve())));
  }
}

/** True when fuse-native was rebuilt with the utimens fix (see scripts/build-fuse-native). */
export function hasUtimensFix(): boolean {
  const packageDir = dirname(require.resolve('fuse-native/package.json'));
  return existsSync(join(packageDir, 'build', 'Release', 'fuse.node'));
}
