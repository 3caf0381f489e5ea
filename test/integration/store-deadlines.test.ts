/**
 * Every backend gives up on a request at its deadline (storage/deadline.ts) when the store stops
 * answering or stops passing bytes, with `TimedOut`, and serves the next request once the store
 * answers again: Azure on Azurite and GCS on its emulator, each behind the fault proxy (S3 is
 * checked through a real mount in hung-store.test.ts), and Swift on Debian's Swift (a token for its
 * storage URL behind the proxy). A cancelled request fails with `Aborted`.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY, type LocalAzurite, startLocalAzurite } from '../../src/demo/local-azurite.js';
import { AzureStore } from '../../src/storage/azure-store.js';
import type { StoreDeadlines } from '../../src/storage/deadline.js';
import { SWIFT_TEST_KEY, SWIFT_TEST_USER, createSwiftContainer, startLocalSwift, swiftToken } from '../../src/demo/local-swift.js';
import { GcsStore } from '../../src/storage/gcs-store.js';
import { SwiftStore } from '../../src/storage/swift-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import { type FaultProxy, startFaultProxy } from '../helpers/fault-proxy.js';
import { type GcsEmulator, startGcsEmulator } from '../helpers/gcs-emulator.js';

/** One second per request, and data "at 1 GiB/s": a small read has about a second too. */
const DEADLINES: StoreDeadlines = { requestMs: 1000, minBytesPerSecond: 1024 ** 3 };

interface Backend {
  name: string;
  start(): Promise<{ store: ObjectStore; proxy: FaultProxy; stop(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'Azure (Azurite)',
    async start() {
      const azurite: LocalAzurite = await startLocalAzurite({ containers: ['deadlines'] });
      const proxy = await startFaultProxy(azurite.endpoint);
      const store = new AzureStore({
        account: AZURITE_ACCOUNT,
        container: 'deadlines',
        endpoint: `${proxy.endpoint}/${AZURITE_ACCOUNT}`,
        credential: { kind: 'sharedKey', accountKey: AZURITE_ACCOUNT_KEY },
        credentialDescription: 'the development account key',
        deadlines: DEADLINES,
      });
      return {
        store,
        proxy,
        stop: async () => {
          await proxy.close();
          await azurite.close();
        },
      };
    },
  },
  {
    name: 'GCS (emulator)',
    async start() {
      const emulator: GcsEmulator = await startGcsEmulator();
      const proxy = await startFaultProxy(emulator.endpoint);
      const store = new GcsStore({
        bucket: 'deadlines',
        endpoint: proxy.endpoint,
        auth: { kind: 'anonymous' },
        credentialDescription: 'no credentials (anonymous)',
        deadlines: DEADLINES,
      });
      return {
        store,
        proxy,
        stop: async () => {
          await proxy.close();
          await emulator.close();
        },
      };
    },
  },
  {
    name: 'Swift (Debian)',
    async start() {
      const swift = await startLocalSwift();
      const token = await swiftToken(swift.authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
      await createSwiftContainer(swift, token, 'deadlines');
      const proxy = await startFaultProxy(`http://127.0.0.1:${swift.port}`);
      const store = new SwiftStore({
        container: 'deadlines',
        // The storage URL through the proxy; the token was issued for this account directly.
        credentials: { authToken: token, storageUrl: `${proxy.endpoint}${new URL(swift.storageUrl).pathname}` },
        credentialDescription: 'a token from the test',
        deadlines: DEADLINES,
      });
      return {
        store,
        proxy,
        stop: async () => {
          store.destroy();
          await proxy.close();
          await swift.close();
        },
      };
    },
  },
];

describe.each(backends)('$name: requests have deadlines', (backend) => {
  let store: ObjectStore;
  let proxy: FaultProxy;
  let stop: (() => Promise<void>) | undefined;
  const data = Buffer.alloc(200 * 1024, 7);

  beforeAll(async () => {
    ({ store, proxy, stop } = await backend.start());
    await store.put('file.bin', data);
  });

  afterAll(async () => {
    await stop?.();
  });

  it('fails a head the store never answers with TimedOut, then answers the next one', async () => {
    await proxy.set([{ action: 'hang' }]);
    try {
      await expect(store.head('file.bin')).rejects.toMatchObject({ name: 'StoreError', code: 'TimedOut' });
    } finally {
      await proxy.set([]);
    }
    expect((await store.head('file.bin')).size).toBe(data.length);
  });

  it('fails a get whose body stops coming with TimedOut, then reads it whole', async () => {
    await proxy.set([{ method: 'GET', action: 'stall' }]);
    try {
      await expect(store.get('file.bin', { range: { start: 0, end: data.length - 1 } })).rejects.toMatchObject({ code: 'TimedOut' });
    } finally {
      await proxy.set([]);
    }
    const { body } = await store.get('file.bin', { range: { start: 0, end: data.length - 1 } });
    expect(body.equals(data)).toBe(true);
  });

  it('fails a request cancelled through its signal with Aborted', async () => {
    await proxy.set([{ action: 'hang' }]);
    try {
      const controller = new AbortController();
      const head = store.head('file.bin', { signal: controller.signal });
      controller.abort();
      await expect(head).rejects.toMatchObject({ code: 'Aborted' });
    } finally {
      await proxy.set([]);
    }
  });
});
