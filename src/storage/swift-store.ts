/**
 * `ObjectStore` on OpenStack Swift, over its HTTP API (swift-http.ts; there is no well-kept Swift
 * SDK for Node). Authentication (v1, Keystone v2/v3, a pre-issued token) is swift-auth.ts's.
 *
 * Mapping: head → HEAD; get → GET with Range and If-Match; list → GET on the container (JSON,
 * prefix/delimiter/marker); put → PUT; copy → PUT with X-Copy-From (X-Fresh-Metadata when the
 * metadata is replaced), or POST when an object is copied onto itself; deleteMany → DELETE per
 * key, a few at a time.
 *
 * Large objects are Static Large Objects: a part is a segment object in `<container>_segments`
 * (the swift client's and rclone's place) named `<key>/slo/<upload id>/<part number>`, uploaded
 * like any object; complete PUTs the manifest last (`multipart-manifest=put`), so nothing
 * appears before it; abort deletes the upload's segments (found by their prefix, so an upload
 * of an earlier run is aborted too). A part copied from an existing object is a segment made by
 * PUT with X-Copy-From, Range and If-Match (Swift's copy middleware checks the condition against
 * the source). Swift keeps no upload state, so the parts of an open upload are remembered (in
 * swift-large-objects.ts, which has this part of the store and the deleting of replaced segments).
 *
 * Segments of a replaced or deleted SLO are deleted with it: a write first asks whether the key
 * is an SLO (and if so, for its manifest) and deletes the old segments once the new object is in
 * place; a delete sends `multipart-manifest=delete`, which removes manifest and segments at once.
 * What the store last saw of a key (SLO, plain, absent) is remembered for a minute, which spares
 * that question for keys just looked up or listed (the file system always looks up first).
 * Dynamic Large Objects (X-Object-Manifest, written by rclone and by `swift upload` without
 * --use-slo) are read through Swift's DLO support; a listing shows their manifest as 0 bytes, so
 * an empty object in a listing is asked about (one HEAD each). Their segments are never deleted
 * here (other objects may share the prefix).
 *
 * Directories: objmount writes `dir/` markers; `dir` objects of type application/directory (the
 * swift client's and rclone's) read as directories too, as blobfuse's are on Azure.
 *
 * Retries: 5xx, 408, 429, 498 and network failures, with jittered exponential backoff, up to
 * `maxAttempts`, and so is an authentication that failed the same ways; a 401 renews the token
 * once, without counting as a failure.
 */

import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

import { LRUCache } from 'lru-cache';

import type { Logger } from '../log/logger.js';
import {
  DEFAULT_DEADLINES,
  SLOW_REQUEST_FACTOR,
  type StoreDeadlines,
  abortBody,
  bodyDeadline,
  deadlineMs,
  openStreamWithin,
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
  type ObjectStore,
  type PartCopySource,
  type PutOptions,
  type StoreCapabilities,
  StoreError,
  type StoreStats,
  type WrittenObject,
  httpDate,
} from './object-store.js';
import { type SwiftCredentials, SwiftSession } from './swift-auth.js';
import { NetworkError, SwiftHttp, type SwiftRequest, discard, header, readText } from './swift-http.js';
import {
  type ListingEntry,
  type ObjectKind,
  encodeKey,
  infoOf,
  infoOfEntry,
  isDirectoryObject,
  kindOf,
  objectHeaders,
  quoted,
} from './swift-objects.js';
import { translateSwiftError } from './swift-errors.js';
import { SwiftLargeObjects } from './swift-large-objects.js';

