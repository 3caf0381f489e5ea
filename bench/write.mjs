#!/usr/bin/env node
/**
 * The write path, side by side: objmount in both write modes, s3fs and rclone mount on one local
 * S3 server, and the fastest direct multipart upload of the same bytes (the "server limit").
 *
 *   node bench/write.mjs                     # 1 GiB file, 1,000 small files, median of 3
 *   BENCH_MIB=256 BENCH_RUNS=1 node bench/write.mjs
 *   BENCH_ONLY=rclone node bench/write.mjs   # one tool (name prefix)
 *
 * For each tool, on a fresh mount:
 *   - sequential write of the file with dd bs=1M: seconds until dd exits (close returned) and
 *     until the object is complete in the store (HEAD with the SDK, polled)
 *   - 1,000 files of 4 KiB written one after another by one process: seconds until it exits and
 *     until the SDK lists them all
 *   - append 1 MiB to the big file: seconds until durable, and MiB over the loopback interface
 *   - the daemon's peak RSS (objmount runs with --memory-limit 1G)
 * Needs root, and Debian's s3fs and rclone (a missing tool is skipped).
 */

import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  MiB,
  fastestUpload,
  listObjects,
  median,
  peakRssMiB,
  sh,
  sizeInStore as storedSize,
  startServer,
  timed,
  tools,
  waitFor,
  work,
} from './lib.mjs';

const SIZE_MIB = Number(process.env.BENCH_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const FILES = Number(process.env.BENCH_FILES ?? 1000);
const BUCKET = 'bench';
const SIZE = SIZE_MIB * MiB;

const { server, sdk } = await startServer([BUCKET]);
const source = join(work, 'source.bin');
writeFileSync(source, randomBytes(SIZE));
const sourceBytes = readFileSync(source);

const sizeInStore = (key) => storedSize(sdk, BUCKET, key);
const listedCount = async (prefix) => (await listObjects(sdk, BUCKET, prefix)).length;
const loopbackBytes = () => {
  const line = readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .find((l) => l.trim().startsWith('lo:'));
  return Number(line.split(':')[1].trim().split(/\s+/)[0]);
};

// ---- the server limit: a direct multipart upload ------------------------------------------------
const limit = await fastestUpload(sdk, BUCKET, sourceBytes, RUNS);

// ---- each tool -----------------------------------------------------------------------------------
const [objmountSync, s3fs, rclone] = tools(server, BUCKET, ['--memory-limit', '1G']);
const [objmountAsync] = tools(server, BUCKET, ['--memory-limit', '1G', '--write-mode', 'async', '--staging-dir', join(work, 'journal')]);
objmountSync.name = 'objmount (sync)';
objmountAsync.name = 'objmount (async)';

const rows = [];
// BENCH_ONLY=rclone (a name prefix) measures one tool; the limit is always measured.
for (const tool of [objmountSync, objmountAsync, s3fs, rclone].filter((t) => t.name.startsWith(process.env.BENCH_ONLY ?? ''))) {
  if (!tool.available) {
    rows.push({ name: tool.name, note: 'not installed' });
    continue;
  }
  const row = { name: tool.name, close: [], durable: [], smallExit: [], smallListed: [], appendDurable: [], appendMiB: [], rss: 0 };
  try {
    for (let run = 0; run < RUNS; run++) {
      const id = `${tool.name.split(' ')[0]}-${tool.name.includes('async') ? 'a' : 's'}-${run}`;
      const m = await tool.mount();
      let start = process.hrtime.bigint();
      row.close.push(await timed(() => sh(`dd if=${source} of=big-${id} bs=1M status=none`, m.dir)));
      row.durable.push(await waitFor(async () => (await sizeInStore(`big-${id}`)) === SIZE, start));
      row.rss = Math.max(row.rss, peakRssMiB(m.pid));

      const lo = loopbackBytes();
      start = process.hrtime.bigint();
      try {
        sh(`dd if=/dev/urandom of=big-${id} bs=1M count=1 oflag=append conv=notrunc status=none`, m.dir);
        row.appendDurable.push(await waitFor(async () => (await sizeInStore(`big-${id}`)) === SIZE + MiB, start));
        row.appendMiB.push((loopbackBytes() - lo) / MiB);
      } catch {
        row.appendFailed = true; // rclone without its VFS cache cannot append
      }

      sh(`mkdir small-${id}`, m.dir);
      start = process.hrtime.bigint();
      row.smallExit.push(
        await timed(() =>
          sh(
            `python3 -c "import os; data = os.urandom(4096)\nfor i in range(${FILES}):\n    open('small-${id}/f%d' % i, 'wb').write(data)"`,
            m.dir,
          ),
        ),
      );
      row.smallListed.push(await waitFor(async () => (await listedCount(`small-${id}/f`)) >= FILES, start));
      await m.unmount();
    }
    for (const key of ['close', 'durable', 'smallExit', 'smallListed', 'appendDurable', 'appendMiB'])
      row[key] = row[key].length ? median(row[key]) : undefined;
    rows.push(row);
  } catch (error) {
    rows.push({ name: tool.name, note: `failed: ${String(error.message).split('\n')[0]}` });
  }
}
sdk.destroy();
await server.close();

const f = (x, digits = 1) => (x === undefined ? '-' : x.toFixed(digits));
console.log(
  `\nWrite path, ${SIZE_MIB} MiB file and ${FILES} x 4 KiB files, median of ${RUNS}, local S3 server on 127.0.0.1, ${new Date().toISOString().slice(0, 10)}\n`,
);
console.log(`Server limit: ${f(limit.seconds, 2)} s for ${SIZE_MIB} MiB (${f(SIZE / 1e6 / limit.seconds, 0)} MB/s; ${limit.how})\n`);
console.log(
  `| client | ${SIZE_MIB} MiB: close s | durable s | vs limit | ${FILES} files: exit s | all listed s | append 1 MiB: durable s | loopback MiB | peak RSS MiB |`,
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  if (r.note) console.log(`| ${r.name} | ${r.note} | | | | | | | |`);
  else
    console.log(
      `| ${r.name} | ${f(r.close, 2)} | ${f(r.durable, 2)} | ${f(limit.seconds / r.durable, 2)} | ${f(r.smallExit, 2)} | ${f(r.smallListed, 2)} | ${r.appendFailed ? 'fails' : f(r.appendDurable, 2)} | ${r.appendFailed ? '-' : f(r.appendMiB, 0)} | ${f(r.rss, 0)} |`,
    );
}
process.exit(0);
