/**
 * A real mount behind a proxy that stops answering (test/helpers/fault-proxy-main.mjs: `hang`
 * never answers, `stall` sends the headers and one byte, then nothing). Every store request has
 * a deadline (--request-timeout, --min-transfer-rate), so a `stat` or a read fails with
 * ETIMEDOUT instead of waiting for ever, and the mount goes on serving once the store answers
 * again. A program stuck on such a store (a generous deadline) is stopped by Ctrl-C: the daemon
 * answers the kernel's INTERRUPT with EINTR at once, and cancels the interrupted operation's store
 * requests (the proxy sees the hung request closed, long before its deadline).
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';

import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type FaultProxy, type FaultRule, startFaultProxy } from '../helpers/fault-proxy.js';
import { mountBucket, type TestMount } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const run = promisify(execFile);
const BUCKET = 'hung';

let server: LocalS3Server;
let proxy: FaultProxy;
let sdk: S3Client;
let mount: TestMount;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  proxy = await startFaultProxy(server.endpoint);
  sdk = s3Client(server.endpoint);
  // 2 s per request; data moves at "at least 1 GiB/s", so a read's deadline is 2 s too.
  mount = await mountBucket(proxy.endpoint, `s3://${BUCKET}`, [
    '--request-timeout',
    '2',
    '--min-transfer-rate',
    '1G',
    '--metadata-ttl',
    '0',
    '--negative-ttl',
    '0',
    '--block-size',
    '1M',
  ]);
});

afterAll(async () => {
  await proxy?.set([]);
  await mount?.unmount();
  sdk?.destroy();
  await proxy?.close();
  await server?.close();
});

/** Runs a command in another process (a hung file call cannot hang the test runner): its exit and stderr. */
async function attempt(command: string, args: string[]): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  try {
    const { stdout } = await run(command, args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return { ok: true, stdout, stderr: '' };
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string };
    return { ok: false, stdout: e.stdout ?? '', stderr: e.stderr ?? String(error) };
  }
}

async function withRules<T>(rules: FaultRule[], work: () => Promise<T>): Promise<{ result: T; matched: number }> {
  await proxy.set(rules);
  try {
    const result = await work();
    const { matched } = await proxy.counts();
    return { result, matched: matched.reduce((a, b) => a + (b ?? 0), 0) };
  } finally {
    await proxy.set([]);
  }
}

describe('a store that stops answering', () => {
  it('fails a stat of a cold name with ETIMEDOUT, and serves it once the store answers', async () => {
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cold.txt', Body: 'cold' }));
    const path = join(mount.mountpoint, 'cold.txt');
    const { result, matched } = await withRules([{ path: `^/${BUCKET}`, action: 'hang' }], () => attempt('stat', ['-c', '%s', path]));
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/Connection timed out/);
    expect(matched).toBeGreaterThan(0);
    // The daemon is not stuck: the same name is found now.
    const again = await attempt('stat', ['-c', '%s', path]);
    expect(again).toMatchObject({ ok: true, stdout: '4\n' });
  });

  it('fails a read whose body stops coming with ETIMEDOUT, and reads the file whole afterwards', async () => {
    const data = randomBytes(300 * 1024);
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'stalled.bin', Body: data }));
    const path = join(mount.mountpoint, 'stalled.bin');
    expect((await attempt('stat', ['-c', '%s', path])).stdout).toBe(`${data.length}\n`); // known before the fault
    const { result, matched } = await withRules([{ method: 'GET', path: `^/${BUCKET}/stalled\\.bin`, action: 'stall' }], () =>
      attempt('cat', [path]),
    );
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/Connection timed out/);
    expect(matched).toBeGreaterThan(0);
    const again = await run('cat', [path], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 });
    expect(Buffer.compare(again.stdout, data)).toBe(0);
  });

  it('fails a write whose upload never gets an answer with ETIMEDOUT at close, and writes once the store answers', async () => {
    const path = join(mount.mountpoint, 'unanswered.txt');
    const local = join(mkdtempSync(join(tmpdir(), 'hung-')), 'hello.txt');
    writeFileSync(local, 'hello');
    // cp reports what close said (a shell's redirection does not).
    const { result } = await withRules([{ method: 'PUT', path: `^/${BUCKET}/unanswered`, action: 'hang' }], () =>
      attempt('cp', [local, path]),
    );
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/Connection timed out/);
    writeFileSync(local, 'again');
    expect((await attempt('cp', [local, path])).ok).toBe(true);
    expect((await attempt('cat', [path])).stdout).toBe('again');
  });
});

