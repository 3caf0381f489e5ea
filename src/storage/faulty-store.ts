/**
 * Wraps an `ObjectStore` and fails chosen calls, for tests of every failure exit above it
 * ("fail the 3rd uploadPart with Transient").
 */

import type { ObjectStore } from './object-store.js';
import { StoreError, type StoreErrorCode } from './object-store.js';

type Operation = Exclude<keyof ObjectStore, 'description' | 'capabilities'>;

interface Rule {
  operation: Operation;
  /** Fail the call with this 1-based index among calls of `operation` counted from now. */
  nth: number;
  /** How many consecutive calls fail, starting at `nth`. */
  times: number;
  code: StoreErrorCode;
  seen: number;
}

export class FaultyStore implements ObjectStore {
  private rules: Rule[] = [];

  constructor(private readonly inner: ObjectStore) {}

  get description(): string {
    return this.inner.description;
  }

  get capabilities() {
    return this.inner.capabilities;
  }

  /** Makes the `nth` next call of `operation` (and `times - 1` after it) fail with `code`. */
  fail(operation: Operation, options: { nth?: number; times?: number; code?: StoreErrorCode } = {}): void {
    this.rules.push({
      operation,
      nth: options.nth ?? 1,
      times: options.times ?? 1,
      code: options.code ?? 'Transient',
      seen: 0,
    });
  }

  clear(): void {
    this.rules = [];
  }

  head: ObjectStore['head'] = (...args) => this.run('head', () => this.inner.head(...args));
  get: ObjectStore['get'] = (...args) => this.run('get', () => this.inner.get(...args));
  getStream: ObjectStore['getStream'] = (...args) => this.run('getStream', () => this.inner.getStream(...args));
  put: ObjectStore['put'] = (...args) => this.run('put', () => this.inner.put(...args));
  list: ObjectStore['list'] = (...args) => this.run('list', () => this.inner.list(...args));
  copy: ObjectStore['copy'] = (...args) => this.run('copy', () => this.inner.copy(...args));
  deleteMany: ObjectStore['deleteMany'] = (...args) => this.run('deleteMany', () => this.inner.deleteMany(...args));
  createMultipartUpload: ObjectStore['createMultipartUpload'] = (...args) =>
    this.run('createMultipartUpload', () => this.inner.createMultipartUpload(...args));
  uploadPart: ObjectStore['uploadPart'] = (...args) => this.run('uploadPart', () => this.inner.uploadPart(...args));
  uploadPartCopy: ObjectStore['uploadPartCopy'] = (...args) => this.run('uploadPartCopy', () => this.inner.uploadPartCopy(...args));
  completeMultipartUpload: ObjectStore['completeMultipartUpload'] = (...args) =>
    this.run('completeMultipartUpload', () => this.inner.completeMultipartUpload(...args));
  abortMultipartUpload: ObjectStore['abortMultipartUpload'] = (...args) =>
    this.run('abortMultipartUpload', () => this.inner.abortMultipartUpload(...args));

  private async run<T>(operation: Operation, call: () => Promise<T>): Promise<T> {
    for (const rule of this.rules) {
      if (rule.operation !== operation) continue;
      rule.seen += 1;
      if (rule.seen >= rule.nth && rule.seen < rule.nth + rule.times) {
        throw new StoreError(rule.code, `injected ${rule.code} failure of ${operation} (call ${rule.seen})`);
      }
    }
    return call();
  }
}
