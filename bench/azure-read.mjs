#!/usr/bin/env node
/**
 * The Azure read path alone, for working on it: one blob uploaded once, then the direct SDK's
 * read and a sequential `dd bs=1M` through a fresh objmount mount, taking turns, with what the
 * daemon cost: its CPU seconds per GiB (utime + stime from /proc), the bytes it read from its
 * sockets (rchar, against the file's size: read-ahead fetched twice shows here) and the GETs it
 * sent (its metrics). Also Azurite's CPU per GiB, and the load average.
 *
 *   BENCH_MIB=256 BENCH_RUNS=3 node bench/azure-read.mjs
 *   BENCH_PROFILE=DIR node bench/azure-read.mjs   # the daemon runs with --cpu-prof into DIR
 *   BENCH_ARGS='--block-size 16M' node bench/azure-read.mjs   # more mount options
 *   BENCH_MEMORY=256M node bench/azure-read.mjs   # --memory-limit (default 1G)
 *   BENCH_SDK=0 node bench/azure-read.mjs   # the mount only
 */

import { readFileSync, readdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';

import { MiB, cpuSeconds, dropCaches, median, mountForeground, peakRssMiB, root, sh, startAzuriteBench, timed } from './lib.mjs';

const SIZE_MIB = Number(process.env.BENCH_MIB ?? 256);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PROFILE = process.env.BENCH_PROFILE;
const EXTRA = (process.env.BENCH_ARGS ?? '').split(' ').filter(Boolean);
const CONTAINER = 'bench';
const SIZE = SIZE_MIB * MiB;
const GiB = 1024 * MiB;

const {
  azurite,
  account: AZURITE_ACCOUNT,
  container,
  source,
  env,
} = await startAzuriteBench({ containerName: CONTAINER, sizeMiB: SIZE_MIB, memoryLimitMiB: 2 * SIZE_MIB + 1024 });
await container.getBlockBlobClient('file.bin').uploadFile(source, { blockSize: 8 * MiB, concurrency: 8 });
// BENCH_DAEMON_ENV='NAME=value …': more environment for the daemon only.
for (const pair of (process.env.BENCH_DAEMON_ENV ?? '').split(' ').filter(Boolean))
  env[pair.split('=')[0]] = pair.slice(pair.indexOf('=') + 1);

const ticks = 100; // USER_HZ
/** CPU seconds (user, system) of each thread of `pid`, by thread name. */
function threads(pid) {
  const out = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = `${/\((.*)\)/.exec(stat)[1]}:${tid === String(pid) ? 'main' : tid}`;
      const fields = stat.split(') ')[1].split(' ');
      const t = (out[name] ??= { user: 0, system: 0 });
      t.user += Number(fields[11]) / ticks;
      t.system += Number(fields[12]) / ticks;
    } catch {}
  }
  return out;
}
const minorFaults = (pid) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[7]); // minflt (field 10)
const rchar = (pid) => Number(/rchar: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))[1]);
const azuritePid = Number(readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim().split(' ')[0]);
if (!readFileSync(`/proc/${azuritePid}/cmdline`, 'utf8').includes('azurite')) throw new Error(`pid ${azuritePid} is not Azurite`);

async function metric(port, name) {
  let text;
  for (let attempt = 0; text === undefined; attempt++) {
    try {
      text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    } catch (error) {
      if (attempt >= 50) throw error;
      await sleep(100); // the metrics server starts just after the mount
    }
  }
  return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
}

