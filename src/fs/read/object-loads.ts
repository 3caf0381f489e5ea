/**
 * Whole-object loads for random reads (BlockCache.loadWhole): once a reader has read an object
 * at random a few times (file-reader.ts decides), the object is loaded whole if what of it is not
 * here fits in the budget's free room: `LOAD_STREAMS` block GETs kept in flight, the next started
 * as each ends, so the load runs at the speed of the connections rather than of the reads that
 * trigger it (a program doing 4 KiB reads one after another leaves the load idle whenever it
 * waits). It never evicts anything, and stops when the free room runs out.
 */

import type { ObjectVersion } from './object-version.js';

/** Block GETs a whole-object load keeps in flight (fewer than connections: see BlockCache). */
const LOAD_STREAMS = 8;

/** What a load needs of the block cache. */
export interface LoadableBlocks {
  blockCount(version: ObjectVersion): number;
  blockLength(version: ObjectVersion, index: number): number;
  /** Whether the block is in memory, on its way or on disk. */
  isAvailable(version: ObjectVersion, index: number): boolean;
  /** Bytes free in the budget now. */
  room(): number;
  /** Starts fetching the block (never evicting), or undefined when there is no room. */
  fetch(version: ObjectVersion, index: number): Promise<unknown> | undefined;
}

/** A whole-object load in progress. */
interface ObjectLoad {
  version: ObjectVersion;
  /** The next block to start. */
  next: number;
  /** Block GETs in flight. */
  active: number;
  /** Settles once no block GET of the load is left in flight or to start. */
  ended: Promise<void>;
  end: () => void;
}

export class ObjectLoads {
  /** Loads in progress, by object version. */
  private readonly loads = new Map<string, ObjectLoad>();
  constructor(private readonly blocks: LoadableBlocks) {}

  /** Whether `version` is being loaded whole. */
  has(version: ObjectVersion): boolean {
    return this.loads.has(objectId(version));
  }

  /**
   * Starts loading `version` whole, unless what of it is not here needs more than the free room.
   * Returns whether the object is loaded or loading.
   */
  start(version: ObjectVersion): boolean {
    if (this.has(version)) return true;
    let missing = 0;
    for (let index = 0; index < this.blocks.blockCount(version); index++) {
      if (!this.blocks.isAvailable(version, index)) missing += this.blocks.blockLength(version, index);
    }
    if (missing === 0) return true;
    if (missing > this.blocks.room()) return false;
    let end = () => {};
    const ended = new Promise<void>((resolve) => (end = resolve));
    const load: ObjectLoad = { version, next: 0, active: 0, ended, end };
    this.loads.set(objectId(version), load);
    this.continue(load);
    return true;
  }

  /** Settles once the load of `version` (if one runs) has ended: for tests. */
  async ended(version: ObjectVersion): Promise<void> {
    await this.loads.get(objectId(version))?.ended;
  }

  /**
   * Starts the next blocks of a load, up to `LOAD_STREAMS` in flight, each within the free room;
   * once one ends, the next starts. A failed block (the object changed, the store failed) ends the
   * load: a read of it sees the error, and a later random read may start another.
   */
  private continue(load: ObjectLoad): void {
    const count = this.blocks.blockCount(load.version);
    while (load.active < LOAD_STREAMS && load.next < count) {
      const index = load.next;
      if (this.blocks.isAvailable(load.version, index)) {
        load.next += 1;
        continue;
      }
      const loading =
        this.blocks.room() >= this.blocks.blockLength(load.version, index) ? this.blocks.fetch(load.version, index) : undefined;
      if (!loading) {
        load.next = count; // out of free room: the rest is left to the reads
        break;
      }
      load.next += 1;
      load.active += 1;
      loading.then(
        () => {
          load.active -= 1;
          this.continue(load);
        },
        () => {
          load.active -= 1;
          load.next = count;
          this.continue(load);
        },
      );
    }
    if (load.active === 0 && load.next >= count) {
      this.loads.delete(objectId(load.version));
      load.end();
    }
  }
}

function objectId(version: ObjectVersion): string {
  return `${version.etag}\0${version.key}`;
}
