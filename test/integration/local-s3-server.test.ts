/**
 * The local S3 server (s3rver with objmount's fixes, src/demo/local-s3-server.ts) answers as AWS
 * S3 does wherever the tests and the demo depend on it. One `describe` per numbered fix there.
 */

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListMultipartUploadsCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  S3ServiceException,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { s3Client } from '../helpers/s3-client.js';

const Bucket = 'harness';
let server: LocalS3Server;
let sdk: S3Client;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [Bucket] });
  sdk = s3Client(server.endpoint);
});

afterAll(async () => {
  sdk?.destroy();
  await server?.close();
});

async function put(Key: string, Body: string | Buffer = Key): Promise<string> {
  const { ETag } = await sdk.send(new PutObjectCommand({ Bucket, Key, Body }));
  return ETag!;
}

async function get(Key: string): Promise<string> {
  const { Body } = await sdk.send(new GetObjectCommand({ Bucket, Key }));
  return Body!.transformToString();
}

/** The S3 error code a call fails with (and its HTTP status), or 'ok'. */
async function failure(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    if (!(error instanceof S3ServiceException)) throw error;
    return `${error.$metadata.httpStatusCode} ${error.name}`;
  }
}

type Entry = string; // a key, or a common prefix (ends with the delimiter)

/** Every entry of a V2 listing, page by page, and the number of pages. */
async function listV2(Prefix: string, options: { Delimiter?: string; MaxKeys?: number; StartAfter?: string } = {}) {
  const pages: Entry[][] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await sdk.send(new ListObjectsV2Command({ Bucket, Prefix, ContinuationToken, ...options }));
    const entries = [...(page.Contents ?? []).map((o) => o.Key!), ...(page.CommonPrefixes ?? []).map((p) => p.Prefix!)];
    expect(page.KeyCount).toBe(entries.length);
    expect(entries.length).toBeLessThanOrEqual(options.MaxKeys ?? 1000);
    pages.push(entries);
    ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    if (page.IsTruncated) expect(ContinuationToken).toBeTruthy();
  } while (ContinuationToken);
  return { entries: pages.flat().sort(byteOrder), pages };
}