const sdk = [];
const mount = [];
const rows = [];
const sdkCpuPerGiB = [];
for (let run = 0; run < RUNS; run++) {
  const blob = container.getBlockBlobClient('file.bin');
  // As bench/azure.mjs: the faster of one streamed GET (chunks discarded) and downloadToBuffer.
  const sdkRuns = [
    async () => {
      const out = await blob.download(0);
      for await (const _chunk of out.readableStreamBody) {
        // discard
      }
    },
    () => blob.downloadToBuffer(0, undefined, { blockSize: 8 * MiB, concurrency: 8 }),
  ].map((read) => async () => {
    const cpu0 = process.cpuUsage();
    const seconds = await timed(read);
    const cpu = process.cpuUsage(cpu0);
    return { seconds, cpuPerGiB: (((cpu.user + cpu.system) / 1e6) * GiB) / SIZE };
  });
  if (process.env.BENCH_SDK === '0') {
    sdk.push(NaN);
    sdkCpuPerGiB.push(NaN);
  } else {
    const streamed = await sdkRuns[0]();
    const buffered = await sdkRuns[1]();
    const best = streamed.seconds < buffered.seconds ? streamed : buffered;
    sdk.push(SIZE / MiB / best.seconds);
    sdkCpuPerGiB.push(best.cpuPerGiB);
    console.log(
      `  SDK streamed ${(SIZE / MiB / streamed.seconds).toFixed(0)} MB/s ${streamed.cpuPerGiB.toFixed(2)} CPU s/GiB; downloadToBuffer ${(SIZE / MiB / buffered.seconds).toFixed(0)} MB/s ${buffered.cpuPerGiB.toFixed(2)} CPU s/GiB`,
    );
  }

  dropCaches();
  const port = 19400 + (process.pid % 1000) * 10 + run;
  const node = [
    process.execPath,
    ...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE] : []),
    ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean),
  ];
  const reader = await mountForeground(
    node[0],
    [
      ...node.slice(1),
      join(root, 'bin/objmount.js'),
      'mount',
      `az://${AZURITE_ACCOUNT}/${CONTAINER}`,
      '--endpoint',
      azurite.endpoint,
      '--foreground',
      '--log-level',
      'warn',
      '--memory-limit',
      process.env.BENCH_MEMORY ?? '1G',
      '--metrics-port',
      String(port),
      ...EXTRA,
    ],
    env,
  );
  try {
    const load = loadavg()[0];
    const req0 = await metric(port, 'objmount_store_requests_total');
    const cpu0 = cpuSeconds(reader.pid);
    const az0 = cpuSeconds(azuritePid);
    const io0 = rchar(reader.pid);
    const faults0 = minorFaults(reader.pid);
    const threads0 = threads(reader.pid);
    const perf = process.env.BENCH_PERF
      ? spawn('perf', ['record', '-F', '1999', '-g', '-p', String(reader.pid), '-o', `${process.env.BENCH_PERF}.${run}`], {
          stdio: 'ignore',
        })
      : undefined;
    if (perf) await sleep(500);
    const seconds = await timed(() => sh(`dd if=file.bin of=/dev/null bs=1M status=none`, reader.dir));
    if (perf) {
      perf.kill('SIGINT');
      await new Promise((resolve) => perf.once('exit', resolve));
    }
    const cpu = cpuSeconds(reader.pid) - cpu0;
    const az = cpuSeconds(azuritePid) - az0;
    const bytes = rchar(reader.pid) - io0;
    const faults = minorFaults(reader.pid) - faults0;
    const peakRss = peakRssMiB(reader.pid);
    const threads1 = threads(reader.pid);
    if (process.env.BENCH_THREADS) {
      for (const [name, t] of Object.entries(threads1)) {
        const before = threads0[name] ?? { user: 0, system: 0 };
        console.log(`  ${name.padEnd(16)} user ${(t.user - before.user).toFixed(2)} s  system ${(t.system - before.system).toFixed(2)} s`);
      }
    }
    const requests = (await metric(port, 'objmount_store_requests_total')) - req0;
    mount.push(SIZE / MiB / seconds);
    rows.push({
      peakRss,
      faultsPerMiB: faults / SIZE_MIB,
      mbps: SIZE / MiB / seconds,
      cpuPerGiB: (cpu * GiB) / SIZE,
      azuritePerGiB: (az * GiB) / SIZE,
      fetched: bytes / SIZE,
      requests,
      load,
    });
  } finally {
    await reader.unmount();
  }
}

console.log(`\nAzure read, ${SIZE_MIB} MiB, ${RUNS} runs, ${new Date().toISOString()} ${EXTRA.join(' ')}`);
console.log(
  '| run | SDK MB/s | mount MB/s | ratio | daemon CPU s/GiB | Azurite CPU s/GiB | socket bytes / file | requests | page faults / MiB | peak RSS MiB | load 1m |',
);
console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const [i, r] of rows.entries()) {
  console.log(
    `| ${i + 1} | ${sdk[i].toFixed(0)} | ${r.mbps.toFixed(0)} | ${(r.mbps / sdk[i]).toFixed(2)} | ${r.cpuPerGiB.toFixed(2)} | ${r.azuritePerGiB.toFixed(2)} | ${r.fetched.toFixed(3)} | ${r.requests} | ${r.faultsPerMiB.toFixed(0)} | ${r.peakRss.toFixed(0)} | ${r.load.toFixed(2)} |`,
  );
}
console.log(
  `median: SDK ${median(sdk).toFixed(0)} MB/s (${median(sdkCpuPerGiB).toFixed(2)} CPU s/GiB), mount ${median(mount).toFixed(0)} MB/s, ratio ${(median(mount) / median(sdk)).toFixed(2)}, daemon ${median(rows.map((r) => r.cpuPerGiB)).toFixed(2)} CPU s/GiB`,
);
await azurite.close();
