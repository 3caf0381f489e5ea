/**
 * Listings and DeleteObjects answered here instead of by s3rver (see local-s3-server.ts, fixes
 * 1-4 and 8): listings from a walk of the bucket's files, in UTF-8 order, with prefixes and
 * paging as S3 does them; DeleteObjects reading keys as text.
 */

import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { type Context, OBJECT_SUFFIX, S3Error, UPLOADS_DIR, XMLNS, queryParam } from './s3rver-internals.js';
import { decodeSegment } from './s3rver-store-fixes.js';

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

export async function listObjects(ctx: Context, bucket: string): Promise<void> {
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

export async function deleteObjects(ctx: Context, bucket: string): Promise<void> {
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
