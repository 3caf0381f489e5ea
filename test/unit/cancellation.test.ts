/**
 * An interrupted file operation cancels its store requests (fs/cancellation.ts), and a request
 * several operations wait for (one lookup of a path, one GET of a block) only once every one of
 * them was interrupted, never while a waiter that cannot be (a background lookup, read-ahead)
 * waits. The store here holds its head/get/list calls until the test lets them go, and fails a
 * held call with `Aborted` when its signal aborts, as the real stores do.
 */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { Cancellation } from '../../src/fs/cancellation.js';
import { FileSystem } from '../../src/fs/file-system.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import { type GetOptions, type HeadOptions, type ListOptions, StoreError } from '../../src/storage/object-store.js';

interface Held {
  operation: string;
  key: string;
  signal?: AbortSignal;
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** A MemoryStore whose head/get/list wait, while `holding`, until `release()`. */
class HoldingStore extends MemoryStore {
  holding = false;
  readonly held: Held[] = [];
  private gate = deferred();
  private arrived = deferred();

  /** Resolves once `count` calls are held. */
  async reached(count: number): Promise<void> {
    while (this.held.length < count) {
      await this.arrived.promise;
      this.arrived = deferred();
    }
  }

  /** Lets the held calls go; calls held from now on wait for the next release. */
  release(): void {
    this.holding = false;
    this.gate.resolve();
    this.gate = deferred();
  }

  private async hold(operation: string, key: string, signal?: AbortSignal): Promise<void> {
    if (!this.holding) return;
    this.held.push({ operation, key, signal });
    this.arrived.resolve();
    const aborted = new Promise<never>((_, reject) => {
      const fail = () => reject(new StoreError('Aborted', `${key}: cancelled`));
      if (signal?.aborted) fail();
      else signal?.addEventListener('abort', fail, { once: true });
    });
    await Promise.race([this.gate.promise, aborted]);
  }

  override async head(key: string, options: HeadOptions = {}) {
    await this.hold('head', key, options.signal);
    return super.head(key, options);
  }

  override async get(key: string, options: GetOptions = {}) {
    await this.hold('get', key, options.signal);
    return super.get(key, options);
  }

  override async list(options: ListOptions) {
    await this.hold('list', options.prefix, options.signal);
    return super.list(options);
  }
}

let stagingDir: string;
let store: HoldingStore;
let fs: FileSystem;

beforeEach(async () => {
  stagingDir = await mkdtemp(join(tmpdir(), 'objmount-cancel-'));
  store = new HoldingStore();
  fs = new FileSystem(store, {
    prefix: '',
    defaults: { uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755 },
    cache: { fileTtlMs: 0, dirTtlMs: 0, negativeTtlMs: 0, maxEntries: 1000 },
    stagingDir,
    partSize: 5 * 1024 * 1024,
    uploadConcurrency: 1,
    logger: silentLogger,
  });
  await store.put('file.txt', Buffer.from('the bytes of a file'));
  await store.put('dir/inner.txt', Buffer.from('inner'));
});

afterEach(async () => {
  store.release();
  await rm(stagingDir, { recursive: true, force: true });
});

function interruptible(): { cancel: Cancellation; interrupt(): void } {
  const controller = new AbortController();
  return { cancel: { signal: controller.signal }, interrupt: () => controller.abort(new Error('interrupted')) };
}

/** Settles `promise` into what it gave, for asserting after the fact. */
function outcome<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; code?: string }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: { code?: string }) => ({ ok: false as const, code: error.code }),
  );
}

describe('an interrupted operation', () => {
  it("cancels its lookup's request, and fails with EINTR", async () => {
    store.holding = true;
    const a = interruptible();
    const stat = outcome(fs.getattr('/file.txt', a.cancel));
    await store.reached(1);
    expect(store.held[0]).toMatchObject({ operation: 'head', key: 'file.txt' });
    a.interrupt();
    expect(await stat).toEqual({ ok: false, code: 'EINTR' });
    expect(store.held[0]!.signal?.aborted).toBe(true);
    // Nothing of it stays: the next lookup asks the store again and finds the file.
    store.release();
    expect((await fs.getattr('/file.txt')).size).toBe(19);
  });

  it('cancels a listing (readdir)', async () => {
    store.holding = true;
    const a = interruptible();
    const listing = outcome(fs.readdir('/', a.cancel));
    await store.reached(1);
    expect(store.held[0]).toMatchObject({ operation: 'list', key: '' });
    a.interrupt();
    expect(await listing).toEqual({ ok: false, code: 'EINTR' });
    expect(store.held[0]!.signal?.aborted).toBe(true);
  });

  it('cancels the GET of a block only it waits for', async () => {
    const fh = await fs.open('/file.txt', 0);
    store.holding = true;
    const a = interruptible();
    const read = outcome(fs.read(fh, Buffer.alloc(64), 64, 0, a.cancel));
    await store.reached(1);
    expect(store.held[0]).toMatchObject({ operation: 'get', key: 'file.txt' });
    a.interrupt();
    expect(await read).toEqual({ ok: false, code: 'EINTR' });
    expect(store.held[0]!.signal?.aborted).toBe(true);
    store.release();
    const into = Buffer.alloc(64);
    expect(into.subarray(0, await fs.read(fh, into, 64, 0)).toString()).toBe('the bytes of a file');
    await fs.release(fh);
  });
});

