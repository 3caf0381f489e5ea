/**
 * The only module that loads the FUSE binding: our Node-API addon on libfuse 3 (native/, built by
 * scripts/build-native; native/src/session.h says how it works).
 *
 * - FUSE is served on this thread, by libfuse's low-level API on Node's event loop; no thread
 *   waits for an answer, so one slow operation (a flush uploading a large file) does not hold up
 *   the others. Never make a synchronous file call on the mount from this process: only this
 *   thread can answer it.
 * - Reads and writes carry up to 1 MiB (`MAX_WRITE`); large directories are sent in pages.
 * - With a `readdirplus` op, directories are read with attributes: it answers like `readdir`, but
 *   an item may be `{ name, ...stat }` instead of a name, and the kernel then takes that entry as
 *   looked up (no LOOKUP of it while the attribute timeout lasts). An op should give attributes
 *   only where a lookup would answer the same at once.
 * - `read` fills a Buffer over the very memory sent to the kernel, and `write` gets one over the
 *   memory the kernel wrote the data into. Both are lent for the operation only: once answered,
 *   the Buffer is detached (its memory serves the next request), so an op must not use it after
 *   its callback, and must copy what it keeps. The memory is not cleared between requests: a
 *   read's count must cover only bytes it wrote, or the kernel gets an earlier request's bytes.
 * - `utimens` gets both times, null for one left as it is (UTIME_OMIT).
 * - What makes a node gets the caller's uid and gid after its own arguments: `mkdir(path, mode,
 *   uid, gid)`, `create(path, mode, uid, gid, flags)` (the open flags, O_CREAT and O_EXCL and
 *   O_TRUNC among them), `symlink(target, path, uid, gid)`, `mknod(path,
 *   mode, rdev, uid, gid)` (rdev in the kernel's 32-bit encoding); a stat's `rdev` must fit 32
 *   bits (FUSE carries no more), or the answer is EIO.
 * - `flush` gets, after the handle, the pid of the process that closed the descriptor (0 when not
 *   known) and the file's inode number, so that /proc can tell a dup's close (descriptors.ts).
 * - The addon also makes the block cache's and the uploads' buffers (`largeBuffer`): memory of
 *   their own, in huge pages where the kernel allows and the caller asks for them; and it drops
 *   a streamed file's staged bytes from the page cache once the store has them (`dropFromPageCache`),
 *   and hashes upload parts off the JS thread for their S3 signature (`sha256OffThread`).
 * - A request the kernel interrupts (a program stuck on a hung store got a signal) is answered
 *   EINTR at once when it only reads (lookup, getattr, open, read, readdir...), and its op's
 *   answer is dropped. Those ops get a `Cancellation` (fs/cancellation.ts) after their callback:
 *   its AbortSignal, made only if the op asks for it (a store request), aborts when the kernel
 *   interrupts the request, so the op's store requests end at once. `interrupted` counts them.
 *   The kernel never interrupts its page-cache reads (asynchronous READs): a read's signal also
 *   aborts when the process it was made for closes the file (a killed `cat` does), and the read
 *   then answers EINTR (native/src/session.h).
 * - `storePages` pushes bytes of an open file into the kernel's page cache (FUSE_NOTIFY_STORE), so
 *   later reads of them cost no request; the addon refuses it while the file may be written, and
 *   holds back opens and truncates of the file until the stores in flight have ended
 *   (native/src/page_store.cc).
 * - unmount answers every operation still waiting for JS with ENOTCONN and closes the connection
 *   even while the mount is busy, so neither the kernel nor the process is left hanging.
 */

import { execFile } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getSystemErrorName } from 'node:util';

const require = createRequire(import.meta.url);
const EIO = 5;

/** The callback-style operations the binding calls. */
export type FuseOperations = Record<string, (...args: never[]) => void>;

