/**
 * The provider-neutral object store that every layer above talks to.
 *
 * It is deliberately small: whole-object and ranged reads, puts, paged listings, copies, deletes
 * and the multipart primitives. S3, Azure and GCS each implement it; `MemoryStore` implements it
 * for unit tests. Implementations translate their SDK's failures into `StoreError` with a stable
 * `code`, so nothing above `storage/` ever sees an SDK error.
 */

import type { Readable } from 'node:stream';

/** User metadata as stored with the object (`x-amz-meta-*` on S3), keys lower-case, no prefix. */
export type ObjectMetadata = Record<string, string>;

export interface ObjectInfo {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
  /** Present when the request returned it (head/get), absent for listings. */
  metadata?: ObjectMetadata;
  contentType?: string;
  /**
   * The store's clock (HTTP Date) when it answered a head or get, when it said. A version read
   * in a later second than its Last-Modified is the last of that second: another client's change
   * made after it has a later Last-Modified (kept-metadata.ts relies on this).
   */
  readAt?: Date;
}

/** An HTTP date header (`Date`, `Last-Modified`) as a Date, if it is one. */
export function httpDate(header: string | undefined): Date | undefined {
  const date = header ? new Date(header) : undefined;
  return date && !Number.isNaN(date.getTime()) ? date : undefined;
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Common prefixes (with the trailing delimiter) when a delimiter was given. */
  prefixes: string[];
  /** Pass back to `list` for the next page; undefined on the last page. */
  nextToken?: string;
}

export interface ListOptions {
  prefix: string;
  delimiter?: string;
  token?: string;
  /** At most this many objects + prefixes per page (S3 caps at 1,000). */
  maxKeys?: number;
  /** Cancels the request (an interrupted file operation): it fails with `Aborted`. */
  signal?: AbortSignal;
}

export interface HeadOptions {
  /** Cancels the request: it fails with `Aborted`. */
  signal?: AbortSignal;
}

export interface ByteRange {
  /** First byte, inclusive. */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

export interface GetOptions {
  range?: ByteRange;
  /** Fail with `PreconditionFailed` unless the object still has this ETag. */
  ifMatch?: string;
  /**
   * Memory for the body (a block buffer the caller recycles): when the body is exactly this long,
   * it is read into `into` and the returned body is `into` itself, so no fresh buffer is touched.
   * Otherwise it is ignored. Its bytes are undefined after a failed get.
   */
  into?: Buffer;
  /**
   * Told how many bytes of the body are in `into` so far, as they arrive (only when the body is read
   * into `into`): a reader may take bytes that have arrived before the whole body has. A second try
   * after a failure starts again from 0, with the same bytes (the GET is pinned to one ETag).
   */
  onProgress?: (received: number) => void;
  /** Cancels the request, body included: it fails with `Aborted`. */
  signal?: AbortSignal;
}

export interface PutOptions {
  metadata?: ObjectMetadata;
  contentType?: string;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export interface StoreCapabilities {
  /** Most parts one multipart upload may have (10,000 on S3; lower on some stores). */
  maxParts: number;
  /** Smallest part other than the last (5 MiB on S3). */
  minPartSize: number;
  /** Largest single part (5 GiB on S3). */
  maxPartSize: number;
  /** Largest object a single PUT or copy may create (5 GiB on S3). */
  maxPutSize: number;
  /** Server-side copy (`copy`) is available. */
  serverSideCopy: boolean;
  /** A range of an existing object can become a part of a multipart upload (`uploadPartCopy`). */
  partCopy: boolean;
}

/** The source of `uploadPartCopy`: bytes of an object, which must still have this ETag. */
export interface PartCopySource {
  key: string;
  range: ByteRange;
  ifMatch: string;
}

/** What the store says of an object it has just written (put, copy, completed upload). */
export interface WrittenObject {
  etag: string;
  /**
   * No earlier than the object's Last-Modified: the time the store gave it, or else the store's
   * own clock (HTTP Date) when it answered. Undefined when the store said neither. With the ETag
   * it tells a listing that shows this object that it is the one written here (metadata-cache.ts).
   */
  modifiedBy?: Date;
}

/** Requests sent, and the retries the SDK needed for them. */
export interface StoreStats {
  requests: number;
  retries: number;
  failures: number;
  /** Requests by operation ('get', 'put', 'upload part'...). */
  byOperation: Record<string, number>;
}

export interface ObjectStore {
  /** A short description for logs and errors, e.g. `s3://bucket`. Never holds a secret. */
  readonly description: string;
  readonly capabilities: StoreCapabilities;

