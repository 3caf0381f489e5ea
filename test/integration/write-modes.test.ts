/**
 * The write path on a real mount: both write modes, the journal that survives kill -9, and a
 * failing store that must surface at close with no multipart upload left behind.
 */

import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { GetObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readLogs } from '../../src/fs/write/journal-log.js';
import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { daemonPid, forceUnmount, isMounted, mountBucket, objmount, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'writes';
const MiB = 1024 * 1024;
let server: LocalS3Server;
let sdk: S3Client;

beforeAll(async () => {
  // Each write of a key under slow/ takes 300 ms, under held/ 3 s.
  server = await startLocalS3ServerProcess({
    buckets: [BUCKET],
    writeFaults: { keys: '^(slow|held)/', delayMs: 300, slowerKeys: '^held/', slowerDelayMs: 3000 },
  });
  sdk = s3Client(server.endpoint);
});

afterAll(async () => {
  sdk?.destroy();
  await server?.close();
});

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function storeKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let ContinuationToken: string | undefined;
  do {
    const page = await sdk.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken }));
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  return keys.sort();
}

async function storeGet(key: string): Promise<Buffer> {
  const { Body } = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await Body!.transformToByteArray());
}

describe('--write-mode sync (the default): what a shell costs', () => {
  it('costs `echo x > f` one PUT, and makes files made by `touch` and `: >` exist when their close returns', async () => {
    const env = testEnv();
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, [], env);
    const puts = async () => {
      const [status] = JSON.parse((await objmount(['status', '--json', mount.mountpoint], env)).stdout) as Array<{
        requestsByOperation: Record<string, number>;
      }>;
      return status!.requestsByOperation.put ?? 0;
    };
    try {
      const dir = join(mount.mountpoint, 'shell');
      mkdirSync(dir);
      const before = await puts();
      // Each redirection closes a duplicate of the new file's descriptor before it writes.
      execFileSync('bash', ['-c', 'echo x > echoed; for i in 1 2 3; do printf %s "$i" > f$i; done'], { cwd: dir });
      expect((await puts()) - before).toBe(4);
      expect((await storeGet('shell/echoed')).toString()).toBe('x\n');
      expect((await storeGet('shell/f3')).toString()).toBe('3');

      // Nothing written: the last close makes the file exist in the store before it returns.
      execFileSync('touch', ['touched'], { cwd: dir });
      expect(await storeKeys('shell/touched')).toEqual(['shell/touched']);
      execFileSync('bash', ['-c', ': > emptied'], { cwd: dir });
      expect((await storeGet('shell/emptied')).length).toBe(0);
      // A program that closes a duplicate and then exits without writing: its exit is the last close.
      execFileSync('bash', ['-c', 'exec 3> kept; exec 4>&3; exec 3>&-; exit 0'], { cwd: dir });
      expect((await storeGet('shell/kept')).length).toBe(0);
    } finally {
      await mount.unmount();
    }
  });
});