export interface FuseMountOptions {
  /** Shown as the source in /proc/mounts, e.g. `s3://bucket/prefix`. */
  fsName: string;
  allowOther: boolean;
  /** Kernel attribute and entry cache, in seconds. */
  attrTimeoutSeconds: number;
  debug: boolean;
  /** Let the kernel gather writes in its page cache (FUSE_CAP_WRITEBACK_CACHE). */
  writebackCache?: boolean;
  /** Told about a JS operation that threw (the kernel got EIO). */
  onOperationError?: (operation: string, error: unknown) => void;
}

/** The most one FUSE write (and read) carries: libfuse 3's request buffer holds 1 MiB of data. */
export const MAX_WRITE = 1024 * 1024;

type Dispatch = (op: number, id: number, ...args: unknown[]) => void;

/** The ops of the requests the kernel may interrupt (native/src/request.h, `Interruptible`). */
const CANCELLABLE = new Set([
  'getattr',
  'fgetattr',
  'readdir',
  'readdirplus',
  'open',
  'read',
  'readlink',
  'statfs',
  'getxattr',
  'listxattr',
  'access',
]);

/**
 * The cancellations of the requests in JS whose op asked for a signal, by request id, and the
 * interrupts of those that had not asked yet (their signal is made aborted).
 */
class Cancellations {
  readonly live = new Map<number, AbortController>();
  readonly interrupted = new Set<number>();

  interrupt(id: number): void {
    const controller = this.live.get(id);
    if (controller) controller.abort(new Error('the file operation was interrupted'));
    else if (this.interrupted.size < 10_000) this.interrupted.add(id); // bounded, should ids ever go unanswered
  }
}

/** One request's cancellation: nothing is made until an op asks for `signal`. */
class RequestCancellation {
  private controller?: AbortController;

  constructor(
    private readonly all: Cancellations,
    private readonly id: number,
  ) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.all.interrupted.has(this.id)) this.controller.abort(new Error('the file operation was interrupted'));
      else this.all.live.set(this.id, this.controller);
    }
    return this.controller.signal;
  }

  /** The op answered: its id may come back for another request. */
  end(): void {
    if (this.controller) this.all.live.delete(this.id);
    if (this.all.interrupted.size > 0) this.all.interrupted.delete(this.id);
  }
}

