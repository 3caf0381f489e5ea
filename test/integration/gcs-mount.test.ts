/**
 * A real FUSE mount of a bucket on the Cloud Storage emulator (`objmount mount gs://bucket MNT
 * --endpoint http://127.0.0.1:PORT`), driven by ordinary tools and file calls, checked through
 * the mount and through @google-cloud/storage.
 *
 * The emulator has no compose, so a file larger than one part cannot be completed there: this
 * mount raises --part-size to 32 MiB so 20 MiB files go up in one request, and one test checks
 * that a file of more than one part fails its close (EINVAL: the store refused the compose) and
 * leaves no part object behind.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import { Storage } from '@google-cloud/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type GcsEmulator, startComposeShimProcess, startGcsEmulator } from '../helpers/gcs-emulator.js';
import { type TestMount, isMounted, mountBucket, objmount, testEnv } from '../helpers/objmount.js';

const BUCKET = 'gcs-mount-test';
const MiB = 1024 * 1024;

let emulator: GcsEmulator;
let mount: TestMount | undefined;
let storage: Storage;
let mnt: string;
let local: string;

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The test's environment, without any Google credential that could send requests elsewhere. */
function gcsEnv(): NodeJS.ProcessEnv {
  const env = testEnv();
  for (const name of Object.keys(env))
    if (name.startsWith('GOOGLE_') || name.startsWith('GCLOUD') || name === 'STORAGE_EMULATOR_HOST') delete env[name];
  return env;
}

async function keys(prefix = ''): Promise<string[]> {
  const [files] = await storage.bucket(BUCKET).getFiles({ prefix });
  return files.map((f) => f.name).sort();
}

async function download(key: string): Promise<Buffer> {
  const [body] = await storage.bucket(BUCKET).file(key).download();
  return body;
}

function sh(command: string, cwd = mnt): string {
  // Bounded, so a hung mount fails the test instead of the whole run.
  return execFileSync('bash', ['-c', command], { cwd, encoding: 'utf8', timeout: 60_000 });
}

beforeAll(async () => {
  emulator = await startGcsEmulator();
  storage = new Storage({ apiEndpoint: emulator.endpoint, projectId: 'test' });
  // The emulator makes a bucket on first use; the mount's probe is that use.
  mount = await mountBucket(emulator.endpoint, `gs://${BUCKET}`, ['--part-size', '32M', '--metadata-ttl', '0'], gcsEnv());
  mnt = mount.mountpoint;
  local = mkdtempSync(join(tmpdir(), 'objmount-gcs-local-'));
});

afterAll(async () => {
  try {
    await mount?.unmount();
  } finally {
    await emulator?.close();
    if (local) rmSync(local, { recursive: true, force: true });
  }
});

