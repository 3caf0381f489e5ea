/**
 * How large each part of a multipart upload is: one policy for every upload, whether its final
 * size is known (a staged file uploaded at close) or not (a file streamed while it is written).
 *
 * Part sizes grow with the part number: the store's `maxParts` are cut into `TIERS` tiers of
 * equal count, and each tier's parts are twice the size of the last tier's (never more than the
 * store's `maxPartSize`). The first tier's size, the base, is the preferred part size (at least
 * the store's minimum). With 10,000 parts and an 8 MiB base, the first 1,000 parts are 8 MiB,
 * and 10,000 parts hold about 8 TiB, more than the largest S3 object; so a stream needs no size
 * in advance, and most files never leave the first tier.
 *
 * When the final size is known and the parts from the preferred base cannot hold it (a store
 * that allows few parts), the base is raised to the smallest multiple of the preferred size
 * whose parts hold it (a multiple, so part buffers are still used again: part-buffers.ts).
 */

import type { StoreCapabilities } from '../../storage/object-store.js';

/** How many tiers of part sizes; each tier's parts are twice the size of the last tier's. */
const TIERS = 10;

export class PartSizes {
  /** The size of the first tier's parts. */
  readonly base: number;
  private readonly perTier: number;

  /**
   * @param preferred the part size asked for (--part-size)
   * @param knownSize the upload's final size, when known: the base is raised so that it fits
   * @throws RangeError when `knownSize` exceeds `maxParts` parts of the store's largest size
   */
  constructor(
    private readonly capabilities: StoreCapabilities,
    preferred: number,
    knownSize?: number,
  ) {
    const { maxParts, minPartSize, maxPartSize } = capabilities;
    this.perTier = Math.max(1, Math.floor(maxParts / TIERS));
    const start = Math.min(maxPartSize, Math.max(preferred, minPartSize));
    if (knownSize === undefined || this.capacity(start) >= knownSize) {
      this.base = start;
      return;
    }
    if (knownSize > maxParts * maxPartSize) {
      throw new RangeError(`a ${knownSize}-byte file needs parts larger than the store's ${maxPartSize}-byte maximum`);
    }
    // The smallest multiple of `start` that holds the file; the capacity grows with the base.
    let low = 1;
    let high = Math.ceil(maxPartSize / start);
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      if (this.capacity(Math.min(maxPartSize, middle * start)) >= knownSize) high = middle;
      else low = middle + 1;
    }
    this.base = Math.min(maxPartSize, low * start);
  }

  /** The size of part `number` (1-based). */
  sizeOf(number: number): number {
    return this.sizeIn(this.tierOf(number), this.base);
  }

  private tierOf(number: number): number {
    return Math.min(TIERS - 1, Math.floor((number - 1) / this.perTier));
  }

  private sizeIn(tier: number, base: number): number {
    return Math.min(this.capabilities.maxPartSize, base * 2 ** tier);
  }

  /** Bytes that `maxParts` parts hold with `base` as the first tier's size. */
  private capacity(base: number): number {
    const { maxParts } = this.capabilities;
    let total = 0;
    for (let tier = 0; tier < TIERS; tier++) {
      const first = tier * this.perTier + 1;
      const last = tier === TIERS - 1 ? maxParts : Math.min(maxParts, (tier + 1) * this.perTier);
      if (last >= first) total += (last - first + 1) * this.sizeIn(tier, base);
    }
    return total;
  }
}
