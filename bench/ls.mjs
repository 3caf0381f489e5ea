#!/usr/bin/env node
/**
 * `ls -l` of one directory of 1,000 small objects put by another client (with s3fs-style POSIX
 * metadata), objmount beside s3fs on one local S3 server, in one run:
 *
 *   node bench/ls.mjs                 # median of 3 (run scripts/setup first)
 *   BENCH_FILES=2000 BENCH_RUNS=5 node bench/ls.mjs
 *   BENCH_COMPARE=before=/tmp/objmount-before node bench/ls.mjs   # beside another built checkout
 *
 * For each run, on a fresh mount with the kernel's caches dropped:
 *   - cold `ls -l`: time, and objmount's store requests (from its metrics);
 *   - `ls -l` again once the metadata TTL (1 s) has passed (three times, the median): the listing
 *     revalidates what it shows;
 *   - the CPU seconds the client's process used for each (its daemon: the mount's own work);
 *   - and, on another fresh mount, a plain `ls` (names only): what it costs in requests.
 * Needs root (FUSE, drop_caches); s3fs is skipped when it is not installed.
 */

import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  KEY,
  PutObjectCommand,
  SECRET,
  cpuSeconds,
  dropCaches,
  median,
  mountForeground,
  root,
  sh,
  startServer,
  timed,
  tools,
} from './lib.mjs';

const FILES = Number(process.env.BENCH_FILES ?? 1000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BUCKET = 'bench';
const PORT = 19_000 + (process.pid % 1000);

const { server, sdk } = await startServer([BUCKET]);
const body = Buffer.alloc(4096, 7);
const names = Array.from({ length: FILES }, (_, i) => `flat/f${String(i).padStart(5, '0')}`);
for (let i = 0; i < names.length; i += 50) {
  await Promise.all(
    names.slice(i, i + 50).map((Key) =>
      sdk.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key,
          Body: body,
          Metadata: { mode: String(0o100640), uid: '1234', gid: '5678', mtime: '1700000000' },
        }),
      ),
    ),
  );
}

async function metrics() {
  for (let attempt = 0; ; attempt++) {
    try {
      const text = await (await fetch(`http://127.0.0.1:${PORT}/metrics`)).text();
      const value = (name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
      return { requests: value('objmount_store_requests_total') };
    } catch (error) {
      if (attempt >= 50) throw error;
      await sleep(100); // the metrics server starts just after the mount
    }
  }
}

// objmount from this checkout, and from others to compare with (BENCH_COMPARE="label=DIR,...":
// DIR a built checkout, e.g. the commit before a change), each mounted in the foreground like
// tools() mounts it; s3fs as tools() mounts it. Runs are interleaved, so a machine that gets
// busier during the run weighs on every client alike.
const clients = [{ name: 'objmount', dir: root }];
for (const item of (process.env.BENCH_COMPARE ?? '').split(',').filter(Boolean)) {
  const [name, dir] = item.split('=');
  clients.push({ name: `objmount (${name})`, dir });
}
const env = { ...process.env, AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_EC2_METADATA_DISABLED: 'true' };
for (const client of clients) {
  const args = [
    'mount',
    `s3://${BUCKET}`,
    '--endpoint',
    server.endpoint,
    '--foreground',
    '--log-level',
    'warn',
    '--metrics-port',
    String(PORT),
  ];
  client.mount = () => mountForeground(process.execPath, [join(client.dir, 'bin/objmount.js'), ...args], env);
  client.counts = true;
}
const s3fs = tools(server, BUCKET).find((t) => t.name.startsWith('s3fs'));
if (s3fs.available) clients.push({ name: s3fs.name, mount: () => s3fs.mount(), counts: false });

const rows = clients.map((c) => ({
  name: c.name,
  cold: [],
  coldCpu: [],
  coldRequests: [],
  again: [],
  againCpu: [],
  againRequests: [],
  lsRequests: [],
}));
for (let run = 0; run < RUNS; run++) {
  for (const [i, client] of clients.entries()) {
    const row = rows[i];
    let m = await client.mount();
    dropCaches();
    const before = client.counts ? await metrics() : undefined;
    let cpu = cpuSeconds(m.pid);
    row.cold.push(await timed(() => sh('ls -l flat > /dev/null', m.dir)));
    row.coldCpu.push(cpuSeconds(m.pid) - cpu);
    const afterCold = client.counts ? await metrics() : undefined;
    // Three times past the metadata TTL (the kernel and the daemon ask again), the median kept.
    const again = [];
    const againCpu = [];
    for (let i = 0; i < 3; i++) {
      await sleep(1100);
      cpu = cpuSeconds(m.pid);
      again.push(await timed(() => sh('ls -l flat > /dev/null', m.dir)));
      againCpu.push(cpuSeconds(m.pid) - cpu);
    }
    row.again.push(median(again));
    row.againCpu.push(median(againCpu));
    if (client.counts) {
      const afterAgain = await metrics();
      row.coldRequests.push(afterCold.requests - before.requests);
      row.againRequests.push((afterAgain.requests - afterCold.requests) / 3);
    }
    await m.unmount();
    if (client.counts) {
      m = await client.mount();
      dropCaches();
      const start = await metrics();
      sh('ls flat > /dev/null', m.dir);
      row.lsRequests.push((await metrics()).requests - start.requests);
      await m.unmount();
    }
  }
}
for (const row of rows) {
  for (const key of ['cold', 'coldCpu', 'coldRequests', 'again', 'againCpu', 'againRequests', 'lsRequests'])
    row[key] = row[key].length ? median(row[key]) : undefined;
}
sdk.destroy();
await server.close();

const f = (x, digits = 2) => (x === undefined ? '-' : x.toFixed(digits));
console.log(
  `\nls -l of ${FILES} x 4 KiB objects with POSIX metadata, median of ${RUNS}, local S3 server on 127.0.0.1, ${new Date().toISOString().slice(0, 10)}\n`,
);
console.log(
  '| client | cold ls -l s | its CPU s | store requests | ls -l after the TTL s | its CPU s | store requests | plain ls: store requests |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(
    `| ${r.name} | ${f(r.cold)} | ${f(r.coldCpu)} | ${f(r.coldRequests, 0)} | ${f(r.again)} | ${f(r.againCpu)} | ${f(r.againRequests, 0)} | ${f(r.lsRequests, 0)} |`,
  );
}
