/**
 * What `SwiftStore` does beyond the conformance suite, on a real Swift: tokens renewed on 401,
 * large objects' segments deleted with them, Dynamic Large Objects and the Swift tools' directory
 * objects read, and the one-line errors of a wrong key, a missing container and an auth URL that
 * is not an auth endpoint.
 */

import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  type LocalSwift,
  SWIFT_READER_KEY,
  SWIFT_READER_USER,
  SWIFT_TEST_KEY,
  SWIFT_TEST_USER,
  startLocalSwift,
  swiftToken,
} from '../../src/demo/local-swift.js';
import { listAll } from '../../src/storage/object-store.js';
import { SwiftSession } from '../../src/storage/swift-auth.js';
import { type HttpRequest, SwiftHttp } from '../../src/storage/swift-http.js';
import { SwiftStore, type SwiftStoreOptions } from '../../src/storage/swift-store.js';

const CONTAINER = 'store';
let swift: LocalSwift;
let store: SwiftStore;
let token: string;
const stores: SwiftStore[] = [];

function make(overrides: Partial<SwiftStoreOptions> = {}): SwiftStore {
  const made = new SwiftStore({
    container: CONTAINER,
    credentials: { authUrl: swift.authUrl, user: SWIFT_TEST_USER, key: SWIFT_TEST_KEY },
    credentialDescription: `user '${SWIFT_TEST_USER}' from the test`,
    maxAttempts: 2,
    ...overrides,
  });
  stores.push(made);
  return made;
}

/** Raw Swift requests with the admin's token (what another tool would do). */
async function raw(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Response> {
  return fetch(`${swift.storageUrl}/${path}`, { method, headers: { 'x-auth-token': token, ...headers }, body });
}

async function segmentNames(prefix: string): Promise<string[]> {
  const response = await raw('GET', `${CONTAINER}_segments?format=json&prefix=${encodeURIComponent(prefix)}`);
  if (response.status === 404) return [];
  return ((await response.json()) as Array<{ name: string }>).map((entry) => entry.name);
}

/** tempauth keeps its tokens in memcached: emptying it revokes every token at once. */
function flushTokens(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(swift.memcachedPort, '127.0.0.1', () => socket.write('flush_all\r\n'));
    socket.once('data', (data) => {
      socket.end();
      if (data.toString().startsWith('OK')) resolve();
      else reject(new Error(`memcached said ${data.toString()}`));
    });
    socket.once('error', reject);
  });
}

async function uploadLarge(key: string, parts: Buffer[]): Promise<string> {
  const id = await store.createMultipartUpload(key, { metadata: { mode: '33188' } });
  const etags = [];
  for (const [i, part] of parts.entries()) etags.push({ partNumber: i + 1, etag: await store.uploadPart(key, id, i + 1, part) });
  return (await store.completeMultipartUpload(key, id, etags)).etag;
}

