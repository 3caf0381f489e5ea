/**
 * A real mount behind a proxy that injects network and server faults between objmount and the
 * store (test/helpers/fault-proxy-main.mjs). Under every fault: a read returns the right bytes or
 * fails with an error (never wrong bytes), a write lands intact or fails at close, no multipart
 * upload is left behind, the retries are bounded, and the daemon serves the next request.
 */

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { GetObjectCommand, HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type FaultProxy, type FaultRule, startFaultProxy } from '../helpers/fault-proxy.js';
import { isMounted, mountBucket, statWhenShown, type TestMount } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const run = promisify(execFile);
const BUCKET = 'faults';
const MiB = 1024 * 1024;
/** The SDK's attempts per request (S3Store's default) times storage's one more try of a GET (get-retry.ts). */
const ATTEMPTS_PER_GET = 4 * 2;
const BLOCK = MiB;

let server: LocalS3Server;
let proxy: FaultProxy;
let sdk: S3Client;
let mount: TestMount;
let local: string;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  proxy = await startFaultProxy(server.endpoint);
  sdk = s3Client(server.endpoint);
  local = mkdtempSync(join(tmpdir(), 'objmount-faults-'));
  mount = await mountBucket(proxy.endpoint, `s3://${BUCKET}`, ['--block-size', '1M', '--part-size', '5M', '--metadata-ttl', '0']);
});

afterAll(async () => {
  await mount?.unmount();
  sdk?.destroy();
  await proxy?.close();
  await server?.close();
});

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * An object put straight into the store (not through the proxy), 3.5 blocks long unless told;
 * returns once the mount shows it (within --negative-ttl in a directory it listed lately).
 */
async function storeObject(key: string, size = 3 * BLOCK + BLOCK / 2): Promise<Buffer> {
  const data = randomBytes(size);
  await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: data }));
  await statWhenShown(join(mount.mountpoint, key));
  return data;
}

async function storedBytes(key: string): Promise<Buffer | undefined> {
  try {
    const { Body } = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    return Buffer.from(await Body!.transformToByteArray());
  } catch {
    return undefined;
  }
}

async function openUploads(prefix: string): Promise<number> {
  const out = await sdk.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }));
  return out.Uploads?.length ?? 0;
}

