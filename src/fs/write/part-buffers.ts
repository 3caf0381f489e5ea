/**
 * Buffers for upload parts, used again from one part to the next.
 *
 * A long write uploads one part-sized buffer after another. Allocated fresh each time, every part
 * costs zeroed pages from the kernel, and its buffer, left to the garbage collector, makes V8 run
 * major collections for the external memory (in a profile of a long write, zeroing pages and V8's
 * marking and sweeping took a large share of the daemon's CPU: bench/RESULTS.md, Azure). A part
 * uploaded successfully gives its buffer back, and the next part of that size takes it.
 *
 * Only buffers of whole multiples of the part size are kept (the parts of a long write; the part
 * sizes of a growing upload double): the tail of a file or a small file's body would rarely be
 * asked for again at its exact size, and would only hold room.
 *
 * Idle buffers count in the mount's memory budget as a cache does (`ShrinkableCache`): whoever
 * needs the room gets it, idle buffers going first when they are the largest holder. They are
 * also dropped after `IDLE_MS` without a write, so a mount that wrote once does not keep them.
 * Only a part that succeeded gives its buffer back: after a failure the SDK may not be done with it.
 */

import type { MemoryBudget, ShrinkableCache } from '../memory-budget.js';

/** Memory for a buffer (undefined from it: `Buffer.allocUnsafe`). */
export type Allocate = (bytes: number) => Buffer | undefined;

const IDLE_MS = 10_000;

export class PartBuffers implements ShrinkableCache {
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;
  private timer?: NodeJS.Timeout;

  /** At most this many bytes are kept idle (the parts in flight of one upload); more given back are dropped. */
  private readonly maxIdleBytes: number;

  constructor(
    private readonly partSize: number,
    concurrency: number,
    private readonly allocate?: Allocate,
    private readonly budget?: MemoryBudget,
  ) {
    this.maxIdleBytes = partSize * concurrency;
    budget?.attachCache(this);
  }

  get memoryUsed(): number {
    return this.idleBytes;
  }

  /** A buffer of exactly `bytes` (contents undefined): one given back, or new memory. */
  take(bytes: number): Buffer {
    const kept = this.idle.get(bytes)?.pop();
    if (kept) {
      this.idleBytes -= bytes;
      return kept;
    }
    return this.allocate?.(bytes) ?? Buffer.allocUnsafe(bytes);
  }

  /** `buffer` is no longer used (its part is in the store): kept for the next part of its size. */
  give(buffer: Buffer): void {
    if (buffer.length % this.partSize !== 0 || this.idleBytes + buffer.length > this.maxIdleBytes) return;
    const list = this.idle.get(buffer.length) ?? [];
    list.push(buffer);
    this.idle.set(buffer.length, list);
    this.idleBytes += buffer.length;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.shrinkTo(0), IDLE_MS);
    this.timer.unref();
  }

  /** Drops idle buffers until at most `bytes` are kept. */
  shrinkTo(bytes: number): void {
    for (const [size, list] of this.idle) {
      while (this.idleBytes > bytes && list.length > 0) {
        list.pop();
        this.idleBytes -= size;
      }
      if (list.length === 0) this.idle.delete(size);
    }
  }

  /** Drops every idle buffer and stops counting in the budget. */
  close(): void {
    clearTimeout(this.timer);
    this.shrinkTo(0);
    this.budget?.detachCache(this);
  }
}
