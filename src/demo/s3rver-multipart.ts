/**
 * Multipart uploads as S3 has them (see local-s3-server.ts, fixes 12 and 14): AbortMultipartUpload,
 * ListMultipartUploads, NoSuchUpload for unknown uploads, and UploadPartCopy.
 */

import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

import { type Context, S3Error, XMLNS, queryParam, unquote } from './s3rver-internals.js';

export function uploadsDir(ctx: Context, bucket: string): string {
  return ctx.store.getResourcePath(bucket, undefined, 'uploads');
}

/** The directory of the upload named by ?uploadId, which must exist and be for `key`. */
export async function uploadDir(ctx: Context, bucket: string, key: string): Promise<string> {
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
export async function uploadPartCopy(ctx: Context, bucket: string, copySource: string): Promise<void> {
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

export async function listMultipartUploads(ctx: Context, bucket: string): Promise<void> {
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
        .filter((upload) => upload?.key.startsWith(prefix))
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
