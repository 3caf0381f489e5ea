/**
 * `ObjectStore` on AWS S3 and S3-compatible stores, through the AWS SDK v3.
 *
 * Retries: the SDK's standard retry strategy (jittered exponential backoff, retry quota) retries
 * 5xx, throttling and network failures `maxAttempts` times; what outlasts it becomes a
 * `StoreError`. Every request has a connect and a socket-idle timeout, and an overall deadline
 * (deadline.ts) that also ends a request the store keeps alive by trickling bytes. Checksums are only sent where S3 requires them, because many
 * S3-compatible stores reject the SDK's default CRC headers.
 *
 * The client (its sockets, signature, and the middlewares it adds or drops for CPU per request) is
 * built in s3-client.ts. HEADs, GETs and PUTs of small bodies go out directly once the SDK has
 * shown the way (s3-direct-requests.ts): the SDK's per-request work costs the daemon's one JS
 * thread ~0.6 ms per request, against ~0.25 ms direct.
 *
 * A body's SigV4 signs its SHA-256. An upload part's, and a PUT's from `OFF_THREAD_HASH_MIN_BYTES`
 * on, is computed off the JS thread when the daemon gives a hasher (`payloadSha256`); a smaller
 * body is hashed on it, which costs less than the hop (2.6 µs for 4 KiB against ~30 µs).
 */

import type { Readable } from 'node:stream';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListBucketsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import type { AwsCredentialIdentityProvider } from '@smithy/types';

import type { Logger } from '../log/logger.js';
import { DEFAULT_DEADLINES, SLOW_REQUEST_FACTOR, type StoreDeadlines, deadlineMs, openStreamWithin, withDeadline } from './deadline.js';
import { getWhole } from './get-retry.js';
import { buildS3Client, noteDate } from './s3-client.js';
import { S3DirectRequests } from './s3-direct-requests.js';
import { type S3ErrorContext, translateS3Error } from './s3-errors.js';
import {
  type CompletedPart,
  type GetOptions,
  type HeadOptions,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PartCopySource,
  type PutOptions,
  type StoreCapabilities,
  StoreError,
  type StoreStats,
  type WrittenObject,
} from './object-store.js';

export type { StoreStats } from './object-store.js';

export interface S3StoreOptions {
  bucket: string;
  /** Custom endpoint for S3-compatible stores; omitted for AWS. */
  endpoint?: string;
  region: string;
  /** Path-style addressing (`endpoint/bucket/key`), which most non-AWS stores need. */
  pathStyle: boolean;
  credentials: AwsCredentialIdentityProvider;
  /** Names the credential in error messages: "access key AKIA… from the environment". */
  credentialDescription: string;
  /** Sockets kept open to the store. */
  maxConnections?: number;
  /** Attempts per request, first included. */
  maxAttempts?: number;
  connectTimeoutMs?: number;
  /** A request whose socket is idle this long fails (and is retried). */
  idleTimeoutMs?: number;
  maxParts?: number;
  /** Where retried and failed requests are reported (one line each); default: nowhere. */
  logger?: Logger;
  /** 'v2' for old stores that only know AWS Signature Version 2; 'none' for a public bucket (unsigned); default 'v4'. */
  signatureVersion?: 'v2' | 'v4' | 'none';
  /** PEM certificates trusted besides Node's own roots (a gateway's self-signed CA). */
  caCertificates?: string;
  /** Skip TLS certificate verification altogether (`--insecure`). */
  insecure?: boolean;
  /** Overall deadlines per request, retries included (deadline.ts); default DEFAULT_DEADLINES. */
  deadlines?: StoreDeadlines;
  /**
   * The SHA-256 of an upload part's or a larger PUT's body as hex, computed off the JS thread
   * (undefined: it is hashed on the JS thread, as every other body is). Signature V4 only.
   */
  payloadSha256?: (body: Buffer) => Promise<string | undefined>;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** A PUT's body from this size on is hashed off the JS thread, when there is a hasher (measured). */
const OFF_THREAD_HASH_MIN_BYTES = 64 * 1024;

export class S3Store implements ObjectStore {
  readonly description: string;
  readonly capabilities: StoreCapabilities;
  readonly stats: StoreStats = { requests: 0, retries: 0, failures: 0, byOperation: {} };
  private readonly client: S3Client;
  /** HEADs, GETs and small PUTs sent without the SDK once it has shown the way (s3-direct-requests.ts). */
  private readonly direct: S3DirectRequests | undefined;
  private readonly bucket: string;
  private readonly deadlines: StoreDeadlines;
  private readonly errorContext: S3ErrorContext;
  /** Bodies (upload parts, larger PUTs) whose payload hash was computed off the JS thread, while they are sent. */
  private readonly payloadHashes = new WeakMap<Buffer, string>();
  /** `options.payloadSha256` when requests are signed with V4 (the others sign no payload hash). */
  private readonly payloadSha256: ((body: Buffer) => Promise<string | undefined>) | undefined;

