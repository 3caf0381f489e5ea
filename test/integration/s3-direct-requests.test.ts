/**
 * The direct HEAD and GET of `S3Store` (s3-direct-requests.ts): once the SDK has shown the way,
 * they answer exactly as the SDK would, and whatever they do not settle goes to the SDK.
 */

import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { S3Store } from '../../src/storage/s3-store.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'direct-test';
let server: LocalS3Server;

function makeStore(endpoint: string, bucket = BUCKET): S3Store {
  return new S3Store({
    bucket,
    endpoint,
    region: 'us-east-1',
    pathStyle: true,
    credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY }),
    credentialDescription: `access key ${LOCAL_S3_ACCESS_KEY} from the test`,
    maxAttempts: 1,
  });
}

/** Whether the store sends its HEADs and GETs directly now. */
const isDirect = (store: S3Store) => (store as unknown as { direct: { ready: boolean } }).direct.ready;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
});

afterAll(async () => {
  await server?.close();
});

describe('S3Store direct requests, on the local S3 server', () => {
  const odd = ['plain', 'a b/c+d=e&f', "it's (1)*!~.txt", 'ünïcødé/日本語', 'per%cent/semi;colon,comma', 'dir/'];

  it('learn the route from the first HEAD, then answer as the SDK does for keys of every kind', async () => {
    const sdk = s3Client(server.endpoint);
    const store = makeStore(server.endpoint);
    try {
      for (const [i, key] of odd.entries()) {
        await sdk.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: key,
            Body: `body of ${i}`,
            Metadata: { mode: String(0o100644 + i), uid: String(1000 + i) },
            ContentType: 'text/plain',
          }),
        );
      }
      expect(isDirect(store)).toBe(false);
      await store.head(odd[0]!);
      expect(isDirect(store)).toBe(true);
      for (const [i, key] of odd.entries()) {
        const viaSdk = await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
        const head = await store.head(key);
        expect(head).toEqual({
          key,
          size: viaSdk.ContentLength,
          etag: viaSdk.ETag,
          lastModified: viaSdk.LastModified,
          metadata: viaSdk.Metadata,
          contentType: viaSdk.ContentType,
          // The store's clock when it answered (its Date), which the SDK does not give.
          readAt: expect.any(Date),
        });
        expect(Math.abs(head.readAt!.getTime() - Date.now())).toBeLessThan(5_000);
        expect(head.metadata).toEqual({ mode: String(0o100644 + i), uid: String(1000 + i) });
        const whole = await store.get(key);
        expect(whole.body.toString()).toBe(`body of ${i}`);
        expect({ ...whole.info, readAt: undefined }).toEqual({ ...head, readAt: undefined });
        const part = await store.get(key, { range: { start: 2, end: 5 }, ifMatch: head.etag });
        expect(part.body.toString()).toBe(`body of ${i}`.slice(2, 6));
        expect(part.info.size).toBe(head.size);
      }
      // Every request so far was one request: none was sent again through the SDK.
      expect(store.stats.requests).toBe(1 + odd.length * 3);
    } finally {
      store.destroy();
      sdk.destroy();
    }
  });

  it('learn the route from a first GET as well', async () => {
    const store = makeStore(server.endpoint);
    try {
      await store.put('first-get', Buffer.from('abc'));
      expect((await store.get('first-get')).body.toString()).toBe('abc');
      expect(isDirect(store)).toBe(true);
    } finally {
      store.destroy();
    }
  });

  it('answer a missing object with NotFound in one request, and send refused ones again through the SDK', async () => {
    const store = makeStore(server.endpoint);
    try {
      const { etag } = await store.put('exists', Buffer.from('v1'));
      await store.head('exists');
      expect(isDirect(store)).toBe(true);
      const before = store.stats.requests;
      await expect(store.head('missing')).rejects.toMatchObject({ code: 'NotFound' });
      expect(store.stats.requests).toBe(before + 1);
      // A GET's 404 and 412 carry an error document: the SDK reads it and names the error.
      await expect(store.get('missing')).rejects.toMatchObject({ code: 'NotFound' });
      await store.put('exists', Buffer.from('v2'));
      await expect(store.get('exists', { ifMatch: etag })).rejects.toMatchObject({ code: 'PreconditionFailed' });
      expect(store.stats.requests).toBe(before + 1 + 2 + 1 + 2);
    } finally {
      store.destroy();
    }
  });

  it('fail with Aborted when the caller cancels', async () => {
    const store = makeStore(server.endpoint);
    try {
      await store.put('to-cancel', Buffer.from('x'));
      await store.head('to-cancel');
      const controller = new AbortController();
      controller.abort();
      await expect(store.head('to-cancel', { signal: controller.signal })).rejects.toMatchObject({ code: 'Aborted' });
      await expect(store.getStream('to-cancel', { signal: controller.signal })).rejects.toMatchObject({ code: 'Aborted' });
    } finally {
      store.destroy();
    }
  });
});

describe('S3Store direct requests, on a store that answers them differently', () => {
  let fake: Server;
  let endpoint: string;
  /** What the fake store answers a request the SDK did not send (the direct path's). */
  let directStatus = 200;
  const seen: Array<{ method: string; direct: boolean }> = [];

  beforeAll(async () => {
    fake = createServer((req: IncomingMessage, res) => {
      const direct = !String(req.headers['user-agent'] ?? '').includes('aws-sdk');
      seen.push({ method: req.method ?? '', direct });
      const status = direct ? directStatus : 200;
      res.writeHead(status, {
        'content-length': '5',
        etag: '"abc"',
        'last-modified': 'Thu, 03 Dec 2026 10:00:00 GMT',
        'x-amz-meta-mode': '33188',
      });
      res.end(req.method === 'HEAD' || status !== 200 ? undefined : 'hello');
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => fake.close(resolve));
  });

  it('send a request again through the SDK when the direct one gets a status it does not settle, and stop after a redirect', async () => {
    const store = makeStore(endpoint, 'bucket');
    try {
      await store.head('k');
      expect(isDirect(store)).toBe(true);
      directStatus = 503;
      seen.length = 0;
      expect((await store.head('k')).metadata).toEqual({ mode: '33188' });
      expect((await store.get('k')).body.toString()).toBe('hello');
      expect(seen).toEqual([
        { method: 'HEAD', direct: true },
        { method: 'HEAD', direct: false },
        { method: 'GET', direct: true },
        { method: 'GET', direct: false },
      ]);
      directStatus = 301;
      seen.length = 0;
      await store.head('k');
      await store.head('k');
      expect(seen).toEqual([
        { method: 'HEAD', direct: true },
        { method: 'HEAD', direct: false },
        { method: 'HEAD', direct: false },
      ]);
      expect(isDirect(store)).toBe(false);
    } finally {
      store.destroy();
    }
  });
});
