/**
 * An S3-compatible server on 127.0.0.1 for `objmount demo` and for the test suite: s3rver 3.7.1
 * (node_modules untouched) with a Koa middleware inserted just ahead of its router, and its
 * FilesystemStore's key <-> path mapping replaced, so it answers like AWS S3 wherever a file system
 * would notice. Each fix is tested in test/integration/local-s3-server.test.ts.
 *
 * Listings (ListObjectsV2 and V1) are answered here, from a walk of the bucket's files:
 *  1. Continuation tokens are the last entry of the page, base64-encoded. s3rver encrypts them with
 *     DES, which Node >= 17 refuses without --openssl-legacy-provider, so paging failed.
 *  2. Common prefixes come from every key under the prefix. s3rver stops walking at the first
 *     delimiter and lost `a/` when only `a/b/c` existed.
 *  3. Keys and common prefixes are merged in UTF-8 byte order. s3rver returned directory order.
 *  4. MaxKeys counts keys and prefixes together; a page may end on a prefix, and the next page
 *     skips everything under it; KeyCount, StartAfter and Marker/NextMarker are right. s3rver
 *     counted objects only and took the token from the last object (crashing with none).
 * Keys:
 *  5. A key component over 200 bytes is stored as a chain of directories (`encodeKeyPath`), so
 *     255-byte components and 1,024-byte keys work. s3rver appends "._S3rver_object" to the file
 *     name and failed with a 500 (ENAMETOOLONG) above ~230 bytes.
 *  6. Keys over 1,024 UTF-8 bytes get 400 KeyTooLongError (PUT, copy, multipart create).
 *  7. x-amz-copy-source is percent-decoded in full. s3rver used decodeURI, which keeps %2B, %26,
 *     %3D, %3F, %23, %2C... encoded, so copying (renaming) `a+b` answered NoSuchKey.
 *  8. DeleteObjects reads keys as text. s3rver's XML parser turned `0123` into 123, `1e5` into
 *     100000 (deleting the wrong object) and `true` into a boolean (500), and trimmed spaces.
 *  9. Deleting an object leaves its (possibly now empty) directories. s3rver removed them, which
 *     raced with a concurrent PUT into the same directory: ENOENT on an unhandled stream error.
 * Requests:
 * 10. Header-signed Signature V4 requests are verified (with AWS's own signer): a wrong secret gets
 *     403 SignatureDoesNotMatch. s3rver accepted any V4 signature from a known access key.
 * 11. GET and HEAD honour If-Match (412 PreconditionFailed); s3rver ignored it.
 * 12. AbortMultipartUpload (405 in s3rver) and ListMultipartUploads (501) are implemented; parts
 *     and completions of an unknown upload get 404 NoSuchUpload (s3rver created the upload).
 * 13. Ranges: `bytes=0-0` is one byte (s3rver read an end of 0 as "to the end"), and a suffix
 *     range `bytes=-N` is the last N bytes (s3rver served the first N + 1).
 * 14. UploadPartCopy (a range of an existing object as a part, with x-amz-copy-source-if-match)
 *     is implemented; s3rver answered 501 NotImplemented.
 * 15. Header-signed Signature V2 requests are verified as AWS documents it, with the Date header
 *     (empty when x-amz-date is sent). s3rver signed an empty Date line always, so it refused
 *     every correctly signed V2 request that had a Date. Its own signature check is off
 *     (`allowMismatchedSignatures`); unknown access keys are still refused by it.
 */

import { type Hash, type Hmac, createHash, createHmac } from 'node:crypto';
import { type Dirent, type ReadStream, createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import { fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SignatureV4 } from '@smithy/signature-v4';

export const LOCAL_S3_ACCESS_KEY = 'S3RVER'; // what s3rver accepts
export const LOCAL_S3_SECRET_KEY = 'S3RVER';
/** S3's limit on a key's length in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

export interface LocalS3ServerOptions {
  /** Where objects live; default: a fresh temp dir removed on close(). */
  directory?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Created at start. */
  buckets?: string[];
  /** Default true: no s3rver request logging. */
  silent?: boolean;
  /**
   * For tests: a second key that may use every bucket but not list them (ListBuckets answers
   * 403 AccessDenied), like a key granted access by another account's bucket policy.
   */
  restrictedKey?: { accessKeyId: string; secretAccessKey: string };
  /**
   * For tests: when given, unsigned (anonymous) requests are answered 403 AccessDenied except on
   * these buckets, as S3 answers them on a bucket without a public policy (a missing bucket is
   * still NoSuchBucket). Without it every bucket takes anonymous requests.
   */
  publicBuckets?: string[];
  /** For tests: refuse Signature Version 4 (403), like an old store that only knows V2. */
  signatureV2Only?: boolean;
  /** For tests: faults injected into object writes (PUT object, upload part) whose key matches. */
  writeFaults?: {
    /** A regular expression (source text, so it passes to the server's own process). */
    keys: string;
    /** Wait this long before handling each matching write. */
    delayMs?: number;
    /** Of those, the writes whose key also matches this wait `slowerDelayMs` instead. */
    slowerKeys?: string;
    slowerDelayMs?: number;
    /** Answer each matching write with 500 InternalError instead. */
    fail?: boolean;
    /** A key: once it is written, the faults stop (a store that comes back). */
    clearedBy?: string;
  };
}

