/**
 * Cancelling the store requests of an interrupted file operation.
 *
 * A program stuck in a `stat` or a read on a hung store gets a signal; the kernel interrupts the
 * FUSE request, and the operation's store requests should end then, not at their deadline. The
 * operation gets a `Cancellation` as an optional last parameter, passed down to the store calls
 * made for it. Its AbortSignal is made only when a store request asks for it: an operation
 * answered from the caches (most of them) makes none, which keeps the metadata hot path as cheap
 * as without it (AsyncLocalStorage cost too much there).
 *
 * A store request several operations wait for (a lookup of one path, a block load) belongs to no
 * single one of them: it has a `SharedCancellation`, which aborts it only once every waiter was
 * interrupted, and never while a waiter that cannot be (read-ahead, a background lookup) waits.
 */

/** The interruption of one file operation; `signal` is made on first use. */
export interface Cancellation {
  readonly signal: AbortSignal;
}

export class SharedCancellation {
  private readonly controller = new AbortController();
  /** Waiters that may still be interrupted. */
  private waiting = 0;
  /** A waiter that cannot be interrupted joined: the request runs to its end. */
  private pinned = false;

  /** Made with its first waiter (undefined: one that cannot be interrupted). */
  constructor(first: Cancellation | undefined) {
    this.join(first);
    if (this.waiting === 0 && !this.pinned) this.controller.abort(first?.signal.reason); // interrupted before it began
  }

  /** For the shared store request. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** One more operation waits for the request. */
  join(cancel: Cancellation | undefined): void {
    if (this.pinned || this.controller.signal.aborted) return;
    if (!cancel) {
      this.pinned = true;
      return;
    }
    const signal = cancel.signal;
    if (signal.aborted) return; // gone already: it does not wait
    this.waiting += 1;
    signal.addEventListener(
      'abort',
      () => {
        this.waiting -= 1;
        if (this.waiting === 0 && !this.pinned) this.controller.abort(signal.reason);
      },
      { once: true },
    );
  }
}
