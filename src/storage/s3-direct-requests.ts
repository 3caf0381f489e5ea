/**
 * HEAD, GET and small PUTs of an S3 object without the SDK's per-request machinery.
 *
 * Why: a lookup, a small file and a random read are each one small request, and the daemon's
 * one JS thread pays the SDK's per-request work for every one of them: endpoint rules resolved
 * per request, ~25 middlewares, schema-driven (de)serialisation, the retry bookkeeping. That is
 * ~0.6-0.7 ms of CPU per HEAD or small PUT against ~0.25 ms for the same request signed with the
 * SDK's own SigV4 signer and sent with node:http (bench/request-cpu.mjs); a cold `ls -l` or
 * `stat *` of 1,000 files, and writing 1,000 small ones, is bound by it. So these requests go out
 * directly, and everything else — and every case they do not settle — stays with the SDK.
 *
 * Where the requests go is learned, not re-derived: the first HEAD, GET or PUT the SDK sends and
 * that succeeds shows the scheme, host, port, path before the key and the SigV4 scope (region
 * and service) it resolved, redirects of `followRegionRedirects` included. Only requests the
 * SDK signed with SigV4 teach anything (Signature V2 and anonymous buckets stay on the SDK).
 *
 * A PUT carries the headers the SDK's PutObject sends that mean anything to S3, signed alike:
 * Content-Length, Content-Type (application/octet-stream when none is given, as the SDK's),
 * `x-amz-meta-*` (names in lower case, values as given) and `x-amz-content-sha256`, the body's
 * SHA-256 (the caller's, when it hashed the body off the JS thread; else hashed here, which for
 * a small body costs less than the hop to another thread). No checksum and no Content-MD5: the
 * SDK sends neither (`requestChecksumCalculation: 'WHEN_REQUIRED'`). Only bodies below 2 MiB go
 * direct, the ones the SDK sends without `Expect: 100-continue`. A key longer than S3's limit
 * never goes direct (`takes`).
 *
 * What a direct request settles on its own: 200/206 (the answer) and a HEAD's 404 (not found).
 * Any other status, or a failure before the response, is handed back (`undefined`) and the
 * caller sends the same request through the SDK, which retries with its backoff and turns the
 * store's error into its exact `StoreError`: errors keep one translation and one retry policy,
 * for one extra request on a path that is already failing. For a PUT that is safe because a PUT
 * is idempotent: if the store did keep the direct one (its answer lost on the way), the SDK's
 * puts the same bytes and metadata again. A redirect or a 400 (a region the endpoint moved away
 * from) stops the direct path for good.
 */

import { createHash, createHmac } from 'node:crypto';
import { type Agent as HttpAgent, type ClientRequest, type IncomingMessage, request as httpRequest } from 'node:http';
import { type Agent as HttpsAgent, request as httpsRequest } from 'node:https';

import type { S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, FinalizeHandlerArguments, Hash, HttpRequest, MiddlewareStack, SourceData } from '@smithy/types';

import { type ObjectInfo, type ObjectMetadata, type WrittenObject, httpDate } from './object-store.js';

/** SHA-256 of the empty body: what a HEAD or GET signs as its payload. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** From this size on the SDK sends a PUT with `Expect: 100-continue`: such PUTs stay with it. */
const DIRECT_PUT_MAX_BYTES = 2 * 1024 * 1024 - 1;

/** S3's longest key, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;

/** The commands whose success shows the route, and the statuses that are success. */
const LEARNS_FROM: Record<string, number[]> = {
  HeadObjectCommand: [200],
  GetObjectCommand: [200, 206],
  PutObjectCommand: [200],
};

/** Where the SDK sent a request it signed with SigV4, learned from one that succeeded. */
interface Route {
  protocol: 'http:' | 'https:';
  hostname: string;
  port?: number;
  /** The `host` header the SDK signed. */
  host: string;
  /** The path before the encoded key: '/bucket/' (path style) or '/' (virtual host). */
  basePath: string;
  region: string;
  service: string;
}

export interface DirectResponse {
  status: number;
  info: ObjectInfo;
  /** The body, still to be read (a GET), or undefined (a HEAD). */
  body?: IncomingMessage;
  /** Content-Length of the body. */
  length?: number;
}