/** Copies a local file into the mount with cp in another process: the result of its close. */
async function copyIn(data: Buffer, key: string): Promise<{ ok: boolean; stderr: string }> {
  const source = join(local, key.replace(/\//g, '_'));
  writeFileSync(source, data);
  mkdirSync(dirname(join(mount.mountpoint, key)), { recursive: true });
  try {
    await run('cp', [source, join(mount.mountpoint, key)], { timeout: 120_000 });
    return { ok: true, stderr: '' };
  } catch (error) {
    return { ok: false, stderr: (error as { stderr?: string }).stderr ?? String(error) };
  }
}

/** Reads a file of the mount in another process, so a hung read cannot hang the test runner. */
async function readThrough(key: string): Promise<{ data?: Buffer; error?: string }> {
  try {
    const { stdout } = await run('cat', [join(mount.mountpoint, key)], { encoding: 'buffer', timeout: 120_000, maxBuffer: 64 * MiB });
    return { data: stdout };
  } catch (error) {
    return { error: String((error as { stderr?: Buffer }).stderr ?? error) };
  }
}

/**
 * Runs `work` with the proxy applying `rules`; with `settled`, the faults stay until the daemon
 * has released the file too (a failed close leaves the file dirty, and its release tries again).
 */
async function withFaults<T>(rules: FaultRule[], work: () => Promise<T>, settled?: string): Promise<{ result: T; matched: number }> {
  await proxy.set(rules);
  try {
    const result = await work();
    if (settled) await released(settled);
    const { matched } = await proxy.counts();
    return { result, matched: matched.reduce((a, b) => a + (b ?? 0), 0) };
  } finally {
    await proxy.set([]);
  }
}

function logLines(key: string): string[] {
  return readFileSync(mount.logFile, 'utf8')
    .split('\n')
    .filter((line) => line.includes(key));
}

/** Waits for the daemon's log to say that the release of /`key` failed. */
async function released(key: string): Promise<void> {
  const line = `"release /${key}: `;
  for (let waited = 0; !readFileSync(mount.logFile, 'utf8').includes(line); waited += 100) {
    if (waited > 60_000) throw new Error(`the daemon did not release /${key} within a minute`);
    await sleep(100);
  }
}

const getOf = (key: string): Pick<FaultRule, 'method' | 'path'> => ({ method: 'GET', path: `^/${BUCKET}/${key}(\\?|$)` });

describe('reads under faults', () => {
  const once: Array<[string, Omit<FaultRule, 'method' | 'path'>]> = [
    ['a connection reset before the response', { action: 'reset', times: 2 }],
    ['a connection reset in the middle of the body', { action: 'reset-body', times: 1 }],
    ['a response cut short with a clean close', { action: 'truncate', times: 1 }],
    ['500 InternalError', { action: 'status', status: 500, code: 'InternalError', times: 2 }],
    ['503 SlowDown', { action: 'status', status: 503, code: 'SlowDown', times: 2 }],
    ['a slow store (400 ms per response)', { action: 'delay', delayMs: 400 }],
  ];
  it.each(once)('returns the right bytes after %s', async (_name, fault) => {
    const key = `read/once-${fault.action}-${fault.status ?? ''}`;
    // One block: the first GET is the reader's own, not a read-ahead whose failure goes unseen.
    const data = await storeObject(key, BLOCK - 1000);
    const { result, matched } = await withFaults([{ ...getOf(key), ...fault }], () => readThrough(key));
    expect(result.error).toBeUndefined();
    expect(sha(result.data!)).toBe(sha(data));
    expect(matched).toBeGreaterThan(0); // the fault did happen
    // Recovered inside objmount, not by the kernel reading the page again after an EIO.
    expect(logLines(key).filter((line) => line.includes('EIO'))).toEqual([]);
  });

  const always: Array<[string, Omit<FaultRule, 'method' | 'path'>, RegExp]> = [
    ['resets every connection', { action: 'reset' }, /Input\/output error/],
    ['cuts every response short', { action: 'truncate' }, /Input\/output error/],
    ['answers 500 every time', { action: 'status', status: 500, code: 'InternalError' }, /Input\/output error/],
    ['answers 503 SlowDown every time', { action: 'status', status: 503, code: 'SlowDown' }, /Input\/output error/],
    ['denies access (403)', { action: 'status', status: 403, code: 'AccessDenied' }, /Permission denied/],
  ];
  it.each(always)('fails the read with an error, after bounded retries, when the store %s', async (_name, fault, message) => {
    const key = `read/always-${fault.action}-${fault.status ?? ''}`;
    const data = await storeObject(key);
    const { result, matched } = await withFaults([{ ...getOf(key), ...fault }], () => readThrough(key));
    expect(result.data).toBeUndefined();
    expect(result.error).toMatch(message);
    expect(matched).toBeGreaterThan(0);
    // The kernel reads a page again after a failed read-ahead, so each block may be asked twice.
    expect(matched).toBeLessThanOrEqual(2 * ATTEMPTS_PER_GET * Math.ceil(data.length / BLOCK));
    // The fault gone, the same file reads whole: nothing wrong was cached and the daemon is up.
    const again = await readThrough(key);
    expect(again.error).toBeUndefined();
    expect(sha(again.data!)).toBe(sha(data));
  });
});

describe('writes under faults', () => {
  const partUploads = { method: 'PUT', path: 'partNumber=' };
  const completes = { method: 'POST', path: 'uploadId=' };

  it('lands a multipart file intact when part uploads are reset mid-body and answered 500 a few times', async () => {
    const data = randomBytes(17 * MiB);
    const { result, matched } = await withFaults(
      [
        // Three faults in all: should they all fall on one part (parts run in parallel, and which
        // part's attempt comes next is the scheduler's), its fourth attempt still succeeds.
        { ...partUploads, action: 'reset', times: 1 },
        { ...partUploads, action: 'status', status: 500, code: 'InternalError', times: 2 },
      ],
      () => copyIn(data, 'write/recovered'),
    );
    expect(result).toEqual({ ok: true, stderr: '' });
    expect(matched).toBe(3);
    expect(sha((await storedBytes('write/recovered'))!)).toBe(sha(data));
    expect(await openUploads('write/')).toBe(0);
  });

  it('lands a small file intact through a few 503 SlowDown answers to its PUT', async () => {
    const data = randomBytes(200 * 1024);
    const { result } = await withFaults(
      [{ method: 'PUT', path: '^/faults/write/small-slow', action: 'status', status: 503, code: 'SlowDown', times: 2 }],
      () => copyIn(data, 'write/small-slow'),
    );
    expect(result.ok).toBe(true);
    expect(sha((await storedBytes('write/small-slow'))!)).toBe(sha(data));
  });

  const failing: Array<[string, FaultRule[], RegExp]> = [
    ['every part upload fails with 500', [{ ...partUploads, action: 'status', status: 500, code: 'InternalError' }], /Input\/output error/],
    ['every part upload is reset mid-body', [{ ...partUploads, action: 'reset' }], /Input\/output error/],
    ['part uploads are denied (403)', [{ ...partUploads, action: 'status', status: 403, code: 'AccessDenied' }], /Permission denied/],
    [
      'completing the upload fails with 500',
      [{ ...completes, action: 'status', status: 500, code: 'InternalError' }],
      /Input\/output error/,
    ],
  ];
  it.each(failing)('fails the writer and leaves no upload behind when %s', async (_name, rules, message) => {
    const key = `write/failing-${rules[0]!.action}-${rules[0]!.status ?? ''}-${rules[0]!.method}`;
    const { result, matched } = await withFaults(rules, () => copyIn(randomBytes(17 * MiB), key), key);
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(message);
    expect(matched).toBeGreaterThan(0);
    expect(matched).toBeLessThanOrEqual(4 * 4 * 8); // attempts per part × parts × concurrency, at most
    expect(await storedBytes(key)).toBeUndefined();
    expect(await openUploads(key)).toBe(0);
  });

  it('fails a small file whose PUT is always answered 503, and keeps the old contents', async () => {
    const key = 'write/small-failing';
    const old = Buffer.from('old contents\n');
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: old }));
    // cp then sees a file to overwrite (O_TRUNC), not a name to create (O_EXCL).
    await statWhenShown(join(mount.mountpoint, key));
    const { result } = await withFaults(
      [{ method: 'PUT', path: `^/${BUCKET}/${key}`, action: 'status', status: 503, code: 'SlowDown' }],
      () => copyIn(randomBytes(100 * 1024), key),
      key,
    );
    expect(result.ok).toBe(false);
    expect(result.stderr).toMatch(/Input\/output error/);
    expect((await storedBytes(key))?.toString()).toBe(old.toString());
  });
});

describe('after every fault', () => {
  it('still serves the mount: a new file writes and reads back', async () => {
    expect(isMounted(mount.mountpoint)).toBe(true);
    const data = randomBytes(2 * MiB);
    expect((await copyIn(data, 'after/fine')).ok).toBe(true);
    await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'after/fine' }));
    expect(sha(readFileSync(join(mount.mountpoint, 'after/fine')))).toBe(sha(data));
    expect(existsSync(join(mount.mountpoint, 'after'))).toBe(true);
  });
});