export interface LocalS3Server {
  endpoint: string;
  port: number;
  directory: string;
  close(): Promise<void>;
}

// ---- the parts of s3rver used here (CommonJS, untyped) ----------------------------------------

interface Metadata {
  etag: string;
  'last-modified': string;
  'content-length': number;
  'x-amz-storage-class'?: string;
}
interface Store {
  getBucket(bucket: string): Promise<object | null>;
  getBucketPath(bucket: string): string;
  getMetadata(bucket: string, key: string): Promise<Metadata>;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  deleteObject(bucket: string, key: string): Promise<void>;
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<S3ObjectModel | null>;
  putPart(bucket: string, uploadId: string, partNumber: number, content: NodeJS.ReadableStream): Promise<{ md5: string; size: number }>;
}
interface S3ObjectModel {
  range?: { start: number; end: number };
  content: ReadStream | null;
}
interface Context {
  method: string;
  path: string;
  originalUrl: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  req: IncomingMessage;
  params?: Record<string, string>;
  /** s3rver's: `vhost` is set when the bucket came from the Host header. */
  state: { vhost?: boolean };
  store: Store;
  status: number;
  body: unknown;
  get(header: string): string;
}
type Next = () => Promise<void>;
type Middleware = (ctx: Context, next: Next) => Promise<void>;
interface S3rverApp {
  middleware: Middleware[];
  httpServer?: Server;
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (options: object) => S3rverApp;
const FilesystemStore = require('s3rver/lib/stores/filesystem.js') as {
  encodeKeyPath(key: string): string;
  decodeKeyPath(path: string): string;
  prototype: Store;
};
const S3Object = require('s3rver/lib/models/object.js') as new (
  bucket: string,
  key: string,
  content: ReadStream | null,
  metadata: Metadata,
) => S3ObjectModel;
const S3Error = require('s3rver/lib/models/error.js') as new (code: string, message: string, detail?: object) => Error;
const AWSAccount = require('s3rver/lib/models/account.js') as {
  new (id: number, name: string): { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
  registry: Map<string, { accessKeys: Map<string, string> }>;
};
const authenticate = (require('s3rver/lib/middleware/authentication.js') as () => Middleware)();
/** Query parameters that select a sub-resource (?uploads, ?tagging...), as s3rver routes them. */
const SUBRESOURCES: string[] = [
  ...(require('s3rver/lib/controllers/bucket.js') as { METHODS: string[] }).METHODS,
  ...(require('s3rver/lib/controllers/object.js') as { METHODS: string[] }).METHODS,
];

const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
const OBJECT_SUFFIX = '._S3rver_object';
const UPLOADS_DIR = '._S3rver_uploads';

// ---- 5. key <-> path ----------------------------------------------------------------------------

/**
 * Longest path segment written (s3rver appends up to 22 bytes, "._S3rver_metadata.json", and a
 * file name holds 255). A longer key component becomes pieces of at most PIECE_BYTES, each a
 * directory prefixed MORE, the last prefixed LAST. A short component that starts with MARK gets
 * one more MARK, so every segment decodes one way and listings return the exact key.
 */
const MAX_SEGMENT_BYTES = 200;
const PIECE_BYTES = MAX_SEGMENT_BYTES - 2;
const MARK = '\u0001';
const MORE = `${MARK}+`;
const LAST = `${MARK}-`;

function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeComponent).join('/');
}

