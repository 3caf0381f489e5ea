/**
 * An in-memory `ObjectStore` with S3's semantics (sorted listings, common prefixes, ETags,
 * If-Match, multipart uploads), for unit tests of the layers above. Not for production use.
 */

import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';

import {
  type CompletedPart,
  type GetOptions,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PartCopySource,
  type PutOptions,
  type StoreCapabilities,
  StoreError,
  type WrittenObject,
} from './object-store.js';

interface StoredObject {
  body: Buffer;
  etag: string;
  lastModified: Date;
  metadata: Record<string, string>;
  contentType?: string;
}

interface PendingUpload {
  key: string;
  options: PutOptions;
  parts: Map<number, { body: Buffer; etag: string }>;
}

export class MemoryStore implements ObjectStore {
  readonly description = 'memory://test';
  readonly capabilities: StoreCapabilities;
  readonly objects = new Map<string, StoredObject>();
  readonly uploads = new Map<string, PendingUpload>();
  /** Count of calls per operation name, for tests that assert request economy. */
  readonly calls = new Map<string, number>();

  constructor(capabilities: Partial<StoreCapabilities> = {}) {
    this.capabilities = {
      maxParts: 10_000,
      minPartSize: 5 * 1024 * 1024,
      maxPartSize: 5 * 1024 * 1024 * 1024,
      maxPutSize: 5 * 1024 * 1024 * 1024,
      serverSideCopy: true,
      partCopy: true,
      ...capabilities,
    };
  }

  async head(key: string): Promise<ObjectInfo> {
    this.count('head');
    return this.info(key, this.require(key));
  }

  async get(key: string, options: GetOptions = {}): Promise<{ info: ObjectInfo; body: Buffer }> {
    this.count('get');
    const object = this.require(key);
    if (options.ifMatch !== undefined && options.ifMatch !== object.etag) {
      throw new StoreError('PreconditionFailed', `${key}: changed in the store while open`);
    }
    if (options.range && options.range.start >= object.body.length) {
      // As S3 and Azure answer it (HTTP 416): a range past the end is not an empty read.
      throw new StoreError('InvalidRequest', `${key}: range starts past the end (${object.body.length} bytes)`);
    }
    const body = options.range
      ? object.body.subarray(options.range.start, Math.min(options.range.end + 1, object.body.length))
      : object.body;
    const copy = options.into?.length === body.length ? options.into : Buffer.allocUnsafe(body.length);
    body.copy(copy);
    if (copy === options.into) options.onProgress?.(copy.length);
    return { info: this.info(key, object), body: copy };
  }

  async getStream(key: string, options?: GetOptions): Promise<{ info: ObjectInfo; body: Readable }> {
    const { info, body } = await this.get(key, options);
    return { info, body: Readable.from([body]) };
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<WrittenObject> {
    this.count('put');
    return this.store(key, Buffer.from(body), options);
  }

  async list(options: ListOptions): Promise<ListPage> {
    this.count('list');
    const maxKeys = options.maxKeys ?? 1000;
    const entries: Array<{ name: string; object?: ObjectInfo }> = [];
    const seenPrefixes = new Set<string>();
    const keys = [...this.objects.keys()].filter((k) => k.startsWith(options.prefix)).sort(compareUtf8);
    for (const key of keys) {
      const rest = key.slice(options.prefix.length);
      const cut = options.delimiter ? rest.indexOf(options.delimiter) : -1;
      if (cut >= 0) {
        const prefix = options.prefix + rest.slice(0, cut + options.delimiter!.length);
        if (!seenPrefixes.has(prefix)) {
          seenPrefixes.add(prefix);
          entries.push({ name: prefix });
        }
      } else {
        const stored = this.objects.get(key)!;
        // As on S3, a listing carries neither user metadata nor the content type.
        entries.push({
          name: key,
          object: { key, size: stored.body.length, etag: stored.etag, lastModified: stored.lastModified },
        });
      }
    }
    const start = options.token ? entries.findIndex((e) => compareUtf8(e.name, options.token!) > 0) : 0;
    const page = start < 0 ? [] : entries.slice(start, start + maxKeys);
    const truncated = start >= 0 && start + maxKeys < entries.length;
    return {
      objects: page.filter((e) => e.object).map((e) => e.object!),
      prefixes: page.filter((e) => !e.object).map((e) => e.name),
      nextToken: truncated ? page[page.length - 1]!.name : undefined,
    };
  }

  async copy(sourceKey: string, destinationKey: string, options?: PutOptions): Promise<WrittenObject> {
    this.count('copy');
    const source = this.require(sourceKey);
    return this.store(
      destinationKey,
      source.body,
      options?.metadata ? options : { metadata: source.metadata, contentType: source.contentType },
    );
  }

  async deleteMany(keys: string[]): Promise<void> {
    this.count('delete');
    for (const key of keys) this.objects.delete(key);
  }

  async createMultipartUpload(key: string, options: PutOptions = {}): Promise<string> {
    this.count('createMultipartUpload');
    const id = randomUUID();
    this.uploads.set(id, { key, options, parts: new Map() });
    return id;
  }

  async uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    this.count('uploadPart');
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw new StoreError('NotFound', `upload ${uploadId} not found`);
    const etag = md5(body);
    upload.parts.set(partNumber, { body: Buffer.from(body), etag });
    return etag;
  }

