// storage/get-retry.ts: the one retry storage adds to its SDKs' own, for every store's GET.

import { describe, expect, it } from 'vitest';

import { withGetRetry } from '../../src/storage/get-retry.js';
import { StoreError, type StoreErrorCode, type StoreStats } from '../../src/storage/object-store.js';

function failing(codes: StoreErrorCode[]): { get: () => Promise<string>; calls: () => number } {
  let calls = 0;
  return {
    get: async () => {
      const code = codes[calls++];
      if (code) throw new StoreError(code, `failed with ${code}`);
      return 'bytes';
    },
    calls: () => calls,
  };
}

const stats = (): StoreStats => ({ requests: 0, retries: 0, failures: 0, byOperation: {} });

describe('withGetRetry', () => {
  it.each(['Transient', 'Throttled', 'Unreachable'] as const)('sends a GET that failed with %s once more, and counts it', async (code) => {
    const counted = stats();
    const get = failing([code]);
    await expect(withGetRetry(counted, get.get)).resolves.toBe('bytes');
    expect(get.calls()).toBe(2);
    expect(counted.retries).toBe(1);
  });

  it('gives up after the second failure, with that failure', async () => {
    const get = failing(['Transient', 'Throttled']);
    await expect(withGetRetry(stats(), get.get)).rejects.toMatchObject({ code: 'Throttled' });
    expect(get.calls()).toBe(2);
  });

  it.each(['NotFound', 'AccessDenied', 'PreconditionFailed', 'InvalidRequest'] as const)(
    'does not retry %s, which another try cannot cure',
    async (code) => {
      const counted = stats();
      const get = failing([code]);
      await expect(withGetRetry(counted, get.get)).rejects.toMatchObject({ code });
      expect(get.calls()).toBe(1);
      expect(counted.retries).toBe(0);
    },
  );

  it("does not retry an error that is not the store's", async () => {
    let calls = 0;
    await expect(
      withGetRetry(stats(), async () => {
        calls += 1;
        throw new TypeError('a bug');
      }),
    ).rejects.toThrow(TypeError);
    expect(calls).toBe(1);
  });
});