function encodeComponent(component: string): string {
  if (Buffer.byteLength(component) <= MAX_SEGMENT_BYTES) return component.startsWith(MARK) ? MARK + component : component;
  const pieces = [''];
  for (const char of component) {
    // by code point, so a character is never cut in two
    if (Buffer.byteLength(pieces[pieces.length - 1]! + char) > PIECE_BYTES) pieces.push('');
    pieces[pieces.length - 1] += char;
  }
  return pieces.map((piece, i) => (i < pieces.length - 1 ? MORE : LAST) + piece).join('/');
}

/** One path segment's part of the key; `continues` when the component goes on in a sub-directory. */
function decodeSegment(segment: string): { text: string; continues: boolean } {
  if (segment.startsWith(MORE)) return { text: segment.slice(MORE.length), continues: true };
  if (segment.startsWith(LAST)) return { text: segment.slice(LAST.length), continues: false };
  return { text: segment.startsWith(MARK) ? segment.slice(MARK.length) : segment, continues: false };
}

function decodeKeyPath(path: string): string {
  const segments = path.split('/');
  return segments
    .map((segment, i) => {
      const { text, continues } = decodeSegment(segment);
      return continues || i === segments.length - 1 ? text : `${text}/`;
    })
    .join('');
}

FilesystemStore.encodeKeyPath = encodeKeyPath;
FilesystemStore.decodeKeyPath = decodeKeyPath;

// 9. Remove the object's files only: see the header comment.
FilesystemStore.prototype.deleteObject = async function deleteObject(this: Store, bucket: string, key: string) {
  await Promise.all(
    ['object', 'object.md5', 'metadata.json', 'tagging.xml'].map((resource) =>
      rm(this.getResourcePath(bucket, key, resource), { force: true }),
    ),
  );
};