export interface S3DirectRequestsOptions {
  credentials: () => Promise<AwsCredentialIdentity>;
  httpAgent: HttpAgent;
  httpsAgent: HttpsAgent;
  /** A socket idle this long fails the request (as the SDK's `requestTimeout`). */
  idleTimeoutMs: number;
}

export class S3DirectRequests {
  private route: Route | undefined;
  private stopped = false;
  private signer: SignatureV4 | undefined;

  constructor(private readonly options: S3DirectRequestsOptions) {}

  /** Whether requests can go direct yet. */
  get ready(): boolean {
    return this.route !== undefined && !this.stopped;
  }

  /**
   * Whether a request for `key` (a PUT of `bodyLength` bytes) goes direct. A key longer than S3
   * allows stays with the SDK: the store's 400 for it says nothing about the route, and would
   * end the direct path for every other key.
   */
  takes(key: string, bodyLength = 0): boolean {
    return this.ready && bodyLength <= DIRECT_PUT_MAX_BYTES && Buffer.byteLength(key) <= MAX_KEY_BYTES;
  }

  /**
   * Adds the middleware that learns the route from the SDK's first successful HEAD, GET or PUT.
   * It runs last before the request is sent, when the request is signed and its endpoint final.
   */
  learnFrom(stack: S3Client['middlewareStack']): void {
    (stack as unknown as MiddlewareStack<object, object>).add(
      (next, context) => async (args) => {
        const success = LEARNS_FROM[(context as { commandName?: string }).commandName ?? ''];
        if (this.route || this.stopped || !success) return next(args);
        const result = await next(args);
        const status = (result.response as { statusCode?: number }).statusCode ?? 0;
        if (success.includes(status)) this.learn((args as FinalizeHandlerArguments<{ Key?: string }>).input.Key, args.request);
        return result;
      },
      { step: 'deserialize', priority: 'low', name: 'objmountLearnDirectRoute' },
    );
  }

  private learn(key: string | undefined, request: unknown): void {
    const sent = request as HttpRequest;
    const auth = sent.headers?.authorization ?? '';
    // "AWS4-HMAC-SHA256 Credential=AKID/20261203/us-east-1/s3/aws4_request, ..."
    const scope = /^AWS4-HMAC-SHA256 Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request,/.exec(auth);
    const encoded = key === undefined ? undefined : `${encodeKey(key)}`;
    if (!scope || !encoded || !sent.path.endsWith(encoded) || (sent.protocol !== 'http:' && sent.protocol !== 'https:')) return;
    // The SDK tags a GET or PUT `?x-id=GetObject` (for its own telemetry, not the route); a route that
    // needs any other query (none in S3 today) stays on the SDK.
    if (Object.keys(sent.query ?? {}).some((name) => name !== 'x-id')) return;
    const host = sent.headers.host ?? sent.hostname;
    this.route = {
      protocol: sent.protocol,
      hostname: sent.hostname,
      port: sent.port,
      host,
      basePath: sent.path.slice(0, sent.path.length - encoded.length),
      region: scope[1]!,
      service: scope[2]!,
    };
    this.signer = new SignatureV4({
      credentials: this.options.credentials,
      region: this.route.region,
      service: this.route.service,
      sha256: NodeSha256,
      // S3 signs the path as sent: its keys are already encoded once, never twice.
      uriEscapePath: false,
      applyChecksum: false,
    });
  }

  /**
   * HEAD `key`: its info, `status` 404 when it is not there, or undefined when the SDK must
   * answer instead (see the module comment).
   */
  async head(key: string, signal: AbortSignal): Promise<DirectResponse | undefined> {
    const response = await this.send('HEAD', key, {}, signal);
    if (!response) return undefined;
    response.resume();
    const status = response.statusCode ?? 0;
    if (status === 200 || status === 404) return { status, info: infoOf(key, response) };
    return this.handBack(status);
  }

  /**
   * GET `key` (a range of it), with the body still to read; undefined when the SDK must answer
   * instead. The caller reads or destroys the body.
   */
  async get(key: string, headers: { range?: string; ifMatch?: string }, signal: AbortSignal): Promise<DirectResponse | undefined> {
    const extra: Record<string, string> = {};
    if (headers.range) extra.range = headers.range;
    if (headers.ifMatch) extra['if-match'] = headers.ifMatch;
    const response = await this.send('GET', key, extra, signal);
    if (!response) return undefined;
    const status = response.statusCode ?? 0;
    if (status !== 200 && status !== 206) {
      response.resume();
      return this.handBack(status);
    }
    const length = response.headers['content-length'] === undefined ? undefined : Number(response.headers['content-length']);
    const info = infoOf(key, response);
    const range = response.headers['content-range'];
    if (range) info.size = Number(range.split('/')[1]);
    return { status, info, body: response, length };
  }

