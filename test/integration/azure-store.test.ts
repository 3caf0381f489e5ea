/**
 * What only the Azure backend has: account and container SAS credentials (the whole conformance
 * suite runs again with a container SAS), expired and read-only SAS, connection strings, and
 * messages that never show a signature.
 */

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

import {
  AccountSASPermissions,
  BlobServiceClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AzureEnvironmentResolver } from '../../src/creds/azure-credentials.js';
import { AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY, type LocalAzurite, startLocalAzurite } from '../../src/demo/local-azurite.js';
import { type AzureCredential, AzureStore } from '../../src/storage/azure-store.js';
import { describeObjectStore } from '../conformance/object-store.conformance.js';

const CONTAINER = 'sas-test';
const sharedKey = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY);
const hour = 3600_000;

function containerSas(permissions: string, expiresOn = new Date(Date.now() + hour), container = CONTAINER): string {
  return generateBlobSASQueryParameters(
    {
      containerName: container,
      permissions: ContainerSASPermissions.parse(permissions),
      startsOn: new Date(expiresOn.getTime() - 2 * hour),
      expiresOn,
    },
    sharedKey,
  ).toString();
}

function accountSas(permissions: string): string {
  return generateAccountSASQueryParameters(
    { permissions: AccountSASPermissions.parse(permissions), services: 'b', resourceTypes: 'sco', expiresOn: new Date(Date.now() + hour) },
    sharedKey,
  ).toString();
}

/** The same token with its signature replaced. */
function forged(token: string): { token: string; signature: string } {
  const signature = 'Zm9yZ2VkIHNpZ25hdHVyZSBvZiB0aGUgcmlnaHQgbGVuZ3Ro';
  return { token: token.replace(/sig=[^&]*/, `sig=${encodeURIComponent(signature)}`), signature };
}

function storeOn(azurite: LocalAzurite, credential: AzureCredential, container = CONTAINER): AzureStore {
  return new AzureStore({
    account: AZURITE_ACCOUNT,
    container,
    endpoint: azurite.endpoint,
    credential,
    credentialDescription: `the ${credential.kind} credential of the test`,
    maxAttempts: 2,
  });
}

describeObjectStore('AzureStore on Azurite with a container SAS', async () => {
  const azurite = await startLocalAzurite({ containers: [CONTAINER] });
  const wrong = forged(containerSas('racwdl'));
  return {
    store: storeOn(azurite, { kind: 'sas', token: containerSas('racwdl') }),
    withWrongCredentials: () => storeOn(azurite, { kind: 'sas', token: wrong.token }),
    withMissingBucket: () =>
      storeOn(azurite, { kind: 'sas', token: containerSas('racwdl', undefined, 'no-such-container') }, 'no-such-container'),
    wrongSecret: wrong.signature,
    close: () => azurite.close(),
  };
});