// 13. Ranges: s3rver read `bytes=0-0` (end 0) as "to the end". Its getObject, with that fixed.
interface RangeOptions {
  start?: number;
  end?: number;
}
FilesystemStore.prototype.getObject = async function getObject(this: Store, bucket: string, key: string, options?: RangeOptions) {
  let metadata: Metadata;
  try {
    metadata = await this.getMetadata(bucket, key);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const lastByte = Math.max(0, Number(metadata['content-length']) - 1);
  const ranged = options?.start !== undefined || options?.end !== undefined;
  const range = { start: options?.start ?? 0, end: Math.min(options?.end ?? Infinity, lastByte) };
  if (range.start < 0 || range.end < range.start) {
    const unsatisfiable = new S3Object(bucket, key, null, metadata);
    if (ranged) unsatisfiable.range = range;
    return unsatisfiable;
  }
  const content = await new Promise<ReadStream>((resolve, reject) => {
    const stream = createReadStream(this.getResourcePath(bucket, key, 'object'), range)
      .on('error', reject)
      .on('open', () => resolve(stream));
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null; // deleted meanwhile
    throw error;
  });
  if (content === null) return null;
  const object = new S3Object(bucket, key, content, metadata);
  if (ranged) object.range = range;
  return object;
};

// ---- the server ----------------------------------------------------------------------------------

export async function startLocalS3Server(options: LocalS3ServerOptions = {}): Promise<LocalS3Server> {
  const owned = options.directory === undefined;
  const directory = options.directory ?? (await mkdtemp(join(tmpdir(), 'objmount-s3-')));
  await mkdir(directory, { recursive: true });
  const server = new S3rver({
    address: '127.0.0.1',
    port: options.port ?? 0,
    directory,
    silent: options.silent ?? true,
    configureBuckets: (options.buckets ?? []).map((name) => ({ name })),
    allowMismatchedSignatures: true, // V2 and V4 are verified in s3Semantics instead
  });
  // Last is s3rver's router; ahead of it, its logger, XML serializer and virtual-host rewrite.
  if (options.signatureV2Only) {
    server.middleware.splice(server.middleware.length - 1, 0, async (ctx: Context, next: Next) => {
      if (/^AWS4-/.test(ctx.get('authorization'))) throw new S3Error('AccessDenied', 'This store accepts Signature Version 2 only.');
      return next();
    });
  }
  if (options.publicBuckets) server.middleware.splice(server.middleware.length - 1, 0, onlyPublicAnonymous(new Set(options.publicBuckets)));
  server.middleware.splice(server.middleware.length - 1, 0, s3Semantics);
  if (options.writeFaults) server.middleware.splice(server.middleware.length - 1, 0, writeFaults(options.writeFaults));
  if (options.restrictedKey) {
    const account = new AWSAccount(210987654321, 'restricted');
    account.createKeyPair(options.restrictedKey.accessKeyId, options.restrictedKey.secretAccessKey);
    const restricted = options.restrictedKey.accessKeyId;
    server.middleware.splice(server.middleware.length - 1, 0, async (ctx, next) => {
      if (ctx.method === 'GET' && ctx.path === '/' && ctx.get('authorization').includes(`Credential=${restricted}/`)) {
        await verifySignatureV4(ctx);
        throw new S3Error('AccessDenied', 'Access Denied');
      }
      return next();
    });
  }
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    directory,
    async close() {
      const closed = server.close();
      server.httpServer?.closeAllConnections(); // SDK clients keep idle sockets open
      await closed;
      if (owned) await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * Starts the server in a child process (src/demo/local-s3-server-main.ts). Tests and benchmarks
 * need this: they make blocking file calls on a mount whose daemon talks to this server, which
 * would deadlock if the server shared their event loop. Runs the compiled `dist/`.
 */
export async function startLocalS3ServerProcess(options: LocalS3ServerOptions = {}): Promise<LocalS3Server> {
  const here = fileURLToPath(import.meta.url);
  const main = here.endsWith('.ts')
    ? join(dirname(here), '..', '..', 'dist', 'demo', 'local-s3-server-main.js')
    : join(dirname(here), 'local-s3-server-main.js');
  const child = fork(main, [JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const address = await new Promise<{ endpoint: string; port: number; directory: string }>((resolve, reject) => {
    child.once('message', (message) => resolve(message as { endpoint: string; port: number; directory: string }));
    child.once('exit', (code) => reject(new Error(`the local S3 server exited with code ${code}`)));
  });
  return {
    ...address,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Anonymous requests only on `open` buckets (the `publicBuckets` option). */
function onlyPublicAnonymous(open: Set<string>) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const signed = ctx.get('authorization') !== '' || ['X-Amz-Signature', 'Signature', 'AWSAccessKeyId'].some((name) => name in ctx.query);
    const slash = ctx.path.indexOf('/', 1);
    const bucket = decodeURIComponent(slash < 0 ? ctx.path.slice(1) : ctx.path.slice(1, slash));
    if (!signed && !open.has(bucket) && (bucket === '' || (await ctx.store.getBucket(bucket)))) throw new S3Error('AccessDenied', 'Access Denied');
    return next();
  };
}

async function s3Semantics(ctx: Context, next: Next): Promise<void> {
  const slash = ctx.path.indexOf('/', 1);
  const bucket = decodeURIComponent(slash < 0 ? ctx.path.slice(1) : ctx.path.slice(1, slash));
  const key = slash < 0 ? '' : decodeURIComponent(ctx.path.slice(slash + 1));

  // s3rver's checks (unknown access key, clock skew, V2 signatures) first, as S3 orders them;
  // the router runs them again for the requests passed on.
  ctx.params = { bucket, key };
  await authenticate(ctx, async () => undefined);
  await verifySignatureV4(ctx);
  verifySignatureV2(ctx);
  if (!bucket) return next(); // ListBuckets
  if (!(await ctx.store.getBucket(bucket))) return next(); // s3rver answers NoSuchBucket

  const subresource = SUBRESOURCES.find((name) => name in ctx.query);
  if (key === '') {
    if (ctx.method === 'GET' && subresource === undefined) return listObjects(ctx, bucket);
    if (ctx.method === 'GET' && subresource === 'uploads') return listMultipartUploads(ctx, bucket);
    if (ctx.method === 'POST' && subresource === 'delete') return deleteObjects(ctx, bucket);
    return next();
  }

  const writesKey = (ctx.method === 'PUT' && subresource === undefined) || (ctx.method === 'POST' && subresource === 'uploads');
  if (writesKey && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new S3Error('KeyTooLongError', 'Your key is too long', { Size: Buffer.byteLength(key), MaxSizeAllowed: MAX_KEY_BYTES });
  }
  if (subresource === 'uploadId') {
    const upload = await uploadDir(ctx, bucket, key);
    if (ctx.method === 'DELETE') {
      await rm(upload, { recursive: true, force: true });
      ctx.status = 204;
      return;
    }
    const source = ctx.get('x-amz-copy-source');
    if (ctx.method === 'PUT' && source) return uploadPartCopy(ctx, bucket, source);
  }
  const copySource = ctx.get('x-amz-copy-source');
  if (ctx.method === 'PUT' && copySource) {
    // s3rver applies decodeURI, which leaves reserved characters (+ & = ? # , ; : @ $) encoded.
    try {
      ctx.headers['x-amz-copy-source'] = encodeURI(decodeURIComponent(copySource.split('?')[0]!));
    } catch {
      throw new S3Error('InvalidArgument', 'Invalid copy source encoding', { ArgumentName: 'x-amz-copy-source' });
    }
  }
  const ifMatch = ctx.get('if-match');
  const suffixRange = /^bytes=-(\d+)$/.exec(ctx.get('range'));
  if ((ctx.method === 'GET' || ctx.method === 'HEAD') && subresource === undefined && (ifMatch || suffixRange)) {
    const metadata = await ctx.store.getMetadata(bucket, key).catch(() => undefined);
    if (metadata && ifMatch && ifMatch !== '*' && unquote(ifMatch) !== unquote(metadata.etag)) {
      throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
        Condition: 'If-Match',
      });
    }
    if (metadata && suffixRange) {
      // 13. The last N bytes, as an explicit range s3rver understands (all of it when N >= size).
      const size = Number(metadata['content-length']);
      const length = Math.min(Number(suffixRange[1]), size);
      if (length === 0) throw new S3Error('InvalidRange', 'The requested range is not satisfiable', { ActualObjectSize: size });
      ctx.headers['range'] = `bytes=${size - length}-${size - 1}`;
    }
  }
  return next();
}

function writeFaults(faults: NonNullable<LocalS3ServerOptions['writeFaults']>): Middleware {
  const keys = new RegExp(faults.keys);
  const slower = faults.slowerKeys === undefined ? undefined : new RegExp(faults.slowerKeys);
  let cleared = false;
  return async (ctx, next) => {
    const key = ctx.params?.key ?? '';
    if (ctx.method === 'PUT' && faults.clearedBy !== undefined && key === faults.clearedBy) cleared = true;
    if (cleared || ctx.method !== 'PUT' || !keys.test(key)) return next();
    const delay = slower?.test(key) ? faults.slowerDelayMs : faults.delayMs;
    if (delay) await new Promise((resolve) => setTimeout(resolve, delay));
    if (faults.fail) {
      for await (const _chunk of ctx.req); // read the body, as S3 does before answering
      throw new S3Error('InternalError', 'We encountered an internal error. Please try again.');
    }
    return next();
  };
}

function queryParam(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  return Array.isArray(value) ? value[0] : value;
}

function unquote(etag: string): string {
  return etag.replace(/"/g, '');
}

// ---- 10. Signature V4 ----------------------------------------------------------------------------

/** The `Checksum` that SignatureV4 hashes and HMACs with: SHA-256 from node:crypto. */
class Sha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    throw new Error('not used by SignatureV4');
  }
}

type SourceData = string | ArrayBuffer | ArrayBufferView;
function toBytes(data: SourceData): Uint8Array | string {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/** Query parameters signed as part of the resource in Signature V2 (AWS's list). */
const V2_SUBRESOURCES = new Set(['acl', 'cors', 'delete', 'lifecycle', 'location', 'logging', 'notification', 'partNumber', 'policy',
  'requestPayment', 'restore', 'tagging', 'torrent', 'uploadId', 'uploads', 'versionId', 'versioning', 'versions', 'website',
  'response-cache-control', 'response-content-disposition', 'response-content-encoding', 'response-content-language',
  'response-content-type', 'response-expires']);

/**
 * Verifies a header-signed Signature V2 request (`Authorization: AWS key:signature`) as AWS's S3
 * documentation defines the string to sign; presigned V2 URLs are not used by objmount.
 */
function verifySignatureV2(ctx: Context): void {
  const match = /^AWS ([^:]+):(.+)$/.exec(ctx.get('authorization'));
  if (!match) return;
  const [, accessKeyId = '', signature] = match;
  const secretAccessKey = AWSAccount.registry.get(accessKeyId)?.accessKeys.get(accessKeyId);
  if (secretAccessKey === undefined) return; // authenticate() has answered InvalidAccessKeyId
  const url = ctx.originalUrl; // as sent
  const queryStart = url.indexOf('?');
  const path = queryStart < 0 ? url : url.slice(0, queryStart);
  const signed = [...new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart).replace(/\+/g, '%2B'))]
    .filter(([name]) => V2_SUBRESOURCES.has(name))
    .map(([name, value]) => (value === '' ? name : `${name}=${value}`))
    .sort();
  const resource = (ctx.state.vhost ? `/${ctx.params?.bucket ?? ''}` : '') + path + (signed.length ? `?${signed.join('&')}` : '');
  const amz = Object.keys(ctx.headers)
    .filter((name) => name.startsWith('x-amz-'))
    .sort()
    .map((name) => `${name}:${ctx.get(name).trim().replace(/\s+/g, ' ')}`);
  const date = ctx.get('x-amz-date') ? '' : ctx.get('date');
  const toSign = [ctx.method, ctx.get('content-md5'), ctx.get('content-type'), date, ...amz, resource].join('\n');
  if (createHmac('sha1', secretAccessKey).update(toSign, 'utf8').digest('base64') !== signature) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: accessKeyId },
    );
  }
}

