#!/usr/bin/env node
/**
 * The read path, side by side: objmount, s3fs and rclone mount on one local S3 server, and the
 * fastest direct SDK download of the same object (the "server limit"), in one run.
 *
 *   node bench/read.mjs                      # 1 GiB object, median of 3 (run scripts/setup first)
 *   BENCH_MIB=256 BENCH_RUNS=1 node bench/read.mjs
 *
 * Measures, with the page cache dropped and a fresh mount before each cold read:
 *   - cold sequential read of the object with dd bs=1M, and of 4 objects (a quarter each) by 4
 *     readers at once; the daemon's CPU seconds per GiB (objmount)
 *   - random 4 KiB reads (fio, psync, 10 s), IOPS
 *   - re-read of the same object right after a read (hot), and the daemon's peak RSS
 *   - metadata, cold: ls -l of 1,000 files, stat of them, find over 10 x 100 files, and cat of
 *     the 1,000 small files
 * Needs root (FUSE, drop_caches), Debian's s3fs, rclone and fio; a missing tool is skipped.
 * objmount runs with --memory-limit 1G. Every mount is unmounted on exit.
 */

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { MiB, PutObjectCommand, dropCaches, fastestDownload, have, median, peakRssMiB, sh, startServer, timed, tools } from './lib.mjs';

const SIZE_MIB = Number(process.env.BENCH_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BUCKET = 'bench';
const SIZE = SIZE_MIB * MiB;

const { server, sdk } = await startServer([BUCKET]);

// ---- data --------------------------------------------------------------------------------------
async function putRandom(key, bytes) {
  await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: randomBytes(bytes) }));
}
await putRandom('big.bin', SIZE);
for (let i = 0; i < 4; i++) await putRandom(`quarter-${i}.bin`, SIZE / 4);
const small = Array.from({ length: 1000 }, (_, i) => `meta/flat/f${String(i).padStart(4, '0')}`);
small.push(...Array.from({ length: 1000 }, (_, i) => `meta/tree/d${Math.floor(i / 100)}/f${i % 100}`));
for (let i = 0; i < small.length; i += 50) {
  await Promise.all(small.slice(i, i + 50).map((Key) => sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: randomBytes(1024) }))));
}

// ---- the server limit: N parallel ranged GETs of 8 MiB -------------------------------------------
const limit = await fastestDownload(sdk, BUCKET, 'big.bin', SIZE, RUNS);

// ---- each tool -----------------------------------------------------------------------------------
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const mbps = (bytes, seconds) => bytes / 1e6 / seconds;

