/**
 * kill -9 of a swift:// daemon while a large file is half written, in both write modes, then a
 * new mount on the same (dead) mountpoint: every file whose close returned is intact in Swift,
 * and the large upload that never finished left no segment behind (its abort lists the upload's
 * segments by prefix, so it works for an upload of the dead daemon).
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalSwift, SWIFT_TEST_KEY, SWIFT_TEST_USER, startLocalSwift, swiftToken } from '../../src/demo/local-swift.js';
import { daemonPid, forceUnmount, isMounted, mountBucket, testEnv } from '../helpers/objmount.js';

const CONTAINER = 'crash';
let swift: LocalSwift;
let token: string;
let scratch: string;

beforeAll(async () => {
  swift = await startLocalSwift({ containers: [CONTAINER] });
  token = await swiftToken(swift.authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
  scratch = mkdtempSync(join(tmpdir(), 'objmount-swift-crash-'));
});

afterAll(async () => {
  await swift?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/**
 * Writes small and multi-part files, printing `closed <name> <sha256>` after each close; then
 * half of a large file, prints `half`, and waits on its stdin (the test kills the daemon then).
 */
const WRITER = `
const { createHash } = require('node:crypto');
const { closeSync, openSync, writeFileSync, writeSync } = require('node:fs');
const dir = process.argv[1];
const sizes = [1, 70000, 6 * 1024 * 1024 + 7];
const bytes = (name, size) => {
  const data = Buffer.alloc(size);
  for (let at = 0; at < size; at += 32) createHash('sha256').update(name + at).digest().copy(data, at);
  return data;
};
for (let i = 0; i < 6; i++) {
  const name = 'f' + i;
  const data = bytes(name, sizes[i % sizes.length]);
  writeFileSync(dir + '/' + name, data);
  process.stdout.write('closed ' + name + ' ' + createHash('sha256').update(data).digest('hex') + '\\n');
}
const fd = openSync(dir + '/big', 'w');
writeSync(fd, bytes('big', 12 * 1024 * 1024));
process.stdout.write('half\\n');
process.stdin.once('data', () => {
  try { writeSync(fd, bytes('rest', 1024)); closeSync(fd); } catch {}
  process.exit(0);
});
`;

function startWriter(dir: string): { child: ChildProcess; closed: Map<string, string>; half: Promise<void> } {
  const child = spawn(process.execPath, ['-e', WRITER, dir], { stdio: ['pipe', 'pipe', 'inherit'] });
  const closed = new Map<string, string>();
  let buffered = '';
  const half = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [what, name, hash] = line.split(' ');
        if (what === 'closed') closed.set(name!, hash!);
        if (what === 'half') resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before writing half of the large file`)));
  });
  return { child, closed, half };
}

async function storedSha(key: string): Promise<string | undefined> {
  const response = await fetch(`${swift.storageUrl}/${CONTAINER}/${key}`, { headers: { 'x-auth-token': token } });
  if (!response.ok) return undefined;
  return createHash('sha256')
    .update(Buffer.from(await response.arrayBuffer()))
    .digest('hex');
}

async function segmentNames(prefix: string): Promise<string[]> {
  const response = await fetch(`${swift.storageUrl}/${CONTAINER}_segments?format=json&prefix=${encodeURIComponent(prefix)}`, {
    headers: { 'x-auth-token': token },
  });
  if (response.status === 404) return [];
  return ((await response.json()) as Array<{ name: string }>).map((entry) => entry.name);
}

describe.each(['sync', 'async'] as const)('kill -9 of a swift:// mount in %s write mode', (mode) => {
  it('keeps every closed file and leaves no segment of the unfinished upload', async () => {
    const env = testEnv({
      OBJMOUNT_CONFIG_DIR: join(scratch, 'no-store'),
      OS_AUTH_URL: swift.authUrl,
      OS_AUTH_VERSION: '1',
      OS_USERNAME: SWIFT_TEST_USER,
      OS_PASSWORD: SWIFT_TEST_KEY,
    });
    const staging = mkdtempSync(join(scratch, `staging-${mode}-`));
    const prefix = `w-${mode}`;
    const args = ['--write-mode', mode, '--staging-dir', staging, '--part-size', '4M'];
    const mount = await mountBucket('', `swift://${CONTAINER}/${prefix}`, args, env);
    const mountpoint = mount.mountpoint;
    const writer = startWriter(mountpoint);
    try {
      await writer.half;
      process.kill(await daemonPid(mountpoint, env), 'SIGKILL');
      writer.child.stdin!.end('go on\n');
      await new Promise((resolve) => (writer.child.exitCode !== null ? resolve(undefined) : writer.child.once('exit', resolve)));
      expect(isMounted(mountpoint)).toBe(true); // dead, but still in the mount table

      const again = await mountBucket('', `swift://${CONTAINER}/${prefix}`, args, env, mountpoint);
      try {
        expect(writer.closed.size).toBe(6);
        for (const [name, hash] of writer.closed) expect(await storedSha(`${prefix}/${name}`), name).toBe(hash);
        expect(await storedSha(`${prefix}/big`)).toBeUndefined();
        expect(await segmentNames(`${prefix}/big/`)).toEqual([]);
      } finally {
        await again.unmount();
      }
    } finally {
      writer.child.kill('SIGKILL');
      forceUnmount(mountpoint);
    }
  });
});