export interface SwiftStoreOptions {
  container: string;
  credentials: SwiftCredentials;
  /** Names the credential in messages: "user 'test:tester' (auth v1) at http://…". */
  credentialDescription: string;
  /** Where SLO segments go; default `<container>_segments`. */
  segmentContainer?: string;
  maxConnections?: number;
  /** Attempts per request, first included. */
  maxAttempts?: number;
  idleTimeoutMs?: number;
  maxParts?: number;
  caCertificates?: string;
  insecure?: boolean;
  logger?: Logger;
  /** Overall deadlines per request, retries included (deadline.ts); default DEFAULT_DEADLINES. */
  deadlines?: StoreDeadlines;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const DELETE_CONCURRENCY = 16;
/** Empty objects of a listing asked about at once (DLO manifests look empty in listings). */
const HEAD_CONCURRENCY = 8;
const RETRYABLE_STATUS = new Set([408, 429, 498, 500, 502, 503, 504]);
/**
 * How long a server-side copy or an SLO manifest PUT may go without a byte: Swift answers a copy
 * only once it has copied (up to 5 GiB), and a manifest once it has checked every segment.
 */
const SLOW_REQUEST_IDLE_MS = 15 * 60_000;
const RETRYABLE_NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ECONNABORTED',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

export class SwiftStore implements ObjectStore {
  readonly description: string;
  readonly capabilities: StoreCapabilities;
  readonly stats: StoreStats = { requests: 0, retries: 0, failures: 0, byOperation: {} };
  readonly segmentContainer: string;
  private readonly http: SwiftHttp;
  private readonly session: SwiftSession;
  private readonly kinds = new LRUCache<string, ObjectKind>({ max: 10_000, ttl: 60_000 });
  /** SLO uploads, and the segments of the large objects a write replaces (swift-large-objects.ts). */
  private readonly largeObjects: SwiftLargeObjects;
  private readonly deadlines: StoreDeadlines;

  constructor(private readonly options: SwiftStoreOptions) {
    this.deadlines = options.deadlines ?? DEFAULT_DEADLINES;
    this.description = `swift://${options.container}`;
    this.segmentContainer = options.segmentContainer ?? `${options.container}_segments`;
    this.capabilities = {
      // Swift's default max_manifest_segments (a cluster may set another; /info says).
      maxParts: Math.min(options.maxParts ?? 1000, 1000),
      minPartSize: 1 * MiB,
      // Swift's default max_file_size: for a segment, a single PUT and a copy alike.
      maxPartSize: 5 * GiB,
      maxPutSize: 5 * GiB,
      serverSideCopy: true,
      partCopy: true,
    };
    this.http = new SwiftHttp({
      maxConnections: options.maxConnections,
      idleTimeoutMs: options.idleTimeoutMs,
      caCertificates: options.caCertificates,
      insecure: options.insecure,
    });
    this.session = new SwiftSession(options.credentials, this.http);
    this.largeObjects = new SwiftLargeObjects({
      description: this.description,
      container: options.container,
      segmentContainer: this.segmentContainer,
      call: (operation, request) => this.call(operation, request),
      kinds: this.kinds,
      logger: options.logger,
    });
  }

  /** The account's containers, for `objmount creds` (a key restricted to containers may not list them). */
  /**
   * The containers the credential may list, under the name every store's listing has
   * (store-factory.ts), but for `<container>_segments`: another container's large-object
   * segments, not files.
   */
  async listBuckets(): Promise<string[]> {
    const names = await this.listContainers();
    return names.filter((name) => !(name.endsWith('_segments') && names.includes(name.slice(0, -'_segments'.length))));
  }

  async listContainers(): Promise<string[]> {
    const names: string[] = [];
    let marker: string | undefined;
    for (;;) {
      const response = await this.call('list containers', { method: 'GET', key: '', container: '', query: { format: 'json', marker } });
      const page = JSON.parse(await readText(response)) as Array<{ name: string }>;
      if (page.length === 0) return names;
      names.push(...page.map((c) => c.name));
      marker = page[page.length - 1]!.name;
    }
  }

  /** Checks that the container exists and that the credential may list it. */
  async probe(prefix: string): Promise<void> {
    await this.list({ prefix, maxKeys: 1 });
  }