/** Every entry of a V1 listing, paged with NextMarker (or the last key without a delimiter). */
async function listV1(Prefix: string, options: { Delimiter?: string; MaxKeys?: number } = {}): Promise<Entry[]> {
  const entries: Entry[] = [];
  let Marker: string | undefined;
  for (;;) {
    const page = await sdk.send(new ListObjectsCommand({ Bucket, Prefix, Marker, ...options }));
    const keys = (page.Contents ?? []).map((o) => o.Key!);
    const prefixes = (page.CommonPrefixes ?? []).map((p) => p.Prefix!);
    entries.push(...keys, ...prefixes);
    if (!page.IsTruncated) return entries.sort(byteOrder);
    Marker = options.Delimiter ? page.NextMarker : keys[keys.length - 1];
    expect(Marker).toBeTruthy();
  }
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

describe('1-4. listings', () => {
  const keys = [
    ...Array.from({ length: 60 }, (_, i) => `list/flat-${String(i).padStart(3, '0')}`),
    ...Array.from({ length: 25 }, (_, i) => `list/dir-${i % 5}/file-${i}`),
    'list/deep/only/at/depth', // the only key under list/deep/
    'list/é', // UTF-8 order: after every ASCII name
    'list/Z',
    'list/~',
    'list/\u{1F600}',
  ];
  const expectedTopLevel = [
    ...keys.filter((key) => !key.slice('list/'.length).includes('/')),
    ...[0, 1, 2, 3, 4].map((i) => `list/dir-${i}/`),
    'list/deep/',
  ].sort(byteOrder);

  beforeAll(async () => {
    for (let i = 0; i < keys.length; i += 16) await Promise.all(keys.slice(i, i + 16).map((key) => put(key)));
  });

  it('pages with continuation tokens, MaxKeys counting keys and common prefixes together', async () => {
    const { entries, pages } = await listV2('list/', { Delimiter: '/', MaxKeys: 7 });
    expect(entries).toEqual(expectedTopLevel);
    expect(pages.length).toBe(Math.ceil(expectedTopLevel.length / 7));
    expect(new Set(entries).size).toBe(entries.length); // a page ending on a prefix is not repeated
  });

  it('pages a flat listing of every key', async () => {
    const { entries } = await listV2('list/', { MaxKeys: 9 });
    expect(entries).toEqual([...keys].sort(byteOrder));
  });

  it('pages V1 listings with NextMarker, also when a page ends on a common prefix', async () => {
    expect(await listV1('list/', { Delimiter: '/', MaxKeys: 4 })).toEqual(expectedTopLevel);
    expect(await listV1('list/', { MaxKeys: 11 })).toEqual([...keys].sort(byteOrder));
  });

  it('returns each page in UTF-8 byte order', async () => {
    const page = await sdk.send(new ListObjectsV2Command({ Bucket, Prefix: 'list/', Delimiter: '/' }));
    const names = (page.Contents ?? []).map((o) => o.Key!);
    expect(names).toEqual([...names].sort(byteOrder));
    expect(names.slice(-3)).toEqual(['list/~', 'list/é', 'list/\u{1F600}']);
  });

  it('finds a common prefix whose only key is several levels deeper', async () => {
    const page = await sdk.send(new ListObjectsV2Command({ Bucket, Prefix: 'list/de', Delimiter: '/' }));
    expect(page.CommonPrefixes?.map((p) => p.Prefix)).toEqual(['list/deep/']);
    expect(page.Contents).toBeUndefined();
  });

  it('starts after a StartAfter key', async () => {
    const { entries } = await listV2('list/', { StartAfter: 'list/flat-057' });
    expect(entries).toEqual(keys.filter((key) => byteOrder(key, 'list/flat-057') > 0).sort(byteOrder));
  });

  it('refuses a forged continuation token', async () => {
    expect(await failure(sdk.send(new ListObjectsV2Command({ Bucket, ContinuationToken: '%%%' })))).toBe('400 InvalidArgument');
  });

  it('answers NoSuchBucket for a bucket that does not exist', async () => {
    expect(await failure(sdk.send(new ListObjectsV2Command({ Bucket: 'no-such-bucket' })))).toBe('404 NoSuchBucket');
  });
});

describe('5-6. long keys', () => {
  const component255 = `${'n'.repeat(250)}${'ééé'.slice(0, 2)}x`; // 255 bytes: 250 + 2 × 2 + 1
  const key1024 = `long/${'k'.repeat(200)}/${'é'.repeat(300)}/${'z'.repeat(1024 - 5 - 201 - 601)}`;

  it('stores, lists and deletes 255-byte components and 1,024-byte keys', async () => {
    expect(Buffer.byteLength(component255)).toBe(255);
    expect(Buffer.byteLength(key1024)).toBe(1024);
    const names = [`long/${component255}`, key1024, `long/${component255}/below`];
    for (const key of names) await put(key, `body of ${key.length}`);
    for (const key of names) expect(await get(key)).toBe(`body of ${key.length}`);
    const { entries } = await listV2('long/');
    expect(entries).toEqual([...names].sort(byteOrder));
    const { entries: top } = await listV2('long/', { Delimiter: '/' });
    expect(top).toEqual([`long/${component255}`, `long/${component255}/`, `long/${'k'.repeat(200)}/`].sort(byteOrder));
    for (const key of names) await sdk.send(new DeleteObjectCommand({ Bucket, Key: key }));
    expect((await listV2('long/')).entries).toEqual([]);
  });

  it('keeps names that look like its own encoding apart', async () => {
    const names = ['enc/\u0001plain', 'enc/\u0001+more', 'enc/\u0001-last', `enc/\u0001+${'m'.repeat(240)}`];
    for (const key of names) await put(key);
    for (const key of names) expect(await get(key)).toBe(key);
    expect((await listV2('enc/')).entries).toEqual([...names].sort(byteOrder));
  });

  it('refuses keys over 1,024 bytes with KeyTooLongError', async () => {
    const tooLong = `${key1024}z`;
    expect(await failure(put(tooLong))).toBe('400 KeyTooLongError');
    expect(await failure(sdk.send(new CreateMultipartUploadCommand({ Bucket, Key: tooLong })))).toBe('400 KeyTooLongError');
    await put('copy-source');
    const copy = sdk.send(new CopyObjectCommand({ Bucket, Key: tooLong, CopySource: `${Bucket}/copy-source` }));
    expect(await failure(copy)).toBe('400 KeyTooLongError');
  });
});

describe('7. copy sources', () => {
  it('copies keys with reserved characters in their names', async () => {
    for (const name of ['a+b', 'x&y=z', 'what?', 'hash#tag', 'c,d;e:f@g$h', 'sp ace', '100%']) {
      await put(`copy/${name}`, `body of ${name}`);
      const CopySource = `${Bucket}/${encodeURIComponent(`copy/${name}`)}`;
      await sdk.send(new CopyObjectCommand({ Bucket, Key: `copied/${name}`, CopySource }));
      expect(await get(`copied/${name}`)).toBe(`body of ${name}`);
    }
  });
});

describe('8-9. deletes', () => {
  it('DeleteObjects deletes exactly the keys named, read as text', async () => {
    const names = ['del/0123', 'del/123', 'del/1e5', 'del/100000', 'del/true', 'del/ spaced ', 'del/spaced', 'del/a&b<c>'];
    for (const key of names) await put(key);
    const doomed = ['del/0123', 'del/1e5', 'del/true', 'del/ spaced ', 'del/a&b<c>'];
    const { Deleted } = await sdk.send(new DeleteObjects({ Objects: doomed.map((Key) => ({ Key })) }));
    expect(Deleted?.map((d) => d.Key).sort()).toEqual([...doomed].sort());
    expect((await listV2('del/')).entries).toEqual(['del/100000', 'del/123', 'del/spaced']);
  });

  it('a delete does not race with a PUT into the same directory', async () => {
    const rounds = Array.from({ length: 40 }, (_, i) =>
      Promise.all([
        put(`race/dir/new-${i}`),
        put(`race/dir/old-${i}`).then(() => sdk.send(new DeleteObjectCommand({ Bucket, Key: `race/dir/old-${i}` }))),
      ]),
    );
    await Promise.all(rounds);
    const { entries } = await listV2('race/');
    expect(entries).toEqual(Array.from({ length: 40 }, (_, i) => `race/dir/new-${i}`).sort(byteOrder));
  });
});

function DeleteObjects(Delete: { Objects: { Key: string }[] }) {
  return new DeleteObjectsCommand({ Bucket, Delete });
}

describe('10. signatures', () => {
  it('refuses a wrong secret and an unknown key on every kind of request, listings included', async () => {
    await put('signed', 'secret body');
    const wrongSecret = s3Client(server.endpoint, { accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: 'wrong' });
    const unknownKey = s3Client(server.endpoint, { accessKeyId: 'AKIDUNKNOWN', secretAccessKey: 'S3RVER' });
    try {
      for (const [client, expected] of [
        [wrongSecret, '403 SignatureDoesNotMatch'],
        [unknownKey, '403 InvalidAccessKeyId'],
      ] as const) {
        expect(await failure(client.send(new GetObjectCommand({ Bucket, Key: 'signed' })))).toBe(expected);
        expect(await failure(client.send(new ListObjectsV2Command({ Bucket })))).toBe(expected);
        expect(await failure(client.send(new ListObjectsCommand({ Bucket })))).toBe(expected);
        expect(await failure(client.send(new PutObjectCommand({ Bucket, Key: 'signed', Body: 'overwritten' })))).toBe(expected);
        expect(await failure(client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: 'signed' }] } })))).toBe(expected);
        expect(await failure(client.send(new ListMultipartUploadsCommand({ Bucket })))).toBe(expected);
        expect(await failure(client.send(new ListBucketsCommand({})))).toBe(expected);
      }
      expect(await get('signed')).toBe('secret body');
    } finally {
      wrongSecret.destroy();
      unknownKey.destroy();
    }
  });

  it('accepts correctly signed requests with awkward paths and queries', async () => {
    const key = "sig/a b+c%d=é/~*()!'";
    await put(key, 'ok');
    expect(await get(key)).toBe('ok');
    const page = await sdk.send(new ListObjectsV2Command({ Bucket, Prefix: 'sig/a b+c%d=é/', Delimiter: '/', MaxKeys: 5 }));
    expect(page.Contents?.map((o) => o.Key)).toEqual([key]);
  });
});

