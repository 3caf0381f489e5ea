/** `S3Store` against the local S3 server: every ObjectStore behaviour and its error codes. */

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
    const { etag } = await store.put('obj', Buffer.from('0123456789'), { metadata: { mode: '33188', uid: '7' }, contentType: 'text/plain' });
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