describe('a gs:// mount on the emulator', () => {
  it('writes a small file that reads back, with its mode stored as object metadata', async () => {
    writeFileSync(join(mnt, 'hello.txt'), 'hello, gcs\n');
    sh('chmod 600 hello.txt');
    expect(readFileSync(join(mnt, 'hello.txt'), 'utf8')).toBe('hello, gcs\n');
    expect((await download('hello.txt')).toString()).toBe('hello, gcs\n');
    const [metadata] = await storage.bucket(BUCKET).file('hello.txt').getMetadata();
    expect(metadata.metadata).toMatchObject({ mode: String(0o100600) });
    expect(statSync(join(mnt, 'hello.txt')).mode & 0o777).toBe(0o600);
    // Changing an existing object: its bytes come down to a staging file, and go up whole.
    sh('echo again >> hello.txt && sed -i s/gcs/GCS/ hello.txt');
    expect((await download('hello.txt')).toString()).toBe('hello, GCS\nagain\n');
    expect(readFileSync(join(mnt, 'hello.txt'), 'utf8')).toBe('hello, GCS\nagain\n');
  });

  it('makes a FIFO and a device node: empty objects with their type in mode, the device number in rdev', async () => {
    sh('umask 022 && mkfifo fifo && mknod chr c 1 3');
    const [fifo] = await storage.bucket(BUCKET).file('fifo').getMetadata();
    expect(fifo.metadata).toMatchObject({ mode: '4516' });
    const [chr] = await storage.bucket(BUCKET).file('chr').getMetadata();
    expect([Number(chr.size), chr.metadata]).toEqual([0, expect.objectContaining({ mode: '8612', rdev: '259' })]);
    // --metadata-ttl 0: these come from the store.
    expect(statSync(join(mnt, 'fifo')).isFIFO()).toBe(true);
    expect(statSync(join(mnt, 'chr'))).toMatchObject({ mode: 0o20644, rdev: 259 });
    sh('rm fifo chr');
  });

  it('writes a 20 MiB file with cp and reads it back byte for byte, through the mount and the API', async () => {
    const data = randomBytes(20 * MiB);
    writeFileSync(join(local, 'big.bin'), data);
    sh(`cp ${join(local, 'big.bin')} big.bin`);
    expect(statSync(join(mnt, 'big.bin')).size).toBe(20 * MiB);
    expect(sha(await download('big.bin'))).toBe(sha(data));
    expect(sha(readFileSync(join(mnt, 'big.bin')))).toBe(sha(data));
  });

  it('reads a 20 MiB object written by another client, in ranges, byte for byte', async () => {
    const data = randomBytes(20 * MiB);
    await storage.bucket(BUCKET).file('from-api.bin').save(data, { resumable: false });
    expect(sha(readFileSync(join(mnt, 'from-api.bin')))).toBe(sha(data));
    // A seek: dd reads 1 MiB from the middle.
    const middle = execFileSync('dd', [`if=${join(mnt, 'from-api.bin')}`, 'bs=1M', 'skip=7', 'count=1', 'status=none'], {
      timeout: 60_000,
    });
    expect(middle.equals(data.subarray(7 * MiB, 8 * MiB))).toBe(true);
  });

  it('makes directories, renames files and directories, and lists them', async () => {
    sh('mkdir -p projects/a && echo one > projects/a/one.txt && echo two > projects/a/two.txt');
    expect(await keys('projects/')).toEqual(['projects/', 'projects/a/', 'projects/a/one.txt', 'projects/a/two.txt']);
    sh('mv projects/a/one.txt projects/a/uno.txt');
    expect(readdirSync(join(mnt, 'projects/a')).sort()).toEqual(['two.txt', 'uno.txt']);
    sh('mv projects/a projects/b');
    expect(readdirSync(join(mnt, 'projects')).sort()).toEqual(['b']);
    expect(sh('cat projects/b/uno.txt projects/b/two.txt')).toBe('one\ntwo\n');
    expect(await keys('projects/')).toEqual(['projects/', 'projects/b/', 'projects/b/two.txt', 'projects/b/uno.txt']);
    expect(sh('ls -1 projects/b')).toBe('two.txt\nuno.txt\n');
    sh('rm -r projects');
    expect(existsSync(join(mnt, 'projects'))).toBe(false);
    expect(await keys('projects/')).toEqual([]);
  });

  it('hides objects whose names hold a NUL (the emulator takes them; S3 servers here do not), logging each once', async () => {
    sh('mkdir nul'); // made here: the mount knows it (a listing of / may be fresh)
    const file = storage.bucket(BUCKET);
    await file.file('nul/ok.txt').save('fine', { resumable: false });
    await file.file('nul/a\0b').save('a NUL in a name', { resumable: false });
    await file.file('nul/dir\0x/inner').save('a NUL in a directory', { resumable: false });
    expect(sh('ls -A nul')).toBe('ok.txt\n');
    expect(sh('ls -A nul')).toBe('ok.txt\n'); // a second listing logs nothing more
    // Not reachable by the name C would cut it to either.
    expect(existsSync(join(mnt, 'nul', 'a'))).toBe(false);
    expect(existsSync(join(mnt, 'nul', 'dir'))).toBe(false);
    // The daemon's log is JSON lines: the key's `\x00` shows there as `\\x00`.
    const logged = readFileSync(mount!.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.includes('NUL byte'));
    expect(logged).toHaveLength(2);
    expect(logged.join('\n')).toContain(String.raw`key 'nul/a\\x00b' is not shown in the mount`);
    expect(logged.join('\n')).toContain(String.raw`key 'nul/dir\\x00x/' is not shown in the mount`);
  });

  it('fails the close of a file of more than one part (the emulator has no compose), leaving no part behind', async () => {
    // A mount of its own: after the failed close, the release tries the upload once more in the
    // background; the unmount waits for that, and only then is the bucket checked.
    const own = await mountBucket(emulator.endpoint, `gs://${BUCKET}/noparts`, ['--part-size', '32M'], gcsEnv());
    try {
      const data = randomBytes(33 * MiB);
      writeFileSync(join(local, 'parts.bin'), data);
      const result = spawnSync('cp', [join(local, 'parts.bin'), join(own.mountpoint, 'parts.bin')], { encoding: 'utf8', timeout: 60_000 });
      expect(result.status).not.toBe(0);
      // The store refused the request (InvalidRequest), which the one errno table makes EINVAL.
      expect(result.stderr).toMatch(/failed to close .*parts\.bin': Invalid argument/);
    } finally {
      await own.unmount();
    }
    expect(await keys('noparts/')).toEqual([]);
    expect(readFileSync(own.logFile, 'utf8')).toMatch(/compose refused: HTTP 501: not supported by http:\/\/127\.0\.0\.1:\d+/);
  });
});

describe('a gs:// mount whose large files are composite uploads (compose shim over the emulator)', () => {
  // Default --part-size (8 MiB): a 20 MiB file streams as parts while it is written and is
  // composed at close. The emulator has no compose; test/helpers/gcs-compose-shim.mjs adds one, so
  // this checks objmount's whole write path for large files, not GCS's compose.
  it('writes 20 MiB files as parts, composes them, and leaves no part object', async () => {
    const shim = await startComposeShimProcess(emulator.endpoint);
    let composed: TestMount | undefined;
    try {
      composed = await mountBucket(shim.endpoint, `gs://${BUCKET}/composed`, [], gcsEnv());
      const data = randomBytes(20 * MiB + 12345);
      writeFileSync(join(local, 'composite.bin'), data);
      sh(`cp ${join(local, 'composite.bin')} composite.bin`, composed.mountpoint);
      sh(`dd if=${join(local, 'composite.bin')} of=streamed.bin bs=128k status=none`, composed.mountpoint);
      for (const name of ['composite.bin', 'streamed.bin']) {
        expect(sha(await download(`composed/${name}`))).toBe(sha(data));
        expect(sha(readFileSync(join(composed.mountpoint, name)))).toBe(sha(data));
      }
      expect(await keys('composed/')).toEqual(['composed/composite.bin', 'composed/streamed.bin']);
      const [metadata] = await storage.bucket(BUCKET).file('composed/composite.bin').getMetadata();
      expect(metadata.metadata).toMatchObject({ mode: String(0o100644) });
      expect(readFileSync(composed.logFile, 'utf8')).not.toMatch(/"level":"(warn|error)"/);
    } finally {
      await composed?.unmount();
      await shim.close();
    }
  });
});

describe('gs:// mounts that cannot start', () => {
  it('names a malformed key file and what is wrong with it, in one line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'objmount-gcs-key-'));
    const keyFile = join(dir, 'key.json');
    writeFileSync(keyFile, '{"type": "service_account", "client_email": "x@y.iam.gserviceaccount.com"');
    const mountpoint = join(dir, 'mnt');
    execFileSync('mkdir', [mountpoint]);
    try {
      const result = await objmount(
        ['mount', `gs://${BUCKET}`, mountpoint, '--endpoint', emulator.endpoint, '--key-file', keyFile, '--log-file', join(dir, 'log')],
        gcsEnv(),
      );
      expect(result.code).not.toBe(0);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(
        new RegExp(`cannot mount gs://${BUCKET}: the GCS key file ${keyFile} is not valid JSON \\(at character \\d+\\)`),
      );
      const env = { ...gcsEnv(), GOOGLE_APPLICATION_CREDENTIALS: keyFile };
      writeFileSync(keyFile, JSON.stringify({ type: 'authorized_user', client_id: 'x', client_secret: 'y', refresh_token: 'z' }));
      const fromEnv = await objmount(
        ['mount', `gs://${BUCKET}`, mountpoint, '--endpoint', emulator.endpoint, '--log-file', join(dir, 'log')],
        env,
      );
      expect(fromEnv.code).not.toBe(0);
      expect(fromEnv.stderr).toMatch(
        /the GCS key file .*key\.json holds a user's gcloud login \(type authorized_user\), not a service-account key/,
      );
      expect(fromEnv.stderr).not.toContain('refresh_token');
    } finally {
      expect(isMounted(mountpoint)).toBe(false);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses options that are for the other kind of source', async () => {
    const onS3 = await objmount(['mount', 's3://bucket', '/nonexistent/mnt', '--key-file', '/k.json'], gcsEnv());
    expect(onS3).toMatchObject({ code: 2, stderr: 'objmount: --key-file is for gs:// sources only\n' });
    const mountpoint = mkdtempSync(join(tmpdir(), 'objmount-gcs-creds-'));
    const onGs = await objmount(['mount', 'gs://bucket', mountpoint, '--creds', 'partner'], {
      ...gcsEnv(),
      OBJMOUNT_CONFIG_DIR: join(mountpoint, '..', `${basename(mountpoint)}-store`),
    });
    expect(onGs).toMatchObject({
      code: 1,
      stderr: "objmount: no stored Google Cloud credential named 'partner' (see 'objmount creds list')\n",
    });
    expect(isMounted(mountpoint)).toBe(false);
  });

  it('says the endpoint cannot be reached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'objmount-gcs-down-'));
    const mountpoint = join(dir, 'mnt');
    execFileSync('mkdir', [mountpoint]);
    try {
      const result = await objmount(
        ['mount', `gs://${BUCKET}`, mountpoint, '--endpoint', 'http://127.0.0.1:9', '--log-file', join(dir, 'log')],
        gcsEnv(),
        120_000,
      );
      expect(result.code).not.toBe(0);
      expect(result.stderr.trim()).toMatch(
        /^objmount: cannot mount gs:\/\/gcs-mount-test: cannot reach http:\/\/127\.0\.0\.1:9 \(ECONNREFUSED\) for gs:\/\/gcs-mount-test: check --endpoint and the network$/,
      );
    } finally {
      expect(isMounted(mountpoint)).toBe(false);
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