describe('11. If-Match', () => {
  it('answers 412 to GET and HEAD when the ETag differs, and serves a matching one', async () => {
    const etag = await put('conditional', 'v1');
    const ok = await sdk.send(new GetObjectCommand({ Bucket, Key: 'conditional', IfMatch: etag, Range: 'bytes=0-0' }));
    expect(await ok.Body!.transformToString()).toBe('v');
    await put('conditional', 'v2');
    expect(await failure(sdk.send(new GetObjectCommand({ Bucket, Key: 'conditional', IfMatch: etag })))).toBe('412 PreconditionFailed');
    // A HEAD response has no body to name the error: the status is the answer (the SDK says "Unknown").
    expect(await failure(sdk.send(new HeadObjectCommand({ Bucket, Key: 'conditional', IfMatch: etag })))).toMatch(/^412 /);
    expect(await failure(sdk.send(new HeadObjectCommand({ Bucket, Key: 'conditional', IfMatch: '*' })))).toBe('ok');
  });
});

describe('12. multipart uploads', () => {
  it('lists an upload in progress and aborts it, leaving nothing behind', async () => {
    const Key = 'multipart/aborted';
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    await sdk.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: Buffer.alloc(1024, 1) }));
    const listed = await sdk.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'multipart/' }));
    expect(listed.Uploads?.map((u) => [u.Key, u.UploadId])).toEqual([[Key, UploadId]]);

    await sdk.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }));
    const after = await sdk.send(new ListMultipartUploadsCommand({ Bucket, Prefix: 'multipart/' }));
    expect(after.Uploads ?? []).toEqual([]);
    const late = sdk.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: 'x' }));
    expect(await failure(late)).toBe('404 NoSuchUpload');
    expect(await failure(sdk.send(new HeadObjectCommand({ Bucket, Key })))).toBe('404 NotFound');
  });

  it('completes an upload and refuses an unknown upload id', async () => {
    const Key = 'multipart/completed';
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const part1 = Buffer.alloc(5 * 1024 * 1024, 'a');
    const { ETag: e1 } = await sdk.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: part1 }));
    const { ETag: e2 } = await sdk.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: 'tail' }));
    await sdk.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: e1 },
            { PartNumber: 2, ETag: e2 },
          ],
        },
      }),
    );
    const body = await get(Key);
    expect(body.length).toBe(part1.length + 4);
    expect(body.endsWith('atail')).toBe(true);
    expect((await sdk.send(new ListMultipartUploadsCommand({ Bucket }))).Uploads ?? []).toEqual([]);

    const unknown = sdk.send(new UploadPartCommand({ Bucket, Key, UploadId: 'feedface', PartNumber: 1, Body: 'x' }));
    expect(await failure(unknown)).toBe('404 NoSuchUpload');
    const abortUnknown = sdk.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: 'feedface' }));
    expect(await failure(abortUnknown)).toBe('404 NoSuchUpload');
  });
});