  /**
   * PUT `body` (below 2 MiB: `DIRECT_PUT_MAX_BYTES`) as `key`: the object written, or undefined
   * when the SDK must send it instead (see the module comment). `sha256` is the body's SHA-256
   * as hex, when the caller has it.
   */
  async put(
    key: string,
    body: Buffer,
    options: { metadata?: ObjectMetadata; contentType?: string; sha256?: string },
    signal: AbortSignal,
  ): Promise<WrittenObject | undefined> {
    const headers: Record<string, string> = {
      'content-length': String(body.length),
      'content-type': options.contentType ?? 'application/octet-stream',
    };
    for (const [name, value] of Object.entries(options.metadata ?? {})) headers[`x-amz-meta-${name}`.toLowerCase()] = value;
    const sha256 = options.sha256 ?? createHash('sha256').update(body).digest('hex');
    const response = await this.send('PUT', key, headers, signal, { body, sha256 });
    if (!response) return undefined;
    // Its body (empty, or an error document) is not read: a cut-off one must not fail anyone.
    response.on('error', () => {}).resume();
    const status = response.statusCode ?? 0;
    if (status === 200) return { etag: response.headers.etag ?? '', modifiedBy: httpDate(response.headers.date) };
    return this.handBack(status);
  }

  /** A status only the SDK answers; a redirect or a 400 means the learned route is wrong now. */
  private handBack(status: number): undefined {
    if (status === 301 || status === 307 || status === 400) this.stopped = true;
    return undefined;
  }

  /**
   * Signs and sends one request; resolves with its response, or undefined if it failed before
   * one (header values node:http refuses included: the SDK's request then fails as it does).
   */
  private async send(
    method: 'HEAD' | 'GET' | 'PUT',
    key: string,
    extra: Record<string, string>,
    signal: AbortSignal,
    payload?: { body: Buffer; sha256: string },
  ) {
    const route = this.route!;
    const path = route.basePath + encodeKey(key);
    let signed: { headers: Record<string, string> };
    try {
      signed = await this.signer!.sign({
        method,
        protocol: route.protocol,
        hostname: route.hostname,
        port: route.port,
        path,
        query: {},
        headers: { host: route.host, 'x-amz-content-sha256': payload?.sha256 ?? EMPTY_SHA256, ...extra },
      });
    } catch {
      return undefined; // credentials that do not resolve: the SDK says why
    }
    const request = route.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage | undefined>((resolve) => {
      let req: ClientRequest;
      try {
        req = request({
          method,
          hostname: route.hostname,
          port: route.port,
          path,
          headers: signed.headers,
          agent: route.protocol === 'https:' ? this.options.httpsAgent : this.options.httpAgent,
          signal,
          timeout: this.options.idleTimeoutMs,
        });
      } catch {
        resolve(undefined);
        return;
      }
      req.on('timeout', () => req.destroy(new Error('socket idle too long')));
      req.on('error', () => resolve(undefined));
      req.on('response', resolve);
      req.end(payload?.body);
    });
  }
}

/** The object's info from a HEAD or GET response's headers, as the SDK gives it. */
function infoOf(key: string, response: IncomingMessage): ObjectInfo {
  const h = response.headers;
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(h)) {
    if (name.startsWith('x-amz-meta-') && typeof value === 'string') metadata[name.slice('x-amz-meta-'.length)] = value;
  }
  return {
    key,
    size: Number(h['content-length'] ?? 0),
    etag: h.etag ?? '',
    lastModified: h['last-modified'] ? new Date(h['last-modified']) : new Date(0),
    metadata,
    contentType: h['content-type'],
    readAt: httpDate(h.date),
  };
}

/** A key as the SDK puts it in the path: each segment percent-encoded (RFC 3986), the slashes kept. */
export function encodeKey(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

/** SHA-256 and HMAC-SHA-256 for the signer, from node:crypto (what the SDK uses in Node). */
class NodeSha256 implements Hash {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
}

function toBytes(data: SourceData): string | Uint8Array {
  if (typeof data === 'string' || data instanceof Uint8Array) return data;
  return ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : new Uint8Array(data);
}
