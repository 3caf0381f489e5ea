/**
 * The one conformance suite every `ObjectStore` runs: what the layers above rely on, asserted on
 * the store's answers alone (bytes, listings, error codes). A test file per backend calls
 * `describeObjectStore` with a target that builds its stores.
 *
 * Where backends genuinely differ, the store's capabilities say so and the suite asserts the
 * other behaviour (a store without part copy must refuse it with `InvalidRequest`). A behaviour a
 * backend cannot have at all (a wrong key, or a missing bucket, on a store that has neither), or
 * that the local server standing in for the real service lacks (the GCS emulator ignores
 * preconditions and has no compose), is not asked of it: `features` says why, and the test is
 * skipped visibly rather than passed.
 */

import { randomBytes } from 'node:crypto';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type ListPage, type ObjectStore, listAll } from '../../src/storage/object-store.js';

export interface ConformanceTarget {
  /** The store under test; keys of each test live under a prefix of their own. */
  store: ObjectStore;
  /** The same bucket reached with a wrong secret, or undefined for a store without credentials. */
  withWrongCredentials?: () => ObjectStore;
  /** A store on a bucket that does not exist, or undefined when the store has no buckets. */
  withMissingBucket?: () => ObjectStore;
  /** The secret that `withWrongCredentials` used, which no message may contain. */
  wrongSecret?: string;
  /**
   * Every key under `prefix` as the server has it, bypassing the store (GCS: temporary part
   * objects too); default: the store's own flat listing.
   */
  rawKeys?: (prefix: string) => Promise<string[]>;
  close(): Promise<void>;
}

/** Why a test does not apply to a backend (each a reason, shown as the skipped test's name). */
export interface ConformanceFeatures {
  /** The store has no credentials (no wrong-secret test). */
  noCredentials?: string;
  /** The store has no buckets, or its server makes any bucket asked for (no missing-bucket test). */
  noMissingBuckets?: string;
  /** The server ignores a read's version condition (no PreconditionFailed to expect). */
  noConditionalReads?: string;
  /** The server cannot complete a multipart upload (GCS: compose). */
  noMultipartComplete?: string;
  /**
   * The server repeats a listing's common prefixes on every page: a page's prefixes are not
   * counted in `maxKeys`, and the prefixes are compared without repeats.
   */
  repeatsPrefixes?: boolean;
}

/** `it`, or a visibly skipped `it` named with the reason. */
function itUnless(reason: string | undefined, name: string, test: () => Promise<void>): void {
  if (reason === undefined) it(name, test);
  else it.skip(`${name} (not here: ${reason})`, test);
}

let run = 0;