/**
 * Signs a header-signed V4 request again with the secret of its access key (AWS's own signer,
 * given exactly the headers the client signed) and compares. Presigned URLs are left to s3rver.
 */
async function verifySignatureV4(ctx: Context): Promise<void> {
  const match = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(
    ctx.get('authorization'),
  );
  const amzDate = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(ctx.get('x-amz-date'));
  if (!match || !amzDate) return;
  const [, accessKeyId = '', , region = '', service = '', signedHeaderList = '', signature] = match;
  const secretAccessKey = AWSAccount.registry.get(accessKeyId)?.accessKeys.get(accessKeyId);
  if (secretAccessKey === undefined) return; // authenticate() has answered InvalidAccessKeyId

  const url = ctx.originalUrl; // as sent: before s3rver's virtual-host rewrite
  const queryStart = url.indexOf('?');
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart).replace(/\+/g, '%2B'))) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  const signedHeaders = signedHeaderList.split(';');
  const headers = Object.fromEntries(signedHeaders.map((name) => [name, ctx.get(name)]));
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: false, // S3 signs the path as sent
  });
  const [, year, month, day, hours, minutes, seconds] = amzDate.map(Number) as number[];
  const signed = await signer.sign(
    { method: ctx.method, protocol: 'http:', hostname: '', path: queryStart < 0 ? url : url.slice(0, queryStart), query, headers },
    {
      signingDate: new Date(Date.UTC(year!, month! - 1, day, hours, minutes, seconds)),
      signableHeaders: new Set(signedHeaders),
    },
  );
  const expected = /Signature=([0-9a-f]+)/.exec(String(signed.headers['authorization']))?.[1];
  if (expected !== signature) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: accessKeyId },
    );
  }
}

