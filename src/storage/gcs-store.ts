/**
 * `ObjectStore` on Google Cloud Storage, through `@google-cloud/storage` (the JSON API).
 *
 * Versions: the "ETag" this store hands to the layers above is the object's **generation** (a
 * decimal string), not GCS's `etag`. The generation changes exactly when the bytes change (GCS's
 * etag also changes on metadata updates), it is in every listing, HEAD and GET, and GCS checks it
 * server-side: a read pinned to it is sent with `ifGenerationMatch`, so a replaced object fails
 * with 412 → `PreconditionFailed` (ESTALE above), never mixed bytes.
 *
 * Reads: a ranged read is one media GET (`alt=media`, `Range`, `ifGenerationMatch`) whose
 * response headers give the generation and size. A whole-object read must also return the custom
 * metadata, which media responses do not carry: it is a metadata GET and then a media GET pinned
 * to that generation, so bytes and metadata are of the same version.
 *
 * Large writes: GCS has no S3-style multipart upload in its JSON API. The multipart primitives
 * are a parallel composite upload (gcs-compose.ts): each part is an ordinary object uploaded in
 * one request, `complete` composes them (in a tree above 32) into the key with the metadata given
 * at `create`, and deletes them; `abort` deletes whatever objects of that upload exist. Parts have
 * no minimum size. There is no part copy (compose takes whole objects, not ranges).
 * Why compose and not GCS's XML multipart API (S3-like): compose goes through the same JSON API,
 * credentials and SDK calls as every other request, while the XML API is another endpoint and
 * protocol, which @google-cloud/storage 7 exposes only inside its TransferManager (whole local
 * files, not part-by-part calls); and neither could be measured here (no emulator serves either).
 * The costs of compose (temporary objects in cold storage classes, no MD5) are in SEMANTICS.md.
 *
 * Retries: the SDK's own (exponential backoff with jitter) for every request, idempotent or not:
 * objmount's writes are whole objects, so repeating one is harmless. What outlasts them becomes
 * a `StoreError` (gcs-errors.ts). No client-side hashing (as in s3-store.ts): it would cost CPU on
 * the one JS thread that serves every FUSE operation.
 */

import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';

import { type File, IdempotencyStrategy, Storage } from '@google-cloud/storage';

import type { Logger } from '../log/logger.js';
import { DEFAULT_DEADLINES, SLOW_REQUEST_FACTOR, type StoreDeadlines, deadlineMs, openStreamWithin, withDeadline } from './deadline.js';
import { type ComposeSource, isTemporaryPartObject, partName, partPrefix, planCompose } from './gcs-compose.js';
import { translateGcsError } from './gcs-errors.js';
import { getWhole } from './get-retry.js';
import {
  type CompletedPart,
  type GetOptions,
  type HeadOptions,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectMetadata,
  type ObjectStore,
  type PartCopySource,
  type PutOptions,
  type StoreCapabilities,
  StoreError,
  type StoreStats,
  type WrittenObject,
} from './object-store.js';

export interface GcsStoreOptions {
  bucket: string;
  /** A custom API endpoint (an emulator, a private endpoint); omitted for storage.googleapis.com. */
  endpoint?: string;
  /**
   * How to authenticate: a service-account key; 'anonymous' (no Authorization header, for
   * emulators and public buckets); or 'default' (Application Default Credentials).
   */
  auth: { kind: 'key'; clientEmail: string; privateKey: string; projectId?: string } | { kind: 'anonymous' } | { kind: 'default' };
  /** Names the credential in error messages: "service account a@b from /path/key.json". */
  credentialDescription: string;
  /** Retries per request after the first attempt. */
  maxRetries?: number;
  /** A request (body included) that takes longer fails, and is retried. */
  requestTimeoutMs?: number;
  maxParts?: number;
  /** Deletes (of keys, of parts) sent at once. */
  deleteConcurrency?: number;
  logger?: Logger;
  /**
   * Overall deadlines per request, retries included (deadline.ts); default DEFAULT_DEADLINES.
   * The SDK's calls take no AbortSignal: a request past its deadline fails at once and is left
   * to the SDK's own timeout; a media GET (every read of bytes) is aborted.
   */
  deadlines?: StoreDeadlines;
}

const MiB = 1024 * 1024;
const TiB = 1024 * 1024 * MiB;

interface PendingUpload {
  key: string;
  options: PutOptions;
}