export function describeObjectStore(name: string, open: () => Promise<ConformanceTarget>, features: ConformanceFeatures = {}): void {
  describe(`ObjectStore conformance: ${name}`, () => {
    let target: ConformanceTarget;
    let store: ObjectStore;
    /** A fresh prefix per test, so tests never see each other's keys. */
    let prefix = '';
    const fresh = () => (prefix = `conformance-${process.pid}-${++run}/`);
    /** Every key under `under` as the server has it (the store's flat listing, unless the target sees more). */
    const rawKeys = async (under: string): Promise<string[]> => {
      if (target.rawKeys) return (await target.rawKeys(under)).sort();
      const keys: string[] = [];
      for await (const page of listAll(store, { prefix: under })) keys.push(...page.objects.map((o) => o.key));
      return keys.sort();
    };

    beforeAll(async () => {
      target = await open();
      store = target.store;
    });
    afterAll(async () => {
      await target?.close();
    });

    it('round-trips bytes, size, content type and metadata (names with dashes too)', async () => {
      fresh();
      const body = randomBytes(1000);
      const metadata = { mode: '33188', uid: '1000', gid: '1000', mtime: '1700000000.250000000', 'x-custom-name': 'v' };
      const { etag } = await store.put(`${prefix}obj`, body, { metadata, contentType: 'text/plain' });
      expect(etag).not.toBe('');
      const head = await store.head(`${prefix}obj`);
      expect(head).toMatchObject({ key: `${prefix}obj`, size: 1000, etag, metadata, contentType: 'text/plain' });
      expect(head.lastModified).toBeInstanceOf(Date);
      const got = await store.get(`${prefix}obj`);
      expect(got.body.equals(body)).toBe(true);
      expect(got.info).toMatchObject({ size: 1000, etag, metadata });
      await store.put(`${prefix}empty`, Buffer.alloc(0));
      expect((await store.get(`${prefix}empty`)).body.length).toBe(0);
      expect((await store.head(`${prefix}empty`)).size).toBe(0);
    });

    it('reads ranges, clipped at the end of the object, and reports the whole size', async () => {
      fresh();
      const body = Buffer.from('0123456789');
      await store.put(`${prefix}r`, body);
      const middle = await store.get(`${prefix}r`, { range: { start: 2, end: 5 } });
      expect(middle.body.toString()).toBe('2345');
      expect(middle.info.size).toBe(10);
      const clipped = await store.get(`${prefix}r`, { range: { start: 7, end: 1000 } });
      expect(clipped.body.toString()).toBe('789');
      expect(clipped.info.size).toBe(10);
      expect((await store.get(`${prefix}r`, { range: { start: 9, end: 9 } })).body.toString()).toBe('9');
      // A range that starts past the end is refused (HTTP 416 on S3 and Azure), not an empty read.
      await expect(store.get(`${prefix}r`, { range: { start: 10, end: 20 } })).rejects.toMatchObject({ code: 'InvalidRequest' });
      const stream = await store.getStream(`${prefix}r`, { range: { start: 1, end: 3 } });
      const chunks: Buffer[] = [];
      for await (const chunk of stream.body) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe('123');
    });

    it('reads a body into the buffer given when it is exactly as long as the body, else into its own', async () => {
      fresh();
      const body = randomBytes(300_000); // several chunks of a socket
      await store.put(`${prefix}into`, body);
      const into = Buffer.alloc(100_000, 0xaa);
      const got = await store.get(`${prefix}into`, { range: { start: 1000, end: 100_999 }, into });
      expect(got.body).toBe(into);
      expect(into.equals(body.subarray(1000, 101_000))).toBe(true);
      const other = Buffer.alloc(100_001, 0xaa);
      const clipped = await store.get(`${prefix}into`, { range: { start: 200_000, end: 300_000 }, into: other }); // 100,000 bytes: not other's length
      expect(clipped.body).not.toBe(other);
      expect(clipped.body.equals(body.subarray(200_000))).toBe(true);
      expect(other.every((byte) => byte === 0xaa)).toBe(true);
    });

    itUnless(
      features.noConditionalReads,
      'reads pinned to an ETag: the same version is served, a replaced one fails with PreconditionFailed',
      async () => {
        fresh();
        const { etag } = await store.put(`${prefix}v`, Buffer.from('version 1'));
        expect((await store.get(`${prefix}v`, { ifMatch: etag, range: { start: 0, end: 6 } })).body.toString()).toBe('version');
        const second = await store.put(`${prefix}v`, Buffer.from('version 2'));
        expect(second.etag).not.toBe(etag);
        await expect(store.get(`${prefix}v`, { ifMatch: etag })).rejects.toMatchObject({ code: 'PreconditionFailed' });
        await expect(store.get(`${prefix}v`, { ifMatch: etag, range: { start: 0, end: 3 } })).rejects.toMatchObject({
          code: 'PreconditionFailed',
        });
        await expect(store.getStream(`${prefix}v`, { ifMatch: etag })).rejects.toMatchObject({ code: 'PreconditionFailed' });
        expect((await store.get(`${prefix}v`, { ifMatch: second.etag })).body.toString()).toBe('version 2');
      },
    );

    it('reads objects of several MiB whole, in ranges and as a stream (more than any socket buffer)', async () => {
      fresh();
      const data = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i + 4 <= data.length; i += 4) data.writeUInt32LE(i, i);
      const { etag } = await store.put(`${prefix}large`, data);
      expect((await store.get(`${prefix}large`)).body.equals(data)).toBe(true);
      const ranged = await store.get(`${prefix}large`, { range: { start: 1024 * 1024, end: 3 * 1024 * 1024 - 1 }, ifMatch: etag });
      expect(ranged.body.equals(data.subarray(1024 * 1024, 3 * 1024 * 1024))).toBe(true);
      const chunks: Buffer[] = [];
      for await (const chunk of (await store.getStream(`${prefix}large`)).body) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
    });

    it('gives every version a new ETag, the same in listings, heads and gets', async () => {
      fresh();
      const first = await store.put(`${prefix}versions`, Buffer.from('v1'));
      const second = await store.put(`${prefix}versions`, Buffer.from('v2'));
      expect(second.etag).not.toBe(first.etag);
      const listed = (await store.list({ prefix: `${prefix}versions` })).objects.find((o) => o.key === `${prefix}versions`);
      expect(listed?.etag).toBe(second.etag);
      expect((await store.head(`${prefix}versions`)).etag).toBe(second.etag);
      expect((await store.get(`${prefix}versions`)).info.etag).toBe(second.etag);
    });

    it('keeps empty directory markers with their content type', async () => {
      fresh();
      await store.put(`${prefix}marker/`, Buffer.alloc(0), { contentType: 'application/x-directory' });
      expect(await store.head(`${prefix}marker/`)).toMatchObject({ size: 0, contentType: 'application/x-directory' });
      expect((await store.get(`${prefix}marker/`)).body.length).toBe(0);
    });

    it('fails with NotFound for a missing key', async () => {
      fresh();
      await expect(store.head(`${prefix}missing`)).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.get(`${prefix}missing`)).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.get(`${prefix}missing`, { range: { start: 0, end: 9 } })).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.copy(`${prefix}missing`, `${prefix}copy`)).rejects.toMatchObject({ code: 'NotFound' });
    });

    it('pages listings by maxKeys and tokens, with prefixes and delimiters, in key order', async () => {
      fresh();
      const files = Array.from({ length: 23 }, (_, i) => `${prefix}k${String(i).padStart(2, '0')}`);
      const deep = [`${prefix}sub/deep/x`, `${prefix}sub/y`, `${prefix}sub2/z`, `${prefix}dir/`];
      await Promise.all([...files, ...deep].map((key) => store.put(key, Buffer.from(key))));
      await store.put(`${prefix.slice(0, -1)}-outside`, Buffer.from('not under the prefix'));

      const pages: ListPage[] = [];
      for await (const page of listAll(store, { prefix, delimiter: '/', maxKeys: 5 })) pages.push(page);
      const repeats = features.repeatsPrefixes === true;
      for (const page of pages) expect(page.objects.length + (repeats ? 0 : page.prefixes.length)).toBeLessThanOrEqual(5);
      expect(pages.length).toBeGreaterThanOrEqual(repeats ? 5 : 6);
      expect(pages.flatMap((p) => p.objects.map((o) => o.key))).toEqual(files);
      const prefixes = pages.flatMap((p) => p.prefixes);
      expect(repeats ? [...new Set(prefixes)] : prefixes).toEqual([`${prefix}dir/`, `${prefix}sub/`, `${prefix}sub2/`]);
      const first = pages[0]!.objects[0]!;
      expect(first).toMatchObject({ key: files[0], size: files[0]!.length });
      expect(first.lastModified.getTime()).toBeGreaterThan(Date.now() - 10 * 60_000);
      // The same version has the same ETag in a listing as in a HEAD (caches and If-Match rely on it).
      expect(first.etag).toBe((await store.head(files[0]!)).etag);
      expect(first.lastModified).toBeInstanceOf(Date);

      // One level down, and flat (no delimiter): everything under the prefix, markers included.
      const sub = await store.list({ prefix: `${prefix}sub/`, delimiter: '/' });
      expect(sub.objects.map((o) => o.key)).toEqual([`${prefix}sub/y`]);
      const under: string[] = [];
      for await (const page of listAll(store, { prefix: `${prefix}sub` })) under.push(...page.objects.map((o) => o.key));
      expect(under).toEqual([`${prefix}sub/deep/x`, `${prefix}sub/y`, `${prefix}sub2/z`]); // a prefix that is not a directory
      expect(sub.prefixes).toEqual([`${prefix}sub/deep/`]);
      const flat: string[] = [];
      for await (const page of listAll(store, { prefix, maxKeys: 10 })) flat.push(...page.objects.map((o) => o.key));
      expect(flat).toEqual([...files, ...deep].sort());

      // A page of exactly the rest has no token, and an empty prefix lists nothing.
      const all = await store.list({ prefix: `${prefix}sub/`, maxKeys: 2 });
      expect(all.objects.map((o) => o.key)).toEqual([`${prefix}sub/deep/x`, `${prefix}sub/y`]);
      expect(all.nextToken).toBeUndefined();
      expect(await store.list({ prefix: `${prefix}nothing/`, delimiter: '/' })).toEqual({
        objects: [],
        prefixes: [],
        nextToken: undefined,
      });
    });

    itUnless(
      features.noMultipartComplete,
      'completes a multipart upload from parts sent out of order, with the metadata given at its creation',
      async () => {
        fresh();
        const partSize = store.capabilities.minPartSize;
        const part1 = randomBytes(partSize);
        const part2 = randomBytes(partSize);
        const part3 = Buffer.from('tail');
        const key = `${prefix}multi`;
        const id = await store.createMultipartUpload(key, {
          metadata: { mode: '33188', mtime: '1700000000' },
          contentType: 'application/x-test',
        });
        const etag3 = await store.uploadPart(key, id, 3, part3);
        const etag1 = await store.uploadPart(key, id, 1, part1);
        const etag2 = await store.uploadPart(key, id, 2, part2);
        // Not visible before completion.
        await expect(store.head(key)).rejects.toMatchObject({ code: 'NotFound' });
        const { etag } = await store.completeMultipartUpload(key, id, [
          { partNumber: 1, etag: etag1 },
          { partNumber: 2, etag: etag2 },
          { partNumber: 3, etag: etag3 },
        ]);
        const got = await store.get(key);
        expect(got.body.equals(Buffer.concat([part1, part2, part3]))).toBe(true);
        expect(got.info).toMatchObject({
          etag,
          size: 2 * partSize + 4,
          metadata: { mode: '33188', mtime: '1700000000' },
          contentType: 'application/x-test',
        });
        // The completed object's ETag pins reads like any other.
        expect((await store.get(key, { ifMatch: etag, range: { start: 0, end: 0 } })).body[0]).toBe(part1[0]);
        // Nothing of the parts is left beside the object (GCS keeps parts as objects until compose).
        expect(await rawKeys(prefix)).toEqual([key]);
      },
    );

    it('aborts a multipart upload: nothing appears, and the upload cannot be completed afterwards', async () => {
      fresh();
      const key = `${prefix}aborted`;
      const id = await store.createMultipartUpload(key);
      const etag = await store.uploadPart(key, id, 1, Buffer.from('never'));
      await store.abortMultipartUpload(key, id);
      expect(await rawKeys(prefix)).toEqual([]);
      await expect(store.completeMultipartUpload(key, id, [{ partNumber: 1, etag }])).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.uploadPart(key, id, 2, Buffer.from('late'))).rejects.toMatchObject({ code: 'NotFound' });
      await expect(store.head(key)).rejects.toMatchObject({ code: 'NotFound' });
      // Aborting again (a journal's recovery may) is not an error.
      await store.abortMultipartUpload(key, id);
    });

    it('copies part of an object into a multipart upload pinned to its ETag, or refuses when it cannot', async () => {
      fresh();
      const partSize = store.capabilities.minPartSize;
      const source = randomBytes(partSize + 10);
      const { etag: sourceEtag } = await store.put(`${prefix}source`, source);
      const key = `${prefix}assembled`;
      const id = await store.createMultipartUpload(key);
      const range = { start: 0, end: partSize - 1 };
      if (!store.capabilities.partCopy) {
        await expect(store.uploadPartCopy(key, id, 1, { key: `${prefix}source`, range, ifMatch: sourceEtag })).rejects.toMatchObject({
          code: 'InvalidRequest',
        });
        await store.abortMultipartUpload(key, id);
        return;
      }
      const etag1 = await store.uploadPartCopy(key, id, 1, { key: `${prefix}source`, range, ifMatch: sourceEtag });
      const etag2 = await store.uploadPart(key, id, 2, Buffer.from('new end'));
      await store.completeMultipartUpload(key, id, [
        { partNumber: 1, etag: etag1 },
        { partNumber: 2, etag: etag2 },
      ]);
      expect((await store.get(key)).body.equals(Buffer.concat([source.subarray(0, partSize), Buffer.from('new end')]))).toBe(true);
      await store.put(`${prefix}source`, Buffer.from('changed'));
      const stale = await store.createMultipartUpload(`${prefix}stale`);
      await expect(
        store.uploadPartCopy(`${prefix}stale`, stale, 1, { key: `${prefix}source`, range: { start: 0, end: 3 }, ifMatch: sourceEtag }),
      ).rejects.toMatchObject({
        code: 'PreconditionFailed',
      });
      await store.abortMultipartUpload(`${prefix}stale`, stale);
    });

    it('copies with the metadata kept, or replaced, also onto the object itself', async () => {
      fresh();
      const body = Buffer.from('copy me');
      await store.put(`${prefix}src`, body, { metadata: { mode: '33188', uid: '7' }, contentType: 'text/plain' });
      await store.copy(`${prefix}src`, `${prefix}kept`);
      const kept = await store.get(`${prefix}kept`);
      expect(kept.body.equals(body)).toBe(true);
      expect(kept.info).toMatchObject({ metadata: { mode: '33188', uid: '7' }, contentType: 'text/plain' });
      await store.copy(`${prefix}src`, `${prefix}replaced`, { metadata: { mode: '33261' }, contentType: 'text/plain' });
      expect((await store.head(`${prefix}replaced`)).metadata).toEqual({ mode: '33261' });
      const { etag } = await store.copy(`${prefix}src`, `${prefix}src`, {
        metadata: { mode: '33152', mtime: '1700000001' },
        contentType: 'text/plain',
      });
      const self = await store.get(`${prefix}src`);
      expect(self.body.equals(body)).toBe(true);
      expect(self.info).toMatchObject({ etag, metadata: { mode: '33152', mtime: '1700000001' } });
    });

    it("keeps a special file's metadata (type bits in mode, rdev) on an empty object: put, head, listing, copies", async () => {
      fresh();
      // A character device 1,3 and a FIFO, mode 0644, as objmount's mknod (and s3fs) writes them.
      const device = { mode: '8612', rdev: '259', uid: '1001', gid: '1002', mtime: '1700000000' };
      await store.put(`${prefix}chr`, Buffer.alloc(0), { metadata: device, contentType: 'application/octet-stream' });
      await store.put(`${prefix}fifo`, Buffer.alloc(0), { metadata: { mode: '4516' } });
      expect(await store.head(`${prefix}chr`)).toMatchObject({ size: 0, metadata: device });
      expect((await store.head(`${prefix}fifo`)).metadata).toEqual({ mode: '4516' });
      const listed = (await store.list({ prefix })).objects.map((o) => [o.key, o.size]);
      expect(listed).toEqual([
        [`${prefix}chr`, 0],
        [`${prefix}fifo`, 0],
      ]);
      // A rename's copy keeps it; a chmod's copy onto itself replaces it, rdev included.
      await store.copy(`${prefix}chr`, `${prefix}moved`);
      expect((await store.head(`${prefix}moved`)).metadata).toEqual(device);
      await store.copy(`${prefix}chr`, `${prefix}chr`, { metadata: { ...device, mode: '8576' }, contentType: 'application/octet-stream' });
      expect(await store.head(`${prefix}chr`)).toMatchObject({ size: 0, metadata: { ...device, mode: '8576' } });
    });

    it('deletes many keys at once; keys that do not exist are not an error', async () => {
      fresh();
      const keys = Array.from({ length: 40 }, (_, i) => `${prefix}d${i}`);
      await Promise.all(keys.map((key) => store.put(key, Buffer.from('x'))));
      await store.put(`${prefix}keep`, Buffer.from('kept'));
      await store.deleteMany([...keys, `${prefix}never-existed`, `${prefix}d0`]);
      const left = await store.list({ prefix, delimiter: '/' });
      expect(left.objects.map((o) => o.key)).toEqual([`${prefix}keep`]);
      await store.deleteMany([]);
    });

    it('keeps keys with spaces, unicode and special characters intact', async () => {
      fresh();
      const keys = [`${prefix}a b`, `${prefix}ünï©ødé`, `${prefix}q?x=1&y#z`, `${prefix}per%20cent+plus`];
      for (const key of keys) await store.put(key, Buffer.from(key));
      for (const key of keys) expect((await store.get(key)).body.toString()).toBe(key);
      const listed = (await store.list({ prefix, delimiter: '/' })).objects.map((o) => o.key);
      expect([...listed].sort()).toEqual([...keys].sort());
      await store.copy(keys[1]!, `${prefix}copied ü`);
      expect((await store.get(`${prefix}copied ü`)).body.toString()).toBe(keys[1]);
      await store.deleteMany(keys);
      await expect(store.head(keys[2]!)).rejects.toMatchObject({ code: 'NotFound' });
    });

    itUnless(features.noCredentials, 'rejects a wrong secret with InvalidCredentials, naming no secret', async () => {
      const wrong = target.withWrongCredentials!();
      const error = await wrong.list({ prefix: '', maxKeys: 1 }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'InvalidCredentials' });
      expect((error as Error).message).not.toContain(target.wrongSecret!);
      const read = await wrong.get('any-key').catch((e: unknown) => e);
      expect(read).toMatchObject({ name: 'StoreError' });
      expect((read as Error).message).not.toContain(target.wrongSecret!);
    });

    itUnless(features.noMissingBuckets, 'fails with NoSuchBucket for a bucket that does not exist', async () => {
      const missing = target.withMissingBucket!();
      await expect(missing.list({ prefix: '', maxKeys: 1 })).rejects.toMatchObject({ code: 'NoSuchBucket' });
    });
  });
}
