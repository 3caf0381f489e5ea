/**
 * An S3-compatible server on 127.0.0.1 for `objmount demo` and for the test suite: s3rver 3.7.1
 * (node_modules untouched) with a Koa middleware inserted just ahead of its router, and its
 * FilesystemStore's key <-> path mapping replaced, so it answers like AWS S3 wherever a file system
 * would notice. Each fix is tested in test/integration/local-s3-server.test.ts. They live by
 * kind: s3rver-store-fixes.ts (5, 9, 13, 16), s3rver-listings.ts (1-4, 8), s3rver-signatures.ts
 * (10, 15), s3rver-multipart.ts (12, 14); the rest (6, 7, 11, suffix ranges) in `s3Semantics`
 * below, the middleware that routes requests to them ahead of s3rver's router.
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
 * 16. A copy is a new object with a new Last-Modified. s3rver's Last-Modified is its file's mtime,
 *     which a copy onto itself (new metadata, same bytes: a chmod by s3fs or objmount) kept.
 */

import { fork } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  AWSAccount,
  type Context,
  type Middleware,
  type Next,
  S3Error,
  S3rver,
  SUBRESOURCES,
  authenticate,
  unquote,
} from './s3rver-internals.js';
import { deleteObjects, listObjects } from './s3rver-listings.js';
import { listMultipartUploads, uploadDir, uploadPartCopy } from './s3rver-multipart.js';
import { verifySignatureV2, verifySignatureV4 } from './s3rver-signatures.js';
import './s3rver-store-fixes.js'; // installs fixes 5, 9, 13 and 16 in s3rver's FilesystemStore

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
    if (!signed && !open.has(bucket) && (bucket === '' || (await ctx.store.getBucket(bucket))))
      throw new S3Error('AccessDenied', 'Access Denied');
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
      ctx.headers.range = `bytes=${size - length}-${size - 1}`;
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