describe('a program stuck on a hung store', () => {
  let patient: TestMount;

  beforeAll(async () => {
    // A deadline far beyond the test's bound: only the interrupt can end the stuck call in time.
    patient = await mountBucket(proxy.endpoint, `s3://${BUCKET}`, [
      '--request-timeout',
      '600',
      '--metadata-ttl',
      '0',
      '--negative-ttl',
      '0',
    ]);
    for (const name of ['stat', 'cat', 'stalled', 'other'])
      await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: `patient/${name}.txt`, Body: name }));
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'listed/file.txt', Body: 'listed' }));
  });

  afterAll(async () => {
    await proxy?.set([]);
    await patient?.unmount();
  });

  /**
   * Starts `command`, waits until its request hangs in the proxy, sends SIGINT: how it ended (or
   * 'still running'), and whether the hung request was then closed by the mount (or 'still open':
   * it would be, until its deadline 10 minutes on).
   */
  async function interruptWhileHung(rules: FaultRule[], command: string, args: string[]): Promise<{ outcome: string; request: string }> {
    await proxy.set(rules);
    const hung = proxy.nextMatch();
    const child: ChildProcess = spawn(command, args, { stdio: 'ignore' });
    const exited = new Promise<string>((resolveExit) => child.once('exit', (code, signal) => resolveExit(signal ?? `exit ${code}`)));
    try {
      await hung;
      child.kill('SIGINT');
      // Generous: both happen at once, but the machine may be busy.
      const outcome = await Promise.race([exited, delay(20_000).then(() => 'still running')]);
      const request = await Promise.race([proxy.whenIdle().then(() => 'closed'), delay(20_000).then(() => 'still open')]);
      return { outcome, request };
    } finally {
      child.kill('SIGKILL');
      await proxy.set([]);
    }
  }

  const other = () => attempt('cat', [join(patient.mountpoint, 'patient', 'other.txt')]);

  it('ends a stat of a cold name on SIGINT, and the mount goes on serving', async () => {
    const path = join(patient.mountpoint, 'patient', 'stat.txt');
    const ended = await interruptWhileHung([{ method: 'HEAD', path: `^/${BUCKET}/patient/stat`, action: 'hang' }], 'stat', [path]);
    expect(ended).toEqual({ outcome: 'SIGINT', request: 'closed' });
    expect(await other()).toMatchObject({ ok: true, stdout: 'other' });
    // Nothing of the cancelled lookup stays behind: the name is found now.
    expect(await attempt('cat', [path])).toMatchObject({ ok: true, stdout: 'stat' });
  });

  it('ends a cat whose read hangs on SIGINT, and the mount goes on serving', async () => {
    const path = join(patient.mountpoint, 'patient', 'cat.txt');
    const ended = await interruptWhileHung([{ method: 'GET', path: `^/${BUCKET}/patient/cat`, action: 'hang' }], 'cat', [path]);
    expect(ended).toEqual({ outcome: 'SIGINT', request: 'closed' });
    expect(await other()).toMatchObject({ ok: true, stdout: 'other' });
    expect(await attempt('cat', [path])).toMatchObject({ ok: true, stdout: 'cat' });
  });

  it('ends a cat whose body stops coming on SIGINT, and the mount goes on serving', async () => {
    const path = join(patient.mountpoint, 'patient', 'stalled.txt');
    const ended = await interruptWhileHung([{ method: 'GET', path: `^/${BUCKET}/patient/stalled`, action: 'stall' }], 'cat', [path]);
    expect(ended).toEqual({ outcome: 'SIGINT', request: 'closed' });
    expect(await attempt('cat', [path])).toMatchObject({ ok: true, stdout: 'stalled' });
  });

  it('ends an ls of a directory whose listing hangs on SIGINT, and the mount goes on serving', async () => {
    const ended = await interruptWhileHung([{ method: 'GET', path: 'prefix=listed', action: 'hang' }], 'ls', [
      join(patient.mountpoint, 'listed'),
    ]);
    expect(ended).toEqual({ outcome: 'SIGINT', request: 'closed' });
    expect(await other()).toMatchObject({ ok: true, stdout: 'other' });
    expect(await attempt('ls', [join(patient.mountpoint, 'listed')])).toMatchObject({ ok: true, stdout: 'file.txt\n' });
  });
});
