/**
 * Swift's side of multipart uploads and of replacing large objects (swift-store.ts): Static Large
 * Objects and their segments.
 *
 * A part is a segment object in `<container>_segments` named `<key>/slo/<upload id>/<part number>`
 * (uploaded, or copied with X-Copy-From, Range and If-Match); complete PUTs the manifest last
 * (`multipart-manifest=put`), so nothing appears before it; abort deletes the upload's segments
 * found by their prefix, so an upload of an earlier run is aborted too. Swift keeps no upload
 * state: the parts of an open upload are remembered here. A write over an SLO first asks for its
 * segments (`segmentsOf`) and deletes them once the new object is in place (`dropSegments`).
 * Requests go through the store's `call` (its token, retries, stats and error translation), and
 * what a key was last seen as (SLO, plain, absent) is the store's cache, shared.
 */

import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

import type { LRUCache } from 'lru-cache';

import type { Logger } from '../log/logger.js';
import { type CompletedPart, type PartCopySource, type PutOptions, StoreError, type WrittenObject, httpDate } from './object-store.js';
import { type SwiftRequest, discard, header, readText } from './swift-http.js';
import { type ListingEntry, type ObjectKind, encodeKey, kindOf, objectHeaders, quoted, splitSegmentPath } from './swift-objects.js';

/** Old segments deleted at once. */
const DELETE_CONCURRENCY = 16;

export interface SwiftLargeObjectsContext {
  /** `swift://container`, for messages. */
  description: string;
  /** The store's container. */
  container: string;
  /** Where segments go: `<container>_segments` unless configured. */
  segmentContainer: string;
  /** The store's way of sending one request (SwiftStore.call). */
  call: (operation: string, request: SwiftRequest) => Promise<IncomingMessage>;
  /** What each key was last seen as, shared with the store. */
  kinds: LRUCache<string, ObjectKind>;
  logger?: Logger;
}

interface PendingUpload {
  key: string;
  options: PutOptions;
  parts: Map<number, { name: string; etag: string; size: number }>;
}

/** The open SLO uploads of one store, and the segments of the large objects it replaces. */
export class SwiftLargeObjects {
  private readonly uploads = new Map<string, PendingUpload>();
  private segmentContainerReady?: Promise<void>;
  private readonly description: string;
  private readonly container: string;
  private readonly segmentContainer: string;
  private readonly call: (operation: string, request: SwiftRequest) => Promise<IncomingMessage>;
  private readonly kinds: LRUCache<string, ObjectKind>;
  private readonly logger?: Logger;

  constructor(context: SwiftLargeObjectsContext) {
    this.description = context.description;
    this.container = context.container;
    this.segmentContainer = context.segmentContainer;
    this.call = context.call;
    this.kinds = context.kinds;
    this.logger = context.logger;
  }

  async createMultipartUpload(key: string, options: PutOptions = {}): Promise<string> {
    await this.ensureSegmentContainer();
    const id = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    this.uploads.set(id, { key, options, parts: new Map() });
    return id;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    const upload = this.requireUpload(key, uploadId);
    const name = segmentName(key, uploadId, partNumber);
    const response = await this.call('upload part', {
      method: 'PUT',
      container: this.segmentContainer,
      key: name,
      body,
      bytes: body.length,
    });
    discard(response);
    const etag = quoted(header(response, 'etag'));
    upload.parts.set(partNumber, { name, etag, size: body.length });
    return etag;
  }

