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
 * signature: the SDK's own text is only used after `redact`.
 */

import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';

import {
  AnonymousCredential,
  BlobSASPermissions,
  BlobServiceClient,
  type ContainerClient,
  StorageSharedKeyCredential,
  isRestError,
  newPipeline,
} from '@azure/storage-blob';

import type { Logger } from '../log/logger.js';
import { decodeMetadata, encodeMetadata } from './azure-metadata.js';
import {
  DEFAULT_DEADLINES,
  SLOW_REQUEST_FACTOR,
  type StoreDeadlines,
  abortBody,
  bodyDeadline,
  deadlineMs,
  withDeadline,
} from './deadline.js';
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
  type StoreErrorCode,
  type StoreStats,
  StoreError,
} from './object-store.js';

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
  /** Open block-list uploads: their metadata, committed with the list. */
  private readonly uploads = new Map<string, PendingUpload>();
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
  async getStream(key: string, options: GetOptions = {}): Promise<{ info: ObjectInfo; body: Readable; length?: number }> {
    const started = Date.now();
    const where = `${this.description}/${key}`;
    const opened = await withDeadline(deadlineMs(this.deadlines), where, (signal) => this.openGet(key, options, signal), options.signal);
    bodyDeadline(opened.body, deadlineMs(this.deadlines, opened.length ?? 0) - (Date.now() - started), where);
    if (options.signal) abortBody(opened.body, options.signal);
    return opened;
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
      },
      body: out.readableStreamBody as Readable,
      length: out.contentLength,
    };
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<{ etag: string }> {
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
    return { etag: out.etag ?? '' };
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

  async copy(sourceKey: string, destinationKey: string, options?: PutOptions): Promise<{ etag: string }> {
    if (sourceKey === destinationKey) {
      // Copy Blob onto itself is refused; changing the metadata in place is what that means.
      if (!options?.metadata) return { etag: (await this.head(sourceKey)).etag };
      const out = await this.call('copy', sourceKey, (abortSignal) =>
        this.container.getBlobClient(sourceKey).setMetadata(encodeMetadata(options.metadata), { abortSignal }),
      );
      return { etag: out.etag ?? '' };
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
    return { etag: out.etag ?? '' };
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

  async createMultipartUpload(key: string, options: PutOptions = {}): Promise<string> {
    const id = randomUUID();
    this.uploads.set(id, { key, options, snapshots: new Map() });
    return id;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    this.requireUpload(key, uploadId);
    const blockId = blockIdOf(uploadId, partNumber);
    await this.call(
      'upload part',
      key,
      (abortSignal) => this.container.getBlockBlobClient(key).stageBlock(blockId, body, body.length, { abortSignal }),
      {
        bytes: body.length,
      },
    );
    return blockId;
  }

  /**
   * Put Block From URL cannot be pinned to the source's ETag through this SDK, so the part is
   * copied from a snapshot of the source, taken with If-Match: a changed source fails here with
   * PreconditionFailed instead of giving a part of another version. One snapshot serves every
   * part copied from the same version; it is deleted when the upload completes or is aborted.
   */
  async uploadPartCopy(key: string, uploadId: string, partNumber: number, source: PartCopySource): Promise<string> {
    const upload = this.requireUpload(key, uploadId);
    if (!this.capabilities.partCopy) {
      throw new StoreError(
        'InvalidRequest',
        `${this.description}/${key}: part copy needs the account key (capabilities.partCopy is false with a SAS)`,
      );
    }
    const url = await this.snapshotUrl(upload, source);
    const blockId = blockIdOf(uploadId, partNumber);
    const count = source.range.end - source.range.start + 1;
    await this.call(
      'copy part',
      key,
      (abortSignal) => this.container.getBlockBlobClient(key).stageBlockFromURL(blockId, url, source.range.start, count, { abortSignal }),
      {
        slow: true,
      },
    );
    return blockId;
  }

  /** A URL the service can read the pinned version of `source` from (the snapshot, authorized). */
  private async snapshotUrl(upload: PendingUpload, source: PartCopySource): Promise<string> {
    const pinned = `${source.key}\0${source.ifMatch}`;
    let taking = upload.snapshots.get(pinned);
    if (!taking) {
      // Kept as a promise at once: parts are copied concurrently, and must share one snapshot.
      taking = this.call('snapshot', source.key, () =>
        this.container.getBlobClient(source.key).createSnapshot({ conditions: { ifMatch: source.ifMatch } }),
      ).then((out) => ({ key: source.key, id: out.snapshot ?? '' }));
      upload.snapshots.set(pinned, taking);
    }
    const snapshot = await taking;
    // The service reads the source as an anonymous caller: give it a short read-only SAS.
    const client = this.container.getBlobClient(source.key).withSnapshot(snapshot.id);
    return client.generateSasUrl({ permissions: BlobSASPermissions.parse('r'), expiresOn: new Date(Date.now() + 3600_000) });
  }

  /** Snapshots are only part-copy sources: deleting them is tidying up, and a failure is not the upload's. */
  private async dropSnapshots(upload: PendingUpload): Promise<void> {
    await Promise.all(
      [...upload.snapshots.values()].map(async (taking) => {
        const snapshot = await taking.catch(() => undefined); // a snapshot never taken needs no deleting
        if (!snapshot) return;
        await this.call('delete', snapshot.key, () => this.container.getBlobClient(snapshot.key).withSnapshot(snapshot.id).delete()).catch(
          (error: unknown) => {
            if (!(error instanceof StoreError && error.code === 'NotFound')) {
              this.options.logger?.warn(
                `${this.description}/${snapshot.key}: could not delete snapshot ${snapshot.id}: ${(error as Error).message}`,
              );
            }
          },
        );
      }),
    );
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<{ etag: string }> {
    const upload = this.requireUpload(key, uploadId);
    const blockIds = parts.map((part) => {
      const blockId = blockIdOf(uploadId, part.partNumber);
      if (part.etag !== blockId) {
        throw new StoreError(
          'InvalidRequest',
          `${this.description}/${key}: part ${part.partNumber} was not uploaded in upload ${uploadId}`,
        );
      }
      return blockId;
    });
    const out = await this.call(
      'complete multipart upload',
      key,
      (abortSignal) =>
        this.container.getBlockBlobClient(key).commitBlockList(blockIds, {
          metadata: encodeMetadata(upload.options.metadata),
          blobHTTPHeaders: upload.options.contentType ? { blobContentType: upload.options.contentType } : undefined,
          abortSignal,
        }),
      { slow: true },
    );
    this.uploads.delete(uploadId);
    await this.dropSnapshots(upload);
    return { etag: out.etag ?? '' };
  }

  async abortMultipartUpload(_key: string, uploadId: string): Promise<void> {
    // Staged blocks that are never committed expire on their own (see above); snapshots do not.
    const upload = this.uploads.get(uploadId);
    this.uploads.delete(uploadId);
    if (upload) await this.dropSnapshots(upload);
  }

  /** Nothing to release: the SDK's sockets are kept alive but unreferenced. */
  destroy(): void {}

  private requireUpload(key: string, uploadId: string): PendingUpload {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw new StoreError('NotFound', `${this.description}/${key}: upload ${uploadId} not found`);
    return upload;
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

  /** The one place SDK errors become `StoreError`s. No SDK error is kept as a cause: its request holds the signed URL. */
  private translate(error: unknown, operation: string, key: string): StoreError {
    if (error instanceof StoreError) return error;
    const where = key ? `${this.description}/${key}` : this.description;
    const make = (code: StoreErrorCode, message: string, storeCode?: string) => new StoreError(code, redact(message), storeCode);
    if (isRestError(error) && error.statusCode !== undefined) {
      const status = error.statusCode;
      const name = azureErrorCode(error) ?? `HTTP ${status}`;
      const said = `${name} (HTTP ${status})`;
      switch (name) {
        case 'ContainerNotFound':
          return make(
            'NoSuchBucket',
            `container '${this.options.container}' does not exist in account '${this.options.account}' at ${this.endpoint}`,
            name,
          );
        case 'BlobNotFound':
          return make('NotFound', `${where}: not found`, name);
        case 'ConditionNotMet':
        case 'TargetConditionNotMet':
        case 'SourceConditionNotMet':
          return make('PreconditionFailed', `${where}: changed in the store while open`, name);
        case 'AuthenticationFailed':
        case 'InvalidAuthenticationInfo':
          return make('InvalidCredentials', `${this.description}: the store rejected ${this.options.credentialDescription}: ${said}`, name);
        case 'ServerBusy':
          return make('Throttled', `${where}: ${operation} throttled by the store (${said}) after retries`, name);
      }
      // Azurite answers a wrong key with AuthorizationFailure where Azure says AuthenticationFailed;
      // both explain it the same way (HEAD responses have no message, and stay AccessDenied).
      if (name === 'AuthorizationFailure' && /failed to authenticate/i.test(error.message)) {
        return make('InvalidCredentials', `${this.description}: the store rejected ${this.options.credentialDescription}: ${said}`, name);
      }
      if (name.startsWith('Authorization')) {
        return make('AccessDenied', `${where}: ${operation} denied to ${this.options.credentialDescription}: ${said}`, name);
      }
      // HEAD responses have no body, and some carry no error code header either.
      if (status === 404) return make('NotFound', `${where}: not found`, name);
      if (status === 412) return make('PreconditionFailed', `${where}: changed in the store while open`, name);
      if (status === 403)
        return make('AccessDenied', `${where}: ${operation} denied to ${this.options.credentialDescription}: ${said}`, name);
      if (status === 503 || status === 429) return make('Throttled', `${where}: ${operation} throttled (${said})`, name);
      if (status >= 500) return make('Transient', `${where}: ${operation} failed: ${said}`, name);
      return make('InvalidRequest', `${where}: ${operation} refused: ${said}: ${firstLine(error.message)}`, name);
    }
    const code = (error as { code?: string } | null)?.code;
    const errorName = (error as { name?: string } | null)?.name;
    const networkCodes = ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'];
    if ((code && networkCodes.includes(code)) || errorName === 'AbortError' || errorName === 'TimeoutError') {
      return make('Unreachable', `cannot reach ${this.endpoint} (${code ?? errorName}) for ${where}`, code ?? errorName);
    }
    const detail = error instanceof Error ? firstLine(error.message) : String(error);
    return make('Transient', `${where}: ${operation} failed: ${detail}`, code ?? errorName);
  }
}

interface PendingUpload {
  key: string;
  options: PutOptions;
  /** Snapshots taken (or being taken) as part-copy sources, by source key and ETag. */
  snapshots: Map<string, Promise<{ key: string; id: string }>>;
}

interface BlobListItem {
  name: string;
  metadata?: Record<string, string>;
  properties: { contentLength?: number; etag?: string; lastModified?: Date };
}

/**
 * A block id for part `partNumber` of upload `uploadId`. Azure wants every block id of one blob
 * to have the same length, so the part number is padded (parts go up to 50,000).
 */
export function blockIdOf(uploadId: string, partNumber: number): string {
  return Buffer.from(`${uploadId}:${String(partNumber).padStart(6, '0')}`).toString('base64');
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

/** Azure's error code: the x-ms-error-code header (HEAD responses) or the body's Code. */
function azureErrorCode(error: { code?: string; details?: unknown }): string | undefined {
  const details = error.details as { errorCode?: string } | undefined;
  const code = details?.errorCode ?? error.code;
  return code && /^[A-Za-z]+$/.test(code) ? code : undefined;
}

/** Removes SAS signatures and Shared Key signatures from text that may quote a URL or header. */
export function redact(text: string): string {
  return text
    .replace(/([?&]sig=)[^&\s"'<]*/gi, '$1REDACTED')
    .replace(/(SharedKey(?:Lite)? [^:\s]+:)[^\s"'<]*/g, '$1REDACTED')
    .replace(/(AccountKey=)[^;\s"']*/gi, '$1REDACTED');
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}