describe('13. ranges', () => {
  it('serves one-byte, open-ended and suffix ranges', async () => {
    await put('ranged', '0123456789');
    const range = async (Range: string) => {
      const { Body, ContentRange } = await sdk.send(new GetObjectCommand({ Bucket, Key: 'ranged', Range }));
      return `${await Body!.transformToString()} ${ContentRange}`;
    };
    expect(await range('bytes=0-0')).toBe('0 bytes 0-0/10');
    expect(await range('bytes=3-5')).toBe('345 bytes 3-5/10');
    expect(await range('bytes=7-')).toBe('789 bytes 7-9/10');
    expect(await range('bytes=8-100')).toBe('89 bytes 8-9/10');
    expect(await range('bytes=-3')).toBe('789 bytes 7-9/10');
    expect(await range('bytes=-30')).toBe('0123456789 bytes 0-9/10');
    expect(await failure(range('bytes=10-'))).toBe('416 InvalidRange');
  });
});

describe('14. UploadPartCopy', () => {
  it('makes a part from a range of an existing object, checking its ETag', async () => {
    const source = Buffer.alloc(6 * 1024 * 1024, 'a');
    source.write('START', 0);
    const etag = await put('part-copy/source', source);
    const Key = 'part-copy/target';
    const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const copied = await sdk.send(
      new UploadPartCopyCommand({
        Bucket,
        Key,
        UploadId,
        PartNumber: 1,
        CopySource: `${Bucket}/part-copy/source`,
        CopySourceRange: `bytes=0-${5 * 1024 * 1024 - 1}`,
        CopySourceIfMatch: etag,
      }),
    );
    const { ETag: tail } = await sdk.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 2, Body: 'END' }));
    await sdk.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: copied.CopyPartResult!.ETag },
            { PartNumber: 2, ETag: tail },
          ],
        },
      }),
    );
    const body = await get(Key);
    expect(body.length).toBe(5 * 1024 * 1024 + 3);
    expect(body.startsWith('START')).toBe(true);
    expect(body.endsWith('aEND')).toBe(true);

    const { UploadId: other } = await sdk.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    const stale = sdk.send(
      new UploadPartCopyCommand({
        Bucket,
        Key,
        UploadId: other,
        PartNumber: 1,
        CopySource: `${Bucket}/part-copy/source`,
        CopySourceRange: 'bytes=0-9',
        CopySourceIfMatch: '"0123"',
      }),
    );
    expect(await failure(stale)).toBe('412 PreconditionFailed');
    const beyond = sdk.send(
      new UploadPartCopyCommand({
        Bucket,
        Key,
        UploadId: other,
        PartNumber: 1,
        CopySource: `${Bucket}/part-copy/source`,
        CopySourceRange: 'bytes=0-99999999',
      }),
    );
    expect(await failure(beyond)).toBe('416 InvalidRange');
    await sdk.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: other }));
  });
});

describe('16. copies are new objects', () => {
  it('gives a copy onto itself (new metadata, same bytes) a new Last-Modified, as S3 does', async () => {
    await put('chmodded', 'same bytes');
    const before = await sdk.send(new HeadObjectCommand({ Bucket, Key: 'chmodded' }));
    // Last-Modified has a resolution of one second: copy in the next one.
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 10));
    const CopySource = `${Bucket}/chmodded`;
    await sdk.send(
      new CopyObjectCommand({ Bucket, Key: 'chmodded', CopySource, MetadataDirective: 'REPLACE', Metadata: { mode: '33152' } }),
    );
    const after = await sdk.send(new HeadObjectCommand({ Bucket, Key: 'chmodded' }));
    expect(after.ETag).toBe(before.ETag);
    expect(after.Metadata).toEqual({ mode: '33152' });
    expect(after.LastModified!.getTime()).toBeGreaterThan(before.LastModified!.getTime());
  });
});