// ---- 1-4. listings -------------------------------------------------------------------------------

/** Every key in the bucket that starts with `prefix`, unsorted; only directories that can hold one are read. */
async function keysWithPrefix(bucketDir: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  const visit = async (dir: string, keySoFar: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch((): Dirent[] => []);
    await Promise.all(
      entries.map(async (entry) => {
        if (entry.isDirectory()) {
          if (keySoFar === '' && entry.name === UPLOADS_DIR) return;
          const { text, continues } = decodeSegment(entry.name);
          const below = continues ? keySoFar + text : `${keySoFar}${text}/`;
          if (below.startsWith(prefix) || prefix.startsWith(below)) await visit(join(dir, entry.name), below);
        } else if (entry.name.endsWith(OBJECT_SUFFIX)) {
          const key = keySoFar + decodeSegment(entry.name.slice(0, -OBJECT_SUFFIX.length)).text;
          if (key.startsWith(prefix)) keys.push(key);
        }
      }),
    );
  };
  await visit(bucketDir, '');
  return keys;
}

/** The continuation token that resumes after `entry`; tokens are opaque to clients. */
function encodeToken(entry: string): string {
  return Buffer.from(entry, 'utf8').toString('base64');
}

function decodeToken(token: string): string {
  const entry = Buffer.from(token, 'base64').toString('utf8');
  if (entry === '' || encodeToken(entry) !== token) {
    throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
  }
  return entry;
}

