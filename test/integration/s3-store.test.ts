/** `S3Store` against the local S3 server: every ObjectStore behaviour and its error codes. */

import { createHash } from 'node:crypto';
import { type IncomingHttpHeaders, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

import { ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { listAll } from '../../src/storage/object-store.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'store-test';
let server: LocalS3Server;
let store: S3Store;

function makeStore(overrides: Partial<ConstructorParameters<typeof S3Store>[0]> = {}): S3Store {
  return new S3Store({
    bucket: BUCKET,
    endpoint: server.endpoint,
    region: 'us-east-1',
    pathStyle: true,
    credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY }),
    credentialDescription: `access key ${LOCAL_S3_ACCESS_KEY} from the test`,
    ...overrides,
  });
}

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  store = makeStore();
});

afterAll(async () => {
  store?.destroy();
  await server?.close();
});

describe('S3Store', () => {
  it('puts, heads and gets whole objects and ranges, with metadata', async () => {
    const { etag } = await store.put('obj', Buffer.from('0123456789'), {
      metadata: { mode: '33188', uid: '7' },
      contentType: 'text/plain',
    });
    const head = await store.head('obj');
    expect(head).toMatchObject({ key: 'obj', size: 10, etag, metadata: { mode: '33188', uid: '7' }, contentType: 'text/plain' });
    expect((await store.get('obj')).body.toString()).toBe('0123456789');
    const ranged = await store.get('obj', { range: { start: 2, end: 5 }, ifMatch: etag });
    expect(ranged.body.toString()).toBe('2345');
    expect(ranged.info.size).toBe(10);
  });

  it('fails a read pinned to an old ETag with PreconditionFailed', async () => {
    const { etag } = await store.put('changes', Buffer.from('v1'));
    await store.put('changes', Buffer.from('v2'));
    await expect(store.get('changes', { ifMatch: etag })).rejects.toMatchObject({ code: 'PreconditionFailed' });
  });

  it('pages listings with prefixes and delimiters', async () => {
    const keys = Array.from({ length: 25 }, (_, i) => `list/k${String(i).padStart(2, '0')}`);
    await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
    await store.put('list/sub/deep/x', Buffer.from('x'));
    const seen: string[] = [];
    const prefixes: string[] = [];
    for await (const page of listAll(store, { prefix: 'list/', delimiter: '/', maxKeys: 7 })) {
      seen.push(...page.objects.map((o) => o.key));
      prefixes.push(...page.prefixes);
    }
    expect(seen).toEqual(keys);
    expect(prefixes).toEqual(['list/sub/']);
  });

  it('copies with metadata kept or replaced, and deletes many keys', async () => {
    await store.put('src', Buffer.from('copy me'), { metadata: { mode: '33188' } });
    await store.copy('src', 'dst kept');
    expect((await store.head('dst kept')).metadata).toEqual({ mode: '33188' });
    await store.copy('src', 'src', { metadata: { mode: '33261' } });
    expect((await store.head('src')).metadata).toEqual({ mode: '33261' });
    expect((await store.get('src')).body.toString()).toBe('copy me');
    await store.deleteMany(['src', 'dst kept', 'never-existed']);
    await expect(store.head('src')).rejects.toMatchObject({ code: 'NotFound' });
    await expect(store.head('dst kept')).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('uploads in parts and aborts without leaving the upload behind', async () => {
    const part1 = Buffer.alloc(5 * 1024 * 1024, 1);
    const part2 = Buffer.from('tail');
    const id = await store.createMultipartUpload('multi', { metadata: { mode: '33188' } });
    const parts = [
      { partNumber: 1, etag: await store.uploadPart('multi', id, 1, part1) },
      { partNumber: 2, etag: await store.uploadPart('multi', id, 2, part2) },
    ];
    await store.completeMultipartUpload('multi', id, parts);
    const got = await store.get('multi');
    expect(got.body.equals(Buffer.concat([part1, part2]))).toBe(true);
    expect(got.info.metadata).toEqual({ mode: '33188' });

    const aborted = await store.createMultipartUpload('aborted');
    await store.uploadPart('aborted', aborted, 1, part2);
    await store.abortMultipartUpload('aborted', aborted);
    const sdk = s3Client(server.endpoint);
    const uploads = await sdk.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
    sdk.destroy();
    expect(uploads.Uploads ?? []).toEqual([]);
  });

  it('signs upload parts with the payload hash computed off the JS thread, and falls back to its own', async () => {
    // A proxy in front of the server records what each request carried; the server checks the signatures.
    const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders; sha256: string }> = [];
    const upstream = new URL(server.endpoint);
    const proxy = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          sha256: createHash('sha256').update(body).digest('hex'),
        });
        const forward = request(
          { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        forward.end(body);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const hashed: number[] = [];
    let offThread: 'right' | 'unavailable' | 'marked' = 'right';
    const hashing = makeStore({
      endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`,
      payloadSha256: async (body) => {
        hashed.push(body.length);
        if (offThread === 'marked') return 'ab'.repeat(32); // not the body's: shows whose hash is signed
        return offThread === 'right' ? createHash('sha256').update(body).digest('hex') : undefined;
      },
    });
    try {
      const part1 = Buffer.alloc(5 * 1024 * 1024, 7);
      const part2 = Buffer.from('the last part');
      const id = await hashing.createMultipartUpload('hashed', {});
      const etag1 = await hashing.uploadPart('hashed', id, 1, part1);
      offThread = 'unavailable'; // the SDK hashes this one itself
      const etag2 = await hashing.uploadPart('hashed', id, 2, part2);
      await hashing.completeMultipartUpload('hashed', id, [
        { partNumber: 1, etag: etag1 },
        { partNumber: 2, etag: etag2 },
      ]);
      expect((await store.get('hashed')).body.equals(Buffer.concat([part1, part2]))).toBe(true);
      expect(hashed).toEqual([part1.length, part2.length]); // parts only: no other request is hashed by it
      const parts = seen.filter((r) => r.method === 'PUT' && r.url.includes('partNumber='));
      expect(parts).toHaveLength(2);
      for (const part of parts) {
        expect(part.headers['x-amz-content-sha256']).toBe(part.sha256); // the hash signed is the body's
        expect(String(part.headers.authorization)).toContain('x-amz-content-sha256');
      }
      // The signer takes the hash it is given (this server does not check it against the body).
      offThread = 'marked';
      const marked = await hashing.createMultipartUpload('marked', {});
      await hashing.uploadPart('marked', marked, 1, part2);
      await hashing.abortMultipartUpload('marked', marked);
      expect(seen.find((r) => r.method === 'PUT' && r.url.startsWith(`/${BUCKET}/marked?`))?.headers['x-amz-content-sha256']).toBe(
        'ab'.repeat(32),
      );
    } finally {
      hashing.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('names each failure with a stable code', async () => {
    await expect(store.get('missing')).rejects.toMatchObject({ code: 'NotFound' });
    const noBucket = makeStore({ bucket: 'no-such-bucket' });
    await expect(noBucket.probe('')).rejects.toMatchObject({ code: 'NoSuchBucket' });
    noBucket.destroy();
    const wrongSecret = makeStore({ credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: 'nope' }) });
    const error = await wrongSecret.probe('').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'InvalidCredentials', storeCode: 'SignatureDoesNotMatch' });
    expect(String((error as Error).message)).not.toContain('nope');
    wrongSecret.destroy();
    const unreachable = makeStore({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    await expect(unreachable.probe('')).rejects.toMatchObject({ code: 'Unreachable' });
    unreachable.destroy();
  });

  it('retries a failing request with backoff, counts the retries and logs them', async () => {
    const flaky = await startLocalS3ServerProcess({ buckets: [BUCKET], writeFaults: { keys: '^flaky$', fail: true } });
    const lines: string[] = [];
    const logger = { debug() {}, info() {}, warn: (line: string) => lines.push(line), error() {} };
    const failing = new S3Store({
      bucket: BUCKET,
      endpoint: flaky.endpoint,
      region: 'us-east-1',
      pathStyle: true,
      credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY }),
      credentialDescription: 'the test key',
      maxAttempts: 3,
      logger,
    });
    try {
      await expect(failing.put('flaky', Buffer.from('x'))).rejects.toMatchObject({ code: 'Transient' });
      await failing.put('steady', Buffer.from('x'));
      expect(failing.stats).toEqual({ requests: 2, retries: 2, failures: 1, byOperation: { put: 2 } });
      expect(lines).toEqual([expect.stringMatching(/s3:\/\/store-test\/flaky: put failed after 2 retries/)]);
    } finally {
      failing.destroy();
      await flaky.close();
    }
  });
});

describe('S3Store with Signature Version 2 (an old store that refuses V4)', () => {
  let old: LocalS3Server;
  const v2Store = (secretAccessKey = LOCAL_S3_SECRET_KEY, signatureVersion: 'v2' | 'v4' = 'v2') =>
    new S3Store({
      bucket: BUCKET,
      endpoint: old.endpoint,
      region: 'us-east-1',
      pathStyle: true,
      credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey }),
      credentialDescription: 'the test key',
      signatureVersion,
      maxAttempts: 1,
    });

  beforeAll(async () => {
    old = await startLocalS3ServerProcess({ buckets: [BUCKET], signatureV2Only: true });
  });
  afterAll(() => old?.close());

  it('does everything objmount asks of a store: keys with odd characters, ranges, lists, copies, multipart, deletes', async () => {
    const s = v2Store();
    try {
      const key = 'v2/a b+c(1)!*~é.txt';
      const { etag } = await s.put(key, Buffer.from('0123456789'), { metadata: { mode: '33188' }, contentType: 'text/plain' });
      expect(await s.head(key)).toMatchObject({ size: 10, etag, metadata: { mode: '33188' } });
      expect((await s.get(key, { range: { start: 3, end: 5 }, ifMatch: etag })).body.toString()).toBe('345');
      const page = await s.list({ prefix: 'v2/', delimiter: '/' });
      expect(page.objects.map((o) => o.key)).toEqual([key]);
      await s.copy(key, 'v2/copy', { metadata: { mode: '33261' } });
      expect((await s.head('v2/copy')).metadata).toEqual({ mode: '33261' });

      const uploadId = await s.createMultipartUpload('v2/big');
      const part1 = await s.uploadPart('v2/big', uploadId, 1, Buffer.alloc(5 * 1024 * 1024, 1));
      const part2 = await s.uploadPartCopy('v2/big', uploadId, 2, { key, range: { start: 0, end: 9 }, ifMatch: etag });
      await s.completeMultipartUpload('v2/big', uploadId, [
        { partNumber: 1, etag: part1 },
        { partNumber: 2, etag: part2 },
      ]);
      expect((await s.head('v2/big')).size).toBe(5 * 1024 * 1024 + 10);
      const aborted = await s.createMultipartUpload('v2/aborted');
      await s.abortMultipartUpload('v2/aborted', aborted);
      await s.deleteMany([key, 'v2/copy', 'v2/big']);
      expect((await s.list({ prefix: 'v2/' })).objects).toEqual([]);
    } finally {
      s.destroy();
    }
  });

  it('fails a wrong secret with InvalidCredentials, and a V4 client with AccessDenied', async () => {
    const wrong = v2Store('not the secret');
    const v4 = v2Store(LOCAL_S3_SECRET_KEY, 'v4');
    try {
      await expect(wrong.list({ prefix: '' })).rejects.toMatchObject({ code: 'InvalidCredentials', storeCode: 'SignatureDoesNotMatch' });
      await expect(v4.list({ prefix: '' })).rejects.toMatchObject({ code: 'AccessDenied' });
    } finally {
      wrong.destroy();
      v4.destroy();
    }
  });
});