  async head(key: string, options: HeadOptions = {}): Promise<ObjectInfo> {
    const { signal } = options;
    const response = await this.call('head', { method: 'HEAD', key, allow: [404], signal });
    discard(response);
    if (response.statusCode === 200) {
      const info = infoOf(key, response);
      this.kinds.set(key, kindOf(response));
      // The Swift tools' directory object `dir` is a directory, not a file of that name.
      if (isDirectoryObject(key, info.contentType)) throw this.notFound(key);
      return info;
    }
    this.kinds.set(key, 'absent');
    if (!(key.endsWith('/') && key.length > 1)) throw this.notFound(key);
    // No `dir/` marker: the directory may be the Swift tools' `dir` object.
    const object = await this.call('head', { method: 'HEAD', key: key.slice(0, -1), allow: [404], signal });
    discard(object);
    if (object.statusCode !== 200 || !isDirectoryObject(key.slice(0, -1), object.headers['content-type'])) throw this.notFound(key);
    return { ...infoOf(key, object), key };
  }

  /** A whole GET, headers and body within one deadline, sent once more after a transient failure (get-retry.ts). */
  get(key: string, options: GetOptions = {}): Promise<{ info: ObjectInfo; body: Buffer }> {
    const where = `${this.description}/${key}`;
    return getWhole(
      this.stats,
      this.deadlines,
      where,
      options,
      (signal) => this.openGet(key, options, signal),
      (error) => {
        this.stats.failures += 1;
        if (error instanceof StoreError) return error;
        return new StoreError('Transient', `${where}: get failed while reading the body: ${(error as Error).message}`);
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
    const headers: Record<string, string> = {};
    if (options.range) headers.range = `bytes=${options.range.start}-${options.range.end}`;
    if (options.ifMatch) headers['if-match'] = options.ifMatch;
    const response = await this.call('get', { method: 'GET', key, headers, within });
    const length = response.headers['content-length'] === undefined ? undefined : Number(response.headers['content-length']);
    this.kinds.set(key, kindOf(response));
    return { info: infoOf(key, response), body: response, length };
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<WrittenObject> {
    const replaced = await this.largeObjects.segmentsOf(key);
    const response = await this.call('put', { method: 'PUT', key, body, headers: objectHeaders(options), bytes: body.length });
    discard(response);
    this.kinds.set(key, 'plain');
    await this.largeObjects.dropSegments(key, replaced);
    return { etag: quoted(header(response, 'etag')), modifiedBy: httpDate(header(response, 'date')) };
  }

  async list(options: ListOptions): Promise<ListPage> {
    const limit = options.maxKeys ?? 1000;
    // One more than asked: whether it comes tells if there is a next page.
    const query = { format: 'json', prefix: options.prefix, delimiter: options.delimiter, marker: options.token, limit: String(limit + 1) };
    const { signal } = options;
    const response = await this.call('list', { method: 'GET', query, signal });
    const entries = JSON.parse(await readText(response)) as ListingEntry[];
    const more = entries.length > limit;
    const page = entries.slice(0, limit);
    const objects: ObjectInfo[] = [];
    const prefixes: string[] = [];
    for (const entry of page) {
      if (entry.subdir !== undefined) {
        if (!prefixes.includes(entry.subdir)) prefixes.push(entry.subdir);
        continue;
      }
      const info = infoOfEntry(entry);
      if (options.delimiter === '/' && isDirectoryObject(info.key, info.contentType)) {
        if (!prefixes.includes(`${info.key}/`)) prefixes.push(`${info.key}/`);
        continue;
      }
      this.kinds.set(info.key, entry.slo_etag ? 'slo' : 'plain');
      objects.push(info);
    }
    await this.resolveDynamicLargeObjects(objects, signal);
    prefixes.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    const last = page[page.length - 1];
    return { objects, prefixes, nextToken: more && last ? (last.subdir ?? last.name) : undefined };
  }

  /** A DLO's manifest is listed as 0 bytes: its HEAD gives the size and ETag of what it reads as. */
  private async resolveDynamicLargeObjects(objects: ObjectInfo[], signal: AbortSignal | undefined): Promise<void> {
    const empty = objects.filter((o) => o.size === 0 && !o.key.endsWith('/'));
    const worker = async () => {
      for (let info = empty.shift(); info; info = empty.shift()) {
        const response = await this.call('head', { method: 'HEAD', key: info.key, allow: [404], signal });
        discard(response);
        if (response.statusCode === 200 && response.headers['x-object-manifest']) {
          const real = infoOf(info.key, response);
          info.size = real.size;
          info.etag = real.etag;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(HEAD_CONCURRENCY, empty.length) }, worker));
  }

  async copy(sourceKey: string, destinationKey: string, options?: PutOptions): Promise<WrittenObject> {
    if (sourceKey === destinationKey) {
      const before = await this.call('head', { method: 'HEAD', key: sourceKey });
      discard(before);
      if (!options?.metadata) return { etag: quoted(header(before, 'etag')) };
      // Swift's POST replaces the user metadata in place and keeps an SLO an SLO, but it also
      // replaces X-Object-Manifest: a DLO stays one only if the POST says it again.
      const manifest = header(before, 'x-object-manifest');
      const headers = { ...objectHeaders(options), ...(manifest ? { 'x-object-manifest': manifest } : {}) };
      discard(await this.call('copy', { method: 'POST', key: sourceKey, headers }));
      return { etag: (await this.head(sourceKey)).etag };
    }
    let from = sourceKey;
    if (sourceKey.endsWith('/') && sourceKey.length > 1) {
      // A directory may be the Swift tools' `dir` object rather than a `dir/` marker.
      const marker = await this.call('head', { method: 'HEAD', key: sourceKey, allow: [404] });
      discard(marker);
      if (marker.statusCode === 404) from = sourceKey.slice(0, -1);
    }
    const replaced = await this.largeObjects.segmentsOf(destinationKey);
    const headers: Record<string, string> = { 'x-copy-from': `/${encodeURIComponent(this.options.container)}/${encodeKey(from)}` };
    if (options?.metadata) Object.assign(headers, { 'x-fresh-metadata': 'true' }, objectHeaders(options));
    // A copied SLO becomes a plain object with its bytes (up to 5 GiB): the two never share segments.
    const response = await this.call('copy', { method: 'PUT', key: destinationKey, headers, copies: true, slow: true });
    discard(response);
    this.kinds.set(destinationKey, 'plain');
    await this.largeObjects.dropSegments(destinationKey, replaced);
    return { etag: quoted(header(response, 'etag')), modifiedBy: httpDate(header(response, 'date')) };
  }

  async deleteMany(keys: string[]): Promise<void> {
    const queue = [...new Set(keys)];
    const worker = async () => {
      for (let key = queue.shift(); key !== undefined; key = queue.shift()) {
        await this.deleteObject(key);
        if (key.endsWith('/') && key.length > 1) await this.deleteDirectoryObject(key.slice(0, -1));
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, queue.length) }, worker));
  }

  /** Deletes a key, and its segments if it is an SLO. */
  private async deleteObject(key: string, container?: string): Promise<void> {
    // Known plain (or gone) when last seen: a plain DELETE. Otherwise the SLO way, which says
    // "Not an SLO manifest" for a plain object, and then a plain DELETE.
    const known = container ? 'plain' : this.kinds.get(key);
    if (known !== 'plain' && known !== 'absent') {
      const response = await this.call('delete', {
        method: 'DELETE',
        key,
        query: { 'multipart-manifest': 'delete' },
        headers: { accept: 'application/json' },
        allow: [404],
      });
      if (response.statusCode === 404) {
        discard(response);
        this.kinds.set(key, 'absent');
        return;
      }
      const text = await readText(response);
      const result = parseBulkResult(text);
      if (result && result.errors.length === 0) {
        this.kinds.set(key, 'absent');
        return;
      }
      if (!result?.errors.every(([, why]) => /not an slo manifest/i.test(why))) {
        this.stats.failures += 1;
        throw new StoreError(
          'Transient',
          `${this.description}/${key}: delete failed: ${result ? result.errors.map(([path, why]) => `${path}: ${why}`).join('; ') : `HTTP ${response.statusCode}`}`,
        );
      }
    }
    const response = await this.call('delete', { method: 'DELETE', container, key, allow: [404] });
    discard(response);
    if (!container) this.kinds.set(key, 'absent');
  }

  private async deleteDirectoryObject(name: string): Promise<void> {
    const response = await this.call('head', { method: 'HEAD', key: name, allow: [404] });
    discard(response);
    if (response.statusCode !== 200 || !isDirectoryObject(name, response.headers['content-type'])) return; // a file of that name is not ours to delete
    const etag = header(response, 'etag');
    const deleted = await this.call('delete', {
      method: 'DELETE',
      key: name,
      headers: etag ? { 'if-match': etag } : {},
      allow: [404, 412],
    });
    discard(deleted);
  }

  createMultipartUpload(key: string, options: PutOptions = {}): Promise<string> {
    return this.largeObjects.createMultipartUpload(key, options);
  }

  uploadPart(key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    return this.largeObjects.uploadPart(key, uploadId, partNumber, body);
  }

  uploadPartCopy(key: string, uploadId: string, partNumber: number, source: PartCopySource): Promise<string> {
    return this.largeObjects.uploadPartCopy(key, uploadId, partNumber, source);
  }

  completeMultipartUpload(key: string, uploadId: string, parts: CompletedPart[]): Promise<WrittenObject> {
    return this.largeObjects.completeMultipartUpload(key, uploadId, parts);
  }

  abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    return this.largeObjects.abortMultipartUpload(key, uploadId);
  }

