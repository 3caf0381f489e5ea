#!/usr/bin/env node
/**
 * Random reads into a large file, side by side: objmount (defaults, and with a budget smaller
 * than the file) and s3fs on one local S3 server, with the cold sequential read of the same
 * object and the fastest direct SDK download of it (the "server limit") in the same run.
 *
 *   node bench/random-read.mjs                 # 1 GiB object, median of 3 (run scripts/setup first)
 *   BENCH_MIB=256 BENCH_RUNS=1 BENCH_FIO_SECONDS=5 node bench/random-read.mjs
 *
 * Each measurement runs on a fresh mount with the page cache dropped first:
 *   - fio random 4 KiB reads (psync, buffered, one job, BENCH_FIO_SECONDS = 10 s): IOPS, and for
 *     objmount the store's GETs per read (from its status) and its peak RSS; then fio again on
 *     the same mount (what the tool kept of the first run serves the second)
 *   - a cold sequential read of the object (dd bs=1M): MB/s, and ÷ the server limit
 * Needs root (FUSE, drop_caches), Debian's s3fs and fio; a missing tool is skipped.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { GetObjectCommand, MiB, dropCaches, have, median, peakRssMiB, root, sh, startServer, timed, tools } from './lib.mjs';

const SIZE_MIB = Number(process.env.BENCH_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const FIO_SECONDS = Number(process.env.BENCH_FIO_SECONDS ?? 10);
const SMALL_BUDGET = process.env.BENCH_SMALL_BUDGET ?? '256M';
const BUCKET = 'bench';
const SIZE = SIZE_MIB * MiB;

if (!have('fio')) {
  console.error('random-read: fio is not installed (apt-get install fio)');
  process.exit(1);
}

const { server, sdk } = await startServer([BUCKET]);
// Written in 64 MiB parts' worth of random bytes, so the script never holds the whole object.
{
  const { CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand } = await import('@aws-sdk/client-s3');
  const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'big.bin' }));
  const parts = [];
  const part = Math.min(SIZE, 64 * MiB);
  for (let n = 1; (n - 1) * part < SIZE; n++) {
    const { ETag } = await sdk.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: 'big.bin',
        UploadId,
        PartNumber: n,
        Body: randomBytes(Math.min(part, SIZE - (n - 1) * part)),
      }),
    );
    parts.push({ PartNumber: n, ETag });
  }
  await sdk.send(new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key: 'big.bin', UploadId, MultipartUpload: { Parts: parts } }));
}

// ---- the server limit: N parallel ranged GETs of 8 MiB -------------------------------------------
async function parallelDownload(parallel) {
  const part = 8 * MiB;
  let next = 0;
  const worker = async () => {
    for (let start = next; start < SIZE; start = next) {
      next += part;
      const out = await sdk.send(
        new GetObjectCommand({ Bucket: BUCKET, Key: 'big.bin', Range: `bytes=${start}-${Math.min(SIZE, start + part) - 1}` }),
      );
      for await (const _chunk of out.Body) {
        // drain
      }
    }
  };
  return timed(() => Promise.all(Array.from({ length: parallel }, worker)));
}
const limit = { best: 0, parallel: 0 };
for (const parallel of [1, 4, 8, 16]) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await parallelDownload(parallel));
  const speed = SIZE / 1e6 / median(runs);
  if (speed > limit.best) Object.assign(limit, { best: speed, parallel });
}

// ---- each tool -----------------------------------------------------------------------------------
const status = (dir) => JSON.parse(execFileSync(process.execPath, [join(root, 'bin/objmount.js'), 'status', dir, '--json']).toString())[0];
const fio = (dir) =>
  JSON.parse(
    execFileSync('fio', [
      '--name=rand',
      `--filename=${join(dir, 'big.bin')}`,
      '--rw=randread',
      '--bs=4k',
      '--ioengine=psync',
      `--runtime=${FIO_SECONDS}`,
      '--time_based',
      '--readonly',
      '--output-format=json',
      `--size=${SIZE}`,
    ]).toString(),
  ).jobs[0].read;

const [objmount, s3fs] = tools(server, BUCKET);
const [objmountSmall] = tools(server, BUCKET, ['--memory-limit', SMALL_BUDGET]);
const contenders = [
  { ...objmount, name: 'objmount (defaults)' },
  { ...objmountSmall, name: `objmount --memory-limit ${SMALL_BUDGET}` },
  s3fs,
];
const rows = [];
for (const tool of contenders) {
  if (!tool.available) {
    rows.push({ name: tool.name, note: 'not installed' });
    continue;
  }
  const row = { name: tool.name, iops: [], again: [], getsPerRead: [], cold: [], rss: 0 };
  const ours = tool.name.startsWith('objmount');
  for (let run = 0; run < RUNS; run++) {
    let m = await tool.mount();
    dropCaches();
    const read = fio(m.dir);
    row.iops.push(read.iops);
    if (ours) row.getsPerRead.push((status(m.dir).requestsByOperation.get ?? 0) / read.total_ios);
    row.again.push(fio(m.dir).iops);
    row.rss = Math.max(row.rss, peakRssMiB(m.pid));
    await m.unmount();

    m = await tool.mount();
    dropCaches();
    row.cold.push(SIZE / 1e6 / (await timed(() => sh('dd if=big.bin of=/dev/null bs=1M status=none', m.dir))));
    row.rss = Math.max(row.rss, peakRssMiB(m.pid));
    await m.unmount();
  }
  for (const key of ['iops', 'again', 'getsPerRead', 'cold']) row[key] = row[key].length ? median(row[key]) : undefined;
  rows.push(row);
}
sdk.destroy();
await server.close();

// ---- the table -----------------------------------------------------------------------------------
const f = (x, digits = 0) => (x === undefined ? '-' : x.toFixed(digits));
const peer = rows.find((r) => r.name.startsWith('s3fs') && !r.note);
console.log(
  `\nRandom reads, ${SIZE_MIB} MiB object, fio ${FIO_SECONDS} s, median of ${RUNS}, local S3 server on 127.0.0.1, ${new Date().toISOString().slice(0, 16)}Z\n`,
);
console.log(`Server limit: ${f(limit.best)} MB/s (${limit.parallel} parallel ranged GETs of 8 MiB)\n`);
console.log(
  '| client | random 4K IOPS | ÷ s3fs | store GETs per read | IOPS, again on the mount | ÷ s3fs | cold seq MB/s | ÷ limit | peak RSS MiB |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  if (r.note) console.log(`| ${r.name} | ${r.note} | | | | | | | |`);
  else
    console.log(
      `| ${r.name} | ${f(r.iops)} | ${peer ? f(r.iops / peer.iops, 2) : '-'} | ${f(r.getsPerRead, 3)} | ${f(r.again)} | ${peer ? f(r.again / peer.again, 2) : '-'} | ${f(r.cold)} | ${f(r.cold / limit.best, 2)} | ${f(r.rss)} |`,
    );
}
process.exit(0);