async function listObjects(ctx: Context, bucket: string): Promise<void> {
  const v2 = queryParam(ctx, 'list-type') === '2';
  const prefix = queryParam(ctx, 'prefix') ?? '';
  const delimiter = queryParam(ctx, 'delimiter') ?? '';
  const maxKeysText = queryParam(ctx, 'max-keys') ?? '1000';
  if (!/^\d+$/.test(maxKeysText)) {
    throw new S3Error('InvalidArgument', 'Provided max-keys not an integer or within integer range', {
      ArgumentName: 'max-keys',
      ArgumentValue: maxKeysText,
    });
  }
  const maxKeys = Math.min(1000, Number(maxKeysText));
  const token = v2 ? queryParam(ctx, 'continuation-token') : undefined;
  const startAfter = v2 ? queryParam(ctx, 'start-after') : queryParam(ctx, 'marker');
  const after = token !== undefined ? decodeToken(token) : (startAfter ?? '');

  // A common prefix that ended the previous page (as V2 token or V1 marker, which S3 hands out as
  // NextMarker) stands for every key under it. A V2 StartAfter is a plain key.
  const commonPrefixOf = (key: string): string | undefined => {
    const at = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    return at < 0 ? undefined : key.slice(0, at + delimiter.length);
  };
  const resumes = token !== undefined || !v2;
  const afterIsPrefix = resumes && after.startsWith(prefix) && commonPrefixOf(after) === after;
  const afterBytes = Buffer.from(after, 'utf8');
  const keys = (await keysWithPrefix(ctx.store.getBucketPath(bucket), prefix))
    .map((key) => ({ key, bytes: Buffer.from(key, 'utf8') }))
    .filter(({ key, bytes }) => Buffer.compare(bytes, afterBytes) > 0 && !(afterIsPrefix && key.startsWith(after)))
    .sort((a, b) => Buffer.compare(a.bytes, b.bytes));

  // Keys under one common prefix are adjacent in this order: each prefix is one entry.
  const page: Array<{ key: string } | { commonPrefix: string }> = [];
  let lastEntry = '';
  let isTruncated = false;
  for (const { key } of keys) {
    const commonPrefix = commonPrefixOf(key);
    if (commonPrefix !== undefined && commonPrefix === lastEntry) continue;
    if (page.length === maxKeys) {
      isTruncated = maxKeys > 0;
      break;
    }
    page.push(commonPrefix === undefined ? { key } : { commonPrefix });
    lastEntry = commonPrefix ?? key;
  }

  const contents = await Promise.all(
    page.map(async (entry) => {
      if (!('key' in entry)) return undefined;
      const metadata = await ctx.store.getMetadata(bucket, entry.key).catch(() => undefined);
      return (
        metadata && {
          Key: entry.key,
          LastModified: new Date(metadata['last-modified']).toISOString(),
          ETag: metadata.etag,
          Size: metadata['content-length'],
          StorageClass: metadata['x-amz-storage-class'] ?? 'STANDARD',
        }
      );
    }),
  );
  const objects = contents.filter((object) => object !== undefined); // not deleted meanwhile
  const commonPrefixes = page.flatMap((entry) => ('commonPrefix' in entry ? [{ Prefix: entry.commonPrefix }] : []));
  // Plain objects: s3rver's middleware serializes them as XML. Undefined fields are left out.
  ctx.body = {
    ListBucketResult: {
      '@': { xmlns: XMLNS },
      Name: bucket,
      Prefix: prefix,
      ...(v2
        ? { ContinuationToken: token, StartAfter: startAfter, KeyCount: objects.length + commonPrefixes.length }
        : { Marker: startAfter ?? '' }),
      MaxKeys: Number(maxKeysText),
      Delimiter: delimiter || undefined,
      IsTruncated: isTruncated,
      ...(v2
        ? { NextContinuationToken: isTruncated ? encodeToken(lastEntry) : undefined }
        : { NextMarker: isTruncated && delimiter ? lastEntry : undefined }), // as S3: only with a delimiter
      Contents: objects,
      CommonPrefixes: commonPrefixes,
    },
  };
}

// ---- 8. DeleteObjects ----------------------------------------------------------------------------

async function deleteObjects(ctx: Context, bucket: string): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
  const xml = Buffer.concat(chunks).toString('utf8');
  const keys = [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((match) => decodeXmlText(match[1]!));
  if (!/<Delete[\s>]/.test(xml) || keys.length === 0) {
    throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
  await Promise.all(keys.map((key) => ctx.store.deleteObject(bucket, key)));
  const quiet = /<Quiet>\s*true\s*<\/Quiet>/.test(xml);
  ctx.body = { DeleteResult: { '@': { xmlns: XMLNS }, Deleted: quiet ? [] : keys.map((Key) => ({ Key })) } };
}

function decodeXmlText(text: string): string {
  const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (entity: string, name: string) =>
    name.startsWith('#')
      ? String.fromCodePoint(name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : Number(name.slice(1)))
      : (named[name] ?? entity),
  );
}

// ---- 12. multipart uploads -----------------------------------------------------------------------