describe('--write-mode async', () => {
  it('acknowledges closes from the journal, shows the new content at once, and uploads everything', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging]);
    try {
      const files = Array.from({ length: 200 }, (_, i) => ({ name: `small-${i}`, data: randomBytes(4096 + i) }));
      mkdirSync(join(mount.mountpoint, 'async'));
      for (const { name, data } of files) writeFileSync(join(mount.mountpoint, 'async', name), data);
      const big = randomBytes(12 * MiB + 7);
      writeFileSync(join(mount.mountpoint, 'async', 'big'), big);

      // Through the mount, right away: listing, sizes and bytes are the new ones.
      expect(readdirSync(join(mount.mountpoint, 'async'))).toHaveLength(201);
      expect(sha(readFileSync(join(mount.mountpoint, 'async', 'small-7')))).toBe(sha(files[7]!.data));

      const deadline = Date.now() + 30_000;
      while ((await storeKeys('async/')).length < 202 && Date.now() < deadline) await sleep(100);
      expect(await storeKeys('async/')).toHaveLength(202); // the directory marker too
      for (const { name, data } of files.filter((_, i) => i % 20 === 0)) expect(sha(await storeGet(`async/${name}`))).toBe(sha(data));
      expect(sha(await storeGet('async/big'))).toBe(sha(big));
      await sleep(200);
      expect(readdirSync(staging).filter((name) => name.endsWith('.pending.json'))).toEqual([]);
    } finally {
      await mount.unmount();
    }
  });

  it('finishes, at the next mount, the uploads of a daemon killed with kill -9', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    const env = testEnv();
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging], env);
    const files = Array.from({ length: 12 }, (_, i) => ({ key: `slow/f${i}`, data: randomBytes(100_000 + i) }));
    try {
      mkdirSync(join(mount.mountpoint, 'slow'), { recursive: true });
      for (const { key, data } of files) writeFileSync(join(mount.mountpoint, key), data);
      process.kill(await daemonPid(mount.mountpoint, env), 'SIGKILL');
    } finally {
      forceUnmount(mount.mountpoint);
    }
    // Each file is small: its record, bytes and all, is in the journal log.
    const journaled = (await readLogs(staging)).records;
    expect(journaled.length).toBeGreaterThan(0); // uploads take 300 ms each: most were still pending

    // The same mountpoint, now stale, and the same journal: the mount uploads them before it is ready.
    const again = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging], env);
    try {
      for (const { key, data } of files) expect(sha(await storeGet(key))).toBe(sha(data));
      expect(readdirSync(staging).filter((name) => name.endsWith('.pending.json') || name.endsWith('.log'))).toEqual([]);
      expect(readFileSync(again.logFile, 'utf8')).toMatch(/finished \d+ upload\(s\) left by a previous run/);
    } finally {
      await again.unmount();
    }
  });

  it('aborts, at the next mount, the multipart upload of a daemon killed while streaming', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    const env = testEnv();
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--staging-dir', staging], env);
    try {
      mkdirSync(join(mount.mountpoint, 'slow'), { recursive: true });
      const handle = await open(join(mount.mountpoint, 'slow', 'streamed'), 'w');
      await handle.write(randomBytes(20 * MiB)); // parts go up at 300 ms each while this runs
      process.kill(await daemonPid(mount.mountpoint, env), 'SIGKILL');
      await handle.close().catch(() => undefined); // the daemon is gone: never acknowledged
    } finally {
      forceUnmount(mount.mountpoint);
    }
    const before = await sdk.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'slow/streamed' }));
    expect(before.Uploads ?? []).toHaveLength(1);

    const again = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--staging-dir', staging], env);
    try {
      const after = await sdk.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: 'slow/streamed' }));
      expect(after.Uploads ?? []).toEqual([]);
      expect(readFileSync(again.logFile, 'utf8')).toMatch(/aborted 1 multipart upload\(s\) left by a previous run/);
    } finally {
      await again.unmount();
    }
  });

  it('unmount waits for the pending uploads, says so, and loses nothing', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    const env = testEnv();
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging], env);
    // Small files upload many at a time: each write under held/ takes 3 s, so all are pending.
    const files = Array.from({ length: 8 }, (_, i) => ({ key: `held/drain-${i}`, data: randomBytes(50_000 + i) }));
    try {
      mkdirSync(join(mount.mountpoint, 'held'), { recursive: true });
      for (const { key, data } of files) writeFileSync(join(mount.mountpoint, key), data);
      const result = await objmount(['unmount', mount.mountpoint], env);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/uploading \d+ pending file\(s\) before the daemon exits/);
    } finally {
      await mount.unmount();
    }
    for (const { key, data } of files) expect(sha(await storeGet(key))).toBe(sha(data));
  });

  it('a second SIGTERM detaches at once, says what the journal keeps, and the next mount uploads it', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    const env = testEnv();
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging], env);
    const files = Array.from({ length: 32 }, (_, i) => ({ key: `slow/forced-${i}`, data: randomBytes(30_000 + i) }));
    try {
      mkdirSync(join(mount.mountpoint, 'slow'), { recursive: true });
      for (const { key, data } of files) writeFileSync(join(mount.mountpoint, key), data);
      const pid = await daemonPid(mount.mountpoint, env);
      process.kill(pid, 'SIGTERM');
      await sleep(50);
      process.kill(pid, 'SIGTERM');
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && !readFileSync(mount.logFile, 'utf8').includes('SIGTERM again')) await sleep(50);
      expect(readFileSync(mount.logFile, 'utf8')).toMatch(
        /SIGTERM again: detaching .* (nothing was left to upload|file\(s\) not yet uploaded; those closed are in the journal .* and are uploaded at the next start)/,
      );
    } finally {
      forceUnmount(mount.mountpoint);
    }
    const again = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging], env);
    try {
      for (const { key, data } of files) expect(sha(await storeGet(key))).toBe(sha(data));
    } finally {
      await again.unmount();
    }
  });

  it('unmount --force leaves at once and says what the journal keeps for the next mount', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    const env = testEnv();
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging], env);
    // Uploads under held/ take 3 s each: they are still pending when the unmount starts.
    const files = Array.from({ length: 8 }, (_, i) => ({ key: `held/forced-unmount-${i}`, data: randomBytes(2_000 + i) }));
    try {
      mkdirSync(join(mount.mountpoint, 'held'), { recursive: true });
      for (const { key, data } of files) writeFileSync(join(mount.mountpoint, key), data);
      const result = await objmount(['unmount', '--force', mount.mountpoint], env);
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(
        new RegExp(`\\d+ file\\(s\\) were not uploaded yet; those closed are in the journal ${staging} and are uploaded by the next mount`),
      );
      expect(isMounted(mount.mountpoint)).toBe(false);
    } finally {
      forceUnmount(mount.mountpoint);
    }
    const again = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging], env);
    try {
      for (const { key, data } of files) expect(sha(await storeGet(key))).toBe(sha(data));
    } finally {
      await again.unmount();
    }
  });

  it('sets a damaged or empty record aside, says so in one line, and mounts', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    writeFileSync(join(staging, 'upload-00000000000000000000000000000000.upload.json'), ''); // a crash mid-write, before records were atomic
    writeFileSync(join(staging, 'staging-1-ab-1'), 'kept for a person');
    writeFileSync(join(staging, 'staging-1-ab-1.pending.json'), '{"key":"torn","si');
    writeFileSync(join(staging, 'staging-1-ab-2'), 'still uploaded');
    writeFileSync(join(staging, 'staging-1-ab-2.pending.json'), JSON.stringify({ key: 'recovered-beside', size: 14, metadata: {} }));
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging]);
    try {
      expect((await storeGet('recovered-beside')).toString()).toBe('still uploaded');
      const log = readFileSync(mount.logFile, 'utf8');
      expect(log).toContain(
        `${join(staging, 'upload-00000000000000000000000000000000.upload.json')}: damaged record left by a previous run (empty); set aside as upload-00000000000000000000000000000000.upload.json.damaged; no upload id could be read from it, so none was aborted`,
      );
      expect(log).toMatch(
        /staging-1-ab-1\.pending\.json: damaged record left by a previous run \(not JSON: [^)]*\); set aside as staging-1-ab-1\.pending\.json\.damaged with its staging file \(staging-1-ab-1\.damaged\)/,
      );
      expect(readdirSync(staging).sort()).toEqual([
        'staging-1-ab-1.damaged',
        'staging-1-ab-1.pending.json.damaged',
        'upload-00000000000000000000000000000000.upload.json.damaged',
      ]);
      writeFileSync(join(mount.mountpoint, 'after-damage'), 'mounted');
    } finally {
      await mount.unmount();
    }
    expect((await storeGet('after-damage')).toString()).toBe('mounted');
  });

  it('fsync waits for the store', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-journal-'));
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--write-mode', 'async', '--staging-dir', staging]);
    try {
      const handle = await open(join(mount.mountpoint, 'synced-async'), 'w');
      await handle.write('durable');
      await handle.sync();
      expect((await storeGet('synced-async')).toString()).toBe('durable');
      await handle.close();
    } finally {
      await mount.unmount();
    }
  });
});