  destroy(): void {
    this.http.destroy();
  }

  private notFound(key: string): StoreError {
    return new StoreError('NotFound', `${this.description}/${key}: not found`, 'HTTP 404');
  }

  /**
   * Sends one request within its deadline (deadline.ts; retries included): `bytes` of object data
   * make it longer, `slow` (a copy, a manifest) longer still; `within`, an enclosing deadline's
   * signal, bounds it instead. The response's body must then be read within what is left of the
   * deadline, or it is destroyed with `TimedOut`; the caller's `signal` destroys it too.
   */
  private async call(operation: string, request: SwiftRequest): Promise<IncomingMessage> {
    this.stats.requests += 1;
    this.stats.byOperation[operation] = (this.stats.byOperation[operation] ?? 0) + 1;
    try {
      if (request.within) return await this.attempts(operation, request, request.within);
      const where = this.whereOf(request);
      const ms = request.slow
        ? Math.max(this.deadlines.requestMs * SLOW_REQUEST_FACTOR, SLOW_REQUEST_IDLE_MS)
        : deadlineMs(this.deadlines, request.bytes);
      const started = Date.now();
      const response = await withDeadline(ms, where, (signal) => this.attempts(operation, request, signal), request.signal);
      bodyDeadline(response, ms - (Date.now() - started), where);
      if (request.signal) abortBody(response, request.signal);
      return response;
    } catch (error) {
      if (error instanceof StoreError && (error.code === 'TimedOut' || error.code === 'Aborted')) this.stats.failures += 1;
      throw error;
    }
  }

