/** The Azure backend's pure parts: metadata names, block ids, redaction, credentials from the environment. */

import { describe, expect, it } from 'vitest';

import { AzureEnvironmentResolver, DEVELOPMENT_ACCOUNT_KEY, parseConnectionString } from '../../src/creds/azure-credentials.js';
import { decodeMetadata, decodeMetadataName, encodeMetadata, encodeMetadataName } from '../../src/storage/azure-metadata.js';
import { blockIdOf, redact } from '../../src/storage/azure-store.js';

describe('Azure metadata names', () => {
  it("keeps s3fs's names as they are, so other Azure tools read plain names", () => {
    for (const name of ['mode', 'uid', 'gid', 'mtime', 'atime', 'ctime', 'xattr', 'hdi_isfolder'])
      expect(encodeMetadataName(name)).toBe(name);
  });

  it('escapes names that are not C# identifiers, reversibly', () => {
    const names = ['x-custom-name', 'content-md5', '1starts-with-digit', 'with space', 'ünï', 'om_looks_escaped', 'a_b-c', 'dots.in.name'];
    for (const name of names) {
      const encoded = encodeMetadataName(name);
      expect(encoded).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      expect(decodeMetadataName(encoded)).toBe(name);
    }
    expect(encodeMetadataName('x-y')).toBe('om_x_2d_y');
    expect(decodeMetadata(encodeMetadata({ 'x-amz-like': '1', mode: '33188' }))).toEqual({ 'x-amz-like': '1', mode: '33188' });
  });

  it('shows a name it did not write as stored', () => {
    expect(decodeMetadataName('om_not-ours')).toBe('om_not-ours');
    expect(decodeMetadata({ Mode: '33188' })).toEqual({ mode: '33188' });
  });
});

describe('block ids', () => {
  it('have one length for every part number of an upload, and differ between uploads', () => {
    const id = '0b7a1c9e-2f44-4d3b-8a0e-5c6d7e8f9a0b';
    const lengths = new Set([1, 9, 10, 999, 10_000, 50_000].map((n) => blockIdOf(id, n).length));
    expect(lengths.size).toBe(1);
    expect(blockIdOf(id, 1)).not.toBe(blockIdOf('1b7a1c9e-2f44-4d3b-8a0e-5c6d7e8f9a0b', 1));
    expect(Buffer.from(blockIdOf(id, 1), 'base64').length).toBeLessThanOrEqual(64);
  });
});

describe('redact', () => {
  it('removes SAS signatures, Shared Key signatures and account keys', () => {
    const text =
      'GET https://a.blob.core.windows.net/c/k?sv=2022-11-02&sig=abc%2Bdef%3D&se=x Authorization: SharedKey acct:c2lnbmF0dXJl AccountKey=c2VjcmV0;';
    const out = redact(text);
    expect(out).not.toMatch(/abc%2Bdef|c2lnbmF0dXJl|c2VjcmV0/);
    expect(out).toContain('sig=REDACTED&se=x');
  });
});

describe('Azure credentials from the environment', () => {
  const resolve = (env: NodeJS.ProcessEnv) => new AzureEnvironmentResolver(env).resolveAzure('acct', 'con');

  it('takes an account key, a SAS or a connection string, and describes none of them by value', async () => {
    const key = await resolve({ AZURE_STORAGE_KEY: 'c2VjcmV0' });
    expect(key).toEqual({
      credential: { kind: 'sharedKey', accountKey: 'c2VjcmV0' },
      description: 'the account key of acct from AZURE_STORAGE_KEY',
    });
    expect((await resolve({ AZURE_STORAGE_ACCESS_KEY: 'c2VjcmV0', AZURE_STORAGE_ACCOUNT: 'acct' })).description).toBe(
      'the account key of acct from AZURE_STORAGE_ACCESS_KEY',
    );
    expect(await resolve({ AZURE_STORAGE_SAS_TOKEN: '?sv=1&sig=s' })).toEqual({
      credential: { kind: 'sas', token: 'sv=1&sig=s' },
      description: 'the SAS token from AZURE_STORAGE_SAS_TOKEN',
    });
    const connection = await resolve({
      AZURE_STORAGE_CONNECTION_STRING:
        'DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5PQ==;EndpointSuffix=core.usgovcloudapi.net',
    });
    expect(connection).toEqual({
      account: 'acct',
      endpoint: 'https://acct.blob.core.usgovcloudapi.net',
      credential: { kind: 'sharedKey', accountKey: 'a2V5PQ==' },
      description: 'the account key in AZURE_STORAGE_CONNECTION_STRING',
    });
  });

  it('says what to set when nothing is set, and refuses a key for another account', async () => {
    await expect(resolve({})).rejects.toThrow(/no credentials found for az:\/\/acct\/con: set AZURE_STORAGE_KEY/);
    await expect(resolve({ AZURE_STORAGE_ACCOUNT: 'other', AZURE_STORAGE_KEY: 'k' })).rejects.toThrow(/AZURE_STORAGE_ACCOUNT is 'other'/);
    await expect(resolve({ AZURE_STORAGE_CONNECTION_STRING: 'AccountName=other;AccountKey=k' })).rejects.toThrow(
      /for account 'other', not 'acct'/,
    );
  });

  it('reads the connection string forms Azure hands out', () => {
    expect(parseConnectionString('UseDevelopmentStorage=true')).toEqual({
      account: 'devstoreaccount1',
      endpoint: 'http://127.0.0.1:10000/devstoreaccount1',
      credential: { kind: 'sharedKey', accountKey: DEVELOPMENT_ACCOUNT_KEY },
    });
    expect(parseConnectionString('BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=a%3D')).toEqual({
      account: 'acct', // from the endpoint's host
      endpoint: 'https://acct.blob.core.windows.net',
      credential: { kind: 'sas', token: 'sv=2022&sig=a%3D' },
    });
    expect(() => parseConnectionString('AccountName=acct')).toThrow(/neither AccountKey nor SharedAccessSignature/);
  });
});
