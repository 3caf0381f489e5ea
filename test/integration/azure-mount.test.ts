/**
 * A real FUSE mount of an Azurite container (az://), written and read through ordinary file
 * calls and checked through the SDK; and the bad inputs of an Azure mount, each one clear line.
 */

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import {
  BlobServiceClient,
  type ContainerClient,
  ContainerSASPermissions,
  StorageSharedKeyCredential,
  generateBlobSASQueryParameters,
} from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY, type LocalAzurite, startLocalAzurite } from '../../src/demo/local-azurite.js';
import {
  type CliResult,
  type TestMount,
  azureTestEnv,
  forceUnmount,
  isMounted,
  mountBucket,
  objmount,
  objmountWithInput,
  statWhenShown,
} from '../helpers/objmount.js';

const CONTAINER = 'mounted';
const MiB = 1024 * 1024;
const SOURCE = `az://${AZURITE_ACCOUNT}/${CONTAINER}`;

let azurite: LocalAzurite;
let container: ContainerClient;
let scratch: string;

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function blobNames(prefix = ''): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat({ prefix })) names.push(blob.name);
  return names.sort();
}

beforeAll(async () => {
  azurite = await startLocalAzurite({ containers: [CONTAINER] });
  const service = new BlobServiceClient(azurite.endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY));
  container = service.getContainerClient(CONTAINER);
  scratch = mkdtempSync(join(tmpdir(), 'objmount-azure-'));
});