  /**
   * Sends one request with the current token until `signal` aborts: renews the token once on 401,
   * retries what may pass on a second try, and turns any other failure into a `StoreError`.
   */
  private async attempts(operation: string, request: SwiftRequest, signal: AbortSignal): Promise<IncomingMessage> {
    const maxAttempts = this.options.maxAttempts ?? 4;
    const key = request.key ?? '';
    let renewed = false;
    for (let attempt = 1; ; attempt++) {
      if (signal.aborted) throw signal.reason;
      let token;
      try {
        token = await this.session.token();
      } catch (error) {
        // The auth service down for a moment is retried like the store; a refused credential is not.
        const passing = error instanceof StoreError && ['Unreachable', 'Transient', 'Throttled'].includes(error.code);
        if (passing && attempt < maxAttempts) {
          await this.backOff(operation, key, attempt, `authentication: ${(error as StoreError).storeCode ?? error.code}`, signal);
          continue;
        }
        this.stats.failures += 1;
        throw error;
      }
      let response: IncomingMessage;
      try {
        response = await this.http.send({
          method: request.method,
          url: this.urlOf(token.storageUrl, request),
          headers: { ...request.headers, 'x-auth-token': token.token },
          body: request.body,
          idleTimeoutMs: request.slow ? SLOW_REQUEST_IDLE_MS : undefined,
          signal,
        });
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        const code = error instanceof NetworkError ? error.code : undefined;
        if (code && RETRYABLE_NETWORK.has(code) && attempt < maxAttempts) {
          await this.backOff(operation, key, attempt, code, signal);
          continue;
        }
        this.stats.failures += 1;
        throw translateSwiftError({
          error,
          operation,
          key,
          where: this.whereOf(request),
          endpoint: token.storageUrl,
          credential: this.options.credentialDescription,
          container: this.options.container,
        });
      }
      const status = response.statusCode ?? 0;
      if ((status >= 200 && status < 300) || request.allow?.includes(status)) return response;
      if (status === 401 && !renewed && this.session.renewable) {
        discard(response);
        renewed = true;
        this.session.forget(token.token);
        continue;
      }
      if (RETRYABLE_STATUS.has(status) && attempt < maxAttempts) {
        discard(response);
        await this.backOff(operation, key, attempt, `HTTP ${status}`, signal);
        continue;
      }
      this.stats.failures += 1;
      const text = await readText(response, 64 * 1024).catch(() => '');
      throw translateSwiftError({
        status,
        body: text,
        operation,
        key,
        where: this.whereOf(request),
        endpoint: token.storageUrl,
        credential: this.options.credentialDescription,
        container: request.container ?? this.options.container,
        onContainer: request.key === undefined,
        copies: request.copies === true,
        method: request.method,
      });
    }
  }

