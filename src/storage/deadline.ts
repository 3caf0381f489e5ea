/**
 * Overall deadlines of store requests.
 *
 * The SDKs time out a connection that does not open and a socket that goes idle, but a store
 * that trickles a byte now and then, or keeps a request open without answering, would hold a
 * file operation (and the program waiting on it) for ever; Azure itself allows ~8 minutes per
 * operation. So every request, retries included, has one deadline from its start: `requestMs`
 * for a request that moves no object bytes, plus the time its bytes take at `minBytesPerSecond`
 * for one that does. When it passes, the request is aborted (through the AbortSignal given to
 * the SDK, or by destroying the body it streams) and fails with `StoreError('TimedOut')`,
 * whatever the SDK does with the abort; the mount goes on serving other requests.
 *
 * A caller's own signal (an interrupted FUSE request) aborts the request the same way, with
 * `StoreError('Aborted')`.
 */

import type { Readable } from 'node:stream';

import { StoreError } from './object-store.js';

export interface StoreDeadlines {
  /** The deadline of a request that moves no object bytes (head, list, delete), ms. */
  requestMs: number;
  /** The slowest transfer a data request is allowed: its deadline grows by its size at this rate. */
  minBytesPerSecond: number;
}

export const DEFAULT_DEADLINES: StoreDeadlines = { requestMs: 30_000, minBytesPerSecond: 256 * 1024 };

/**
 * Requests whose duration grows with an object's size the store does not tell us beforehand
 * (a server-side copy of a whole object, the commit of a multipart upload) get this many times
 * the metadata deadline.
 */
export const SLOW_REQUEST_FACTOR = 10;

/** The deadline of a request that moves `bytes` of object data (0 for metadata), ms. */
export function deadlineMs(deadlines: StoreDeadlines, bytes = 0): number {
  return deadlines.requestMs + Math.ceil((bytes / deadlines.minBytesPerSecond) * 1000);
}

/**
 * Runs `work` with a signal that aborts after `ms` or when `outer` aborts. Once the deadline
 * passed, the result is `StoreError('TimedOut')` even if `work` ignores its signal; an outer
 * abort gives `StoreError('Aborted')`.
 */
export async function withDeadline<T>(
  ms: number,
  where: string,
  work: (signal: AbortSignal) => Promise<T>,
  outer?: AbortSignal,
): Promise<T> {
  const controller = new AbortController();
  let fail!: (error: StoreError) => void;
  const ended = new Promise<never>((_, reject) => {
    fail = reject;
  });
  const stop = (error: StoreError) => {
    if (controller.signal.aborted) return;
    controller.abort(error);
    fail(error);
  };
  const timer = setTimeout(
    () => stop(new StoreError('TimedOut', `${where}: no answer within ${formatSeconds(ms)} (the request deadline)`, 'Timeout')),
    ms,
  );
  const onOuterAbort = () => stop(new StoreError('Aborted', `${where}: cancelled (the file operation was interrupted)`, 'Aborted'));
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  ended.catch(() => undefined);
  const running = controller.signal.aborted ? ended : work(controller.signal);
  try {
    return await Promise.race([running, ended]);
  } catch (error) {
    // The SDK's own answer to the abort (an AbortError) is not the reason: ours is.
    if (controller.signal.aborted) throw controller.signal.reason;
    throw error;
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
    running.catch(() => undefined); // a request abandoned at its deadline settles later, unobserved
  }
}

/** Destroys `body` when `signal` aborts, with the abort's reason, so whoever reads it stops at once. */
export function abortBody(body: Readable, signal: AbortSignal): void {
  if (signal.aborted) {
    body.destroy(signal.reason as Error);
    return;
  }
  const onAbort = () => body.destroy(signal.reason as Error);
  signal.addEventListener('abort', onAbort, { once: true });
  body.once('close', () => signal.removeEventListener('abort', onAbort));
}

/**
 * A body handed to a caller who reads it later (`getStream`): it is destroyed with
 * `StoreError('TimedOut')` if it is still open `ms` after the request started.
 */
export function bodyDeadline(body: Readable, ms: number, where: string): void {
  const timer = setTimeout(
    () =>
      body.destroy(
        new StoreError('TimedOut', `${where}: the body did not arrive within ${formatSeconds(ms)} (the request deadline)`, 'Timeout'),
      ),
    ms,
  );
  timer.unref();
  body.once('close', () => clearTimeout(timer));
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A streamed GET (`getStream`): `open` must have the headers within the metadata deadline, and the
 * body must then be read within the rest of the deadline its length gives, or it is destroyed;
 * `signal` (an interrupted operation) destroys it too.
 */
export async function openStreamWithin<T extends { body: Readable; length?: number }>(
  deadlines: StoreDeadlines,
  where: string,
  open: (signal: AbortSignal) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const started = Date.now();
  const opened = await withDeadline(deadlineMs(deadlines), where, open, signal);
  bodyDeadline(opened.body, deadlineMs(deadlines, opened.length ?? 0) - (Date.now() - started), where);
  if (signal) abortBody(opened.body, signal);
  return opened;
}