const rows = [];
for (const tool of tools(server, BUCKET, ['--memory-limit', '1G'])) {
  if (!tool.available) {
    rows.push({ name: tool.name, note: 'not installed' });
    continue;
  }
  try {
    const row = { name: tool.name, cold: [], parallel: [], iops: [], hot: [], rss: 0, cpuPerGiB: [], ls: [], stat: [], find: [], cat: [] };
    for (let run = 0; run < RUNS; run++) {
      let m = await tool.mount();
      dropCaches();
      const cpu0 = cpuSeconds(m.pid);
      row.cold.push(mbps(SIZE, await timed(() => sh(`dd if=big.bin of=/dev/null bs=1M status=none`, m.dir))));
      row.cpuPerGiB.push((cpuSeconds(m.pid) - cpu0) / (SIZE / 1024 / MiB));
      row.hot.push(mbps(SIZE, await timed(() => sh(`dd if=big.bin of=/dev/null bs=1M status=none`, m.dir))));
      row.rss = Math.max(row.rss, peakRssMiB(m.pid));
      await m.unmount();

      m = await tool.mount();
      dropCaches();
      const readers = [0, 1, 2, 3].map((i) => `dd if=quarter-${i}.bin of=/dev/null bs=1M status=none &`).join(' ');
      row.parallel.push(mbps(SIZE, await timed(() => sh(`${readers} wait`, m.dir))));
      await m.unmount();

      if (have('fio')) {
        m = await tool.mount();
        dropCaches();
        const out = execFileSync('fio', [
          '--name=rand',
          `--filename=${join(m.dir, 'big.bin')}`,
          '--rw=randread',
          '--bs=4k',
          '--ioengine=psync',
          '--runtime=10',
          '--time_based',
          '--readonly',
          '--output-format=json',
          `--size=${SIZE}`,
        ]);
        row.iops.push(JSON.parse(out.toString()).jobs[0].read.iops);
        await m.unmount();
      }

      m = await tool.mount();
      dropCaches();
      row.ls.push(await timed(() => sh('ls -l meta/flat > /dev/null', m.dir)));
      row.stat.push(await timed(() => sh('stat meta/flat/* > /dev/null', m.dir)));
      await m.unmount();
      m = await tool.mount();
      dropCaches();
      row.find.push(await timed(() => sh('find meta/tree -type f > /dev/null', m.dir)));
      await m.unmount();
      m = await tool.mount();
      dropCaches();
      row.cat.push(await timed(() => sh('cat meta/flat/* > /dev/null', m.dir)));
      row.rss = Math.max(row.rss, peakRssMiB(m.pid));
      await m.unmount();
    }
    for (const key of ['cold', 'parallel', 'iops', 'hot', 'cpuPerGiB', 'ls', 'stat', 'find', 'cat'])
      row[key] = row[key].length ? median(row[key]) : undefined;
    rows.push(row);
  } catch (error) {
    rows.push({ name: tool.name, note: `failed: ${String(error.message).split('\n')[0]}` });
  }
}
sdk.destroy();
await server.close();

// ---- the table -----------------------------------------------------------------------------------
const f = (x, digits = 0) => (x === undefined ? '-' : x.toFixed(digits));
console.log(
  `\nRead path, ${SIZE_MIB} MiB object, median of ${RUNS}, local S3 server on 127.0.0.1, ${new Date().toISOString().slice(0, 10)}\n`,
);
console.log(`Server limit: ${f(limit.best)} MB/s (${limit.parallel} parallel ranged GETs of 8 MiB)\n`);
console.log(
  '| client | cold seq MB/s | 4 readers MB/s | random 4K IOPS | hot re-read MB/s | peak RSS MiB | CPU s/GiB | ls -l 1000 s | stat 1000 s | find 1000 s | cat 1000 s |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  if (r.note) console.log(`| ${r.name} | ${r.note} | | | | | | | | | |`);
  else
    console.log(
      `| ${r.name} | ${f(r.cold)} | ${f(r.parallel)} | ${f(r.iops)} | ${f(r.hot)} | ${f(r.rss)} | ${f(r.cpuPerGiB, 2)} | ${f(r.ls, 2)} | ${f(r.stat, 2)} | ${f(r.find, 2)} | ${f(r.cat, 2)} |`,
    );
}
const [ours, s3fs, rclone] = rows;
if (ours && !ours.note) {
  const ratio = (a, b) => (a === undefined || b === undefined || b.note ? '-' : (a / b).toFixed(2));
  console.log(`\nobjmount ÷ limit, cold sequential: ${(ours.cold / limit.best).toFixed(2)}`);
  for (const peer of [s3fs, rclone].filter((p) => p && !p.note)) {
    console.log(
      `objmount ÷ ${peer.name.split(' ')[0]}: cold ${ratio(ours.cold, peer.cold)}, 4 readers ${ratio(ours.parallel, peer.parallel)}, IOPS ${ratio(ours.iops, peer.iops)}, hot ${ratio(ours.hot, peer.hot)}; ` +
        `time ls ${ratio(ours.ls, peer.ls)}, stat ${ratio(ours.stat, peer.stat)}, find ${ratio(ours.find, peer.find)}, cat ${ratio(ours.cat, peer.cat)} (below 1: faster)`,
    );
  }
}
process.exit(0);