  async uploadPartCopy(key: string, uploadId: string, partNumber: number, source: PartCopySource): Promise<string> {
    const upload = this.requireUpload(key, uploadId);
    const name = segmentName(key, uploadId, partNumber);
    const headers = {
      'x-copy-from': `/${encodeURIComponent(this.container)}/${encodeKey(source.key)}`,
      range: `bytes=${source.range.start}-${source.range.end}`,
      'if-match': source.ifMatch,
    };
    const response = await this.call('copy part', {
      method: 'PUT',
      container: this.segmentContainer,
      key: name,
      headers,
      copies: true,
      slow: true,
    });
    discard(response);
    const etag = quoted(header(response, 'etag'));
    upload.parts.set(partNumber, { name, etag, size: source.range.end - source.range.start + 1 });
    return etag;
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject> {
    const upload = this.requireUpload(key, uploadId);
    const manifest = [...parts]
      .sort((a, b) => a.partNumber - b.partNumber)
      .map((part) => {
        const stored = upload.parts.get(part.partNumber);
        if (!stored || stored.etag !== quoted(part.etag)) {
          throw new StoreError(
            'InvalidRequest',
            `${this.description}/${key}: part ${part.partNumber} was not uploaded in upload ${uploadId}`,
          );
        }
        return { path: `/${this.segmentContainer}/${stored.name}`, etag: stored.etag.replace(/"/g, ''), size_bytes: stored.size };
      });
    const replaced = await this.segmentsOf(key);
    const response = await this.call('complete multipart upload', {
      method: 'PUT',
      key,
      query: { 'multipart-manifest': 'put' },
      headers: { ...objectHeaders(upload.options), 'content-type': upload.options.contentType ?? 'application/octet-stream' },
      body: Buffer.from(JSON.stringify(manifest)),
      slow: true,
    });
    discard(response);
    this.uploads.delete(uploadId);
    this.kinds.set(key, 'slo');
    await this.dropSegments(
      key,
      replaced.filter((segment) => !segment.object.includes(`/slo/${uploadId}/`)),
    );
    return { etag: quoted(header(response, 'etag')), modifiedBy: httpDate(header(response, 'date')) };
  }

  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    this.uploads.delete(uploadId);
    // By prefix, not from memory: the upload may be an earlier run's (the journal's recovery).
    const prefix = `${key}/slo/${uploadId}/`;
    let marker: string | undefined;
    for (;;) {
      const response = await this.call('list', {
        method: 'GET',
        container: this.segmentContainer,
        query: { format: 'json', prefix, marker },
        allow: [404],
      });
      if (response.statusCode === 404) return discard(response);
      const entries = JSON.parse(await readText(response)) as ListingEntry[];
      if (entries.length === 0) return;
      await this.dropSegments(
        key,
        entries.map((entry) => ({ container: this.segmentContainer, object: entry.name! })),
      );
      marker = entries[entries.length - 1]!.name;
    }
  }

  private requireUpload(key: string, uploadId: string): PendingUpload {
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw new StoreError('NotFound', `${this.description}/${key}: upload ${uploadId} not found`);
    return upload;
  }

  /**
   * Creates `<container>_segments` once per store. Only the account's owner may create a
   * container: a user whose ACLs grant the two containers is refused the PUT, and goes on when
   * the segment container is there already.
   */
  private ensureSegmentContainer(): Promise<void> {
    const create = async () => {
      try {
        discard(await this.call('create segment container', { method: 'PUT', container: this.segmentContainer }));
      } catch (error) {
        if (!(error instanceof StoreError && error.code === 'AccessDenied')) throw error;
        const there = await this.call('head', { method: 'HEAD', container: this.segmentContainer, allow: [403, 404] });
        discard(there);
        if (there.statusCode !== 204 && there.statusCode !== 200) throw error;
      }
    };
    this.segmentContainerReady ??= create().catch((error: unknown) => {
      this.segmentContainerReady = undefined;
      const reason = error instanceof StoreError ? error.message : String(error);
      throw new StoreError(
        error instanceof StoreError ? error.code : 'Transient',
        `${this.description}: cannot create the container '${this.segmentContainer}' for the segments of large files: ${reason}`,
      );
    });
    return this.segmentContainerReady;
  }

  /** The segments of the SLO at `key`, if it is one (nothing to ask when the key was just seen plain or absent). */
  async segmentsOf(key: string): Promise<Array<{ container: string; object: string }>> {
    const known = this.kinds.get(key);
    if (known === 'plain' || known === 'absent') return [];
    const response = await this.call('head', { method: 'HEAD', key, allow: [404] });
    discard(response);
    if (response.statusCode === 404 || kindOf(response) !== 'slo') return [];
    const manifest = await this.call('get', { method: 'GET', key, query: { 'multipart-manifest': 'get' }, allow: [404] });
    if (manifest.statusCode === 404) {
      discard(manifest);
      return [];
    }
    const entries = JSON.parse(await readText(manifest)) as Array<{ name?: string; sub_slo?: boolean }>;
    return entries.flatMap((entry) => {
      const segment = entry.name && !entry.sub_slo ? splitSegmentPath(entry.name) : undefined;
      return segment ? [segment] : [];
    });
  }

  /** Deletes segments no object uses any more; a failure leaves garbage, not a broken file, so it is only logged. */
  async dropSegments(key: string, segments: Array<{ container: string; object: string }>): Promise<void> {
    const queue = [...segments];
    const worker = async () => {
      for (let segment = queue.shift(); segment; segment = queue.shift()) {
        await this.call('delete', { method: 'DELETE', container: segment.container, key: segment.object, allow: [404] }).then(
          discard,
          (error: unknown) => {
            this.logger?.warn(
              `${this.description}/${key}: could not delete the old segment ${segment.container}/${segment.object}: ${(error as Error).message}`,
            );
          },
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, queue.length) }, worker));
  }
}

function segmentName(key: string, uploadId: string, partNumber: number): string {
  return `${key}/slo/${uploadId}/${String(partNumber).padStart(8, '0')}`;
}
