/**
 * `ObjectStore` on Azure Blob Storage (block blobs), through `@azure/storage-blob`.
 *
 * Mapping: head → Get Blob Properties; get → Get Blob with a range and If-Match; list → List
 * Blobs (hierarchical with a delimiter, flat without); put → Put Blob; copy → Copy Blob (polled
 * until done), or Set Blob Metadata when a blob is copied onto itself; deleteMany → Delete Blob
 * per key, a few at a time.
 *
 * Multipart uploads become block lists. Azure has no upload object: blocks are staged on the
 * blob itself and become its content when a block list is committed. So `createMultipartUpload`
 * only makes an id (kept in memory with the metadata to commit), a part is a block whose id is
 * derived from the upload id and part number (all ids of a blob must have one length), complete
 * commits the list, and abort forgets the id: uncommitted blocks cannot be deleted on their own,
 * Azure drops them after a week or at the blob's next commit. An upload id does not survive the
 * daemon; the journal's recovery only ever aborts uploads of a previous run, which is a no-op.
 * That part of the store is azure-multipart.ts's.
 *
 * Directories: objmount writes `dir/` marker blobs, as on S3 (Azure allows names ending in '/').
 * It also reads blobfuse's directories, which are blobs named `dir` with `hdi_isfolder=true`:
 * a directory listing shows them as the prefix `dir/`, `head('dir/')` falls back to them when
 * there is no `dir/` blob (one more request for such a lookup), `head('dir')` does not show
 * them as files, deleting `dir/` deletes them too (one more request per directory deleted), and
 * copying a missing `dir/` copies them (to a `dir/` marker, so a renamed directory is objmount's).
 *
 * Part copy is Put Block From URL from a snapshot of the source taken with If-Match (the SDK's
 * `stageBlockFromURL` cannot send the source's If-Match itself); the snapshot is deleted when
 * the upload ends. A daemon killed in between leaves it behind: it goes when the blob is deleted.
 *
 * Retries: the SDK's exponential retry policy (retryable: 5xx, 429, network failures, try
 * timeouts), within one overall deadline per request (deadline.ts); what outlasts it becomes a
 * `StoreError`. The SDK does not report how many retries a request took, so `stats.retries`
 * counts only GETs sent again (get-retry.ts) on Azure. Messages never hold a key or a SAS
 * signature: the SDK's own text is only used after `redact` (azure-errors.ts).
 */

import type { Readable } from 'node:stream';

import { AnonymousCredential, BlobServiceClient, type ContainerClient, StorageSharedKeyCredential, newPipeline } from '@azure/storage-blob';

import type { Logger } from '../log/logger.js';
import { decodeMetadata, encodeMetadata } from './azure-metadata.js';
import { translateAzureError } from './azure-errors.js';
import { AzureBlockUploads } from './azure-multipart.js';
import { DEFAULT_DEADLINES, SLOW_REQUEST_FACTOR, type StoreDeadlines, deadlineMs, openStreamWithin, withDeadline } from './deadline.js';
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

/** Block ids, for tests and tools that look at a blob's block list (azure-multipart.ts makes them). */
export { blockIdOf } from './azure-multipart.js';
/** The redaction every Azure message goes through (azure-errors.ts). */
export { redact } from './azure-errors.js';

/** How a request to the account is authorized. */
export type AzureCredential =
  /** Shared Key: the account name and one of its two keys (base64). */
  | { kind: 'sharedKey'; accountKey: string }
  /** An account or container SAS: the query string (`sv=…&sig=…`), with or without its '?'. */
  | { kind: 'sas'; token: string }
  /** No credential: a container with public read access. */
  | { kind: 'anonymous' };

