/**
 * The direct HEAD, GET and PUT of `S3Store` (s3-direct-requests.ts): once the SDK has shown the
 * way, they answer exactly as the SDK would, and whatever they do not settle goes to the SDK.
 */

import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { sha256OffThread } from '../../src/fuse/binding.js';
import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type PutOptions, StoreError } from '../../src/storage/object-store.js';
import { S3Store, type S3StoreOptions } from '../../src/storage/s3-store.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'direct-test';
let server: LocalS3Server;

function makeStore(endpoint: string, bucket = BUCKET, options: Pick<S3StoreOptions, 'deadlines' | 'payloadSha256'> = {}): S3Store {
  return new S3Store({
    bucket,
    endpoint,
    region: 'us-east-1',
    pathStyle: true,
    credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY }),
    credentialDescription: `access key ${LOCAL_S3_ACCESS_KEY} from the test`,
    maxAttempts: 1,
    ...options,
  });
}

/** Whether the store sends its HEADs, GETs and small PUTs directly now. */
const isDirect = (store: S3Store) => (store as unknown as { direct: { ready: boolean } }).direct.ready;

/** Counts the commands the store sends through its SDK client (the requests that are not direct). */
function countSdkSends(store: S3Store): { commands: string[] } {
  const client = (store as unknown as { client: S3Client }).client;
  const sent = { commands: [] as string[] };
  const send = client.send.bind(client) as (command: object, options?: object) => Promise<unknown>;
  (client as unknown as { send: typeof send }).send = (command, options) => {
    sent.commands.push(command.constructor.name);
    return send(command, options);
  };
  return sent;
}

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

  it('PUT directly once a PUT has shown the way, storing what the SDK stores for the same PUT', async () => {
    const sdk = s3Client(server.endpoint);
    const store = makeStore(server.endpoint);
    const sent = countSdkSends(store);
    try {
      await store.put('put/first', Buffer.from('first'));
      expect(isDirect(store)).toBe(true);
      const bodies = [Buffer.from('small body'), Buffer.alloc(0), Buffer.alloc(300 * 1024, 'x')];
      for (const [i, key] of odd.entries()) {
        const body = bodies[i % bodies.length]!;
        const options = {
          metadata: { mode: String(0o100644 + i), mtime: '1764800000.123456789', 'Mixed-Case': 'v' },
          contentType: i % 2 === 0 ? 'text/plain' : undefined,
        };
        const written = await store.put(`put/${key}`, body, options);
        await sdk.send(
          new PutObjectCommand({
            Bucket: BUCKET,
            Key: `sdk/${key}`,
            Body: body,
            ContentLength: body.length,
            Metadata: options.metadata,
            ContentType: options.contentType,
          }),
        );
        const direct = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: `put/${key}` }));
        const viaSdk = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: `sdk/${key}` }));
        expect(Buffer.from(await direct.Body!.transformToByteArray())).toEqual(body);
        await viaSdk.Body!.transformToByteArray();
        const stored = (out: typeof direct) => ({ size: out.ContentLength, etag: out.ETag, type: out.ContentType, metadata: out.Metadata });
        expect(stored(direct)).toEqual(stored(viaSdk));
        expect(direct.Metadata).toEqual({ mode: String(0o100644 + i), mtime: '1764800000.123456789', 'mixed-case': 'v' });
        expect(direct.ContentType).toBe(options.contentType ?? 'application/octet-stream');
        expect(written.etag).toBe(direct.ETag);
        // The store's Date when it answered: no earlier than the object's time (both to the second).
        expect(written.modifiedBy!.getTime()).toBeGreaterThanOrEqual(direct.LastModified!.getTime());
        expect(Math.abs(written.modifiedBy!.getTime() - Date.now())).toBeLessThan(5_000);
      }
      // Only the first PUT went through the SDK; each PUT was one request.
      expect(sent.commands).toEqual(['PutObjectCommand']);
      expect(store.stats.requests).toBe(1 + odd.length);
      expect(store.stats.byOperation).toEqual({ put: 1 + odd.length });
    } finally {
      store.destroy();
      sdk.destroy();
    }
  });

  it('hash larger bodies with the hasher it is given, and send PUTs from 2 MiB on through the SDK', async () => {
    const hashed: number[] = [];
    const store = makeStore(server.endpoint, BUCKET, {
      payloadSha256: (body) => {
        hashed.push(body.length);
        return sha256OffThread(body);
      },
    });
    const sent = countSdkSends(store);
    try {
      const sizes = [4096, 64 * 1024, 2 * 1024 * 1024 - 1, 2 * 1024 * 1024, 0];
      for (const size of sizes) {
        const body = randomBytes(size);
        await store.put(`hashed/${size}`, body);
        expect(Buffer.compare((await store.get(`hashed/${size}`)).body, body)).toBe(0);
      }
      // The first PUT and the 2 MiB one went through the SDK; only bodies from 64 KiB on were hashed off the JS thread.
      expect(sent.commands.filter((name) => name === 'PutObjectCommand')).toHaveLength(2);
      expect(hashed).toEqual([64 * 1024, 2 * 1024 * 1024 - 1, 2 * 1024 * 1024]);
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
  /** Every request's path and headers, and its body's length. */
  const requests: Array<{ url: string; headers: IncomingMessage['headers']; bodyLength: number }> = [];

  beforeAll(async () => {
    fake = createServer(async (req: IncomingMessage, res) => {
      const direct = !String(req.headers['user-agent'] ?? '').includes('aws-sdk');
      seen.push({ method: req.method ?? '', direct });
      let bodyLength = 0;
      for await (const chunk of req) bodyLength += (chunk as Buffer).length;
      requests.push({ url: req.url ?? '', headers: req.headers, bodyLength });
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
      expect(await store.put('k', Buffer.from('hello'))).toEqual({ etag: '"abc"', modifiedBy: expect.any(Date) });
      expect(seen).toEqual([
        { method: 'HEAD', direct: true },
        { method: 'HEAD', direct: false },
        { method: 'GET', direct: true },
        { method: 'GET', direct: false },
        { method: 'PUT', direct: true },
        { method: 'PUT', direct: false },
      ]);
      // One request per operation, and one more for each sent again.
      expect(store.stats.requests).toBe(1 + 2 * 3);
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

  it('leave keys longer than S3 allows to the SDK, so that their 400 does not end the direct path', async () => {
    const store = makeStore(endpoint, 'bucket');
    try {
      directStatus = 200;
      await store.head('k');
      expect(isDirect(store)).toBe(true);
      directStatus = 400;
      seen.length = 0;
      const long = `${'d/'.repeat(400)}${'é'.repeat(120)}`; // 1,040 bytes in UTF-8
      await store.head(long);
      await store.get(long);
      await store.put(long, Buffer.from('x'));
      expect(seen).toEqual([
        { method: 'HEAD', direct: false },
        { method: 'GET', direct: false },
        { method: 'PUT', direct: false },
      ]);
      expect(isDirect(store)).toBe(true);
    } finally {
      directStatus = 200;
      store.destroy();
    }
  });

  it('send a PUT with the headers, signed alike, that the SDK sends for the same PutObject', async () => {
    directStatus = 200;
    // The SDK's PUT from a store that has not learned the route yet (a PUT teaches it).
    const sdkPut = async (key: string, body: Buffer, options: PutOptions) => {
      const viaSdk = makeStore(endpoint, 'bucket');
      await viaSdk.put(key, body, options).finally(() => viaSdk.destroy());
    };
    const direct = makeStore(endpoint, 'bucket');
    // What the SDK adds for itself (its user agent, invocation id and attempt count, and the
    // `x-id` query) aside, the same headers with the same values, all signed.
    const sdkOnly = ['user-agent', 'x-amz-user-agent', 'amz-sdk-invocation-id', 'amz-sdk-request'];
    const asSent = ({ url, headers, bodyLength }: (typeof requests)[number]) => ({
      path: url.replace(/\?x-id=PutObject$/, ''),
      headers: Object.fromEntries(
        Object.entries(headers)
          .filter(([name]) => !sdkOnly.includes(name) && name !== 'authorization' && name !== 'x-amz-date')
          .sort(),
      ),
      signed: /SignedHeaders=([^,]+),/
        .exec(String(headers.authorization))![1]!
        .split(';')
        .filter((name) => !sdkOnly.includes(name)),
      bodyLength,
    });
    try {
      await direct.head('k');
      const body = Buffer.from('the same bytes');
      const options = { metadata: { mode: '33188', uid: '1000', mtime: '1764800000.5', 'Mixed-Case': 'v' }, contentType: 'text/plain' };
      const sent = [];
      for (const [how, key, bytes, with_] of [
        ['sdk', 'dir/a b+c', body, options],
        ['direct', 'dir/a b+c', body, options],
        ['sdk', 'empty/', Buffer.alloc(0), {}],
        ['direct', 'empty/', Buffer.alloc(0), {}],
      ] as const) {
        requests.length = 0;
        seen.length = 0;
        await (how === 'sdk' ? sdkPut(key, bytes, with_) : direct.put(key, bytes, with_));
        expect(seen).toEqual([{ method: 'PUT', direct: how === 'direct' }]);
        sent.push(asSent(requests[0]!));
      }
      const [viaSdkPut, directPut, sdkEmpty, directEmpty] = sent;
      expect(directPut).toEqual(viaSdkPut);
      expect(directEmpty).toEqual(sdkEmpty);
      expect(directPut).toMatchObject({
        path: '/bucket/dir/a%20b%2Bc',
        headers: {
          'content-length': String(body.length),
          'content-type': 'text/plain',
          'x-amz-meta-mode': '33188',
          'x-amz-meta-mixed-case': 'v',
          'x-amz-content-sha256': createHash('sha256').update(body).digest('hex'),
        },
        bodyLength: body.length,
      });
      expect(directPut!.signed).toEqual(
        expect.arrayContaining(['content-length', 'content-type', 'host', 'x-amz-content-sha256', 'x-amz-meta-mode']),
      );
      expect(directEmpty!.headers['content-type']).toBe('application/octet-stream');
    } finally {
      direct.destroy();
    }
  });
});

describe('S3Store direct PUT, behind the fault proxy on the local S3 server', () => {
  let proxy: FaultProxy;

  beforeAll(async () => {
    proxy = await startFaultProxy(server.endpoint);
  });

  afterAll(async () => {
    await proxy?.close();
  });

  it('send a PUT refused with an error status again through the SDK, whose error is the one the SDK alone gives', async () => {
    const store = makeStore(proxy.endpoint);
    const sent = countSdkSends(store);
    // A store that has not learned the route: its PUT is the SDK's alone.
    const sdkAlone = makeStore(proxy.endpoint);
    const failure = (put: Promise<unknown>) =>
      put.then(() => new Error('the PUT succeeded')).catch((error: unknown) => error as StoreError);
    const fields = (error: StoreError) => ({ name: error.name, code: error.code, storeCode: error.storeCode, message: error.message });
    try {
      await store.put('refused/first', Buffer.from('x'));
      expect(isDirect(store)).toBe(true);
      await proxy.set([{ method: 'PUT', action: 'status', status: 403, code: 'AccessDenied' }]);
      const error = await failure(store.put('refused/k', Buffer.from('y'), { metadata: { mode: '33188' } }));
      const alone = await failure(sdkAlone.put('refused/k', Buffer.from('y'), { metadata: { mode: '33188' } }));
      expect(error).toBeInstanceOf(StoreError);
      expect(fields(error)).toEqual(fields(alone));
      expect(error.code).toBe('AccessDenied');
      // The direct PUT, the same PUT through the SDK, and the other store's.
      expect((await proxy.counts()).matched).toEqual([3]);
      expect(sent.commands).toEqual(['PutObjectCommand', 'PutObjectCommand']);
      expect(store.stats.requests).toBe(1 + 2);
      expect(isDirect(store)).toBe(true);

      // Refused once (503), or cut off before its answer: the SDK's PUT stores it.
      for (const rule of [{ action: 'status', status: 503, code: 'SlowDown' } as const, { action: 'reset' } as const]) {
        await proxy.set([{ method: 'PUT', times: 1, ...rule }]);
        sent.commands.length = 0;
        const written = await store.put(`refused/${rule.action}`, Buffer.from(rule.action), { contentType: 'text/plain' });
        expect((await proxy.counts()).matched).toEqual([1]);
        expect(sent.commands).toEqual(['PutObjectCommand']);
        const stored = await store.get(`refused/${rule.action}`);
        expect(stored.body.toString()).toBe(rule.action);
        expect(stored.info).toMatchObject({ etag: written.etag, contentType: 'text/plain' });
      }
      expect(isDirect(store)).toBe(true);

      // A 400 stops the direct path for good.
      await proxy.set([{ method: 'PUT', action: 'status', status: 400, code: 'InvalidRequest', times: 2 }]);
      await expect(store.put('refused/400', Buffer.from('z'))).rejects.toBeInstanceOf(StoreError);
      expect(isDirect(store)).toBe(false);
      await proxy.set([]);
      sent.commands.length = 0;
      await store.put('refused/400', Buffer.from('z'));
      expect(sent.commands).toEqual(['PutObjectCommand']);
    } finally {
      await proxy.set([]);
      store.destroy();
      sdkAlone.destroy();
    }
  });

  it('end a direct PUT the store never answers at its deadline, with TimedOut, and not send it again', async () => {
    const store = makeStore(proxy.endpoint, BUCKET, { deadlines: { requestMs: 1000, minBytesPerSecond: 1024 ** 3 } });
    const sent = countSdkSends(store);
    try {
      await store.put('hung/first', Buffer.from('x'));
      expect(isDirect(store)).toBe(true);
      await proxy.set([{ method: 'PUT', action: 'hang' }]);
      await expect(store.put('hung/k', Buffer.from('y'))).rejects.toMatchObject({ name: 'StoreError', code: 'TimedOut' });
      expect((await proxy.counts()).matched).toEqual([1]);
      expect(sent.commands).toEqual(['PutObjectCommand']);
      await proxy.set([]);
      await store.put('hung/k', Buffer.from('y'));
      expect((await store.get('hung/k')).body.toString()).toBe('y');
      expect(sent.commands).toEqual(['PutObjectCommand']);
    } finally {
      await proxy.set([]);
      store.destroy();
    }
  });
});