  private async backOff(operation: string, key: string, attempt: number, why: string, signal: AbortSignal): Promise<void> {
    this.stats.retries += 1;
    this.options.logger?.warn(`${this.description}/${key}: ${operation} retried after ${why} (attempt ${attempt + 1})`);
    await sleep(Math.random() * Math.min(10_000, 200 * 2 ** attempt), undefined, { signal }).catch(() => {
      throw signal.reason;
    });
  }

  private urlOf(storageUrl: string, request: SwiftRequest): string {
    const container = request.container ?? this.options.container;
    let path = storageUrl;
    if (container !== '') path += `/${encodeURIComponent(container)}`;
    if (request.key !== undefined && request.key !== '') path += `/${encodeKey(request.key)}`;
    const query = Object.entries(request.query ?? {}).filter((entry): entry is [string, string] => entry[1] !== undefined);
    return query.length ? `${path}?${new URLSearchParams(query).toString()}` : path;
  }

  private whereOf(request: SwiftRequest): string {
    const container = request.container ?? this.options.container;
    return request.key ? `swift://${container}/${request.key}` : `swift://${container}`;
  }
}

/** The JSON answer of a bulk or `multipart-manifest=delete` request. */
function parseBulkResult(text: string): { errors: Array<[string, string]> } | undefined {
  try {
    const parsed = JSON.parse(text) as { Errors?: Array<[string, string]> };
    return { errors: parsed.Errors ?? [] };
  } catch {
    return undefined;
  }
}