describe('a request shared by several operations', () => {
  it('goes on while one of the lookups waiting for it is interrupted, and is cancelled once all are', async () => {
    store.holding = true;
    const a = interruptible();
    const b = interruptible();
    const first = outcome(fs.getattr('/file.txt', a.cancel));
    await store.reached(1);
    const second = outcome(fs.getattr('/file.txt', b.cancel));
    a.interrupt();
    expect(store.held).toHaveLength(1); // one lookup for both
    expect(store.held[0]!.signal?.aborted).toBe(false);
    b.interrupt();
    expect(store.held[0]!.signal?.aborted).toBe(true);
    expect(await first).toEqual({ ok: false, code: 'EINTR' });
    expect(await second).toEqual({ ok: false, code: 'EINTR' });
  });

  it('is never cancelled while a waiter that cannot be interrupted waits', async () => {
    store.holding = true;
    const a = interruptible();
    const interrupted = outcome(fs.getattr('/file.txt', a.cancel));
    await store.reached(1);
    const patient = fs.getattr('/file.txt'); // no cancellation: a background lookup
    a.interrupt();
    expect(store.held[0]!.signal?.aborted).toBe(false);
    store.release();
    expect((await patient).size).toBe(19);
    // The interrupted one's answer no longer matters (the kernel has its EINTR): it is the lookup's.
    expect((await interrupted).ok).toBe(true);
  });

  it('once cancelled, is no answer for an operation that asks while it settles: that one gets its own', async () => {
    store.holding = true;
    const a = interruptible();
    const cancelled = outcome(fs.getattr('/file.txt', a.cancel));
    await store.reached(1);
    a.interrupt();
    const later = fs.getattr('/file.txt'); // the cancelled lookup has not settled yet
    await store.reached(2);
    store.release();
    expect((await later).size).toBe(19);
    expect(await cancelled).toEqual({ ok: false, code: 'EINTR' });

    const fh1 = await fs.open('/file.txt', 0);
    const fh2 = await fs.open('/file.txt', 0);
    store.holding = true;
    const b = interruptible();
    const cancelledRead = outcome(fs.read(fh1, Buffer.alloc(64), 64, 0, b.cancel));
    await store.reached(3);
    b.interrupt();
    const into = Buffer.alloc(64);
    const laterRead = fs.read(fh2, into, 64, 0);
    await store.reached(4);
    store.release();
    expect(into.subarray(0, await laterRead).toString()).toBe('the bytes of a file');
    expect(await cancelledRead).toEqual({ ok: false, code: 'EINTR' });
    // The block is cached now: the fetch that was replaced did not drop it.
    expect(into.subarray(0, await fs.read(fh1, into, 64, 0)).toString()).toBe('the bytes of a file');
    await fs.release(fh1);
    await fs.release(fh2);
  });

  it('keeps the GET of a block two reads wait for until both are interrupted', async () => {
    const fh1 = await fs.open('/file.txt', 0);
    const fh2 = await fs.open('/file.txt', 0);
    store.holding = true;
    const a = interruptible();
    const b = interruptible();
    const first = outcome(fs.read(fh1, Buffer.alloc(64), 64, 0, a.cancel));
    await store.reached(1);
    const second = outcome(fs.read(fh2, Buffer.alloc(64), 64, 0, b.cancel));
    a.interrupt();
    expect(store.held).toHaveLength(1);
    expect(store.held[0]!.signal?.aborted).toBe(false);
    b.interrupt();
    expect(store.held[0]!.signal?.aborted).toBe(true);
    expect(await first).toEqual({ ok: false, code: 'EINTR' });
    expect(await second).toEqual({ ok: false, code: 'EINTR' });
    await fs.release(fh1);
    await fs.release(fh2);
  });
});
