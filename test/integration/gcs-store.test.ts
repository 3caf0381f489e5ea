/**
 * `GcsStore` against the Cloud Storage emulator of firebase-tools (test/helpers/gcs-emulator.ts):
 * the conformance suite every backend runs, then what is GCS's own (temporary part objects, the failure
 * path of a compose, an unreachable endpoint).
 *
 * The emulator's gaps (test/emulators/README.md) skip tests there rather than pass them: it ignores
 * ifGenerationMatch (no 412), has no compose (501), creates any bucket it is asked about, and
 * repeats common prefixes on every page. Composite uploads are checked last through a compose
 * shim over the emulator, which tests objmount's requests, not GCS's compose.
 */

import { createServer } from 'node:net';

import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { GcsStore } from '../../src/storage/gcs-store.js';
import { describeObjectStore } from '../conformance/object-store.conformance.js';
import { type ComposeShim, startComposeShim } from '../helpers/gcs-compose-shim.mjs';
import { type GcsEmulator, startGcsEmulator } from '../helpers/gcs-emulator.js';

const BUCKET = 'gcs-store-test';
let emulator: GcsEmulator | undefined;

function makeStore(
  bucket = BUCKET,
  endpoint = emulator!.endpoint,
  extra: Partial<ConstructorParameters<typeof GcsStore>[0]> = {},
): GcsStore {
  return new GcsStore({
    bucket,
    endpoint,
    auth: { kind: 'anonymous' },
    credentialDescription: 'no credentials (anonymous)',
    maxRetries: 1,
    ...extra,
  });
}

/** Every key under a prefix as the emulator has it, temporary part objects included. */
async function rawKeys(prefix: string): Promise<string[]> {
  const storage = new Storage({ apiEndpoint: emulator!.endpoint, projectId: 'test' });
  const [files] = await storage.bucket(BUCKET).getFiles({ prefix });
  return files.map((f) => f.name).sort();
}

describeObjectStore(
  'GcsStore on the Cloud Storage emulator',
  async () => {
    emulator = await startGcsEmulator();
    const store = makeStore();
    return {
      store,
      rawKeys,
      async close() {
        store.destroy();
        await emulator?.close();
        emulator = undefined;
      },
    };
  },
  {
    noCredentials: 'the emulator takes every request without a credential',
    noMissingBuckets: 'the emulator makes any bucket it is asked about',
    noConditionalReads: 'the emulator ignores ifGenerationMatch (no 412)',
    noMultipartComplete: 'the emulator has no compose (501); the compose shim below covers it',
    repeatsPrefixes: true,
  },
);

describe('GcsStore on the emulator: what is GCS-specific', () => {
  // The conformance suite's server stops after its own tests; these get one of their own.
  let own: GcsEmulator;
  const store = () => makeStore(BUCKET, own.endpoint);
  const raw = async (prefix: string) => {
    const storage = new Storage({ apiEndpoint: own.endpoint, projectId: 'test' });
    const [files] = await storage.bucket(BUCKET).getFiles({ prefix });
    return files.map((f) => f.name).sort();
  };

  beforeAll(async () => {
    own = await startGcsEmulator();
  });
  afterAll(async () => {
    await own?.close();
  });

  it('keeps parts as temporary objects next to the key, hidden from listings', async () => {
    const gcs = store();
    await gcs.put('dir/other', Buffer.from('x'));
    const id = await gcs.createMultipartUpload('dir/file');
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    await gcs.uploadPart('dir/file', id, 1, Buffer.alloc(100, 1));
    await gcs.uploadPart('dir/file', id, 2, Buffer.alloc(100, 2));
    expect(await raw('dir/')).toEqual([`dir/file.objmount-part-${id}-1`, `dir/file.objmount-part-${id}-2`, 'dir/other']);
    const page = await gcs.list({ prefix: 'dir/', delimiter: '/' });
    expect(page.objects.map((o) => o.key)).toEqual(['dir/other']);
    await gcs.abortMultipartUpload('dir/file', id);
    expect(await raw('dir/')).toEqual(['dir/other']);
  });

  it('fails completing an upload on a server without compose with one clear error; abort then leaves nothing', async () => {
    // The emulator answers compose with 501: the failure exit every uploader must handle.
    const gcs = store();
    const id = await gcs.createMultipartUpload('composed', { metadata: { mode: '33188' } });
    const etag = await gcs.uploadPart('composed', id, 1, Buffer.alloc(10, 1));
    const error = await gcs.completeMultipartUpload('composed', id, [{ partNumber: 1, etag }]).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'InvalidRequest' });
    expect((error as Error).message).toMatch(/^gs:\/\/gcs-store-test\/composed: compose refused: HTTP 501/);
    expect((error as Error).message).not.toContain('\n');
    await gcs.abortMultipartUpload('composed', id);
    expect(await raw('composed')).toEqual([]);
  });

  it("aborts another process's upload by its id alone, as the next mount does after a crash", async () => {
    const crashed = store();
    const id = await crashed.createMultipartUpload('left/behind');
    await crashed.uploadPart('left/behind', id, 1, Buffer.alloc(50, 1));
    await crashed.uploadPart('left/behind', id, 7, Buffer.alloc(50, 7));
    expect(await raw('left/')).toHaveLength(2);
    await store().abortMultipartUpload('left/behind', id);
    expect(await raw('left/')).toEqual([]);
  });

  it('refuses parts of an upload it did not create', async () => {
    await expect(store().uploadPart('k', '0123456789abcdef', 1, Buffer.from('x'))).rejects.toMatchObject({ code: 'NotFound' });
  });

  it('has no part copy, and says so in its capabilities', async () => {
    const gcs = store();
    expect(gcs.capabilities).toMatchObject({ partCopy: false, serverSideCopy: true, maxParts: 10_000 });
    await expect(gcs.uploadPartCopy('k', 'id', 1, { key: 'a', range: { start: 0, end: 1 }, ifMatch: '1' })).rejects.toMatchObject({
      code: 'InvalidRequest',
    });
  });

  it('reports an endpoint that refuses connections as Unreachable, naming it', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port: free } = server.address() as { port: number };
        server.close(() => resolve(free));
      });
    });
    const gcs = makeStore(BUCKET, `http://127.0.0.1:${port}`, { maxRetries: 0 });
    const error = await gcs.head('x').catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'Unreachable' });
    expect((error as Error).message).toBe(`cannot reach http://127.0.0.1:${port} (ECONNREFUSED) for gs://gcs-store-test/x`);
    await expect(gcs.get('x', { range: { start: 0, end: 1 } })).rejects.toMatchObject({ code: 'Unreachable' });
  });
});