  constructor(private readonly options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.deadlines = options.deadlines ?? DEFAULT_DEADLINES;
    this.description = `s3://${options.bucket}`;
    this.errorContext = {
      description: this.description,
      bucket: options.bucket,
      endpoint: options.endpoint ?? `the AWS S3 endpoint for region ${options.region}`,
      credentialDescription: options.credentialDescription,
    };
    this.capabilities = {
      maxParts: options.maxParts ?? 10_000,
      minPartSize: 5 * MiB,
      maxPartSize: 5 * GiB,
      maxPutSize: 5 * GiB,
      serverSideCopy: true,
      partCopy: true,
    };
    const built = buildS3Client(options, options.payloadSha256 ? this.payloadHashes : undefined);
    this.client = built.client;
    this.payloadSha256 = built.signedWithV4 ? options.payloadSha256 : undefined;
    if (built.signedWithV4) {
      const { httpAgent, httpsAgent, idleTimeoutMs } = built;
      this.direct = new S3DirectRequests({ credentials: () => this.client.config.credentials(), httpAgent, httpsAgent, idleTimeoutMs });
      this.direct.learnFrom(this.client.middlewareStack);
    }
  }

  /** Checks that the bucket exists and that the credentials may list it. */
  async probe(prefix: string): Promise<void> {
    await this.call('list', prefix, (abortSignal) =>
      this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, MaxKeys: 1 }), { abortSignal }),
    );
  }

  /** Checks only that the bucket exists and the credentials are accepted (no list permission). */
  async headBucket(): Promise<void> {
    await this.call('head bucket', '', (abortSignal) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }));
  }

  async head(key: string, options: HeadOptions = {}): Promise<ObjectInfo> {
    return this.call(
      'head',
      key,
      async (abortSignal) => {
        if (this.direct?.takes(key)) {
          const direct = await this.direct.head(key, abortSignal);
          if (direct?.status === 200) return direct.info;
          if (direct?.status === 404) throw new StoreError('NotFound', `${this.description}/${key}: not found`, 'NotFound');
          this.countAgain('head', abortSignal);
        }
        const answered: { at?: Date } = {};
        const out = await this.client.send(noteDate(new HeadObjectCommand({ Bucket: this.bucket, Key: key }), answered), { abortSignal });
        this.countRetries(out, 'head', key, 'succeeded');
        return {
          key,
          size: out.ContentLength ?? 0,
          etag: out.ETag ?? '',
          lastModified: out.LastModified ?? new Date(0),
          metadata: out.Metadata ?? {},
          contentType: out.ContentType,
          readAt: answered.at,
        };
      },
      { signal: options.signal },
    );
  }

  /** A whole GET, within its deadline, sent once more after a transient failure (get-retry.ts). */
  get(key: string, options: GetOptions = {}): Promise<{ info: ObjectInfo; body: Buffer }> {
    const where = `${this.description}/${key}`;
    return getWhole(
      this.stats,
      this.deadlines,
      where,
      options,
      (signal) => this.openGet(key, options, signal),
      (error) => {
        // The SDK retries until the headers arrive; a body cut off after them surfaces here, as a
        // transient failure the caller may retry (never as a short, wrong answer).
        this.stats.failures += 1;
        if (error instanceof StoreError) return error;
        const detail = error instanceof Error ? error.message : String(error);
        return new StoreError('Transient', `${where}: get failed while reading the body: ${detail}`, undefined, { cause: error });
      },
    );
  }

  /**
   * `length` is the body's Content-Length, when the store sent one. The body must be read within
   * the request's deadline (from its start, scaled by its length), or it is destroyed.
   */
  getStream(key: string, options: GetOptions = {}): Promise<{ info: ObjectInfo; body: Readable; length?: number }> {
    return openStreamWithin(this.deadlines, `${this.description}/${key}`, (signal) => this.openGet(key, options, signal), options.signal);
  }

  /** A GET until its headers are in, within the deadline whose signal is `within`. */
  private async openGet(
    key: string,
    options: GetOptions,
    within: AbortSignal,
  ): Promise<{ info: ObjectInfo; body: Readable; length?: number }> {
    const range = options.range ? `bytes=${options.range.start}-${options.range.end}` : undefined;
    return this.call(
      'get',
      key,
      async (abortSignal) => {
        if (this.direct?.takes(key)) {
          const direct = await this.direct.get(key, { range, ifMatch: options.ifMatch }, abortSignal);
          if (direct) return { info: direct.info, body: direct.body!, length: direct.length };
          this.countAgain('get', abortSignal);
        }
        const answered: { at?: Date } = {};
        const out = await this.client.send(
          noteDate(new GetObjectCommand({ Bucket: this.bucket, Key: key, Range: range, IfMatch: options.ifMatch }), answered),
          { abortSignal },
        );
        this.countRetries(out, 'get', key, 'succeeded');
        const totalSize = out.ContentRange ? Number(out.ContentRange.split('/')[1]) : (out.ContentLength ?? 0);
        return {
          info: {
            key,
            size: totalSize,
            etag: out.ETag ?? '',
            lastModified: out.LastModified ?? new Date(0),
            metadata: out.Metadata ?? {},
            contentType: out.ContentType,
            readAt: answered.at,
          },
          body: out.Body as Readable,
          length: out.ContentLength,
        };
      },
      { within },
    );
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<WrittenObject> {
    const hash = body.length >= OFF_THREAD_HASH_MIN_BYTES ? await this.payloadSha256?.(body) : undefined;
    if (hash) this.payloadHashes.set(body, hash);
    try {
      return await this.call('put', key, (abortSignal) => this.sendPut(key, body, options, hash, abortSignal), { bytes: body.length });
    } finally {
      if (hash) this.payloadHashes.delete(body);
    }
  }

  private async sendPut(key: string, body: Buffer, options: PutOptions, sha256: string | undefined, abortSignal: AbortSignal) {
    if (this.direct?.takes(key, body.length)) {
      const written = await this.direct.put(key, body, { ...options, sha256 }, abortSignal);
      if (written) return written;
      this.countAgain('put', abortSignal);
    }
    const answered: { at?: Date } = {};
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: key,
      Body: body,
      ContentLength: body.length,
      Metadata: options.metadata,
      ContentType: options.contentType,
    });
    const out = await this.client.send(noteDate(command, answered), { abortSignal });
    this.countRetries(out, 'put', key, 'succeeded');
    return { etag: out.ETag ?? '', modifiedBy: answered.at };
  }

  async list(options: ListOptions): Promise<ListPage> {
    const out = await this.call(
      'list',
      options.prefix,
      (abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: options.prefix,
            Delimiter: options.delimiter,
            ContinuationToken: options.token,
            MaxKeys: options.maxKeys ?? 1000,
          }),
          { abortSignal },
        ),
      { signal: options.signal },
    );
    return {
      objects: (out.Contents ?? []).map((o) => ({
        key: o.Key ?? '',
        size: o.Size ?? 0,
        etag: o.ETag ?? '',
        lastModified: o.LastModified ?? new Date(0),
      })),
      prefixes: (out.CommonPrefixes ?? []).map((p) => p.Prefix ?? ''),
      nextToken: out.IsTruncated ? out.NextContinuationToken : undefined,
    };
  }

  async copy(sourceKey: string, destinationKey: string, options?: PutOptions): Promise<WrittenObject> {
    const out = await this.call(
      'copy',
      sourceKey,
      (abortSignal) =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: destinationKey,
            CopySource: `${this.bucket}/${encodeCopySourceKey(sourceKey)}`,
            MetadataDirective: options?.metadata ? 'REPLACE' : 'COPY',
            Metadata: options?.metadata,
            ContentType: options?.metadata ? options.contentType : undefined,
          }),
          { abortSignal },
        ),
      { slow: true },
    );
    return { etag: out.CopyObjectResult?.ETag ?? '', modifiedBy: out.CopyObjectResult?.LastModified };
  }

  async deleteMany(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const out = await this.call('delete', batch[0] ?? '', (abortSignal) =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
          { abortSignal },
        ),
      );
      const failed = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) {
        const first = failed[0]!;
        throw new StoreError(
          first.Code === 'AccessDenied' ? 'AccessDenied' : 'Transient',
          `${this.description}: could not delete ${failed.length} key(s), first '${first.Key}': ${first.Code} ${first.Message ?? ''}`.trim(),
          first.Code,
        );
      }
    }
  }

  async createMultipartUpload(key: string, options: PutOptions = {}): Promise<string> {
    const out = await this.call('create multipart upload', key, (abortSignal) =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: key,
          Metadata: options.metadata,
          ContentType: options.contentType,
        }),
        { abortSignal },
      ),
    );
    if (!out.UploadId) throw new StoreError('Transient', `${this.description}: no upload id returned for '${key}'`);
    return out.UploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    // Part buffers are used again for other parts: a hash is only kept while its part is sent.
    const hash = this.payloadSha256 ? await this.payloadSha256(body) : undefined;
    if (hash) this.payloadHashes.set(body, hash);
    try {
      return await this.sendPart(key, uploadId, partNumber, body);
    } finally {
      this.payloadHashes.delete(body);
    }
  }

  private async sendPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    const out = await this.call(
      'upload part',
      key,
      (abortSignal) =>
        this.client.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: partNumber,
            Body: body,
            ContentLength: body.length,
          }),
          { abortSignal },
        ),
      { bytes: body.length },
    );
    return out.ETag ?? '';
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject> {
    const answered: { at?: Date } = {};
    const out = await this.call(
      'complete multipart upload',
      key,
      (abortSignal) =>
        this.client.send(
          noteDate(
            new CompleteMultipartUploadCommand({
              Bucket: this.bucket,
              Key: key,
              UploadId: uploadId,
              MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
            }),
            answered,
          ),
          { abortSignal },
        ),
      { slow: true },
    );
    return { etag: out.ETag ?? '', modifiedBy: answered.at };
  }

  /** The buckets the credential may list (S3 ListBuckets); AccessDenied when it may not list. */
  async listBuckets(): Promise<string[]> {
    const out = await this.call('list buckets', '', (abortSignal) => this.client.send(new ListBucketsCommand({}), { abortSignal }));
    return (out.Buckets ?? []).flatMap((bucket) => (bucket.Name ? [bucket.Name] : []));
  }

  async uploadPartCopy(key: string, uploadId: string, partNumber: number, source: PartCopySource): Promise<string> {
    const out = await this.call(
      'copy part',
      key,
      (abortSignal) =>
        this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: partNumber,
            CopySource: `${this.bucket}/${encodeCopySourceKey(source.key)}`,
            CopySourceRange: `bytes=${source.range.start}-${source.range.end}`,
            CopySourceIfMatch: source.ifMatch,
          }),
          { abortSignal },
        ),
      { slow: true },
    );
    return out.CopyPartResult?.ETag ?? '';
  }

  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.call('abort multipart upload', key, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), { abortSignal }),
      );
    } catch (error) {
      if (error instanceof StoreError && error.code === 'NotFound') return;
      throw error;
    }
  }

  destroy(): void {
    this.client.destroy();
  }

  /**
   * Sends one request (the SDK retries it) within its deadline: `bytes` of object data make it
   * longer, `slow` (a copy or commit whose duration the object's unknown size decides) ten times
   * longer; `within` is an enclosing deadline's signal, which then bounds it instead.
   */
  private async call<T>(
    operation: string,
    key: string,
    send: (abortSignal: AbortSignal) => Promise<T>,
    limits: { bytes?: number; slow?: boolean; signal?: AbortSignal; within?: AbortSignal } = {},
  ): Promise<T> {
    this.stats.requests += 1;
    this.stats.byOperation[operation] = (this.stats.byOperation[operation] ?? 0) + 1;
    const where = key ? `${this.description}/${key}` : this.description;
    const attempt = async (abortSignal: AbortSignal) => {
      try {
        const result = await send(abortSignal);
        this.countRetries(result, operation, key, 'succeeded');
        return result;
      } catch (error) {
        this.countRetries(error, operation, key, 'failed');
        throw abortSignal.aborted ? abortSignal.reason : translateS3Error(error, operation, key, this.errorContext);
      }
    };
    try {
      if (limits.within) return await attempt(limits.within);
      const ms = limits.slow ? this.deadlines.requestMs * SLOW_REQUEST_FACTOR : deadlineMs(this.deadlines, limits.bytes);
      return await withDeadline(ms, where, attempt, limits.signal);
    } catch (error) {
      this.stats.failures += 1;
      throw error;
    }
  }

  /**
   * A direct request the SDK sends again (s3-direct-requests.ts): one more request to the store.
   * Unless the caller gave up, which ends it here.
   */
  private countAgain(operation: string, abortSignal: AbortSignal): void {
    if (abortSignal.aborted) throw abortSignal.reason;
    this.stats.requests += 1;
    this.stats.byOperation[operation] = (this.stats.byOperation[operation] ?? 0) + 1;
  }

  /** The SDK's own retries (jittered backoff) of one request, counted and logged. */
  private countRetries(outcome: unknown, operation: string, key: string, how: string): void {
    const attempts = (outcome as { $metadata?: { attempts?: number } } | undefined)?.$metadata?.attempts ?? 1;
    if (attempts <= 1) return;
    this.stats.retries += attempts - 1;
    const where = key ? `${this.description}/${key}` : this.description;
    this.options.logger?.warn(`${where}: ${operation} ${how} after ${attempts - 1} retr${attempts === 2 ? 'y' : 'ies'}`);
  }
}

/** CopySource is a URL path: each key segment is percent-encoded, the slashes kept. */
function encodeCopySourceKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}