function uploadsDir(ctx: Context, bucket: string): string {
  return ctx.store.getResourcePath(bucket, undefined, 'uploads');
}

/** The directory of the upload named by ?uploadId, which must exist and be for `key`. */
async function uploadDir(ctx: Context, bucket: string, key: string): Promise<string> {
  const uploadId = queryParam(ctx, 'uploadId') ?? '';
  const dir = join(uploadsDir(ctx, bucket), uploadId);
  const uploadKey = /^[0-9a-f]+$/.test(uploadId) ? await readFile(join(dir, 'key'), 'utf8').catch(() => undefined) : undefined;
  if (uploadKey !== key) {
    throw new S3Error(
      'NoSuchUpload',
      'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.',
      { UploadId: uploadId },
    );
  }
  return dir;
}

/** 14. UploadPartCopy: a byte range of an existing object becomes a part (501 in s3rver). */
async function uploadPartCopy(ctx: Context, bucket: string, copySource: string): Promise<void> {
  const partNumber = Number(queryParam(ctx, 'partNumber'));
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000) {
    throw new S3Error('InvalidArgument', 'Part number must be an integer between 1 and 10000, inclusive', { ArgumentName: 'partNumber' });
  }
  let source: string;
  try {
    source = decodeURIComponent(copySource.split('?')[0]!).replace(/^\//, '');
  } catch {
    throw new S3Error('InvalidArgument', 'Invalid copy source encoding', { ArgumentName: 'x-amz-copy-source' });
  }
  const slash = source.indexOf('/');
  const [sourceBucket, sourceKey] = [source.slice(0, slash), source.slice(slash + 1)];
  const metadata = slash > 0 ? await ctx.store.getMetadata(sourceBucket, sourceKey).catch(() => undefined) : undefined;
  if (!metadata) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: sourceKey });
  const ifMatch = ctx.get('x-amz-copy-source-if-match');
  if (ifMatch && unquote(ifMatch) !== unquote(metadata.etag)) {
    throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', {
      Condition: 'x-amz-copy-source-If-Match',
    });
  }
  const size = Number(metadata['content-length']);
  const rangeText = ctx.get('x-amz-copy-source-range');
  const range = /^bytes=(\d+)-(\d+)$/.exec(rangeText);
  const [start, end] = range ? [Number(range[1]), Number(range[2])] : [0, size - 1];
  if ((rangeText && !range) || start > end || end >= size) {
    throw new S3Error('InvalidRange', 'The requested range is not satisfiable', { RangeRequested: rangeText, ActualObjectSize: size });
  }
  const object = await ctx.store.getObject(sourceBucket, sourceKey, { start, end });
  if (!object?.content) throw new S3Error('NoSuchKey', 'The specified key does not exist.', { Key: sourceKey });
  const { md5 } = await ctx.store.putPart(bucket, queryParam(ctx, 'uploadId')!, partNumber, object.content);
  ctx.body = { CopyPartResult: { '@': { xmlns: XMLNS }, LastModified: new Date().toISOString(), ETag: `"${md5}"` } };
}

async function listMultipartUploads(ctx: Context, bucket: string): Promise<void> {
  const prefix = queryParam(ctx, 'prefix') ?? '';
  const dir = uploadsDir(ctx, bucket);
  const ids = await readdir(dir).catch((): string[] => []);
  const uploads = await Promise.all(
    ids.map(async (id) => {
      const keyFile = join(dir, id, 'key');
      const [key, info] = await Promise.all([readFile(keyFile, 'utf8'), stat(keyFile)]).catch(() => []);
      return key === undefined || info === undefined ? undefined : { key, id, initiated: info.mtime };
    }),
  );
  const owner = { ID: '123456789000', DisplayName: 'S3rver' };
  ctx.body = {
    ListMultipartUploadsResult: {
      '@': { xmlns: XMLNS },
      Bucket: bucket,
      KeyMarker: '',
      UploadIdMarker: '',
      Prefix: prefix,
      MaxUploads: 1000,
      IsTruncated: false,
      Upload: uploads
        .filter((upload) => upload !== undefined && upload.key.startsWith(prefix))
        .map((upload) => upload!)
        .sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)) || a.initiated.getTime() - b.initiated.getTime())
        .map((upload) => ({
          Key: upload.key,
          UploadId: upload.id,
          Initiator: owner,
          Owner: owner,
          StorageClass: 'STANDARD',
          Initiated: upload.initiated.toISOString(),
        })),
    },
  };
}
