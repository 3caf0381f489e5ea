/**
 * The root view (`objmount mount MOUNTPOINT`): the paired buckets of several stored credentials,
 * of S3 (two servers) and Azure (Azurite), under one mount as s3/<bucket> and
 * az/<account>/<container>, each read and written through the mount.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY, type LocalAzurite, startLocalAzurite } from '../../src/demo/local-azurite.js';
import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { mountBucket, objmount, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

let first: LocalS3Server;
let second: LocalS3Server;
let azurite: LocalAzurite;
let sdk: S3Client;
let scratch: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  [first, second, azurite] = await Promise.all([
    startLocalS3ServerProcess({ buckets: ['alpha', 'beta'] }),
    startLocalS3ServerProcess({ buckets: ['gamma'] }),
    startLocalAzurite({ containers: ['photos'] }),
  ]);
  sdk = s3Client(first.endpoint);
  scratch = mkdtempSync(join(tmpdir(), 'objmount-root-'));
  env = testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'store'), AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined });
  const keyFile = (name: string, endpoint: string) => {
    const path = join(scratch, name);
    writeFileSync(path, `aws_access_key_id=${LOCAL_S3_ACCESS_KEY}\naws_secret_access_key=${LOCAL_S3_SECRET_KEY}\nendpoint=${endpoint}\n`);
    return path;
  };
  const azureFile = join(scratch, 'azure.txt');
  writeFileSync(
    azureFile,
    `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${azurite.endpoint}`,
  );
  for (const [file, name] of [
    [keyFile('one.txt', first.endpoint), 'one'],
    [keyFile('two.txt', second.endpoint), 'two'],
    [azureFile, 'azurite'],
  ] as const) {
    const imported = await objmount(['creds', 'import', file, '--name', name], env);
    if (imported.code !== 0) throw new Error(imported.stderr);
  }
  await sdk.send(new PutObjectCommand({ Bucket: 'alpha', Key: 'docs/readme.txt', Body: 'in alpha' }));
});

afterAll(async () => {
  sdk?.destroy();
  await Promise.all([first?.close(), second?.close(), azurite?.close()]);
});

describe('the root view', () => {
  it('shows every paired bucket of every stored credential, and reads and writes each', async () => {
    const mount = await mountBucket('', '', [], env);
    const root = mount.mountpoint;
    try {
      expect(readdirSync(root).sort()).toEqual(['az', 's3']);
      expect(readdirSync(join(root, 's3')).sort()).toEqual(['alpha', 'beta', 'gamma']);
      expect(readdirSync(join(root, 'az'))).toEqual([AZURITE_ACCOUNT]);
      expect(readdirSync(join(root, 'az', AZURITE_ACCOUNT))).toContain('photos');
      expect(statSync(join(root, 's3')).mode & 0o777).toBe(0o555);

      expect(readFileSync(join(root, 's3', 'alpha', 'docs', 'readme.txt'), 'utf8')).toBe('in alpha');
      writeFileSync(join(root, 's3', 'gamma', 'on-the-second-server'), 'gamma');
      writeFileSync(join(root, 'az', AZURITE_ACCOUNT, 'photos', 'in-azure'), 'azure');
      expect(readFileSync(join(root, 'az', AZURITE_ACCOUNT, 'photos', 'in-azure'), 'utf8')).toBe('azure');
      const gamma = s3Client(second.endpoint);
      try {
        expect((await gamma.send(new HeadObjectCommand({ Bucket: 'gamma', Key: 'on-the-second-server' }))).ContentLength).toBe(5);
      } finally {
        gamma.destroy();
      }
      const blob = new BlobServiceClient(azurite.endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY))
        .getContainerClient('photos')
        .getBlobClient('in-azure');
      expect((await blob.getProperties()).contentLength).toBe(5);

      // Within a bucket a rename is a rename; between buckets EXDEV, and mv copies instead.
      renameSync(join(root, 's3', 'alpha', 'docs', 'readme.txt'), join(root, 's3', 'alpha', 'docs', 'README'));
      expect(() => renameSync(join(root, 's3', 'alpha', 'docs', 'README'), join(root, 's3', 'beta', 'README'))).toThrow(
        expect.objectContaining({ code: 'EXDEV' }),
      );
      execFileSync('mv', [join(root, 's3', 'alpha', 'docs', 'README'), join(root, 'az', AZURITE_ACCOUNT, 'photos', 'README')]);
      expect(readFileSync(join(root, 'az', AZURITE_ACCOUNT, 'photos', 'README'), 'utf8')).toBe('in alpha');
      expect(readdirSync(join(root, 's3', 'alpha', 'docs'))).toEqual([]);

      // The made-up directories are not for writing.
      expect(() => writeFileSync(join(root, 's3', 'stray'), 'x')).toThrow(expect.objectContaining({ code: 'EPERM' }));
      expect(() => execFileSync('mkdir', [join(root, 's3', 'new-bucket')], { stdio: 'pipe' })).toThrow(/Operation not permitted/);
    } finally {
      await mount.unmount();
    }
  });

  it('says in one line that there is nothing to show without stored credentials', async () => {
    const empty = testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'empty-store') });
    const dir = mkdtempSync(join(scratch, 'mnt-'));
    const result = await objmount(['mount', dir], empty);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/none is paired: import one with 'objmount creds import FILE'/);
  });
});