export class GcsStore implements ObjectStore {
  readonly description: string;
  readonly capabilities: StoreCapabilities;
  readonly stats: StoreStats = { requests: 0, retries: 0, failures: 0, byOperation: {} };
  private readonly storage: Storage;
  private readonly bucketName: string;
  private readonly endpointDescription: string;
  /** What `create` was told, for `complete` (GCS keeps no state between them). */
  private readonly uploads = new Map<string, PendingUpload>();
  private readonly deadlines: StoreDeadlines;

  constructor(private readonly options: GcsStoreOptions) {
    this.deadlines = options.deadlines ?? DEFAULT_DEADLINES;
    this.bucketName = options.bucket;
    this.description = `gs://${options.bucket}`;
    this.endpointDescription = options.endpoint ?? 'the Google Cloud Storage endpoint';
    this.capabilities = {
      maxParts: options.maxParts ?? 10_000,
      // Compose takes parts of any size; the uploader's own part size decides.
      minPartSize: 1,
      maxPartSize: 5 * TiB,
      maxPutSize: 5 * TiB,
      serverSideCopy: true,
      partCopy: false,
    };
    const auth = options.auth;
    if (auth.kind === 'anonymous' && !options.endpoint) {
      throw new StoreError('InvalidRequest', `${this.description}: anonymous access needs a custom --endpoint`);
    }
    this.storage = new Storage({
      apiEndpoint: options.endpoint,
      // A project is only needed to create or list buckets, which a mount never does.
      projectId: auth.kind === 'key' ? (auth.projectId ?? 'objmount') : auth.kind === 'anonymous' ? 'objmount' : undefined,
      credentials: auth.kind === 'key' ? { client_email: auth.clientEmail, private_key: auth.privateKey } : undefined,
      // With a custom endpoint the SDK sends no credentials unless told to: a key is meant to be used.
      useAuthWithCustomEndpoint: auth.kind !== 'anonymous',
      timeout: options.requestTimeoutMs ?? 120_000,
      retryOptions: {
        // The SDK reads `maxRetries: 0` as "the default, 3": no retries is said with autoRetry.
        autoRetry: (options.maxRetries ?? 3) > 0,
        maxRetries: options.maxRetries ?? 3,
        idempotencyStrategy: IdempotencyStrategy.RetryAlways,
        retryDelayMultiplier: 2,
        maxRetryDelay: 8,
        totalTimeout: 300,
      },
    });
  }

  /** The project's buckets, for `objmount creds` (a service account's key names its project). */
  async listBuckets(): Promise<string[]> {
    const [buckets] = await this.call('list buckets', '', () => this.storage.getBuckets({ autoPaginate: true }));
    return buckets.map((bucket) => bucket.name);
  }

  /** Checks that the bucket exists and the credential may list it. */
  async probe(prefix: string): Promise<void> {
    await this.call('probe', prefix, () => this.bucket().getFiles({ prefix, maxResults: 1, autoPaginate: false }));
  }

