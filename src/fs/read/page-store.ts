/**
 * Bytes of an open file handed to the kernel's page cache, so that later reads of them are served
 * by the kernel without a request to the daemon. The FUSE layer provides it for each read, bound
 * to the read's handle; fs/ decides what to hand over (file-reader.ts, block-cache.ts).
 */

/**
 * Stores `data`, the file's bytes at `offset`, in the kernel's page cache; resolves with 0, or a
 * negative errno when refused (the file may be written meanwhile) or failed. `data` must stay
 * unchanged until it resolves.
 */
export type StorePages = (offset: number, data: Buffer) => Promise<number>;

/** Page stores in flight at once: more are not started (the reads that asked go on from memory). */
export const MAX_STORES = 2;

/** What `PageStores` counts: regions stored, their bytes, and stores refused or failed (the file may be written, or was closed). */
export interface PageStoreStats {
  kernelStores: number;
  kernelStoredBytes: number;
  kernelStoresRefused: number;
}

/**
 * The stores in flight: at most `MAX_STORES`, each pinning the buffer it copies from, which the
 * block cache must then not reuse (`pinned`) until the kernel has copied it: not recycle it for
 * another block, nor keep it as a spare, even if the block is evicted meanwhile (its memory then
 * goes once the store ends: at most `MAX_STORES` blocks over the budget).
 */
export class PageStores {
  private readonly pins = new Map<Buffer, number>();
  private inFlight = 0;

  constructor(private readonly stats: PageStoreStats) {}

  /** Whether the kernel may be copying from `buffer`. */
  pinned(buffer: Buffer): boolean {
    return this.pins.has(buffer);
  }

  /**
   * Stores `buffer`'s bytes [from, to) as the file's bytes at `offset`, unless `MAX_STORES` run
   * already (undefined). Resolves with whether the kernel took them, once it has.
   */
  store(buffer: Buffer, from: number, to: number, offset: number, storePages: StorePages): Promise<boolean> | undefined {
    if (this.inFlight >= MAX_STORES || to <= from || buffer.length < to) return undefined;
    this.inFlight += 1;
    this.pins.set(buffer, (this.pins.get(buffer) ?? 0) + 1);
    const ended = (errno: number) => {
      this.inFlight -= 1;
      const pins = this.pins.get(buffer)! - 1;
      if (pins === 0) this.pins.delete(buffer);
      else this.pins.set(buffer, pins);
      if (errno !== 0) {
        this.stats.kernelStoresRefused += 1;
        return false;
      }
      this.stats.kernelStores += 1;
      this.stats.kernelStoredBytes += to - from;
      return true;
    };
    return storePages(offset, buffer.subarray(from, to)).then(ended, () => ended(-1));
  }
}
