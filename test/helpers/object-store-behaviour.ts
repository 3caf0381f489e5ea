/**
 * What every `ObjectStore` must do, as one suite that a backend's test file runs against its own
 * local server: `describeObjectStoreBehaviour('GcsStore', fixture)`. Written to move into the
 * shared conformance suite (test/conformance/) as it is.
 *
 * `server` says what the local server under test can do at all, so that a gap of an emulator
 * skips a test (visibly, with the reason) instead of passing it or failing the backend.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type ObjectStore, listAll } from '../../src/storage/object-store.js';

export interface ServerAbilities {
  /** The server honours a read's version condition (If-Match, ifGenerationMatch) with 412. */
  conditionalReads: boolean;
  /** The server can finish a multipart upload (for GCS: compose). */
  completeMultipart: boolean;
  /** The server answers a request to a bucket that was never created with "no such bucket". */
  missingBuckets: boolean;
  /** Common prefixes are paged with the objects (a server may repeat them on every page). */
  pagedPrefixes: boolean;
}

export interface StoreFixture<S extends ObjectStore = ObjectStore> {
  /** Starts the server; returns the store under test (on an existing, empty bucket). */
  start(): Promise<S>;
  stop(): Promise<void>;
  /** A store on a bucket that does not exist. */
  storeOnMissingBucket(): S;
  /** Every key under `prefix` as the server has it, bypassing the store (to see temporary objects). */
  rawKeys(prefix: string): Promise<string[]>;
  server: ServerAbilities;
}