afterAll(async () => {
  await azurite?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('a mounted Azurite container', () => {
  let mount: TestMount;
  let mnt: string;

  beforeAll(async () => {
    mount = await mountBucket(azurite.endpoint, SOURCE, ['--part-size', '4M'], azureTestEnv());
    mnt = mount.mountpoint;
  });

  afterAll(async () => {
    await mount?.unmount();
  });

  it('writes a small file and reads it back, and the blob holds the same bytes with its mode', async () => {
    writeFileSync(join(mnt, 'hello.txt'), 'hello azure\n', { mode: 0o640 });
    expect(readFileSync(join(mnt, 'hello.txt'), 'utf8')).toBe('hello azure\n');
    const blob = container.getBlobClient('hello.txt');
    expect((await blob.downloadToBuffer()).toString()).toBe('hello azure\n');
    const properties = await blob.getProperties();
    expect(Number(properties.metadata?.mode) & 0o777).toBe(0o640);
    expect(statSync(join(mnt, 'hello.txt')).mode & 0o777).toBe(0o640);
    writeFileSync(join(mnt, 'empty'), '');
    expect(readFileSync(join(mnt, 'empty')).length).toBe(0);
    symlinkSync('hello.txt', join(mnt, 'link'));
    expect(readlinkSync(join(mnt, 'link'))).toBe('hello.txt');
    expect(readFileSync(join(mnt, 'link'), 'utf8')).toBe('hello azure\n');
    unlinkSync(join(mnt, 'link'));
    unlinkSync(join(mnt, 'empty'));
    expect(await blobNames()).toEqual(['hello.txt']);
  });

  it('makes a FIFO and a device node: empty blobs with their type in mode, the device number in rdev', async () => {
    execFileSync('sh', ['-c', 'umask 022 && mkfifo fifo && mknod chr c 1 3'], { cwd: mnt });
    expect((await container.getBlobClient('fifo').getProperties()).metadata).toMatchObject({ mode: '4516' });
    const chr = await container.getBlobClient('chr').getProperties();
    expect([chr.contentLength, chr.metadata]).toEqual([0, expect.objectContaining({ mode: '8612', rdev: '259' })]);
    expect(statSync(join(mnt, 'fifo')).isFIFO()).toBe(true);
    expect(statSync(join(mnt, 'chr'))).toMatchObject({ mode: 0o20644, rdev: 259 });
    unlinkSync(join(mnt, 'fifo'));
    unlinkSync(join(mnt, 'chr'));
  });

  it('writes a 20 MiB file in blocks and reads it back byte-identical, through the mount and the SDK', async () => {
    const data = randomBytes(20 * MiB);
    const local = join(scratch, 'big.bin');
    writeFileSync(local, data);
    execFileSync('cp', [local, join(mnt, 'big.bin')]);
    const blob = container.getBlockBlobClient('big.bin');
    const blocks = await blob.getBlockList('committed');
    expect(blocks.committedBlocks?.length ?? 0).toBeGreaterThan(1); // a block list, not one Put Blob
    expect(sha(await blob.downloadToBuffer())).toBe(sha(data));
    expect(statSync(join(mnt, 'big.bin')).size).toBe(data.length);
    expect(sha(readFileSync(join(mnt, 'big.bin')))).toBe(sha(data));
    // A read from the middle, as a seek makes it.
    const middle = Buffer.alloc(2 * MiB);
    const fd = openSync(join(mnt, 'big.bin'), 'r');
    try {
      expect(readSync(fd, middle, 0, middle.length, 13 * MiB + 5)).toBe(middle.length);
    } finally {
      closeSync(fd);
    }
    expect(sha(middle)).toBe(sha(data.subarray(13 * MiB + 5, 15 * MiB + 5)));
  });

  it('appends to a large file by copying its unchanged start inside the store', async () => {
    const start = randomBytes(6 * MiB);
    writeFileSync(join(mnt, 'log.bin'), start);
    const before = await container.getBlobClient('log.bin').getProperties();
    appendFileSync(join(mnt, 'log.bin'), 'one more line\n');
    const expected = Buffer.concat([start, Buffer.from('one more line\n')]);
    expect(sha(await container.getBlobClient('log.bin').downloadToBuffer())).toBe(sha(expected));
    expect((await container.getBlobClient('log.bin').getProperties()).etag).not.toBe(before.etag);
    expect(sha(readFileSync(join(mnt, 'log.bin')))).toBe(sha(expected));
    // The unchanged start was copied inside the store (Put Block From URL), not sent again.
    const status = await objmount(['status', mnt, '--json'], azureTestEnv());
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(status.stdout))).toMatch(/"copy part":[1-9]/);
    // The snapshot the copied parts came from is gone.
    const snapshots: string[] = [];
    for await (const blob of container.listBlobsFlat({ prefix: 'log.bin', includeSnapshots: true }))
      if (blob.snapshot) snapshots.push(blob.name);
    expect(snapshots).toEqual([]);
  });

  it('makes directories, lists them, and renames files and directories', async () => {
    mkdirSync(join(mnt, 'dir/sub'), { recursive: true });
    writeFileSync(join(mnt, 'dir/sub/a.txt'), 'a');
    writeFileSync(join(mnt, 'dir/b.txt'), 'b');
    expect(readdirSync(join(mnt, 'dir')).sort()).toEqual(['b.txt', 'sub']);
    expect(statSync(join(mnt, 'dir/sub')).isDirectory()).toBe(true);
    expect(await blobNames('dir/')).toEqual(['dir/', 'dir/b.txt', 'dir/sub/', 'dir/sub/a.txt']);

    renameSync(join(mnt, 'dir/b.txt'), join(mnt, 'dir/c.txt'));
    renameSync(join(mnt, 'dir'), join(mnt, 'moved'));
    expect(readdirSync(mnt).sort()).toEqual(['big.bin', 'hello.txt', 'log.bin', 'moved']);
    expect(readFileSync(join(mnt, 'moved/c.txt'), 'utf8')).toBe('b');
    expect(readFileSync(join(mnt, 'moved/sub/a.txt'), 'utf8')).toBe('a');
    expect(await blobNames('dir/')).toEqual([]);
    expect(await blobNames('moved/')).toEqual(['moved/', 'moved/c.txt', 'moved/sub/', 'moved/sub/a.txt']);
    expect(execFileSync('ls', ['-l', join(mnt, 'moved')], { encoding: 'utf8' })).toMatch(/c\.txt/);
  });

  it('shows blobs written by other tools, with implicit directories', async () => {
    await container.getBlockBlobClient('other/tool/file.txt').upload('from the SDK', 12);
    await statWhenShown(join(mnt, 'other')); // a new directory: seen once --negative-ttl has passed
    expect(readdirSync(join(mnt, 'other'))).toEqual(['tool']);
    expect(readFileSync(join(mnt, 'other/tool/file.txt'), 'utf8')).toBe('from the SDK');
  });

  it("shows blobfuse's directories (blobs marked hdi_isfolder=true) as directories, empty ones too", async () => {
    const marker = { metadata: { hdi_isfolder: 'true' } };
    await container.getBlockBlobClient('blobfuse').upload('', 0, marker);
    await container.getBlockBlobClient('blobfuse/empty').upload('', 0, marker);
    await container.getBlockBlobClient('blobfuse/full').upload('', 0, marker);
    await container.getBlockBlobClient('blobfuse/full/f.txt').upload('f', 1);
    // Looked up directly first (the root may have been listed less than --negative-ttl ago: a new
    // directory shows once that has passed), then listed.
    expect((await statWhenShown(join(mnt, 'blobfuse/empty'))).isDirectory()).toBe(true);
    expect(readdirSync(join(mnt, 'blobfuse')).sort()).toEqual(['empty', 'full']);
    expect(statSync(join(mnt, 'blobfuse/full')).isDirectory()).toBe(true);
    expect(readdirSync(join(mnt, 'blobfuse/empty'))).toEqual([]);
    expect(readFileSync(join(mnt, 'blobfuse/full/f.txt'), 'utf8')).toBe('f');

    // Renamed and removed like any directory: the hdi_isfolder blobs go with them.
    renameSync(join(mnt, 'blobfuse/full'), join(mnt, 'blobfuse/renamed'));
    expect(readFileSync(join(mnt, 'blobfuse/renamed/f.txt'), 'utf8')).toBe('f');
    rmdirSync(join(mnt, 'blobfuse/empty'));
    expect(readdirSync(join(mnt, 'blobfuse'))).toEqual(['renamed']);
    expect(await blobNames('blobfuse/')).toEqual(['blobfuse/renamed/', 'blobfuse/renamed/f.txt']);
  });
});

