/**
 * The one retry that storage adds to its SDKs' own: a GET that failed transiently is sent once
 * more, after a short jittered pause.
 *
 * Each SDK retries a request (jittered backoff) until the response headers arrive; Azure's also
 * resumes a broken body twice. A body cut off after the headers (a connection reset mid-way, a
 * response closed short) is beyond that, and surfaces as `Transient` from `readBody`. A GET is
 * idempotent and pinned to the ETag seen at open, so sending it again can only return the same
 * bytes or fail with PreconditionFailed; one more try keeps one broken connection from becoming
 * an EIO for the program reading. The block cache used to run this loop itself; it lives here so
 * that retries have one place, beside the SDKs' (the block cache retries nothing).
 */

import { type StoreErrorCode, type StoreStats, isStoreError } from './object-store.js';

/** Failures another try may cure; anything else (NotFound, AccessDenied, PreconditionFailed...) is final. */
const TRANSIENT = new Set<StoreErrorCode>(['Transient', 'Throttled', 'Unreachable']);

/** Runs `get`, and once more after a transient failure (counted in `stats.retries`). */
export async function withGetRetry<T>(stats: StoreStats, get: () => Promise<T>, attempts = 2): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await get();
    } catch (error) {
      if (attempt >= attempts || !isStoreError(error) || !TRANSIENT.has(error.code)) throw error;
      stats.retries += 1;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt + Math.random() * 50));
    }
  }
}