describe('a store that refuses writes', () => {
  it('keeps a failed close, serves it, and uploads it once the store takes writes again', async () => {
    const flaky = await startLocalS3ServerProcess({
      buckets: [BUCKET],
      writeFaults: { keys: '^down/.', fail: true, clearedBy: 'store-is-back' },
    });
    const flakySdk = s3Client(flaky.endpoint);
    const staging = mkdtempSync(join(tmpdir(), 'objmount-staging-'));
    const mount = await mountBucket(flaky.endpoint, `s3://${BUCKET}`, ['--staging-dir', staging]);
    try {
      mkdirSync(join(mount.mountpoint, 'down'));
      const data = randomBytes(70_000);
      const handle = await open(join(mount.mountpoint, 'down', 'kept'), 'w');
      await handle.write(data);
      await expect(handle.close()).rejects.toMatchObject({ code: 'EIO' });
      // Not in the store, but not thrown away: the mount serves the staged copy.
      expect(sha(readFileSync(join(mount.mountpoint, 'down', 'kept')))).toBe(sha(data));
      expect(readdirSync(staging).filter((name) => name.startsWith('staging-'))).toEqual([]); // a small new file's copy: in memory

      await flakySdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'store-is-back', Body: 'x' }));
      const deadline = Date.now() + 30_000;
      const inStore = async () => (await flakySdk.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'down/kept' }))).KeyCount === 1;
      while (!(await inStore()) && Date.now() < deadline) await sleep(100);
      const { Body } = await flakySdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'down/kept' }));
      expect(sha(Buffer.from(await Body!.transformToByteArray()))).toBe(sha(data));
      while (readdirSync(staging).length > 0 && Date.now() < deadline) await sleep(100);
      expect(readdirSync(staging)).toEqual([]); // the staged copy goes once the object is in the store
    } finally {
      await mount.unmount();
      flakySdk.destroy();
      await flaky.close();
    }
  });

  it('fails close with EIO and leaves no multipart upload behind', async () => {
    const failing = await startLocalS3ServerProcess({ buckets: [BUCKET], writeFaults: { keys: '^broken/.', fail: true } });
    const failingSdk = s3Client(failing.endpoint);
    const mount = await mountBucket(failing.endpoint, `s3://${BUCKET}`);
    try {
      mkdirSync(join(mount.mountpoint, 'broken'));
      const handle = await open(join(mount.mountpoint, 'broken', 'big'), 'w');
      await handle.write(randomBytes(20 * MiB)); // streamed: parts fail, then the whole-file upload
      await expect(handle.close()).rejects.toMatchObject({ code: 'EIO' });
      const small = await open(join(mount.mountpoint, 'broken', 'small'), 'w');
      await small.write('x');
      await expect(small.close()).rejects.toMatchObject({ code: 'EIO' });
      expect(readFileSync(mount.logFile, 'utf8')).toMatch(/upload of \/broken\/big failed/);
      // The daemon is still serving: a key outside broken/ is written as usual.
      writeFileSync(join(mount.mountpoint, 'fine'), 'fine');
      expect(isMounted(mount.mountpoint)).toBe(true);
      // The release after a failed close tries once more (and fails again): once the daemon
      // has stopped, every multipart upload it began has been aborted.
      await mount.unmount();
      const uploads = await failingSdk.send(new ListMultipartUploadsCommand({ Bucket: BUCKET }));
      expect(uploads.Uploads ?? []).toEqual([]);
    } finally {
      await mount.unmount();
      failingSdk.destroy();
      await failing.close();
    }
  });
});

