/** The compose plan of a GCS composite upload, and the names of its temporary objects. */

import { describe, expect, it } from 'vitest';

import { isTemporaryPartObject, partName, partPrefix, planCompose } from '../../src/storage/gcs-compose.js';

const ID = '0123456789abcdef';
const parts = (n: number) => Array.from({ length: n }, (_, i) => ({ name: partName('k', ID, i + 1), generation: String(100 + i) }));

describe('planCompose', () => {
  it('composes up to 32 parts into the key in one request', () => {
    const { levels, temporaries } = planCompose('k', ID, parts(32));
    expect(levels).toEqual([[{ sources: parts(32), destination: 'k' }]]);
    expect(temporaries).toEqual([]);
  });

  it('composes more in a tree of groups of 32, keeping the order of the parts', () => {
    const { levels, temporaries } = planCompose('k', ID, parts(100));
    expect(levels.map((steps) => steps.length)).toEqual([4, 1]);
    expect(levels[0]!.map((s) => s.sources.length)).toEqual([32, 32, 32, 4]);
    expect(levels[0]!.flatMap((s) => s.sources)).toEqual(parts(100));
    expect(levels[1]![0]).toEqual({ sources: temporaries.map((name) => ({ name })), destination: 'k' });
    expect(temporaries).toEqual([0, 1, 2, 3].map((i) => `k.objmount-part-${ID}-c1-${i}`));
  });

  it('needs three levels for 10,000 parts: 313, 10 and 1 requests', () => {
    const { levels, temporaries } = planCompose('k', ID, parts(10_000));
    expect(levels.map((steps) => steps.length)).toEqual([313, 10, 1]);
    expect(temporaries.length).toBe(323);
    for (const steps of levels) for (const step of steps) expect(step.sources.length).toBeLessThanOrEqual(32);
  });

  it('names every temporary object under the upload prefix, which nothing else matches', () => {
    const { temporaries } = planCompose('dir/file', ID, parts(40));
    for (const name of [partName('dir/file', ID, 1), partName('dir/file', ID, 10_000), ...temporaries]) {
      expect(name.startsWith(partPrefix('dir/file', ID))).toBe(true);
      expect(isTemporaryPartObject(name)).toBe(true);
    }
    expect(isTemporaryPartObject('dir/file')).toBe(false);
    expect(isTemporaryPartObject('notes.objmount-part-mine-1')).toBe(false);
    expect(isTemporaryPartObject(`x.objmount-part-${ID}-1/y`)).toBe(false);
  });
});
