/**
 * A full local disk: a staging directory on a small tmpfs makes a write fail with ENOSPC ("No
 * space left on device", not "Input/output error"), and the mount goes on serving; a disk cache
 * on a full tmpfs says so once in the log, not once per block, and stops writing blocks.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { DiskCache } from '../../src/fs/read/disk-cache.js';
import type { Logger } from '../../src/log/logger.js';
import { mountBucket, type TestMount } from '../helpers/objmount.js';
import { type SmallTmpfs, mountSmallTmpfs } from '../helpers/tmpfs.js';

const run = promisify(execFile);
const KiB = 1024;
const MiB = 1024 * KiB;

describe('a staging directory on a full disk', () => {
  let server: LocalS3Server;
  let staging: SmallTmpfs;
  let mount: TestMount;
  let local: string;

  beforeAll(async () => {
    server = await startLocalS3ServerProcess({ buckets: ['full'] });
    staging = mountSmallTmpfs('2m');
    local = mkdtempSync(join(tmpdir(), 'full-disk-'));
    mount = await mountBucket(server.endpoint, 's3://full', ['--staging-dir', staging.directory, '--part-size', '5M']);
  });

  afterAll(async () => {
    await mount?.unmount();
    staging?.remove();
    await server?.close();
  });

  async function copyIn(size: number, name: string): Promise<{ ok: boolean; stderr: string }> {
    const source = join(local, name);
    writeFileSync(source, randomBytes(size));
    try {
      await run('cp', [source, join(mount.mountpoint, name)]);
      return { ok: true, stderr: '' };
    } catch (error) {
      return { ok: false, stderr: (error as { stderr?: string }).stderr ?? String(error) };
    }
  }

  it('fails a write that does not fit with "No space left on device", and writes a file that fits afterwards', async () => {
    const result = await copyIn(8 * MiB, 'too-large.bin');
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/No space left on device/);
    await run('rm', ['-f', join(mount.mountpoint, 'too-large.bin')]);
    expect(await copyIn(100 * KiB, 'fits.bin')).toEqual({ ok: true, stderr: '' });
    expect((await run('stat', ['-c', '%s', join(mount.mountpoint, 'fits.bin')])).stdout).toBe(`${100 * KiB}\n`);
  });
});

describe('a disk cache on a full disk', () => {
  let disk: SmallTmpfs;

  beforeAll(() => {
    disk = mountSmallTmpfs('1m');
  });

  afterAll(() => disk?.remove());

  it('says once that the disk is full, stops writing blocks, and serves the blocks it holds', async () => {
    const warnings: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (message: string) => warnings.push(message), error() {} };
    // --cache-size far beyond what the disk holds: the disk fills first.
    const cache = await DiskCache.open({ directory: disk.directory, maxBytes: 64 * MiB, store: 's3://full', logger });
    const version = { key: 'big.bin', etag: '"1"', size: 16 * 256 * KiB };
    const blocks = Array.from({ length: 16 }, () => randomBytes(256 * KiB));
    for (const [index, block] of blocks.entries()) {
      cache.put(version, index, block);
      await cache.settled(); // one at a time, so the first that does not fit is the last written
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/is full \(ENOSPC\).*--cache-size/);
    expect(cache.skippedFull).toBeGreaterThan(1);
    // What was written before the disk filled is served, intact.
    expect(await cache.get(version, 0, blocks[0]!.length)).toEqual(blocks[0]);
    // And no temporary file of a failed write is left taking the space.
    const files = readdirSync(join(disk.directory, 'blocks'), { recursive: true }).map(String);
    expect(files.filter((name) => name.includes('.tmp'))).toEqual([]);
  });
});