export interface AzureStoreOptions {
  account: string;
  container: string;
  /**
   * The blob service URL, e.g. `http://127.0.0.1:10000/devstoreaccount1` (Azurite) or
   * `https://ACCOUNT.blob.core.usgovcloudapi.net`; default `https://ACCOUNT.blob.core.windows.net`.
   */
  endpoint?: string;
  credential: AzureCredential;
  /** Names the credential in messages: "account key for ACCOUNT from the environment". */
  credentialDescription: string;
  /** Attempts per request, first included. */
  maxAttempts?: number;
  /** A single try (one attempt) fails after this long and is retried. */
  tryTimeoutMs?: number;
  maxParts?: number;
  logger?: Logger;
  /** Overall deadlines per request, retries included (deadline.ts); default DEFAULT_DEADLINES. */
  deadlines?: StoreDeadlines;
}

const MiB = 1024 * 1024;
/** How many deletes run at once in `deleteMany` (Azure has no multi-object delete outside batches). */
const DELETE_CONCURRENCY = 16;

export function defaultAzureEndpoint(account: string): string {
  return `https://${account}.blob.core.windows.net`;
}

export class AzureStore implements ObjectStore {
  readonly description: string;
  readonly capabilities: StoreCapabilities;
  readonly stats: StoreStats = { requests: 0, retries: 0, failures: 0, byOperation: {} };
  readonly endpoint: string;
  private readonly container: ContainerClient;
  private readonly service: BlobServiceClient;
  /** Multipart uploads as block lists (azure-multipart.ts). */
  private readonly blockUploads: AzureBlockUploads;
  private readonly deadlines: StoreDeadlines;

  constructor(private readonly options: AzureStoreOptions) {
    this.deadlines = options.deadlines ?? DEFAULT_DEADLINES;
    this.description = `az://${options.account}/${options.container}`;
    this.endpoint = (options.endpoint ?? defaultAzureEndpoint(options.account)).replace(/\/+$/, '');
    this.capabilities = {
      // Azure's own limits: 50,000 blocks of at most 4,000 MiB; a Put Blob of at most 5,000 MiB.
      maxParts: Math.min(options.maxParts ?? 50_000, 50_000),
      // Azure has no minimum block size; 1 MiB keeps the uploader from making absurdly small parts.
      minPartSize: 1 * MiB,
      maxPartSize: 4000 * MiB,
      maxPutSize: 5000 * MiB,
      serverSideCopy: true,
      // Put Block From URL, from a snapshot pinned to the ETag, read through a SAS that only an
      // account key can make (see uploadPartCopy): a SAS of the user's own is refused there
      // (Azurite: CannotVerifyCopySource for a container SAS on a snapshot).
      partCopy: options.credential.kind === 'sharedKey',
    };
    const credential =
      options.credential.kind === 'sharedKey'
        ? new StorageSharedKeyCredential(options.account, options.credential.accountKey)
        : new AnonymousCredential();
    const pipeline = newPipeline(credential, {
      retryOptions: {
        maxTries: options.maxAttempts ?? 4,
        retryDelayInMs: 200,
        maxRetryDelayInMs: 10_000,
        tryTimeoutInMs: options.tryTimeoutMs ?? 120_000,
      },
      keepAliveOptions: { enable: true },
    });
    const sas = options.credential.kind === 'sas' ? `?${options.credential.token.replace(/^\?/, '')}` : '';
    this.service = new BlobServiceClient(`${this.endpoint}${sas}`, pipeline);
    this.container = this.service.getContainerClient(options.container);
    this.blockUploads = new AzureBlockUploads({
      description: this.description,
      container: this.container,
      call: (operation, key, send, limits) => this.call(operation, key, send, limits),
      partCopy: () => this.capabilities.partCopy,
      logger: options.logger,
    });
  }

  /** The account's containers, for `objmount creds` (an account key, or an account SAS that may list). */
  async listContainers(): Promise<string[]> {
    return this.call('list containers', '', async () => {
      const names: string[] = [];
      for await (const container of this.service.listContainers()) names.push(container.name);
      return names;
    });
  }

  /** The account's containers (Azure's buckets), under the name every store's listing has (store-factory.ts). */
  listBuckets(): Promise<string[]> {
    return this.listContainers();
  }

  /** Checks that the container exists and that the credential may list it. */
  async probe(prefix: string): Promise<void> {
    await this.call('list', prefix, (abortSignal) =>
      this.container.listBlobsFlat({ prefix, abortSignal }).byPage({ maxPageSize: 1 }).next(),
    );
  }