  async uploadPartCopy(key: string, uploadId: string, partNumber: number, source: PartCopySource): Promise<string> {
    this.count('uploadPartCopy');
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw new StoreError('NotFound', `upload ${uploadId} not found`);
    const object = this.objects.get(source.key);
    if (!object) throw new StoreError('NotFound', `${source.key}: not found`);
    if (object.etag !== source.ifMatch) throw new StoreError('PreconditionFailed', `${source.key}: changed in the store while open`);
    if (source.range.end >= object.body.length) throw new StoreError('InvalidRequest', `${source.key}: range beyond the object`);
    const body = object.body.subarray(source.range.start, source.range.end + 1);
    const etag = md5(body);
    upload.parts.set(partNumber, { body: Buffer.from(body), etag });
    return etag;
  }

  async completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject> {
    this.count('completeMultipartUpload');
    const upload = this.uploads.get(uploadId);
    if (!upload || upload.key !== key) throw new StoreError('NotFound', `upload ${uploadId} not found`);
    const bodies: Buffer[] = [];
    for (const [i, part] of parts.entries()) {
      const stored = upload.parts.get(part.partNumber);
      if (!stored || stored.etag !== part.etag) throw new StoreError('InvalidRequest', `part ${part.partNumber} missing`);
      if (i < parts.length - 1 && stored.body.length < this.capabilities.minPartSize) {
        throw new StoreError('InvalidRequest', `part ${part.partNumber} is smaller than the minimum part size`);
      }
      bodies.push(stored.body);
    }
    this.uploads.delete(uploadId);
    // As on S3: the ETag of a multipart object is the MD5 of its parts' MD5s, then "-<count>".
    const partDigests = Buffer.concat(parts.map((p) => Buffer.from(p.etag.slice(1, -1), 'hex')));
    const etag = `"${createHash('md5').update(partDigests).digest('hex')}-${parts.length}"`;
    return this.store(key, Buffer.concat(bodies), upload.options, etag);
  }

  async abortMultipartUpload(_key: string, uploadId: string): Promise<void> {
    this.count('abortMultipartUpload');
    this.uploads.delete(uploadId);
  }

  private store(key: string, body: Buffer, options: PutOptions, etag = md5(body)): WrittenObject {
    const lastModified = new Date();
    this.objects.set(key, {
      body,
      etag,
      lastModified,
      metadata: { ...(options.metadata ?? {}) },
      contentType: options.contentType,
    });
    return { etag, modifiedBy: lastModified };
  }

  private require(key: string): StoredObject {
    const object = this.objects.get(key);
    if (!object) throw new StoreError('NotFound', `${key}: not found`);
    return object;
  }

  private info(key: string, object: StoredObject): ObjectInfo {
    return {
      key,
      size: object.body.length,
      etag: object.etag,
      lastModified: object.lastModified,
      metadata: { ...object.metadata },
      contentType: object.contentType,
      readAt: new Date(),
    };
  }

  private count(operation: string): void {
    this.calls.set(operation, (this.calls.get(operation) ?? 0) + 1);
  }
}

function md5(body: Buffer): string {
  return `"${createHash('md5').update(body).digest('hex')}"`;
}

/** S3 orders keys by their UTF-8 bytes, not by UTF-16 code units. */
export function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
