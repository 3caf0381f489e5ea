// The one part-size policy (src/fs/write/part-sizes.ts), for streams and staged files alike.

import { describe, expect, it } from 'vitest';

import { PartSizes } from '../../src/fs/write/part-sizes.js';
import type { StoreCapabilities } from '../../src/storage/object-store.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

const aws: StoreCapabilities = {
  maxParts: 10_000,
  minPartSize: 5 * MiB,
  maxPartSize: 5 * GiB,
  maxPutSize: 5 * GiB,
  serverSideCopy: true,
  partCopy: true,
};

/** Bytes the store's maxParts parts hold, each checked against the store's limits. */
function capacity(sizes: PartSizes, caps: StoreCapabilities): number {
  let total = 0;
  for (let n = 1; n <= caps.maxParts; n++) {
    const size = sizes.sizeOf(n);
    expect(size).toBeGreaterThanOrEqual(caps.minPartSize);
    expect(size).toBeLessThanOrEqual(caps.maxPartSize);
    total += size;
  }
  return total;
}

describe('part sizes', () => {
  it('grow with the part number, so 10,000 parts hold the largest S3 object (5 TiB)', () => {
    const sizes = new PartSizes(aws, 8 * MiB);
    expect(sizes.sizeOf(1)).toBe(8 * MiB);
    expect(sizes.sizeOf(1000)).toBe(8 * MiB);
    expect(sizes.sizeOf(1001)).toBe(16 * MiB);
    expect(capacity(sizes, aws)).toBeGreaterThanOrEqual(5 * TiB);
  });

  it('respect a store with fewer parts allowed and the minimum part size', () => {
    const few = { ...aws, maxParts: 1_000 };
    expect(capacity(new PartSizes(few, 8 * MiB), few)).toBeGreaterThan(500 * GiB);
    expect(new PartSizes(aws, 1 * MiB).sizeOf(1)).toBe(5 * MiB);
    expect(new PartSizes(aws, 1 * MiB, 1).sizeOf(1)).toBe(5 * MiB); // a known size too
  });

  it('keep the preferred size for a known size its parts hold, so small files are one part', () => {
    for (const size of [0, 1, 8 * MiB, 8 * MiB + 1, 10_000 * 8 * MiB + 1, 200 * GiB, 5 * TiB]) {
      expect(new PartSizes(aws, 8 * MiB, size).base).toBe(8 * MiB);
    }
  });

  it('raise the base, in multiples of the preferred size, only when a known size does not fit', () => {
    const four = { ...aws, minPartSize: 64 * 1024, maxParts: 4 };
    // Four parts from 64 KiB hold 64 + 128 + 256 + 512 KiB; 3 MiB + 1 byte needs a larger base.
    const size = 3 * MiB + 1;
    const sizes = new PartSizes(four, 64 * 1024, size);
    expect(sizes.base % (64 * 1024)).toBe(0);
    expect(capacity(sizes, four)).toBeGreaterThanOrEqual(size);
    // The smallest such base: one step down does not hold it.
    expect(capacity(new PartSizes(four, sizes.base - 64 * 1024), four)).toBeLessThan(size);
  });

  it('hold any known size up to maxParts parts of the largest size, and refuse one beyond', () => {
    for (const size of [10_000 * GiB, 20 * TiB, 10_000 * 5 * GiB]) {
      expect(capacity(new PartSizes(aws, 8 * MiB, size), aws)).toBeGreaterThanOrEqual(size);
    }
    expect(() => new PartSizes(aws, 8 * MiB, 10_000 * 5 * GiB + 1)).toThrow(RangeError);
  });
});