  async head(key: string, options: HeadOptions = {}): Promise<ObjectInfo> {
    try {
      const info = await this.properties(key, options.signal);
      // blobfuse's directory blob is a directory, not a file of that name.
      if (isBlobfuseDirectory(info.metadata))
        throw new StoreError('NotFound', `${this.description}/${key}: a directory (hdi_isfolder), not a file`, 'BlobNotFound');
      return info;
    } catch (error) {
      if (!(key.endsWith('/') && key.length > 1 && error instanceof StoreError && error.code === 'NotFound')) throw error;
    }
    // No `dir/` marker: the directory may be blobfuse's, a blob `dir` marked hdi_isfolder=true.
    const blobfuse = await this.properties(key.slice(0, -1), options.signal);
    if (!isBlobfuseDirectory(blobfuse.metadata)) throw new StoreError('NotFound', `${this.description}/${key}: not found`, 'BlobNotFound');
    return { ...blobfuse, key };
  }

  private async properties(key: string, signal?: AbortSignal): Promise<ObjectInfo> {
    const out = await this.call('head', key, (abortSignal) => this.container.getBlobClient(key).getProperties({ abortSignal }), { signal });
    return {
      key,
      size: out.contentLength ?? 0,
      etag: out.etag ?? '',
      lastModified: out.lastModified ?? new Date(0),
      metadata: decodeMetadata(out.metadata),
      contentType: out.contentType,
      readAt: out.date,
    };
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
      (error) => (error instanceof StoreError ? error : this.translate(error, 'get', key)),
    );
  }

  /**
   * `length` is the body's Content-Length, when the service sent one. The body must be read
   * within the request's deadline (from its start, scaled by its length), or it is destroyed.
   */
  getStream(key: string, options: GetOptions = {}): Promise<{ info: ObjectInfo; body: Readable; length?: number }> {
    return openStreamWithin(this.deadlines, `${this.description}/${key}`, (signal) => this.openGet(key, options, signal), options.signal);
  }

  /** A Get Blob until its headers are in, within the deadline whose signal is `within`. */
  private async openGet(
    key: string,
    options: GetOptions,
    within: AbortSignal,
  ): Promise<{ info: ObjectInfo; body: Readable; length?: number }> {
    const offset = options.range?.start ?? 0;
    const count = options.range ? options.range.end - options.range.start + 1 : undefined;
    const out = await this.call(
      'get',
      key,
      (abortSignal) =>
        this.container.getBlobClient(key).download(offset, count, {
          conditions: options.ifMatch ? { ifMatch: options.ifMatch } : undefined,
          // A body broken off mid-way is resumed by the SDK, pinned to the ETag it started with.
          maxRetryRequests: 2,
          abortSignal,
        }),
      { within },
    );
    // "bytes 2-5/10": the object's size is after the slash; without a range, the body's length.
    const totalSize = out.contentRange ? Number(out.contentRange.split('/')[1]) : (out.contentLength ?? 0);
    if (options.range && options.range.start >= totalSize && out.contentRange) {
      // Azure answers 416 here; Azurite answers a range starting exactly at the end with 206 and
      // no bytes. Both become the same error, as on S3.
      out.readableStreamBody?.resume();
      throw new StoreError(
        'InvalidRequest',
        `${this.description}/${key}: get refused: range starts at ${options.range.start}, past the end (${totalSize} bytes)`,
        'InvalidRange',
      );
    }
    return {
      info: {
        key,
        size: totalSize,
        etag: out.etag ?? '',
        lastModified: out.lastModified ?? new Date(0),
        metadata: decodeMetadata(out.metadata),
        contentType: out.contentType,
        readAt: out.date,
      },
      body: out.readableStreamBody as Readable,
      length: out.contentLength,
    };
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<WrittenObject> {
    const out = await this.call(
      'put',
      key,
      (abortSignal) =>
        this.container.getBlockBlobClient(key).upload(body, body.length, {
          metadata: encodeMetadata(options.metadata),
          blobHTTPHeaders: options.contentType ? { blobContentType: options.contentType } : undefined,
          abortSignal,
        }),
      { bytes: body.length },
    );
    return { etag: out.etag ?? '', modifiedBy: out.lastModified };
  }

  async list(options: ListOptions): Promise<ListPage> {
    const paging = { continuationToken: options.token, maxPageSize: options.maxKeys ?? 1000 };
    const delimiter = options.delimiter;
    // With a delimiter (a directory listing), metadata comes along to find blobfuse's directory
    // blobs; flat listings (renames, deletes of trees) take every blob as it is.
    const page = (
      await this.call(
        'list',
        options.prefix,
        (abortSignal) =>
          delimiter
            ? this.container
                .listBlobsByHierarchy(delimiter, { prefix: options.prefix, includeMetadata: true, abortSignal })
                .byPage(paging)
                .next()
            : this.container.listBlobsFlat({ prefix: options.prefix, abortSignal }).byPage(paging).next(),
        { signal: options.signal },
      )
    ).value;
    const segment = page?.segment as { blobItems?: BlobListItem[]; blobPrefixes?: Array<{ name: string }> } | undefined;
    const prefixes = (segment?.blobPrefixes ?? []).map((prefix) => prefix.name);
    const objects: ObjectInfo[] = [];
    for (const blob of segment?.blobItems ?? []) {
      if (delimiter === '/' && !blob.name.endsWith('/') && isBlobfuseDirectory(blob.metadata)) {
        if (!prefixes.includes(`${blob.name}/`)) prefixes.push(`${blob.name}/`);
        continue;
      }
      objects.push({
        key: blob.name,
        size: blob.properties.contentLength ?? 0,
        etag: quoted(blob.properties.etag ?? ''),
        lastModified: blob.properties.lastModified ?? new Date(0),
      });
    }
    prefixes.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    return { objects, prefixes, nextToken: page?.continuationToken || undefined };
  }

  async copy(sourceKey: string, destinationKey: string, options?: PutOptions): Promise<WrittenObject> {
    if (sourceKey === destinationKey) {
      // Copy Blob onto itself is refused; changing the metadata in place is what that means.
      if (!options?.metadata) return { etag: (await this.head(sourceKey)).etag };
      const out = await this.call('copy', sourceKey, (abortSignal) =>
        this.container.getBlobClient(sourceKey).setMetadata(encodeMetadata(options.metadata), { abortSignal }),
      );
      return { etag: out.etag ?? '', modifiedBy: out.lastModified };
    }
    const copyFrom = (from: string, metadata: ObjectMetadata | undefined) =>
      this.call(
        'copy',
        sourceKey,
        async (abortSignal) => {
          // Within one account the copy is synchronous; polling only matters for a copy Azure queues.
          const poller = await this.container.getBlobClient(destinationKey).beginCopyFromURL(this.container.getBlobClient(from).url, {
            metadata: encodeMetadata(metadata),
            intervalInMs: 200,
            abortSignal,
          });
          return poller.pollUntilDone();
        },
        { slow: true },
      );
    let out;
    try {
      out = await copyFrom(sourceKey, options?.metadata);
    } catch (error) {
      // A directory marker `dir/` may be blobfuse's blob `dir` (see head): copy that one, as a `dir/` marker.
      if (!(sourceKey.endsWith('/') && error instanceof StoreError && error.code === 'NotFound')) throw error;
      const blobfuse = await this.properties(sourceKey.slice(0, -1)).catch(() => undefined);
      if (!blobfuse || !isBlobfuseDirectory(blobfuse.metadata)) throw error;
      const { hdi_isfolder: _marker, ...kept } = blobfuse.metadata ?? {};
      out = await copyFrom(sourceKey.slice(0, -1), options?.metadata ?? kept);
    }
    if (out.copyStatus && out.copyStatus !== 'success') {
      throw new StoreError(
        'Transient',
        `${this.description}/${sourceKey}: copy to '${destinationKey}' ended ${out.copyStatus}`,
        out.copyStatus,
      );
    }
    return { etag: out.etag ?? '', modifiedBy: out.lastModified };
  }

  async deleteMany(keys: string[]): Promise<void> {
    const queue = [...keys];
    const worker = async () => {
      for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
        await this.deleteBlob(key);
        // A directory goes away with blobfuse's marker of it too, or it would come back.
        if (key.endsWith('/') && key.length > 1) await this.deleteBlobfuseDirectory(key.slice(0, -1));
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, keys.length) }, worker));
  }

  private async deleteBlob(key: string, ifMatch?: string): Promise<void> {
    try {
      await this.call('delete', key, (abortSignal) =>
        this.container
          .getBlobClient(key)
          .delete({ deleteSnapshots: 'include', conditions: ifMatch ? { ifMatch } : undefined, abortSignal }),
      );
    } catch (error) {
      if (!(error instanceof StoreError && error.code === 'NotFound')) throw error;
    }
  }

  private async deleteBlobfuseDirectory(name: string): Promise<void> {
    let info: ObjectInfo;
    try {
      info = await this.properties(name);
    } catch (error) {
      if (error instanceof StoreError && error.code === 'NotFound') return;
      throw error;
    }
    if (!isBlobfuseDirectory(info.metadata)) return; // a file of that name is not ours to delete
    try {
      await this.deleteBlob(name, info.etag);
    } catch (error) {
      // Replaced meanwhile (by a file, most likely): leave it.
      if (!(error instanceof StoreError && error.code === 'PreconditionFailed')) throw error;
    }
  }

  createMultipartUpload(key: string, options: PutOptions = {}): Promise<string> {
    return this.blockUploads.createMultipartUpload(key, options);
  }

  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    return this.blockUploads.uploadPart(key, uploadId, partNumber, body);
  }

  uploadPartCopy(key: string, uploadId: string, partNumber: number, source: PartCopySource): Promise<string> {
    return this.blockUploads.uploadPartCopy(key, uploadId, partNumber, source);
  }

  completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject> {
    return this.blockUploads.completeMultipartUpload(key, uploadId, parts);
  }

  abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    return this.blockUploads.abortMultipartUpload(key, uploadId);
  }

  /** Nothing to release: the SDK's sockets are kept alive but unreferenced. */
  destroy(): void {}

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
    const attempt = async (abortSignal: AbortSignal) => {
      try {
        return await send(abortSignal);
      } catch (error) {
        throw abortSignal.aborted ? abortSignal.reason : this.translate(error, operation, key);
      }
    };
    try {
      if (limits.within) return await attempt(limits.within);
      const ms = limits.slow ? this.deadlines.requestMs * SLOW_REQUEST_FACTOR : deadlineMs(this.deadlines, limits.bytes);
      return await withDeadline(ms, key ? `${this.description}/${key}` : this.description, attempt, limits.signal);
    } catch (error) {
      this.stats.failures += 1;
      throw error;
    }
  }

  /** The one place SDK errors become `StoreError`s (azure-errors.ts). */
  private translate(error: unknown, operation: string, key: string): StoreError {
    return translateAzureError(error, {
      description: this.description,
      account: this.options.account,
      container: this.options.container,
      endpoint: this.endpoint,
      credentialDescription: this.options.credentialDescription,
      operation,
      key,
    });
  }
}

interface BlobListItem {
  name: string;
  metadata?: Record<string, string>;
  properties: { contentLength?: number; etag?: string; lastModified?: Date };
}

/**
 * Listings give ETags bare (`0x8D…`), HEAD and GET quoted (`"0x8D…"`): one version must have one
 * ETag, or every file read after a listing would miss the block cache and pin a different value.
 */
function quoted(etag: string): string {
  return etag === '' || etag.startsWith('"') ? etag : `"${etag}"`;
}

/** blobfuse (and ADLS Gen2) mark a directory with a blob of its name carrying `hdi_isfolder=true`. */
function isBlobfuseDirectory(metadata: Record<string, string> | undefined): boolean {
  if (!metadata) return false;
  return Object.entries(metadata).some(([name, value]) => name.toLowerCase() === 'hdi_isfolder' && value.toLowerCase() === 'true');
}