describe('AzureStore credentials', () => {
  let azurite: LocalAzurite;

  beforeAll(async () => {
    azurite = await startLocalAzurite({ containers: [CONTAINER] });
  });
  afterAll(async () => {
    await azurite?.close();
  });

  it('works with an account SAS, copies included', async () => {
    const store = storeOn(azurite, { kind: 'sas', token: `?${accountSas('rwdlac')}` });
    await store.put('account-sas/a', Buffer.from('a'), { metadata: { mode: '33188' } });
    await store.copy('account-sas/a', 'account-sas/b');
    expect((await store.get('account-sas/b')).body.toString()).toBe('a');
    expect((await store.list({ prefix: 'account-sas/' })).objects.map((o) => o.key)).toEqual(['account-sas/a', 'account-sas/b']);
  });

  it('an expired SAS is InvalidCredentials, a read-only SAS may read but not write, and no message shows a signature', async () => {
    const writer = storeOn(azurite, { kind: 'sas', token: containerSas('racwdl') });
    await writer.put('ro/x', Buffer.from('x'));

    const expired = storeOn(azurite, { kind: 'sas', token: containerSas('rl', new Date(Date.now() - hour)) });
    const stale = await expired.list({ prefix: '' }).catch((e: unknown) => e);
    expect(stale).toMatchObject({ code: 'InvalidCredentials' });
    expect((stale as Error).message).not.toMatch(/sig=(?!REDACTED)/);

    const readOnlyToken = containerSas('rl');
    const readOnly = storeOn(azurite, { kind: 'sas', token: readOnlyToken });
    expect((await readOnly.get('ro/x')).body.toString()).toBe('x');
    const denied = await readOnly.put('ro/y', Buffer.from('y')).catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'AccessDenied' });
    const signature = decodeURIComponent(/sig=([^&]*)/.exec(readOnlyToken)![1]!);
    expect((denied as Error).message).not.toContain(signature);
    expect((denied as Error).message).not.toContain(encodeURIComponent(signature));
  });

  it('works from a connection string in the environment, which names the endpoint', async () => {
    const env = {
      AZURE_STORAGE_CONNECTION_STRING: `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${azurite.endpoint};`,
    };
    const resolved = await new AzureEnvironmentResolver(env).resolveAzure(AZURITE_ACCOUNT, CONTAINER);
    expect(resolved.endpoint).toBe(azurite.endpoint);
    const store = new AzureStore({
      account: AZURITE_ACCOUNT,
      container: CONTAINER,
      endpoint: resolved.endpoint,
      credential: resolved.credential,
      credentialDescription: resolved.description,
    });
    await store.put('connection-string', Buffer.from('ok'));
    expect((await store.head('connection-string')).size).toBe(2);
    expect(store.description).toBe(`az://${AZURITE_ACCOUNT}/${CONTAINER}`);
  });
});

describe('part copy on Azure', () => {
  let azurite: LocalAzurite;
  let store: AzureStore;

  beforeAll(async () => {
    azurite = await startLocalAzurite({ containers: [CONTAINER] });
    store = storeOn(azurite, { kind: 'sharedKey', accountKey: AZURITE_ACCOUNT_KEY });
  });
  afterAll(async () => {
    await azurite?.close();
  });

  async function snapshots(prefix: string): Promise<string[]> {
    const container = new BlobServiceClient(azurite.endpoint, sharedKey).getContainerClient(CONTAINER);
    const found: string[] = [];
    for await (const blob of container.listBlobsFlat({ prefix, includeSnapshots: true })) if (blob.snapshot) found.push(blob.name);
    return found;
  }

  it('copies from a snapshot pinned to the ETag, and leaves no snapshot once the upload completes or is aborted', async () => {
    const MiB = 1024 * 1024;
    const original = Buffer.alloc(3 * MiB, 7);
    const { etag } = await store.put('pc/file', original);
    // The usual case: the file's own unchanged start, then a new end, onto the same blob.
    const id = await store.createMultipartUpload('pc/file', { metadata: { mode: '33188' } });
    // Concurrently, as the uploader sends them.
    const parts = await Promise.all([
      store
        .uploadPartCopy('pc/file', id, 1, { key: 'pc/file', range: { start: 0, end: MiB - 1 }, ifMatch: etag })
        .then((e) => ({ partNumber: 1, etag: e })),
      store
        .uploadPartCopy('pc/file', id, 2, { key: 'pc/file', range: { start: MiB, end: 2 * MiB - 1 }, ifMatch: etag })
        .then((e) => ({ partNumber: 2, etag: e })),
      store.uploadPart('pc/file', id, 3, Buffer.from('appended')).then((e) => ({ partNumber: 3, etag: e })),
    ]);
    expect(await snapshots('pc/')).toEqual(['pc/file']); // one snapshot serves both parts
    await store.completeMultipartUpload('pc/file', id, parts);
    expect((await store.get('pc/file')).body.equals(Buffer.concat([original.subarray(0, 2 * MiB), Buffer.from('appended')]))).toBe(true);
    expect(await snapshots('pc/')).toEqual([]);

    const { etag: current } = await store.head('pc/file');
    const aborted = await store.createMultipartUpload('pc/other');
    await store.uploadPartCopy('pc/other', aborted, 1, { key: 'pc/file', range: { start: 0, end: 9 }, ifMatch: current });
    await store.abortMultipartUpload('pc/other', aborted);
    expect(await snapshots('pc/')).toEqual([]);
  });

  it('is refused with a SAS, as the capability says', async () => {
    const withSas = storeOn(azurite, { kind: 'sas', token: containerSas('racwdl') });
    expect(withSas.capabilities.partCopy).toBe(false);
    expect(store.capabilities.partCopy).toBe(true);
  });
});