export function describeObjectStoreBehaviour<S extends ObjectStore>(name: string, fixture: StoreFixture<S>): void {
  describe(`${name}: ObjectStore behaviour`, () => {
    let store: S;
    const { server } = fixture;

    beforeAll(async () => {
      store = await fixture.start();
    });
    afterAll(async () => {
      await fixture.stop();
    });

    it('puts, heads and gets whole objects and ranges, with metadata and content type', async () => {
      const { etag } = await store.put('obj', Buffer.from('0123456789'), { metadata: { mode: '33188', uid: '7' }, contentType: 'text/plain' });
      expect(etag).not.toBe('');
      const head = await store.head('obj');
      expect(head).toMatchObject({ key: 'obj', size: 10, etag, metadata: { mode: '33188', uid: '7' }, contentType: 'text/plain' });
      const whole = await store.get('obj');
      expect(whole.body.toString()).toBe('0123456789');
      expect(whole.info).toMatchObject({ size: 10, etag, metadata: { mode: '33188', uid: '7' } });
      const ranged = await store.get('obj', { range: { start: 2, end: 5 }, ifMatch: etag });
      expect(ranged.body.toString()).toBe('2345');
      expect(ranged.info).toMatchObject({ size: 10, etag });
      // A range past the end is clipped to it.
      expect((await store.get('obj', { range: { start: 8, end: 100 } })).body.toString()).toBe('89');
    });

    it('reads objects of several MiB whole and in ranges (more than any socket buffer)', async () => {
      const data = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE(i, i);
      const { etag } = await store.put('large', data);
      expect((await store.get('large')).body.equals(data)).toBe(true);
      const ranged = await store.get('large', { range: { start: 1024 * 1024, end: 3 * 1024 * 1024 - 1 }, ifMatch: etag });
      expect(ranged.body.equals(data.subarray(1024 * 1024, 3 * 1024 * 1024))).toBe(true);
      const chunks: Buffer[] = [];
      for await (const chunk of (await store.getStream('large')).body) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    });

    it('reads keys with spaces, unicode and URL syntax in them, and empty directory markers', async () => {
      const key = 'odd dir/ü ?#%+&=.txt';
      await store.put(key, Buffer.from('odd'));
      expect((await store.get(key)).body.toString()).toBe('odd');
      await store.put('marker/', Buffer.alloc(0), { contentType: 'application/x-directory' });
      expect(await store.head('marker/')).toMatchObject({ size: 0, contentType: 'application/x-directory' });
      expect((await store.get('marker/')).body.length).toBe(0);
    });

    it('gives every version a new ETag, the same in listings, heads and gets', async () => {
      const first = await store.put('versions', Buffer.from('v1'));
      const second = await store.put('versions', Buffer.from('v2'));
      expect(second.etag).not.toBe(first.etag);
      const listed = (await store.list({ prefix: 'versions' })).objects.find((o) => o.key === 'versions');
      expect(listed?.etag).toBe(second.etag);
      expect((await store.head('versions')).etag).toBe(second.etag);
    });

    it.skipIf(!server.conditionalReads)('fails a read pinned to an old ETag with PreconditionFailed', async () => {
      const { etag } = await store.put('changes', Buffer.from('v1'));
      await store.put('changes', Buffer.from('v2'));
      await expect(store.get('changes', { ifMatch: etag, range: { start: 0, end: 1 } })).rejects.toMatchObject({ code: 'PreconditionFailed' });
      await expect(store.get('changes', { ifMatch: etag })).rejects.toMatchObject({ code: 'PreconditionFailed' });
    });

    it('pages listings with prefixes and delimiters', async () => {
      const keys = Array.from({ length: 25 }, (_, i) => `list/k${String(i).padStart(2, '0')}`);
      await Promise.all(keys.map((k) => store.put(k, Buffer.from(k))));
      await store.put('list/sub/deep/x', Buffer.from('x'));
      await store.put('list/sub2/y', Buffer.from('y'));
      await store.put('listing-elsewhere', Buffer.from('z'));
      const seen: string[] = [];
      const prefixes: string[] = [];
      let pages = 0;
      for await (const page of listAll(store, { prefix: 'list/', delimiter: '/', maxKeys: 7 })) {
        pages += 1;
        expect(page.objects.length + (server.pagedPrefixes ? page.prefixes.length : 0)).toBeLessThanOrEqual(7);
        seen.push(...page.objects.map((o) => o.key));
        prefixes.push(...page.prefixes);
      }
      expect(pages).toBeGreaterThanOrEqual(4);
      expect(seen).toEqual(keys);
      expect(server.pagedPrefixes ? prefixes : [...new Set(prefixes)]).toEqual(['list/sub/', 'list/sub2/']);
      const flat: string[] = [];
      for await (const page of listAll(store, { prefix: 'list/sub' })) flat.push(...page.objects.map((o) => o.key));
      expect(flat).toEqual(['list/sub/deep/x', 'list/sub2/y']);
      const sized = (await store.list({ prefix: 'list/k00' })).objects[0];
      expect(sized).toMatchObject({ key: 'list/k00', size: 8 });
      expect(sized?.lastModified.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
    });

    it('copies with metadata kept or replaced, and deletes many keys', async () => {
      await store.put('src', Buffer.from('copy me'), { metadata: { mode: '33188' } });
      const kept = await store.copy('src', 'dst kept');
      expect((await store.head('dst kept'))).toMatchObject({ etag: kept.etag, metadata: { mode: '33188' } });
      const replaced = await store.copy('src', 'src', { metadata: { mode: '33261' } });
      expect((await store.head('src'))).toMatchObject({ etag: replaced.etag, metadata: { mode: '33261' } });
      expect((await store.get('src')).body.toString()).toBe('copy me');
      await store.deleteMany(['src', 'dst kept', 'never-existed']);
      await expect(store.head('src')).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.head('dst kept')).rejects.toMatchObject({ code: 'NotFound' });
    });

    it('fails on missing keys with NotFound', async () => {
      await expect(store.head('missing')).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.get('missing')).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.get('missing', { range: { start: 0, end: 9 } })).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.copy('missing', 'anywhere')).rejects.toMatchObject({ code: 'NotFound' });
    });

    it.skipIf(!server.missingBuckets)('fails on a missing bucket with NoSuchBucket', async () => {
      const missing = fixture.storeOnMissingBucket();
      await expect(missing.list({ prefix: '' })).rejects.toMatchObject({ code: 'NoSuchBucket' });
    });

    it.skipIf(!server.completeMultipart)('uploads in parts and completes with the metadata given at creation', async () => {
      const part = (fill: number, size: number) => Buffer.alloc(size, fill);
      const min = Math.max(store.capabilities.minPartSize, 1);
      const sizes = [Math.max(min, 1024), Math.max(min, 1024), 100];
      const id = await store.createMultipartUpload('big', { metadata: { mode: '33152' }, contentType: 'application/x-test' });
      const parts = await Promise.all(sizes.map(async (size, i) => ({ partNumber: i + 1, etag: await store.uploadPart('big', id, i + 1, part(65 + i, size)) })));
      const { etag } = await store.completeMultipartUpload('big', id, parts.reverse());
      const { body, info } = await store.get('big');
      expect(body.equals(Buffer.concat(sizes.map((size, i) => part(65 + i, size))))).toBe(true);
      expect(info).toMatchObject({ etag, metadata: { mode: '33152' }, contentType: 'application/x-test' });
      expect(await fixture.rawKeys('big')).toEqual(['big']);
    });

    it('aborts an upload in parts without leaving anything behind', async () => {
      const id = await store.createMultipartUpload('aborted', { metadata: { mode: '33188' } });
      await store.uploadPart('aborted', id, 1, Buffer.alloc(1024, 1));
      await store.uploadPart('aborted', id, 2, Buffer.alloc(10, 2));
      await store.abortMultipartUpload('aborted', id);
      expect(await fixture.rawKeys('aborted')).toEqual([]);
      await expect(store.head('aborted')).rejects.toMatchObject({ code: 'NotFound' });
      // Aborting again, or an upload that never had a part, is not an error.
      await store.abortMultipartUpload('aborted', id);
    });
  });
}
