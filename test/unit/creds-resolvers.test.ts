/**
 * The stored-credential resolvers of a mount (S3, Azure, GCS) and the one read of the credential
 * store they share (creds/resolver.ts, azure-credentials.ts, gcs-credentials.ts, store.ts).
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { type AzureCredentialResolver, StoredAzureResolver } from '../../src/creds/azure-credentials.js';
import { CredentialError } from '../../src/creds/credential-error.js';
import { StoredGcsResolver } from '../../src/creds/gcs-credentials.js';
import { type CredentialResolver, StoreResolver } from '../../src/creds/resolver.js';
import { type CredentialSource, CredentialStore, LoadedCredentialStore, type StoreContents } from '../../src/creds/store.js';

const GCS_KEY = '-----BEGIN PRIVATE KEY-----\nnot-a-real-key-but-secret\n-----END PRIVATE KEY-----\n';
const S3_SECRET = 'stored-s3-secret-value';
const AZURE_KEY = 'c3RvcmVkLWF6dXJlLWtleQ==';

function contents(): StoreContents {
  const stamp = { origin: 'test', importedAt: '2026-01-01T00:00:00.000Z' };
  return {
    version: 1,
    credentials: {
      s3key: {
        provider: 's3',
        name: 's3key',
        accessKeyId: 'AKIASTORED0001',
        secretAccessKey: S3_SECRET,
        endpoint: 'http://s3.example',
        ...stamp,
      },
      azkey: { provider: 'az', name: 'azkey', account: 'acct', accountKey: AZURE_KEY, ...stamp },
      gskey: {
        provider: 'gs',
        name: 'gskey',
        clientEmail: 'sa@p-1.iam.gserviceaccount.com',
        privateKey: GCS_KEY,
        projectId: 'p-1',
        ...stamp,
      },
      other: {
        provider: 'gs',
        name: 'other',
        clientEmail: 'other@p-2.iam.gserviceaccount.com',
        privateKey: GCS_KEY,
        endpoint: 'http://127.0.0.1:9199',
        ...stamp,
      },
    },
    pairings: { 's3://data': 's3key', 'az://acct/photos': 'azkey', 'gs://logs': 'gskey', 'gs://misfiled': 's3key', 's3://open': 'public' },
  };
}

/** A store that counts its reads; `fail` makes the next read fail as a damaged file would. */
function countingStore(initial = contents()) {
  const state = { reads: 0, fail: false, contents: initial };
  const store: CredentialSource = {
    async read() {
      state.reads += 1;
      if (state.fail)
        throw new Error('/etc/objmount/credentials.json is damaged (Unexpected token); move it away and import the credentials again');
      return state.contents;
    },
  };
  return { state, store };
}

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

const noS3Fallback: CredentialResolver = {
  resolveS3: async () => {
    throw new Error('the S3 fallback was asked');
  },
};
const noAzureFallback: AzureCredentialResolver = {
  resolveAzure: async () => {
    throw new Error('the Azure fallback was asked');
  },
};

describe('StoredGcsResolver', () => {
  it("finds the bucket's paired service-account key", async () => {
    const { store } = countingStore();
    expect(await new StoredGcsResolver(store).resolveGcs('logs')).toEqual({
      name: 'gskey',
      clientEmail: 'sa@p-1.iam.gserviceaccount.com',
      privateKey: GCS_KEY,
      projectId: 'p-1',
    });
  });

  it('has nothing for a bucket without a pairing, or paired with a credential that is not a Google one', async () => {
    const { store } = countingStore();
    const resolver = new StoredGcsResolver(store);
    expect(await resolver.resolveGcs('unpaired')).toBeUndefined();
    expect(await resolver.resolveGcs('misfiled')).toBeUndefined(); // then --key-file, the environment or ADC
  });

  it('uses the credential named with --creds for any bucket, with its endpoint', async () => {
    const { store } = countingStore();
    const key = await new StoredGcsResolver(store, 'other').resolveGcs('logs');
    expect(key).toMatchObject({ name: 'other', clientEmail: 'other@p-2.iam.gserviceaccount.com', endpoint: 'http://127.0.0.1:9199' });
  });

  it('refuses --creds naming no stored Google credential, in one line without a secret', async () => {
    const { store } = countingStore();
    for (const named of ['nobody', 's3key']) {
      const failure = new StoredGcsResolver(store, named).resolveGcs('logs');
      await expect(failure).rejects.toThrow(
        new CredentialError(`no stored Google Cloud credential named '${named}' (see 'objmount creds list')`),
      );
      await expect(failure).rejects.not.toThrow(/PRIVATE KEY|secret/);
    }
  });

  it("passes on a damaged store's message as a CredentialError", async () => {
    const { state, store } = countingStore();
    state.fail = true;
    await expect(new StoredGcsResolver(store).resolveGcs('logs')).rejects.toThrow(CredentialError);
    await expect(new StoredGcsResolver(store).resolveGcs('logs')).rejects.toThrow(/credentials.json is damaged/);
  });
});