describe('other Azure credentials', () => {
  it('mounts with a connection string alone (its BlobEndpoint, no --endpoint) and with a container SAS', async () => {
    const connection = `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${azurite.endpoint};`;
    await container.getBlockBlobClient('credentials.txt').upload('seen', 4);
    const viaString = await mountBucket(
      '',
      SOURCE,
      [],
      azureTestEnv({ AZURE_STORAGE_KEY: undefined, AZURE_STORAGE_CONNECTION_STRING: connection }),
    );
    try {
      expect(readFileSync(join(viaString.mountpoint, 'credentials.txt'), 'utf8')).toBe('seen');
    } finally {
      await viaString.unmount();
    }
    const sas = generateBlobSASQueryParameters(
      { containerName: CONTAINER, permissions: ContainerSASPermissions.parse('racwdl'), expiresOn: new Date(Date.now() + 3600_000) },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY),
    ).toString();
    const viaSas = await mountBucket(
      azurite.endpoint,
      SOURCE,
      [],
      azureTestEnv({ AZURE_STORAGE_KEY: undefined, AZURE_STORAGE_SAS_TOKEN: sas }),
    );
    try {
      writeFileSync(join(viaSas.mountpoint, 'via-sas.txt'), 'sas');
      expect((await container.getBlobClient('via-sas.txt').downloadToBuffer()).toString()).toBe('sas');
      const log = readFileSync(viaSas.logFile, 'utf8');
      expect(log).toContain('the SAS token from AZURE_STORAGE_SAS_TOKEN');
      expect(log).not.toContain(/sig=([^&]*)/.exec(sas)![1]!);
    } finally {
      await viaSas.unmount();
    }
  });
});