describe('a full disk', () => {
  it('stops writing the disk cache when its disk is full, says so once, and goes on reading', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'objmount-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'objmount-test', cacheDir]);
    try {
      const data = randomBytes(40 * MiB); // five 8 MiB blocks, none of which fits
      await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cached/big', Body: data }));
      const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--cache-dir', cacheDir]);
      try {
        expect(sha(readFileSync(join(mount.mountpoint, 'cached', 'big')))).toBe(sha(data));
      } finally {
        await mount.unmount();
      }
      const log = readFileSync(mount.logFile, 'utf8');
      expect(log.match(/cache: the disk of .* is full \(ENOSPC\): no blocks are written to it for now/g)).toHaveLength(1);
      expect(log).not.toMatch(/could not write a block/);
    } finally {
      try {
        execFileSync('umount', [cacheDir]);
      } catch {
        execFileSync('umount', ['-l', cacheDir]);
      }
    }
  });

  it('answers ENOSPC (not EIO) to the write that does not fit, and goes on once there is room', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'objmount-test', staging]);
    try {
      const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--staging-dir', staging]);
      try {
        let error: NodeJS.ErrnoException | undefined;
        try {
          writeFileSync(join(mount.mountpoint, 'too-big'), randomBytes(3 * MiB));
        } catch (caught) {
          error = caught as NodeJS.ErrnoException;
        }
        expect(error?.code).toBe('ENOSPC');
        expect(readFileSync(mount.logFile, 'utf8')).toMatch(/write \/too-big: ENOSPC: /);
        // What was written before the disk filled is a file as on a local disk; deleting it makes room.
        rmSync(join(mount.mountpoint, 'too-big'), { force: true });
        const small = randomBytes(100_000);
        writeFileSync(join(mount.mountpoint, 'fits'), small);
        expect(sha(await storeGet('fits'))).toBe(sha(small));
      } finally {
        await mount.unmount();
      }
    } finally {
      try {
        execFileSync('umount', [staging]);
      } catch {
        execFileSync('umount', ['-l', staging]);
      }
    }
  });
});