beforeAll(async () => {
  swift = await startLocalSwift({ containers: [CONTAINER] });
  token = await swiftToken(swift.authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
  store = make();
});

afterAll(async () => {
  for (const made of stores) made.destroy();
  await swift?.close();
});

describe('SwiftStore', () => {
  it('renews a revoked token once and finishes the operation', async () => {
    await store.put('token/a', Buffer.from('before'));
    await flushTokens();
    const failuresBefore = store.stats.failures;
    expect((await store.get('token/a')).body.toString()).toBe('before');
    await store.put('token/b', Buffer.from('after'));
    expect(store.stats.failures).toBe(failuresBefore);
    token = await swiftToken(swift.authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
  });

  it('works with a pre-issued token and storage URL, and says so when that token is revoked (nothing to renew it with)', async () => {
    const issued = await swiftToken(swift.authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
    const pinned = make({
      credentials: { authToken: issued, storageUrl: swift.storageUrl },
      credentialDescription: 'the token from OS_AUTH_TOKEN',
    });
    await pinned.put('pinned/a', Buffer.from('with a given token'));
    expect((await pinned.get('pinned/a')).body.toString()).toBe('with a given token');
    await flushTokens();
    const error = await pinned.get('pinned/a').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'InvalidCredentials' });
    expect((error as Error).message).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/v1\/AUTH_test: the store refused the token from OS_AUTH_TOKEN \(HTTP 401/,
    );
    expect((error as Error).message).not.toContain(issued);
    token = await swiftToken(swift.authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
  });

  it('gives every socket back after a HEAD: many lookups through one connection all finish', async () => {
    // An unread HEAD answer held its socket until the idle timeout (here far beyond the test's).
    const one = make({ maxConnections: 1, idleTimeoutMs: 600_000 });
    await one.put('sockets/there', Buffer.from('x'));
    for (let i = 0; i < 5; i++) {
      await expect(one.head(`sockets/missing-${i}`)).rejects.toMatchObject({ code: 'NotFound' });
      await expect(one.head(`sockets/missing-${i}/`)).rejects.toMatchObject({ code: 'NotFound' });
      expect((await one.head('sockets/there')).size).toBe(1);
    }
  });

  it('renews the token a minute before the expiry the server announced, once for all who ask', async () => {
    const sent: string[] = [];
    const http = new (class extends SwiftHttp {
      override send(request: HttpRequest) {
        sent.push(request.url);
        return super.send(request);
      }
    })();
    let clock = Date.now();
    const session = new SwiftSession({ authUrl: swift.authUrl, user: SWIFT_TEST_USER, key: SWIFT_TEST_KEY }, http, () => clock);
    try {
      const first = await session.token();
      expect(first.storageUrl).toBe(swift.storageUrl);
      expect(first.expiresAt).toBeGreaterThan(clock + 3_600_000); // tempauth: a day
      await Promise.all([session.token(), session.token()]);
      expect(sent).toEqual([swift.authUrl]);
      clock = first.expiresAt! - 61_000;
      await session.token();
      expect(sent).toHaveLength(1);
      clock = first.expiresAt! - 59_000;
      await Promise.all([session.token(), session.token(), session.token()]);
      expect(sent).toEqual([swift.authUrl, swift.authUrl]);
    } finally {
      http.destroy();
    }
  });

  it('stores a large file as an SLO whose segments go when it is overwritten or deleted', async () => {
    const parts = [randomBytes(1024 * 1024), randomBytes(1024 * 1024), Buffer.from('end')];
    const etag = await uploadLarge('large/file', parts);
    const head = await raw('HEAD', `${CONTAINER}/large/file`);
    expect(head.headers.get('x-static-large-object')).toBe('True');
    expect(await segmentNames('large/file/')).toHaveLength(3);
    const listed = (await store.list({ prefix: 'large/' })).objects[0]!;
    expect(listed).toMatchObject({ key: 'large/file', size: 2 * 1024 * 1024 + 3, etag });
    expect((await store.get('large/file', { range: { start: 1024 * 1024 - 1, end: 1024 * 1024 }, ifMatch: etag })).body).toEqual(
      Buffer.from([parts[0]![1024 * 1024 - 1]!, parts[1]![0]!]),
    );

    // Overwritten by another SLO: only the new one's segments are left.
    await uploadLarge('large/file', [randomBytes(1024 * 1024), Buffer.from('new end')]);
    const after = await segmentNames('large/file/');
    expect(after).toHaveLength(2);
    // Overwritten by a small file (through a store that has never seen the key), then deleted.
    await make().put('large/file', Buffer.from('small now'));
    expect(await segmentNames('large/file/')).toEqual([]);
    await uploadLarge('large/other', [randomBytes(1024 * 1024), Buffer.from('x')]);
    await make().deleteMany(['large/other']);
    expect(await segmentNames('large/other/')).toEqual([]);
    await expect(store.head('large/other')).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('uploads large files as a user who may not create containers, when the ACLs grant the container and its segment container', async () => {
    const acl = { 'x-container-read': SWIFT_READER_USER, 'x-container-write': SWIFT_READER_USER };
    await raw('PUT', 'granted', acl);
    await raw('PUT', 'granted_segments', acl);
    const reader = make({ container: 'granted', credentials: { authUrl: swift.authUrl, user: SWIFT_READER_USER, key: SWIFT_READER_KEY } });
    const id = await reader.createMultipartUpload('big');
    const etags = [
      { partNumber: 1, etag: await reader.uploadPart('big', id, 1, randomBytes(1024 * 1024)) },
      { partNumber: 2, etag: await reader.uploadPart('big', id, 2, Buffer.from('end')) },
    ];
    await reader.completeMultipartUpload('big', id, etags);
    expect((await reader.head('big')).size).toBe(1024 * 1024 + 3);
    // Without a segment container it says what is missing.
    await raw('PUT', 'granted-alone', acl);
    const alone = make({
      container: 'granted-alone',
      credentials: { authUrl: swift.authUrl, user: SWIFT_READER_USER, key: SWIFT_READER_KEY },
    });
    await expect(alone.createMultipartUpload('big')).rejects.toMatchObject({
      code: 'AccessDenied',
      message: expect.stringMatching(/cannot create the container 'granted-alone_segments' for the segments of large files/),
    });
  });

  it('aborting an upload deletes its segments, also through a store that did not start it', async () => {
    const id = await store.createMultipartUpload('aborted/file');
    await store.uploadPart('aborted/file', id, 1, randomBytes(1024 * 1024));
    await store.uploadPart('aborted/file', id, 2, randomBytes(10));
    expect(await segmentNames(`aborted/file/slo/${id}/`)).toHaveLength(2);
    await make().abortMultipartUpload('aborted/file', id);
    expect(await segmentNames(`aborted/file/`)).toEqual([]);
  });

  it('reads a Dynamic Large Object made by another tool: its size in listings, ranges, the whole', async () => {
    await raw('PUT', `${CONTAINER}_segments`);
    await raw('PUT', `${CONTAINER}_segments/dlo/seg/0001`, {}, 'AAAA');
    await raw('PUT', `${CONTAINER}_segments/dlo/seg/0002`, {}, 'BBBB');
    await raw(
      'PUT',
      `${CONTAINER}/dlo/file`,
      { 'x-object-manifest': `${CONTAINER}_segments/dlo/seg/`, 'x-object-meta-mtime': '1700000000.5' },
      '',
    );
    const listed = (await store.list({ prefix: 'dlo/', delimiter: '/' })).objects;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ key: 'dlo/file', size: 8 });
    const head = await store.head('dlo/file');
    expect(head).toMatchObject({ size: 8, etag: listed[0]!.etag, metadata: { mtime: '1700000000.5' } });
    expect((await store.get('dlo/file')).body.toString()).toBe('AAAABBBB');
    expect((await store.get('dlo/file', { range: { start: 3, end: 4 }, ifMatch: head.etag })).body.toString()).toBe('AB');
    // chmod, chown and utimens copy an object onto itself with new metadata: a DLO stays a DLO.
    await store.copy('dlo/file', 'dlo/file', { metadata: { mode: '33152', mtime: '1700000001' } });
    expect((await store.get('dlo/file')).body.toString()).toBe('AAAABBBB');
    expect((await store.head('dlo/file')).metadata).toEqual({ mode: '33152', mtime: '1700000001' });
  });

  it("reads the Swift tools' application/directory objects as directories, and deletes them with the directory", async () => {
    await raw('PUT', `${CONTAINER}/tools/dir`, { 'content-type': 'application/directory' }, '');
    await raw('PUT', `${CONTAINER}/tools/dir/inside`, {}, 'x');
    const page = await store.list({ prefix: 'tools/', delimiter: '/' });
    expect(page).toMatchObject({ objects: [], prefixes: ['tools/dir/'] });
    await expect(store.head('tools/dir')).rejects.toMatchObject({ code: 'NotFound' });
    expect((await store.head('tools/dir/')).key).toBe('tools/dir/');
    await store.deleteMany(['tools/dir/inside', 'tools/dir/']);
    const left: string[] = [];
    for await (const listing of listAll(store, { prefix: 'tools/' })) left.push(...listing.objects.map((o) => o.key));
    expect(left).toEqual([]);
  });

  it('says in one line what is wrong: the key, the container, the auth URL', async () => {
    const wrongKey = await make({ credentials: { authUrl: swift.authUrl, user: SWIFT_TEST_USER, key: 'wrong-key' } })
      .probe('')
      .catch((e: unknown) => e);
    expect(wrongKey).toMatchObject({ code: 'InvalidCredentials' });
    expect((wrongKey as Error).message).toMatch(/refused user 'test:tester'.*check the user name .* and the key/);
    expect((wrongKey as Error).message).not.toContain('wrong-key');
    const missing = await make({ container: 'nope' })
      .probe('')
      .catch((e: unknown) => e);
    expect((missing as Error).message).toBe(`container 'nope' does not exist at ${swift.storageUrl}`);
    const notAuth = await make({
      credentials: { authUrl: `${swift.storageUrl}/${CONTAINER}`, authVersion: '1', user: SWIFT_TEST_USER, key: SWIFT_TEST_KEY },
    })
      .probe('')
      .catch((e: unknown) => e);
    expect(notAuth).toMatchObject({ code: 'InvalidCredentials' });
    const notKeystone = await make({
      credentials: { authUrl: `http://127.0.0.1:${swift.port}/v3`, user: 'u', key: 'secret-password', tenant: 'p', domain: 'Default' },
    })
      .probe('')
      .catch((e: unknown) => e);
    expect((notKeystone as Error).message).toMatch(/did not answer as Keystone v3 does \(HTTP \d+\): check the auth URL/);
    expect((notKeystone as Error).message).not.toContain('secret-password');
    expect((await make().listContainers()).sort()).toEqual(expect.arrayContaining([CONTAINER, `${CONTAINER}_segments`]));
    // An auth service that cannot be reached is tried again like the store, then named.
    const nowhere = make({ credentials: { authUrl: 'http://127.0.0.1:1/auth/v1.0', user: SWIFT_TEST_USER, key: SWIFT_TEST_KEY } });
    const unreachable = await nowhere.probe('').catch((e: unknown) => e);
    expect(unreachable).toMatchObject({
      code: 'Unreachable',
      message: 'cannot reach http://127.0.0.1:1/auth/v1.0 (ECONNREFUSED): check the auth URL and the network',
    });
    expect(nowhere.stats.retries).toBe(1); // maxAttempts 2
  });
});