interface Fuse3Addon {
  /** Operation names, indexed by the `op` that dispatch receives. */
  opNames: string[];
  create(mountpoint: string, options: object, ops: FuseOperations, dispatch: Dispatch): unknown;
  reply(handle: unknown, id: number, code: unknown, result?: unknown): void;
  mount(
    handle: unknown,
    onMounted: (error: Error | null) => void,
    onEnded: () => void,
    onOpError?: (op: string, error: unknown) => void,
  ): void;
  unmount(handle: unknown): void;
  invalidatePath(handle: unknown, path: string, callback: (errno: number) => void, pagesOnly?: boolean): void;
  nodeCount(handle: unknown): number;
  storePages(handle: unknown, fh: number, offset: number, data: Buffer, callback: (errno: number) => void): void;
  storesSent(handle: unknown): number;
  allocLargeBuffer(bytes: number, hugePages?: boolean): Buffer | undefined;
  dropFromPageCache(fd: number, offset: number, length: number, callback: (errno: number) => void): void;
  sha256(buffer: Buffer, callback: (hex: string | null) => void): void;
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

const HUGE_PAGE = 2 * 1024 * 1024;

/** How long the event loop polls for the next request after one came (see the constructor). */
const POLL_MS = 1;

/**
 * A Buffer of `bytes` (contents undefined) in a mapping of its own, unmapped when it is collected
 * (native/src/large_buffer.cc), and marked for transparent huge pages unless `hugePages` is false:
 * filling fresh memory then costs a page fault per 2 MiB instead of per 4 KiB, though on some
 * machines a fresh huge page costs more than 512 small ones (bench/RESULTS.md, Random reads).
 * Undefined (the caller allocates an ordinary Buffer) unless `bytes` is a whole number of huge
 * pages, and when the addon is not built.
 */
export function largeBuffer(bytes: number, hugePages = true): Buffer | undefined {
  if (bytes <= 0 || bytes % HUGE_PAGE !== 0) return undefined;
  try {
    return loadFuse3Addon().allocLargeBuffer(bytes, hugePages);
  } catch {
    return undefined;
  }
}

/**
 * Writes bytes [offset, offset + length) of the open file `fd` back to disk and drops them from the
 * page cache, on a thread of Node's pool (native/src/page_cache.cc); rejects with the errno's
 * code. Keep `fd` open until it settles.
 */
export function dropFromPageCache(fd: number, offset: number, length: number): Promise<void> {
  return new Promise((resolve, reject) => {
    loadFuse3Addon().dropFromPageCache(fd, offset, length, (errno) => {
      if (errno === 0) resolve();
      else reject(Object.assign(new Error(`cannot drop a file range from the page cache: ${getSystemErrorName(-errno)}`), { errno }));
    });
  });
}

/**
 * The SHA-256 of `buffer` as lowercase hex, computed on a thread of Node's pool by OpenSSL
 * (native/src/sha256.cc), or undefined when it cannot be (the caller hashes it itself). The
 * buffer is read in place: it must not change until this settles.
 */
export function sha256OffThread(buffer: Buffer): Promise<string | undefined> {
  return new Promise((resolve) => {
    try {
      loadFuse3Addon().sha256(buffer, (hex) => resolve(hex ?? undefined));
    } catch {
      resolve(undefined);
    }
  });
}

/** A mounted (or mountable) FUSE session. */
export class FuseSession {
  readonly mountpoint: string;
  /** Requests the kernel interrupted, answered EINTR before their op ended. */
  interrupted = 0;
  private readonly handle: unknown;
  private readonly addon = loadFuse3Addon();
  private endedResolve!: () => void;
  /** Callers of `notPolling`, resolved once the event loop stops polling for requests. */
  private readonly pollEnded: Array<() => void> = [];
  private isPolling = () => false;
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
    const cancellable = opNames.map((name) => CANCELLABLE.has(name));
    const cancellations = new Cancellations();
    // Polling while requests flow: after each request the event loop keeps turning (without
    // sleeping in epoll) until none has come for `POLL_MS`. The addon's thread hands each request
    // to this thread through an eventfd; waking a thread that sleeps on an idle vCPU costs a VM
    // exit, several times what serving a cached 4 KiB read costs (random 4 KiB reads from memory:
    // ~11,000 a second on an idle machine, ~70,000 with other processes keeping the vCPUs awake,
    // bench/RESULTS.md, Random reads). An idle mount does not poll.
    let lastRequest = 0;
    let polling = false;
    this.isPolling = () => polling;
    const poll = () => {
      if (performance.now() - lastRequest < POLL_MS) return setImmediate(poll);
      polling = false;
      for (const resolve of this.pollEnded.splice(0)) resolve();
    };
    // Every request comes through here with an id; the op answers through a closure over it.
    // (A closure made here costs far less than a native function made per request.)
    const dispatch: Dispatch = (op, id, ...args) => {
      lastRequest = performance.now();
      if (!polling) {
        polling = true;
        setImmediate(poll);
      }
      if (op >= opNames.length) {
        // The kernel interrupted request `id`, and has its EINTR already; or (opNames.length + 1)
        // the process a read was made for closed the file: end its store requests.
        if (op === opNames.length) this.interrupted += 1;
        cancellations.interrupt(id);
        return;
      }
      const name = opNames[op]!;
      const run = operations[name] as (...a: unknown[]) => void;
      const cancel = cancellable[op] ? new RequestCancellation(cancellations, id) : undefined;
      try {
        if (cancel) {
          run(
            ...args,
            (code: unknown, result?: unknown) => {
              cancel.end();
              reply(handle, id, code, result);
            },
            cancel,
          );
        } else {
          run(...args, (code: unknown, result?: unknown) => reply(handle, id, code, result));
        }
      } catch (error) {
        cancel?.end();
        reply(handle, id, -EIO); // ignored if the op had answered before throwing
        onError?.(name, error);
      }
    };
    const handle = this.addon.create(
      this.mountpoint,
      {
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
      },
      operations,
      dispatch,
    );
    this.handle = handle;
  }