describe('bad input for an Azure mount', () => {
  function emptyDir(name: string): string {
    const dir = join(scratch, name);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** One line on stderr, no stack trace, non-zero exit, nothing mounted, no secret shown. */
  function expectCleanFailure(result: CliResult, mountpoint: string, pattern: RegExp, secret?: string): void {
    const wasMounted = isMounted(mountpoint);
    forceUnmount(mountpoint);
    expect(wasMounted, `${mountpoint} must not be mounted`).toBe(false);
    expect(result.code, result.stderr).not.toBe(0);
    const lines = result.stderr.trim().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^objmount: /);
    expect(lines[0]).toMatch(pattern);
    expect(result.stderr).not.toMatch(/\n\s+at /);
    if (secret) expect(result.stderr + result.stdout).not.toContain(secret);
  }

  it('a wrong account key', async () => {
    const mnt = emptyDir('wrong-key');
    const wrongKey = Buffer.from('this is not the key of the development account').toString('base64');
    const result = await objmount(['mount', SOURCE, mnt, '--endpoint', azurite.endpoint], azureTestEnv({ AZURE_STORAGE_KEY: wrongKey }));
    expectCleanFailure(result, mnt, /rejected the account key of devstoreaccount1 from AZURE_STORAGE_KEY.*check the account key/, wrongKey);
  });

  it('a container that does not exist', async () => {
    const mnt = emptyDir('no-container');
    const result = await objmount(
      ['mount', `az://${AZURITE_ACCOUNT}/no-such-container`, mnt, '--endpoint', azurite.endpoint],
      azureTestEnv(),
    );
    expectCleanFailure(result, mnt, /container 'no-such-container' does not exist in account 'devstoreaccount1'.*check the container name/);
  });

  it('no credentials, or a key for another account', async () => {
    const mnt = emptyDir('no-creds');
    const none = await objmount(['mount', SOURCE, mnt, '--endpoint', azurite.endpoint], azureTestEnv({ AZURE_STORAGE_KEY: undefined }));
    expectCleanFailure(none, mnt, /no credentials found for az:\/\/devstoreaccount1\/mounted: set AZURE_STORAGE_KEY/);
    const other = await objmount(
      ['mount', SOURCE, mnt, '--endpoint', azurite.endpoint],
      azureTestEnv({ AZURE_STORAGE_ACCOUNT: 'someoneelse' }),
    );
    expectCleanFailure(other, mnt, /AZURE_STORAGE_ACCOUNT is 'someoneelse'/, AZURITE_ACCOUNT_KEY);
  });

  it('a stored credential named for an Azure source that is not stored, or is for another account', async () => {
    const mnt = emptyDir('creds-flag');
    const env = azureTestEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'creds-flag-store') });
    const result = await objmount(['mount', SOURCE, mnt, '--endpoint', azurite.endpoint, '--creds', 'work'], env);
    expectCleanFailure(result, mnt, /no stored credential named 'work'/);
  });

  it('an endpoint where nothing listens', async () => {
    const mnt = emptyDir('unreachable');
    const result = await objmount(['mount', SOURCE, mnt, '--endpoint', 'http://127.0.0.1:9/devstoreaccount1'], azureTestEnv());
    expectCleanFailure(result, mnt, /cannot reach http:\/\/127\.0\.0\.1:9\/devstoreaccount1.*check --endpoint/);
  });
});