describe('GcsStore composite uploads, through a compose shim over the emulator', () => {
  // The emulator has no compose; the shim (test/helpers/gcs-compose-shim.ts) adds one, so what is
  // checked here is objmount's side: the requests it sends, the tree, the clean-up.
  let own: GcsEmulator;
  let shim: ComposeShim;
  const store = () => makeStore(BUCKET, shim.endpoint);
  const raw = async (prefix: string) => {
    const storage = new Storage({ apiEndpoint: own.endpoint, projectId: 'test' });
    const [files] = await storage.bucket(BUCKET).getFiles({ prefix });
    return files.map((f) => f.name).sort();
  };
  const part = (n: number, size = 100) => Buffer.alloc(size, n % 256);

  beforeAll(async () => {
    own = await startGcsEmulator();
    shim = await startComposeShim(own.endpoint);
  });
  afterAll(async () => {
    await shim?.close();
    await own?.close();
  });

  it('composes parts in part order, pinned to their generations, with the metadata given at creation, and deletes them', async () => {
    const gcs = store();
    shim.requests.length = 0;
    const id = await gcs.createMultipartUpload('c/file', { metadata: { mode: '33188', mtime: '1700000000' }, contentType: 'text/plain' });
    const parts = await Promise.all([3, 1, 2].map(async (n) => ({ partNumber: n, etag: await gcs.uploadPart('c/file', id, n, part(n)) })));
    const { etag } = await gcs.completeMultipartUpload('c/file', id, parts);
    expect(shim.requests).toEqual([
      {
        bucket: BUCKET,
        destination: 'c/file',
        body: {
          destination: { contentType: 'text/plain', metadata: { mode: '33188', mtime: '1700000000' } },
          sourceObjects: [1, 2, 3].map((n) => ({
            name: `c/file.objmount-part-${id}-${n}`,
            generation: parts.find((p) => p.partNumber === n)!.etag,
          })),
        },
      },
    ]);
    const { body, info } = await gcs.get('c/file');
    expect(body.equals(Buffer.concat([part(1), part(2), part(3)]))).toBe(true);
    expect(info).toMatchObject({ etag, metadata: { mode: '33188', mtime: '1700000000' }, contentType: 'text/plain' });
    expect(await raw('c/')).toEqual(['c/file']);
  });

  it('composes 70 parts in a tree (3 + 1 requests) and leaves no temporary object', async () => {
    const gcs = store();
    shim.requests.length = 0;
    const id = await gcs.createMultipartUpload('tree');
    const parts = [];
    for (let n = 1; n <= 70; n += 1) parts.push({ partNumber: n, etag: await gcs.uploadPart('tree', id, n, part(n, 10)) });
    await gcs.completeMultipartUpload('tree', id, parts);
    expect(shim.requests.map((r) => [r.destination, r.body.sourceObjects.length])).toEqual([
      [`tree.objmount-part-${id}-c1-0`, 32],
      [`tree.objmount-part-${id}-c1-1`, 32],
      [`tree.objmount-part-${id}-c1-2`, 6],
      ['tree', 3],
    ]);
    expect((await gcs.get('tree')).body.equals(Buffer.concat(parts.map((p) => part(p.partNumber, 10))))).toBe(true);
    expect(await raw('tree')).toEqual(['tree']);
  });

  it('fails with PreconditionFailed when a part was replaced before completion, and abort then cleans up', async () => {
    const gcs = store();
    const id = await gcs.createMultipartUpload('raced');
    const etag = await gcs.uploadPart('raced', id, 1, part(1));
    await gcs.uploadPart('raced', id, 1, part(9)); // a retried part: a new generation
    await expect(gcs.completeMultipartUpload('raced', id, [{ partNumber: 1, etag }])).rejects.toMatchObject({ code: 'PreconditionFailed' });
    await gcs.abortMultipartUpload('raced', id);
    expect(await raw('raced')).toEqual([]);
  });
});
