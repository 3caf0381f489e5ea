/**
 * Azure's side of multipart uploads (azure-store.ts): an upload is a block list on the blob itself.
 *
 * Azure has no upload object: blocks are staged on the blob and become its content when a block
 * list is committed. So `createMultipartUpload` only makes an id (kept in memory here with the
 * metadata to commit), a part is a block whose id is derived from the upload id and part number
 * (all ids of a blob must have one length), complete commits the list, and abort forgets the id.
 * Part copy stages a block from a snapshot of the source taken with If-Match, since the SDK's
 * `stageBlockFromURL` cannot send the source's If-Match; the snapshots go when the upload ends.
 * Requests go through the store's `call` (its deadlines, stats and error translation).
 */

import { randomUUID } from 'node:crypto';

import { BlobSASPermissions, type ContainerClient } from '@azure/storage-blob';

import type { Logger } from '../log/logger.js';
import { encodeMetadata } from './azure-metadata.js';
import { type CompletedPart, type PartCopySource, type PutOptions, StoreError, type WrittenObject } from './object-store.js';

/** The store's way of sending one request (AzureStore.call): within its deadline, counted, errors translated. */
export type AzureCall = <T>(
  operation: string,
  key: string,
  send: (abortSignal: AbortSignal) => Promise<T>,
  limits?: { bytes?: number; slow?: boolean },
) => Promise<T>;

export interface AzureBlockUploadsContext {
  /** `az://account/container`, for messages. */
  description: string;
  container: ContainerClient;
  call: AzureCall;
  /** Whether part copy is possible (the store's capabilities.partCopy: an account key). */
  partCopy: () => boolean;
  logger?: Logger;
}

interface PendingUpload {
  key: string;
  options: PutOptions;
  /** Snapshots taken (or being taken) as part-copy sources, by source key and ETag. */
  snapshots: Map<string, Promise<{ key: string; id: string }>>;
}

/** The open block-list uploads of one store, and the requests that make and end them. */
export class AzureBlockUploads {
  /** Open block-list uploads: their metadata, committed with the list. */
  private readonly uploads = new Map<string, PendingUpload>();
  private readonly description: string;
  private readonly container: ContainerClient;
  private readonly call: AzureCall;
  private readonly partCopy: () => boolean;
  private readonly logger?: Logger;

  constructor(context: AzureBlockUploadsContext) {
    this.description = context.description;
    this.container = context.container;
    this.call = context.call;
    this.partCopy = context.partCopy;
    this.logger = context.logger;
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
    if (!this.partCopy()) {
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
              this.logger?.warn(
                `${this.description}/${snapshot.key}: could not delete snapshot ${snapshot.id}: ${(error as Error).message}`,
              );
            }
          },
        );
      }),
    );
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject> {
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
    return { etag: out.etag ?? '', modifiedBy: out.lastModified };
  }

  async abortMultipartUpload(_key: string, uploadId: string): Promise<void> {
    // Staged blocks that are never committed expire on their own (see above); snapshots do not.
    const upload = this.uploads.get(uploadId);
    this.uploads.delete(uploadId);
    if (upload) await this.dropSnapshots(upload);
  }

  private requireUpload(key: string, uploadId: string): PendingUpload {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw new StoreError('NotFound', `${this.description}/${key}: upload ${uploadId} not found`);
    return upload;
  }
}

/**
 * A block id for part `partNumber` of upload `uploadId`. Azure wants every block id of one blob
 * to have the same length, so the part number is padded (parts go up to 50,000).
 */
export function blockIdOf(uploadId: string, partNumber: number): string {
  return Buffer.from(`${uploadId}:${String(partNumber).padStart(6, '0')}`).toString('base64');
}