  async head(key: string, options: HeadOptions = {}): Promise<ObjectInfo> {
    const [metadata] = await this.call('head', key, () => this.file(key).getMetadata(), { signal: options.signal });
    return objectInfo(key, metadata as GcsObjectResource);
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
      (error) => (error instanceof StoreError ? error : translateGcsError(error, this.context('get', key))),
    );
  }

  /**
   * `length` is the body's Content-Length, when the service sent one. The body must be read
   * within the request's deadline (from its start, scaled by its length), or it is destroyed.
   */
  getStream(key: string, options: GetOptions = {}): Promise<{ info: ObjectInfo; body: Readable; length?: number }> {
    return openStreamWithin(this.deadlines, `${this.description}/${key}`, (signal) => this.openGet(key, options, signal), options.signal);
  }

  /** The object's bytes until the headers are in, within the deadline whose signal is `signal`. */
  private async openGet(
    key: string,
    options: GetOptions,
    signal: AbortSignal,
  ): Promise<{ info: ObjectInfo; body: Readable; length?: number }> {
    if (options.range) {
      // The hot path: one request; what the layers above need of `info` is in the headers.
      const response = await this.media(key, options.ifMatch, signal, options.range);
      const info = infoFromMediaHeaders(key, response);
      if (response.status === 200 && info.size > 0 && options.range.start >= info.size) {
        // GCS answers a range past the end with 416; the emulator ignores it and sends the whole
        // object (200). Both become the same error, as on S3 and Azure, never the wrong bytes.
        response.resume(); // the body is not wanted: let it flow and end
        throw new StoreError(
          'InvalidRequest',
          `${this.description}/${key}: get refused: range starts at ${options.range.start}, past the end (${info.size} bytes)`,
          'InvalidRange',
        );
      }
      return { info, body: response, length: contentLength(response) };
    }
    // The whole object comes with its metadata: read it first and pin the bytes to it.
    const info = await this.head(key, { signal });
    if (options.ifMatch !== undefined && options.ifMatch !== info.etag) {
      throw new StoreError('PreconditionFailed', `${this.description}/${key}: changed in the store while open`, 'conditionNotMet');
    }
    const body = await this.media(key, info.etag, signal);
    return { info, body, length: contentLength(body) };
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<WrittenObject> {
    const file = this.file(key);
    await this.call(
      'put',
      key,
      () =>
        file.save(body, {
          resumable: false,
          validation: false,
          contentType: options.contentType,
          metadata: { contentType: options.contentType, metadata: options.metadata ?? {} },
        }),
      { bytes: body.length },
    );
    return { etag: generationOf(file, key, this.description) };
  }

  async list(options: ListOptions): Promise<ListPage> {
    const [, , response] = await this.call('list', options.prefix, () =>
      this.bucket().getFiles({
        prefix: options.prefix,
        delimiter: options.delimiter,
        pageToken: options.token,
        maxResults: options.maxKeys ?? 1000,
        autoPaginate: false,
      }),
    );
    const page = (response ?? {}) as { items?: GcsObjectResource[]; prefixes?: string[]; nextPageToken?: string };
    return {
      objects: (page.items ?? [])
        .filter((item) => !isTemporaryPartObject(item.name ?? ''))
        .map((item) => {
          const { metadata: _metadata, ...info } = objectInfo(item.name ?? '', item);
          return info;
        }),
      prefixes: page.prefixes ?? [],
      nextToken: page.nextPageToken || undefined,
    };
  }

  async copy(sourceKey: string, destinationKey: string, options?: PutOptions): Promise<WrittenObject> {
    const destination = this.file(destinationKey);
    // With `metadata` the destination gets exactly it (and the content type given); without, the
    // source's metadata is kept. The SDK loops over rewrite tokens, so any size is copied.
    const replace = options?.metadata ? { metadata: { ...options.metadata }, contentType: options.contentType } : {};
    const [copied, response] = await this.call('copy', sourceKey, () => this.file(sourceKey).copy(destination, replace), { slow: true });
    // The rewrite's answer holds the new object; the SDK does not copy it onto the File.
    const resource = (response as { resource?: GcsObjectResource } | undefined)?.resource;
    if (resource?.generation !== undefined) return { etag: String(resource.generation) };
    return { etag: generationOf(copied, destinationKey, this.description) };
  }

  async deleteMany(keys: string[]): Promise<void> {
    await this.forEachLimited(keys, (key) => this.deleteOne(key));
  }

  async createMultipartUpload(key: string, options: PutOptions = {}): Promise<string> {
    const uploadId = randomBytes(8).toString('hex');
    this.uploads.set(uploadId, { key, options });
    return uploadId;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    this.pending(key, uploadId);
    const part = this.file(partName(key, uploadId, partNumber));
    await this.call(
      'upload part',
      key,
      () => part.save(body, { resumable: false, validation: false, contentType: 'application/octet-stream' }),
      {
        bytes: body.length,
      },
    );
    return generationOf(part, key, this.description);
  }

  async uploadPartCopy(key: string, _uploadId: string, _partNumber: number, _source: PartCopySource): Promise<string> {
    throw new StoreError(
      'InvalidRequest',
      `${this.description}/${key}: GCS cannot make a part from a range of an object (capabilities.partCopy is false)`,
    );
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject> {
    const upload = this.pending(key, uploadId);
    const sources: ComposeSource[] = [...parts]
      .sort((a, b) => a.partNumber - b.partNumber)
      .map((p) => ({ name: partName(key, uploadId, p.partNumber), generation: p.etag }));
    const { levels, temporaries } = planCompose(key, uploadId, sources);
    let generation = '';
    for (const steps of levels) {
      await Promise.all(
        steps.map(async (step) => {
          const final = step.destination === key;
          const resource = await this.compose(key, step.sources, step.destination, final ? upload.options : {});
          if (final) generation = String(resource.generation ?? '');
        }),
      );
    }
    // The object is complete: what is left are temporary objects. A failure to delete them must
    // not fail the write; abort (or the next mount's recovery) can still find them by name.
    try {
      await this.deleteMany([...sources.map((s) => s.name), ...temporaries]);
    } catch (error) {
      this.options.logger?.warn(
        `${this.description}/${key}: could not delete the parts of upload ${uploadId}: ${(error as Error).message}`,
      );
    }
    this.uploads.delete(uploadId);
    return { etag: generation };
  }

  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    this.uploads.delete(uploadId);
    // Listing finds every part and intermediate object, also those of a daemon that crashed.
    const prefix = partPrefix(key, uploadId);
    let token: string | undefined;
    do {
      const [, , response] = await this.call('list', prefix, () =>
        this.bucket().getFiles({ prefix, pageToken: token, maxResults: 1000, autoPaginate: false }),
      );
      const page = (response ?? {}) as { items?: GcsObjectResource[]; nextPageToken?: string };
      await this.deleteMany((page.items ?? []).map((item) => item.name ?? '').filter((name) => name.startsWith(prefix)));
      token = page.nextPageToken || undefined;
    } while (token);
  }

  destroy(): void {
    this.uploads.clear();
  }

  /** The upload `create` recorded; an unknown id (another process's, or finished) is refused. */
  private pending(key: string, uploadId: string): PendingUpload {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) {
      throw new StoreError('NotFound', `${this.description}/${key}: no upload ${uploadId} in progress here`, 'NoSuchUpload');
    }
    return upload;
  }

  /** One compose request; the SDK's `combine` cannot set custom metadata, so it is sent as the API has it. */
  private async compose(key: string, sources: ComposeSource[], destination: string, options: PutOptions): Promise<GcsObjectResource> {
    const [resource] = await this.call(
      'compose',
      key,
      () =>
        this.file(destination).request({
          method: 'POST',
          uri: '/compose',
          json: {
            destination: { contentType: options.contentType ?? 'application/octet-stream', metadata: options.metadata ?? {} },
            sourceObjects: sources.map((s) => (s.generation ? { name: s.name, generation: s.generation } : { name: s.name })),
          },
        }),
      { slow: true },
    );
    return resource as GcsObjectResource;
  }

  private async deleteOne(key: string): Promise<void> {
    await this.call('delete', key, () => this.file(key).delete({ ignoreNotFound: true }));
  }

  /**
   * A media GET: the object's bytes, or a range of them, optionally pinned to a generation.
   * Resolves once the response headers are in, with the body still streaming.
   */
  private async media(
    key: string,
    generation: string | undefined,
    signal: AbortSignal,
    range?: { start: number; end: number },
  ): Promise<MediaResponse> {
    const operation = 'get';
    this.count(operation);
    const qs: Record<string, string> = { alt: 'media' };
    if (generation !== undefined && generation !== '') qs.ifGenerationMatch = generation;
    // Accepting gzip keeps GCS from transcoding a gzip-encoded object (which would ignore Range):
    // sizes and ranges always mean the stored bytes, which are passed on as they are.
    const headers: Record<string, string> = { 'Accept-Encoding': 'gzip', 'Cache-Control': 'no-store' };
    if (range) headers.Range = `bytes=${range.start}-${range.end}`;
    try {
      return await new Promise<MediaResponse>((resolve, reject) => {
        const request = this.file(key).requestStream({ uri: '', qs, headers });
        request.on('error', reject);
        // Aborted (deadline, interrupt): the request and its response go, and so does the socket.
        const onAbort = () => {
          request.destroy(signal.reason as Error);
          reject(signal.reason);
        };
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
        request.once('close', () => signal.removeEventListener('abort', onAbort));
        // The bytes are read from the raw response below; the SDK's stream carries a second copy
        // that must flow too, or its back-pressure stalls the response after a few KiB.
        request.resume();
        request.on('response', (response: IncomingMessage) => {
          const status = response.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            const body = new PassThrough() as MediaResponse;
            body.headers = response.headers;
            body.status = status;
            response.on('error', (error) => body.destroy(error));
            // Once the body is abandoned (deadline, interrupt, a reader gone), so is the response.
            body.once('close', () => {
              if (!response.complete) response.destroy();
            });
            response.pipe(body);
            resolve(body);
            return;
          }
          // An error's body is GCS's message; read a bounded amount of it for the error.
          const chunks: Buffer[] = [];
          let length = 0;
          response.on('data', (chunk: Buffer) => {
            if (length < 4096) chunks.push(chunk);
            length += chunk.length;
          });
          response.on('end', () =>
            reject(Object.assign(new Error(mediaErrorMessage(Buffer.concat(chunks).toString('utf8'), status)), { code: status })),
          );
          response.on('error', reject);
        });
      });
    } catch (error) {
      this.stats.failures += 1;
      throw translateGcsError(error, this.context(operation, key));
    }
  }

  private bucket() {
    return this.storage.bucket(this.bucketName);
  }

  private file(key: string): File {
    return this.bucket().file(key);
  }

  private count(operation: string): void {
    this.stats.requests += 1;
    this.stats.byOperation[operation] = (this.stats.byOperation[operation] ?? 0) + 1;
  }

  /**
   * Sends one request (the SDK retries it) within its deadline: `bytes` of object data make it
   * longer, `slow` (a copy or compose whose duration the objects' sizes decide) ten times longer.
   */
  private async call<T>(
    operation: string,
    key: string,
    send: () => Promise<T>,
    limits: { bytes?: number; slow?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    this.count(operation);
    const ms = limits.slow ? this.deadlines.requestMs * SLOW_REQUEST_FACTOR : deadlineMs(this.deadlines, limits.bytes);
    try {
      return await withDeadline(ms, key ? `${this.description}/${key}` : this.description, () => send(), limits.signal);
    } catch (error) {
      this.stats.failures += 1;
      throw error instanceof StoreError ? error : translateGcsError(error, this.context(operation, key));
    }
  }

  private context(operation: string, key: string) {
    return {
      description: this.description,
      bucket: this.bucketName,
      operation,
      key,
      endpointDescription: this.endpointDescription,
      credentialDescription: this.options.credentialDescription,
    };
  }

  /** Runs `action` on every item, `deleteConcurrency` at a time; the first failure is thrown after all ran. */
  private async forEachLimited<T>(items: T[], action: (item: T) => Promise<void>): Promise<void> {
    const limit = Math.max(1, this.options.deleteConcurrency ?? 16);
    let next = 0;
    let firstError: unknown;
    const worker = async () => {
      while (next < items.length) {
        const item = items[next++]!;
        try {
          await action(item);
        } catch (error) {
          firstError ??= error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
    if (firstError !== undefined) throw firstError;
  }
}

/** The fields of a GCS object resource this store reads (the API gives numbers as strings). */
interface GcsObjectResource {
  name?: string;
  size?: string | number;
  generation?: string | number;
  updated?: string;
  contentType?: string;
  metadata?: Record<string, string | number | boolean | null>;
}

type MediaResponse = PassThrough & { headers: IncomingMessage['headers']; status: number };

function objectInfo(key: string, resource: GcsObjectResource): ObjectInfo {
  return {
    key,
    size: Number(resource.size ?? 0),
    etag: String(resource.generation ?? ''),
    lastModified: resource.updated ? new Date(resource.updated) : new Date(0),
    metadata: customMetadata(resource.metadata),
    contentType: resource.contentType,
  };
}

/** GCS keeps custom metadata keys as written; objmount's convention (and S3's) is lower case. */
function customMetadata(metadata: GcsObjectResource['metadata']): ObjectMetadata {
  const result: ObjectMetadata = {};
  for (const [name, value] of Object.entries(metadata ?? {})) {
    if (value !== null && value !== undefined) result[name.toLowerCase()] = String(value);
  }
  return result;
}

/** The body's announced length in bytes, if the response has one. */
function contentLength(response: MediaResponse): number | undefined {
  const value = response.headers['content-length'];
  const length = Number(Array.isArray(value) ? value[0] : value);
  return value !== undefined && Number.isFinite(length) ? length : undefined;
}

function infoFromMediaHeaders(key: string, response: MediaResponse): ObjectInfo {
  const header = (name: string) => {
    const value = response.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const contentRange = header('content-range');
  const total = contentRange
    ? Number(contentRange.split('/')[1])
    : Number(header('x-goog-stored-content-length') ?? header('content-length') ?? 0);
  const lastModified = header('last-modified');
  return {
    key,
    size: Number.isFinite(total) ? total : 0,
    etag: header('x-goog-generation') ?? '',
    lastModified: lastModified ? new Date(lastModified) : new Date(0),
    contentType: header('content-type'),
  };
}

/** The generation the SDK recorded on a File after an upload or copy. */
function generationOf(file: File, key: string, description: string): string {
  const generation = file.metadata?.generation;
  if (generation === undefined || generation === null || generation === '') {
    throw new StoreError('Transient', `${description}/${key}: the store returned no generation for the new object`);
  }
  return String(generation);
}

/** GCS answers media errors in JSON or plain text; keep one line of it. */
function mediaErrorMessage(body: string, status: number): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } };
    if (parsed.error?.message) return parsed.error.message;
  } catch {
    // plain text
  }
  const line = body
    .split('\n')
    .map((l) => l.trim())
    .find(Boolean);
  return line ? line.slice(0, 200) : `HTTP ${status}`;
}
