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

import type { Readable } from 'node:stream';

import { type StoreDeadlines, abortBody, deadlineMs, withDeadline } from './deadline.js';
import { type GetOptions, type ObjectInfo, type StoreErrorCode, type StoreStats, isStoreError, readBody } from './object-store.js';

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

/**
 * Every store's whole GET: `open` sends it and answers with the body as a stream; the body is read
 * into one buffer within one deadline for the headers and the body (a body that trickles is a
 * request that hangs), and the whole is sent once more after a transient failure. A failure while
 * the body is read goes through `onBodyError`, which names it as its store does.
 */
export function getWhole(
  stats: StoreStats,
  deadlines: StoreDeadlines,
  where: string,
  options: GetOptions,
  open: (signal: AbortSignal) => Promise<{ info: ObjectInfo; body: Readable; length?: number }>,
  onBodyError: (error: unknown) => Error,
): Promise<{ info: ObjectInfo; body: Buffer }> {
  const bytes = options.range ? options.range.end - options.range.start + 1 : 0;
  const once = () =>
    withDeadline(
      deadlineMs(deadlines, bytes),
      where,
      async (signal) => {
        const { info, body, length } = await open(signal);
        abortBody(body, signal);
        try {
          return { info, body: await readBody(body as AsyncIterable<Buffer>, length, where, options.into, options.onProgress) };
        } catch (error) {
          throw onBodyError(error);
        }
      },
      options.signal,
    );
  return withGetRetry(stats, once);
}
