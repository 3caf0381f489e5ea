/**
 * kill -9 of the daemon while a writer is busy, in both write modes, then a new mount on the same
 * (now dead) mountpoint: every file whose close returned is intact in the store, the dead mount
 * is recovered without help, and no multipart upload is left behind.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { readLogs } from '../../src/fs/write/journal-log.js';
import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { daemonPid, forceUnmount, isMounted, mountBucket, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'crash';
let server: LocalS3Server;
let sdk: S3Client;

beforeAll(async () => {
  // Every write to the store takes 150 ms, so the kill finds uploads in flight.
  server = await startLocalS3ServerProcess({ buckets: [BUCKET], writeFaults: { keys: '^w', delayMs: 150 } });
  sdk = s3Client(server.endpoint);
});

afterAll(async () => {
  sdk?.destroy();
  await server?.close();
});

/**
 * A writer in its own process: file i has size sizes[i % n] and bytes derived from its name; it
 * prints `closed <name> <sha256>` once close has returned, and goes on until it fails.
 */
const WRITER = `
const { createHash } = require('node:crypto');
const { writeFileSync } = require('node:fs');
const [dir, count] = process.argv.slice(1);
const sizes = [1, 70000, 300000, 6 * 1024 * 1024 + 7, 12 * 1024 * 1024 + 3];
for (let i = 0; i < Number(count); i++) {
  const name = 'f' + i;
  const size = sizes[i % sizes.length];
  const data = Buffer.alloc(size);
  for (let at = 0; at < size; at += 32) createHash('sha256').update(name + at).digest().copy(data, at);
  try {
    writeFileSync(dir + '/' + name, data);
  } catch (error) {
    process.stdout.write('failed ' + name + ' ' + error.code + '\\n');
    process.exit(0);
  }
  process.stdout.write('closed ' + name + ' ' + createHash('sha256').update(data).digest('hex') + '\\n');
}
`;

/**
 * Makes directories as tar does in its own process: mkdir, then the directory's times, then its
 * mode; prints `closed <name> <mtime>` once all three have returned, and goes on until it fails.
 */
const DIRECTORY_MAKER = `
const { chmodSync, mkdirSync, utimesSync } = require('node:fs');
const [dir, count] = process.argv.slice(1);
for (let i = 0; i < Number(count); i++) {
  const name = 'd' + i;
  const path = dir + '/' + name;
  try {
    mkdirSync(path, 0o755);
    utimesSync(path, 1000000 + i, 1000000 + i);
    chmodSync(path, 0o700);
  } catch (error) {
    process.stdout.write('failed ' + name + ' ' + error.code + '\\n');
    process.exit(0);
  }
  process.stdout.write('closed ' + name + ' ' + (1000000 + i) + '\\n');
}
`;

function startWriter(dir: string, count: number, program = WRITER): { child: ChildProcess; closed: Map<string, string> } {
  const child = spawn(process.execPath, ['-e', program, dir, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const closed = new Map<string, string>();
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      const [what, name, hash] = line.split(' ');
      if (what === 'closed') closed.set(name!, hash!);
    }
  });
  return { child, closed };
}

async function storedSha(key: string): Promise<string | undefined> {
  try {
    const { Body } = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return createHash('sha256')
      .update(await Body!.transformToByteArray())
      .digest('hex');
  } catch {
    return undefined;
  }
}

describe.each(['sync', 'async'] as const)('kill -9 in %s write mode', (mode) => {
  it('keeps every closed file, recovers the dead mountpoint and leaves no upload behind', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-crash-'));
    const env = testEnv();
    const prefix = `w-${mode}`;
    const args = ['--write-mode', mode, '--staging-dir', staging, '--part-size', '5M'];
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}/${prefix}`, args, env);
    const mountpoint = mount.mountpoint;
    let writer: ReturnType<typeof startWriter> | undefined;
    try {
      writer = startWriter(mountpoint, 40);
      // Kill once a few closes were acknowledged, with the next file's upload under way (and,
      // in async mode, with a journaled close whose upload has not finished).
      const journaled = () => readdirSync(staging).some((name) => name.endsWith('.pending.json'));
      for (let waited = 0; writer.closed.size < 6 || (mode === 'async' && !journaled()); waited += 20) {
        if (waited > 90_000) throw new Error(`the writer closed only ${writer.closed.size} files in 90 s`);
        await sleep(20);
      }
      if (mode === 'sync') await sleep(200);
      process.kill(await daemonPid(mountpoint, env), 'SIGKILL');
      await new Promise((resolve) => (writer!.child.exitCode !== null ? resolve(undefined) : writer!.child.once('exit', resolve)));
      expect(isMounted(mountpoint)).toBe(true); // dead, but still in the mount table

      // The same mountpoint, untouched: the new mount detaches the dead one itself.
      const again = await mountBucket(server.endpoint, `s3://${BUCKET}/${prefix}`, args, env, mountpoint);
      try {
        for (const [name, hash] of writer.closed) expect(await storedSha(`${prefix}/${name}`), name).toBe(hash);
        if (mode === 'async') {
          // Closes were acknowledged from the journal, ahead of the store: the new mount finished them.
          expect(readFileSync(again.logFile, 'utf8')).toMatch(/finished \d+ upload\(s\) left by a previous run/);
        }
        const uploads = await sdk.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: `${prefix}/` }));
        expect(uploads.Uploads ?? []).toEqual([]);
      } finally {
        await again.unmount();
      }
    } finally {
      writer?.child.kill('SIGKILL');
      forceUnmount(mountpoint);
    }
  });
});

describe('kill -9 in async write mode while directories are made', () => {
  it('keeps every directory whose mkdir, utimes and chmod returned, with its mode and times', async () => {
    const staging = mkdtempSync(join(tmpdir(), 'objmount-crash-'));
    const env = testEnv();
    const prefix = 'w-dirs';
    const args = ['--write-mode', 'async', '--staging-dir', staging];
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}/${prefix}`, args, env);
    const mountpoint = mount.mountpoint;
    let maker: ReturnType<typeof startWriter> | undefined;
    try {
      maker = startWriter(mountpoint, 200, DIRECTORY_MAKER);
      // Kill once a few directories were made, with markers journaled and not yet in the store.
      const journaled = async () => (await readLogs(staging)).records.length > 0;
      for (let waited = 0; maker.closed.size < 6 || !(await journaled()); waited += 20) {
        if (waited > 90_000) throw new Error(`the maker made only ${maker.closed.size} directories in 90 s`);
        await sleep(20);
      }
      process.kill(await daemonPid(mountpoint, env), 'SIGKILL');
      await new Promise((resolve) => (maker!.child.exitCode !== null ? resolve(undefined) : maker!.child.once('exit', resolve)));

      const again = await mountBucket(server.endpoint, `s3://${BUCKET}/${prefix}`, args, env, mountpoint);
      try {
        expect(readFileSync(again.logFile, 'utf8')).toMatch(/finished \d+ upload\(s\) left by a previous run/);
        for (const [name, mtime] of maker.closed) {
          const marker = await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${name}/` }));
          expect(marker.Metadata, name).toMatchObject({ mode: String(0o40700), mtime });
        }
      } finally {
        await again.unmount();
      }
    } finally {
      maker?.child.kill('SIGKILL');
      forceUnmount(mountpoint);
    }
  });
});