describe('stored Azure credentials (objmount creds)', () => {
  const storeEnv = (name: string) => azureTestEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, name), AZURE_STORAGE_KEY: undefined });

  it('imports a connection string, pairs the containers it lists, and mounts by pairing alone', async () => {
    const env = storeEnv('azure-store-1');
    const file = join(scratch, 'azurite-connection.txt');
    writeFileSync(
      file,
      `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_ACCOUNT_KEY};BlobEndpoint=${azurite.endpoint};\n`,
    );
    const imported = await objmount(['creds', 'import', file, '--name', 'azurite'], env);
    expect(imported.stderr).toBe('');
    expect(imported.stdout).toMatch(
      new RegExp(
        `Imported 'azurite' \\(Azure account ${AZURITE_ACCOUNT} with its account key at .*\\)\\. Detected \\d+ buckets?, paired \\d+: .*${CONTAINER}`,
      ),
    );
    const list = await objmount(['creds', 'list'], env);
    expect(list.stdout).toContain(`${SOURCE} -> azurite`);
    expect(list.stdout + (await objmount(['creds', 'show', 'azurite', '--json'], env)).stdout).not.toContain(AZURITE_ACCOUNT_KEY);
    expect((await objmount(['creds', 'verify', 'azurite'], env)).stdout).toMatch(
      /azurite: authenticates, lists \d+ bucket\(s\); mounted ok/,
    );

    // No --endpoint, no AZURE_* variables: the pairing says which key and which endpoint.
    const mount = await mountBucket('', SOURCE, [], env);
    try {
      writeFileSync(join(mount.mountpoint, 'via-stored-credential'), 'stored');
      expect(await blobNames('via-stored-credential')).toEqual(['via-stored-credential']);
    } finally {
      await mount.unmount();
    }
  });

  it('pairs a container with its own SAS, and mounts with nothing but the SAS', async () => {
    const env = storeEnv('azure-store-2');
    const sas = generateBlobSASQueryParameters(
      { containerName: CONTAINER, permissions: ContainerSASPermissions.parse('racwdl'), expiresOn: new Date(Date.now() + 3_600_000) },
      new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY),
    ).toString();
    // On the command line it is refused, and not repeated.
    const exposed = await objmount(['creds', 'pair', SOURCE, `?${sas}`, '--endpoint', azurite.endpoint], env);
    expect(exposed.code).not.toBe(0);
    expect(exposed.stderr.trim()).toBe(
      'objmount: a SAS on the command line stays in your shell history and in /proc: give it with --sas FILE, or with --sas - on standard input (and think of it as exposed)',
    );
    const paired = await objmountWithInput(['creds', 'pair', SOURCE, '--sas', '-', '--endpoint', azurite.endpoint], `?${sas}\n`, env);
    expect(paired.stderr).toBe('');
    expect(paired.stdout).toMatch(new RegExp(`paired ${SOURCE} with its SAS, stored as '${AZURITE_ACCOUNT}-${CONTAINER}'`));
    const shown = await objmount(['creds', 'show', `${AZURITE_ACCOUNT}-${CONTAINER}`, '--json'], env);
    expect(JSON.parse(shown.stdout)).toMatchObject({ provider: 'az', auth: 'SAS', secret: '********' });
    expect(shown.stdout).not.toContain(sas.slice(sas.indexOf('sig=')));
    const mount = await mountBucket('', SOURCE, [], env);
    try {
      writeFileSync(join(mount.mountpoint, 'via-sas'), 'sas');
      expect(readFileSync(join(mount.mountpoint, 'via-sas'), 'utf8')).toBe('sas');
    } finally {
      await mount.unmount();
    }
    // From a file, and with NAME '-' for standard input.
    const sasFile = join(mkdtempSync(join(tmpdir(), 'sas-')), 'sas.txt');
    writeFileSync(sasFile, sas, { mode: 0o600 });
    const wrong = await objmount(
      ['creds', 'pair', `az://${AZURITE_ACCOUNT}/nosuchcontainer`, '--sas', sasFile, '--endpoint', azurite.endpoint],
      env,
    );
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toMatch(/cannot pair az:\/\/devstoreaccount1\/nosuchcontainer with the SAS/);
    expect(wrong.stderr).not.toContain(sas.slice(sas.indexOf('sig=') + 4));
    const viaDash = await objmountWithInput(['creds', 'pair', SOURCE, '-', '--endpoint', azurite.endpoint], sas, env);
    expect(viaDash.stdout, viaDash.stderr).toMatch(/paired .* with its SAS/);
  });
});