describe('one read of the credential store for every resolver of a mount', () => {
  it('serves the S3, Azure and GCS resolvers and the pairings from one read', async () => {
    const { state, store } = countingStore();
    const loaded = new LoadedCredentialStore(store);
    const s3 = await new StoreResolver(loaded, noS3Fallback).resolveS3('data');
    const publicS3 = await new StoreResolver(loaded, noS3Fallback).resolveS3('open');
    const azure = await new StoredAzureResolver(loaded, noAzureFallback).resolveAzure('acct', 'photos');
    const gcs = await new StoredGcsResolver(loaded).resolveGcs('logs');
    const pairings = (await loaded.read()).pairings;
    expect(state.reads).toBe(1);

    // The same answers as from the store itself.
    expect(s3).toMatchObject({ accessKeyId: 'AKIASTORED0001', endpoint: 'http://s3.example', source: "the stored credential 's3key'" });
    expect(publicS3).toMatchObject({ signatureVersion: 'none', source: 'public access (unsigned requests)' });
    expect(azure).toMatchObject({
      credential: { kind: 'sharedKey', accountKey: AZURE_KEY },
      description: "the account key of the stored credential 'azkey'",
    });
    expect(gcs?.name).toBe('gskey');
    expect(Object.keys(pairings)).toContain('gs://logs');
    expect(await new StoreResolver(store, noS3Fallback).resolveS3('data')).toMatchObject({
      accessKeyId: s3.accessKeyId,
      endpoint: s3.endpoint,
    });
  });

  it('reads the store again after forget (the root view looking for new pairings)', async () => {
    const { state, store } = countingStore();
    const loaded = new LoadedCredentialStore(store);
    expect(await new StoredGcsResolver(loaded).resolveGcs('new-bucket')).toBeUndefined();
    state.contents = { ...contents(), pairings: { ...contents().pairings, 'gs://new-bucket': 'gskey' } };
    expect(await new StoredGcsResolver(loaded).resolveGcs('new-bucket')).toBeUndefined(); // still the first read
    loaded.forget();
    expect((await new StoredGcsResolver(loaded).resolveGcs('new-bucket'))?.name).toBe('gskey');
    expect(state.reads).toBe(2);
  });

  it('keeps no failed read: the next resolver reads the store again', async () => {
    const { state, store } = countingStore();
    const loaded = new LoadedCredentialStore(store);
    state.fail = true;
    await expect(new StoreResolver(loaded, noS3Fallback).resolveS3('data')).rejects.toThrow(/credentials.json is damaged/);
    state.fail = false;
    expect((await new StoreResolver(loaded, noS3Fallback).resolveS3('data')).accessKeyId).toBe('AKIASTORED0001');
    expect((await new StoredAzureResolver(loaded, noAzureFallback).resolveAzure('acct', 'photos')).description).toContain("'azkey'");
    expect(state.reads).toBe(2);
  });

  it('reads credentials.json itself once (a real store on disk)', async () => {
    dir = mkdtempSync(join(tmpdir(), 'objmount-loaded-'));
    const real = new CredentialStore(dir);
    writeFileSync(real.file, JSON.stringify(contents()), { mode: 0o600 });
    let reads = 0;
    const counted: CredentialSource = {
      read: () => {
        reads++;
        return real.read();
      },
    };
    const loaded = new LoadedCredentialStore(counted);
    await Promise.all([
      new StoreResolver(loaded, noS3Fallback).resolveS3('data'),
      new StoredAzureResolver(loaded, noAzureFallback).resolveAzure('acct', 'photos'),
      new StoredGcsResolver(loaded).resolveGcs('logs'),
    ]);
    expect(reads).toBe(1);
  });
});
