#!/usr/bin/env node
/**
 * The Swift backend on a single-node Swift (Debian's, started by src/demo/swift-node.py, tempauth):
 * sequential write and read of one large file through an objmount mount of swift://bench, against
 * the swift client (python3-swiftclient, Swift's own CLI) on the same Swift in the same run, as a
 * ratio.
 *
 *   node bench/swift.mjs                     # 1 GiB, median of 3 (run scripts/setup first)
 *   BENCH_MIB=256 BENCH_RUNS=1 node bench/swift.mjs
 *
 * Client write: `swift upload --use-slo --segment-size 8M --segment-threads 8` (an SLO of 8 MiB
 * segments, 8 at once: what objmount's uploader does by default). Client read: `swift download`
 * to /dev/null (one streamed GET). The swift client is Python and spends CPU of its own, so the
 * API is also driven directly from Node (fetch): PUT of 8 MiB segments 8 at once and the SLO
 * manifest; GETs of 8 MiB ranges 8 at once, as the mount reads. Mount write: dd bs=1M into a new file; the time until dd
 * exits (sync mode: the manifest is in place). Mount read: dd bs=1M to /dev/null on a fresh
 * mount, page cache dropped. objmount runs with --memory-limit 1G. Every Swift server is one
 * process (workers = 0), and the object server writes to the disk under $TMPDIR: both clients
 * share those limits. The daemon's CPU seconds per GiB read are printed too.
 */

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

import { MiB, cpuSeconds, dropCaches, median, mountForeground, root, sh, timed, work } from './lib.mjs';

const SIZE_MIB = Number(process.env.BENCH_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CONTAINER = 'bench';
const SIZE = SIZE_MIB * MiB;

const { startLocalSwift, SWIFT_TEST_USER, SWIFT_TEST_KEY } = await import(join(root, 'dist/demo/local-swift.js'));
const swift = await startLocalSwift({ containers: [CONTAINER] });
process.on('exit', () => void swift.close());
const source = join(work, 'source.bin');
writeFileSync(source, randomBytes(SIZE));
const env = { ...process.env, OS_AUTH_URL: swift.authUrl, OS_AUTH_VERSION: '1', OS_USERNAME: SWIFT_TEST_USER, OS_PASSWORD: SWIFT_TEST_KEY };
const client = (...args) =>
  execFileSync('/usr/bin/swift', ['-A', swift.authUrl, '-U', SWIFT_TEST_USER, '-K', SWIFT_TEST_KEY, ...args], {
    cwd: work,
    stdio: 'ignore',
  });
const mount = () =>
  mountForeground(
    process.execPath,
    [join(root, 'bin/objmount.js'), 'mount', `swift://${CONTAINER}`, '--foreground', '--log-level', 'warn', '--memory-limit', '1G'],
    env,
  );
const rate = (seconds) => SIZE / MiB / seconds;

const directWrite = [];
const directRead = [];
const token = (await fetch(swift.authUrl, { headers: { 'x-auth-user': SWIFT_TEST_USER, 'x-auth-key': SWIFT_TEST_KEY } })).headers.get(
  'x-auth-token',
);
const api = (path, init = {}) => fetch(`${swift.storageUrl}/${path}`, { ...init, headers: { 'x-auth-token': token, ...init.headers } });
await api(`${CONTAINER}_segments`, { method: 'PUT' });
const SEGMENT = 8 * MiB;
const segments = Math.ceil(SIZE / SEGMENT);
/** Runs `task(i)` for i in [0, count), `width` at once. */
async function parallel(count, width, task) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      for (let i = next++; i < count; i = next++) await task(i);
    }),
  );
}
const sourceBytes = readFileSync(source);
const clientWrite = [];
const clientRead = [];
const mountWrite = [];
const mountRead = [];
const mountReadCpu = [];
for (let run = 0; run < RUNS; run++) {
  const name = `client-${run}.bin`;
  clientWrite.push(
    await timed(async () =>
      client('upload', CONTAINER, source, '--object-name', name, '--use-slo', '--segment-size', String(8 * MiB), '--segment-threads', '8'),
    ),
  );
  dropCaches();
  clientRead.push(await timed(async () => client('download', CONTAINER, name, '-o', '/dev/null')));
  client('delete', CONTAINER, name);

  const direct = `direct-${run}.bin`;
  const manifest = [];
  directWrite.push(
    await timed(async () => {
      await parallel(segments, 8, async (i) => {
        const body = sourceBytes.subarray(i * SEGMENT, Math.min(SIZE, (i + 1) * SEGMENT));
        const response = await api(`${CONTAINER}_segments/${direct}/${String(i).padStart(8, '0')}`, { method: 'PUT', body });
        manifest[i] = {
          path: `/${CONTAINER}_segments/${direct}/${String(i).padStart(8, '0')}`,
          etag: response.headers.get('etag'),
          size_bytes: body.length,
        };
      });
      const done = await api(`${CONTAINER}/${direct}?multipart-manifest=put`, { method: 'PUT', body: JSON.stringify(manifest) });
      if (!done.ok) throw new Error(`manifest: HTTP ${done.status}`);
    }),
  );
  dropCaches();
  directRead.push(
    await timed(() =>
      parallel(segments, 8, async (i) => {
        const end = Math.min(SIZE, (i + 1) * SEGMENT) - 1;
        const response = await api(`${CONTAINER}/${direct}`, { headers: { range: `bytes=${i * SEGMENT}-${end}` } });
        await response.arrayBuffer();
      }),
    ),
  );
  await api(`${CONTAINER}/${direct}?multipart-manifest=delete`, { method: 'DELETE' });

  const writer = await mount();
  mountWrite.push(await timed(() => sh(`dd if=${source} of=mount-${run}.bin bs=1M status=none`, writer.dir)));
  await writer.unmount();
  dropCaches();
  const reader = await mount();
  const cpu0 = cpuSeconds(reader.pid);
  mountRead.push(await timed(() => sh(`dd if=mount-${run}.bin of=/dev/null bs=1M status=none`, reader.dir)));
  mountReadCpu.push(cpuSeconds(reader.pid) - cpu0);
  sh(`rm mount-${run}.bin`, reader.dir);
  await reader.unmount();
}

const row = (name, write, read) => `| ${name} | ${rate(median(write)).toFixed(0)} | ${rate(median(read)).toFixed(0)} |`;
console.log(
  `\nSwift 2.30 single node (tempauth, one process per server), ${SIZE_MIB} MiB file, sequential, median of ${RUNS}, ${new Date().toISOString().slice(0, 10)}\n`,
);
console.log('| client | write MB/s | read MB/s |');
console.log('| --- | ---: | ---: |');
console.log(row('swift client 4.1 (SLO, 8 MiB segments, 8 at once)', clientWrite, clientRead));
console.log(row('the API from Node (fetch; 8 MiB segments / ranges, 8 at once)', directWrite, directRead));
console.log(row('objmount (dd bs=1M)', mountWrite, mountRead));
console.log(
  `| ratio objmount / swift client | ${(median(clientWrite) / median(mountWrite)).toFixed(2)} | ${(median(clientRead) / median(mountRead)).toFixed(2)} |`,
);
console.log(
  `| ratio objmount / API from Node | ${(median(directWrite) / median(mountWrite)).toFixed(2)} | ${(median(directRead) / median(mountRead)).toFixed(2)} |`,
);
console.log(
  `\ndaemon CPU per GiB read: ${((median(mountReadCpu) * 1024) / SIZE_MIB).toFixed(1)} s; load average at the end: ${loadavg()[0].toFixed(1)}`,
);
process.exit(0);