  private mounting: Promise<void> | undefined;

  /** Resolves once the kernel has the mount and FUSE's init has run. */
  mount(): Promise<void> {
    return (this.mounting ??= new Promise((resolve, reject) =>
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
    ));
  }

  /** Detaches the mount (lazily, so a busy mount still goes) and stops serving it. */
  async unmount(): Promise<void> {
    if (!this.mounting) return; // never mounted
    // A mount still being made would appear after the detach below, and outlive the session.
    await this.mounting.catch(() => undefined);
    // Detach first, so nothing new arrives; then answer what is in flight with ENOTCONN and close
    // the connection, which ends the session at once (onEnded) even while the mount is in use.
    await detachLazily(this.mountpoint);
    this.addon.unmount(this.handle);
    await this.ended;
  }

  /**
   * Resolves once the event loop has stopped polling for requests (`POLL_MS` after the last one):
   * an idle mount costs no CPU. At once when it is not polling.
   */
  notPolling(): Promise<void> {
    return this.polling ? new Promise((resolve) => this.pollEnded.push(resolve)) : Promise.resolve();
  }

  /** Whether the event loop is polling for requests (one came less than `POLL_MS` ago). */
  get polling(): boolean {
    return this.isPolling();
  }

  /**
   * Drops what the kernel caches of `path`: its name (a file deleted elsewhere is looked up again)
   * and its attributes and pages (a changed one is read again). Resolves with 0, or -ENOENT when
   * the kernel holds nothing there.
   */
  invalidate(path: string): Promise<number> {
    return new Promise((resolve) => this.addon.invalidatePath(this.handle, path, resolve));
  }

  /**
   * Drops the kernel's pages and attributes of the file at `path` (not its name, which an open of
   * it may be using). Resolves with 0, or -ENOENT when the kernel holds no such inode.
   */
  dropPages(path: string): Promise<number> {
    return new Promise((resolve) => this.addon.invalidatePath(this.handle, path, resolve, true));
  }

  /**
   * Pushes `data` into the page cache of the file open as handle `fh` (an open's or a create's
   * answer), at `offset`: later reads of those bytes are served by the kernel, without a request.
   * Resolves with 0, or -errno: -EBUSY while the file may be written (open for writing, or being
   * truncated), -EBADF for a handle not open. `data` must stay unchanged until it resolves (the
   * kernel copies from it on a worker thread), and must be the file's bytes at `offset`: the
   * kernel takes them as they are, and extends the file's size to cover them.
   */
  storePages(fh: number, offset: number, data: Buffer): Promise<number> {
    return new Promise((resolve) => this.addon.storePages(this.handle, fh, offset, data, resolve));
  }

  /** Page stores sent to the kernel so far. */
  storesSent(): number {
    return this.addon.storesSent(this.handle);
  }

  /**
   * The size of the addon's inode table: the inodes the kernel holds (each until it forgets the
   * last lookup of it), the directories above them, and the root. For tests and `status`.
   */
  inodeCount(): number {
    return this.addon.nodeCount(this.handle);
  }
}

/** `path` as the kernel shows it (/proc, the mount table): symlinks resolved. */
export function canonical(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

function detachLazily(mountpoint: string): Promise<void> {
  return new Promise((resolve) => execFile('fusermount3', ['-uz', mountpoint], () => resolve()));
}