describe("blobfuse's directories", () => {
  let azurite: LocalAzurite;
  let store: AzureStore;

  beforeAll(async () => {
    azurite = await startLocalAzurite({ containers: [CONTAINER] });
    store = storeOn(azurite, { kind: 'sharedKey', accountKey: AZURITE_ACCOUNT_KEY });
  });
  afterAll(async () => {
    await azurite?.close();
  });

  it('a blob marked hdi_isfolder=true is a directory: a prefix in listings, found as dir/, never a file', async () => {
    await store.put('bf/empty', Buffer.alloc(0), { metadata: { hdi_isfolder: 'true' } });
    await store.put('bf/full', Buffer.alloc(0), { metadata: { hdi_isfolder: 'true' } });
    await store.put('bf/full/file', Buffer.from('f'));
    await store.put('bf/plain', Buffer.from('p'));
    const page = await store.list({ prefix: 'bf/', delimiter: '/' });
    expect(page.prefixes).toEqual(['bf/empty/', 'bf/full/']);
    expect(page.objects.map((o) => o.key)).toEqual(['bf/plain']);
    expect(await store.head('bf/empty/')).toMatchObject({ key: 'bf/empty/', size: 0 });
    await expect(store.head('bf/empty')).rejects.toMatchObject({ code: 'NotFound' });
    await expect(store.head('bf/plain/')).rejects.toMatchObject({ code: 'NotFound' });
    await expect(store.head('bf/none/')).rejects.toMatchObject({ code: 'NotFound' });
    // A flat listing (what renames and tree deletes use) shows the blobs as they are.
    expect((await store.list({ prefix: 'bf/' })).objects.map((o) => o.key)).toEqual(['bf/empty', 'bf/full', 'bf/full/file', 'bf/plain']);
  });
});

describe('Azure error codes', () => {
  /** A stand-in blob service on 127.0.0.1 that answers every request with one error. */
  async function failingService(status: number, code: string): Promise<{ endpoint: string; close(): Promise<void> }> {
    const server = createServer((request, response) => {
      request.resume();
      response.writeHead(status, { 'x-ms-error-code': code, 'content-type': 'application/xml' });
      response.end(`<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>refused by the test</Message></Error>`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      endpoint: `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`,
      close: () => new Promise((resolve) => server.close(() => resolve())),
    };
  }

  const cases: Array<[number, string, string]> = [
    [503, 'ServerBusy', 'Throttled'],
    [500, 'InternalError', 'Transient'],
    [403, 'AuthorizationPermissionMismatch', 'AccessDenied'],
    [403, 'AuthenticationFailed', 'InvalidCredentials'],
    [404, 'ContainerNotFound', 'NoSuchBucket'],
    [412, 'ConditionNotMet', 'PreconditionFailed'],
    [400, 'InvalidBlockList', 'InvalidRequest'],
  ];
  for (const [status, azureCode, code] of cases) {
    it(`${azureCode} (HTTP ${status}) is ${code}`, async () => {
      const service = await failingService(status, azureCode);
      try {
        const store = new AzureStore({
          account: AZURITE_ACCOUNT,
          container: CONTAINER,
          endpoint: service.endpoint,
          credential: { kind: 'sas', token: 'sv=2022-11-02&sig=c2VjcmV0LXNpZ25hdHVyZQ%3D%3D' },
          credentialDescription: 'the SAS of the test',
          maxAttempts: 1,
        });
        const error = await store.get('key').catch((e: unknown) => e);
        expect(error).toMatchObject({ name: 'StoreError', code, storeCode: azureCode });
        expect((error as Error).message).not.toContain('c2VjcmV0');
      } finally {
        await service.close();
      }
    });
  }
});