  /** Fails with `NotFound` when the key does not exist. */
  head(key: string, options?: HeadOptions): Promise<ObjectInfo>;
  /** The object's bytes (the whole object, or `range`, clipped to its end). */
  get(key: string, options?: GetOptions): Promise<{ info: ObjectInfo; body: Buffer }>;
  /** A stream of the object's bytes, for copying whole objects to local files. */
  getStream(key: string, options?: GetOptions): Promise<{ info: ObjectInfo; body: Readable }>;
  put(key: string, body: Buffer, options?: PutOptions): Promise<WrittenObject>;
  list(options: ListOptions): Promise<ListPage>;
  /** Copies an object within the store. `metadata` replaces the source's; omitted, it is kept. */
  copy(sourceKey: string, destinationKey: string, options?: PutOptions): Promise<WrittenObject>;
  /** Deletes keys; a key that does not exist is not an error. */
  deleteMany(keys: string[]): Promise<void>;

  createMultipartUpload(key: string, options?: PutOptions): Promise<string>;
  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string>;
  /** Makes a part from bytes already in the store (only when `capabilities.partCopy`); returns its ETag. */
  uploadPartCopy(key: string, uploadId: string, partNumber: number, source: PartCopySource): Promise<string>;
  completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject>;
  abortMultipartUpload(key: string, uploadId: string): Promise<void>;
}

export type StoreErrorCode =
  /** The key or upload does not exist. */
  | 'NotFound'
  /** The bucket (container) does not exist. */
  | 'NoSuchBucket'
  /** An If-Match or similar condition failed: the object changed. */
  | 'PreconditionFailed'
  /** The store refused the request (policy, permissions). */
  | 'AccessDenied'
  /** The store did not accept the credentials (unknown key, bad signature, expired token). */
  | 'InvalidCredentials'
  /** No credentials could be found for the request. */
  | 'NoCredentials'
  /** The store asked us to slow down, and retries did not get through. */
  | 'Throttled'
  /** The endpoint could not be reached (DNS, refused, timeout). */
  | 'Unreachable'
  /** The endpoint's TLS certificate could not be verified (self-signed, unknown CA, wrong host). */
  | 'UntrustedCertificate'
  /** A server-side or network failure that outlasted the retries. */
  | 'Transient'
  /** The request was malformed for this store (bad key, too large, unsupported). */
  | 'InvalidRequest'
  /** The request outlasted its deadline (deadline.ts) and was abandoned. */
  | 'TimedOut'
  /** The caller cancelled the request through its AbortSignal. */
  | 'Aborted';

/** The one error type `storage/` throws. `message` never contains a secret. */
export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    /** What the store itself said (its error code), for messages to people. */
    readonly storeCode?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isStoreError(error: unknown, code?: StoreErrorCode): error is StoreError {
  return error instanceof StoreError && (code === undefined || error.code === code);
}

/** Lists every page under a prefix; the first of at most `firstPage` entries, if given (it comes sooner). */
export async function* listAll(store: ObjectStore, options: ListOptions, firstPage?: number): AsyncGenerator<ListPage> {
  let token: string | undefined;
  let maxKeys = firstPage ?? options.maxKeys;
  do {
    const page = await store.list({ ...options, token, maxKeys });
    yield page;
    token = page.nextToken;
    maxKeys = options.maxKeys;
  } while (token);
}

/**
 * A GET's body in one buffer of its announced length, filled as the chunks arrive (no second
 * copy of a block while it is joined): `target` when it is exactly that long (see
 * `GetOptions.into`), else a new buffer. A body that ends short of `length` is a transient
 * failure, never a short answer; a failing stream's error is thrown as it is, for the store to
 * translate.
 */
export async function readBody(
  body: AsyncIterable<Buffer>,
  length: number | undefined,
  where: string,
  target?: Buffer,
  onProgress?: (received: number) => void,
): Promise<Buffer> {
  const into = length === undefined ? undefined : target?.length === length ? target : Buffer.allocUnsafe(length);
  const progress = into === target ? onProgress : undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of body) {
    if (into && received + chunk.length <= into.length) {
      chunk.copy(into, received);
      progress?.(received + chunk.length);
    } else chunks.push(chunk);
    received += chunk.length;
  }
  if (length !== undefined && received !== length)
    throw new StoreError('Transient', `${where}: get returned ${received} of ${length} bytes`);
  return into ?? Buffer.concat(chunks);
}
