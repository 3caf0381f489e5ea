/**
 * Files' metadata kept across mounts (fs/kept-metadata.ts), on a real mount of a real S3 server:
 * what the next mount's `ls -l` costs and shows, and what another client's change does to it.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { CopyObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type TestMount, mountBucket, objmount, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'kept';
let server: LocalS3Server;
let sdk: S3Client;
let work: string;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  sdk = s3Client(server.endpoint);
  work = mkdtempSync(join(tmpdir(), 'objmount-kept-'));
});

afterAll(async () => {
  sdk?.destroy();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** The daemon's store requests so far, by operation. */
async function requests(mount: TestMount): Promise<Record<string, number>> {
  const [status] = JSON.parse((await objmount(['status', '--json', mount.mountpoint])).stdout) as Array<{
    requestsByOperation: Record<string, number>;
  }>;
  return status!.requestsByOperation;
}

/** Runs `body` on a fresh mount, unmounting in every outcome. */
async function onMount<T>(args: string[], body: (mount: TestMount) => Promise<T>): Promise<T> {
  const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, args);
  try {
    return await body(mount);
  } finally {
    await mount.unmount();
  }
}

/** Waits for the clock's next whole second (Last-Modified has a resolution of one second). */
async function nextSecond(): Promise<void> {
  await sleep(1000 - (Date.now() % 1000) + 10);
}

/** `ls -l`'s modes by name, and the HEADs and GETs it cost. */
async function lsModes(mount: TestMount, dir: string): Promise<{ modes: Map<string, string>; perFile: number }> {
  execFileSync('stat', [join(mount.mountpoint, dir)]); // the directory's own lookup, not counted
  const before = await requests(mount);
  const out = execFileSync('ls', ['-l', join(mount.mountpoint, dir)], { encoding: 'utf8' });
  const after = await requests(mount);
  const modes = new Map<string, string>();
  for (const line of out.trim().split('\n').slice(1)) {
    const fields = line.split(/\s+/);
    modes.set(fields.at(-1)!, fields[0]!);
  }
  const spent = (op: string) => (after[op] ?? 0) - (before[op] ?? 0);
  return { modes, perFile: spent('head') + spent('get') };
}

describe('metadata kept across mounts', () => {
  it("answers the next mount's `ls -l` of files written and chmodded through the mount with the listing alone", async () => {
    const metadataDir = join(work, 'meta-written');
    const args = ['--metadata-dir', metadataDir];
    await onMount(args, async (mount) => {
      mkdirSync(join(mount.mountpoint, 'w'));
      for (let i = 0; i < 30; i++) writeFileSync(join(mount.mountpoint, 'w', `f${i}`), `file ${i}\n`);
      chmodSync(join(mount.mountpoint, 'w', 'f0'), 0o600);
    });
    expect(statSync(metadataDir).mode & 0o777).toBe(0o700);
    expect(readdirSync(metadataDir)).toHaveLength(1);

    await onMount(args, async (mount) => {
      const { modes, perFile } = await lsModes(mount, 'w');
      expect(modes.size).toBe(30);
      expect(modes.get('f0')).toBe('-rw-------');
      expect(modes.get('f1')).toBe('-rw-r--r--');
      expect(perFile).toBe(0);
    });
    // Without kept metadata the same `ls -l` costs a request per file.
    await onMount([...args, '--no-keep-metadata'], async (mount) => {
      const { modes, perFile } = await lsModes(mount, 'w');
      expect(modes.get('f0')).toBe('-rw-------');
      expect(perFile).toBe(30);
    });
  });

  it("shows another client's change made between mounts: the changed object alone is asked for", async () => {
    const metadataDir = join(work, 'meta-changed');
    const args = ['--metadata-dir', metadataDir];
    for (let i = 0; i < 10; i++) await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: `c/f${i}`, Body: `object ${i}` }));
    // What is read in the second its object was written is not kept (another version may share
    // its ETag and Last-Modified): the mount below reads them in a later one.
    await nextSecond();
    await onMount(args, async (mount) => {
      const { perFile } = await lsModes(mount, 'c');
      expect(perFile).toBe(10);
    });
    // A chmod by another client copies the object onto itself (same bytes, same ETag), and
    // another rewrites one with other bytes.
    await sdk.send(
      new CopyObjectCommand({
        Bucket: BUCKET,
        Key: 'c/f1',
        CopySource: `${BUCKET}/c/f1`,
        MetadataDirective: 'REPLACE',
        Metadata: { mode: String(0o100600) },
      }),
    );
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'c/f2', Body: 'other bytes', Metadata: { mode: String(0o100640) } }));

    await onMount(args, async (mount) => {
      const { modes, perFile } = await lsModes(mount, 'c');
      expect(modes.get('f0')).toBe('-rw-r--r--');
      expect(modes.get('f1')).toBe('-rw-------');
      expect(modes.get('f2')).toBe('-rw-r-----');
      expect(perFile).toBe(2);
    });
  });

  it('refuses a --metadata-dir that others may write in, with one line saying what to do', async () => {
    const open = join(work, 'meta-open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const mountpoint = mkdtempSync(join(tmpdir(), 'objmount-kept-mnt-'));
    const result = await objmount(
      ['mount', `s3://${BUCKET}`, mountpoint, '--endpoint', server.endpoint, '--metadata-dir', open],
      testEnv(),
    );
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`--metadata-dir ${open}`);
    expect(result.stderr).toContain('chmod go-w');
    rmSync(mountpoint, { recursive: true, force: true });
  });
});
