#!/usr/bin/env node
/**
 * The Azure backend on Azurite: sequential write and read of one large file through an objmount
 * mount of az://devstoreaccount1/bench, against the direct SDK (@azure/storage-blob) on the same
 * Azurite in the same run, as a ratio.
 *
 *   node bench/azure.mjs                     # 1 GiB, median of 3 (run scripts/setup first)
 *   BENCH_MIB=256 BENCH_RUNS=1 node bench/azure.mjs
 *
 * SDK write: uploadFile in 8 MiB blocks, 8 at once (what objmount's uploader does by default).
 * SDK read: the faster of one streamed GET and downloadToBuffer in 8 MiB ranges, 8 at once (the
 * ranged read alone, the mount's own pattern, is printed beside it).
 * Mount write: dd bs=1M into a new file; the time until dd exits (sync mode: the blob is
 * committed). Mount read: dd bs=1M to /dev/null on a fresh mount, page cache dropped.
 * objmount runs with --memory-limit 1G. Azurite keeps blobs in memory, in its own process. The
 * daemon's CPU seconds per GiB read (utime + stime from /proc) are printed too: on a shared
 * machine they vary far less than the rates. bench/azure-read.mjs looks at the read alone.
 */

import { loadavg } from 'node:os';
import { join } from 'node:path';

import { MiB, cpuSeconds, dropCaches, median, mountForeground, root, sh, startAzuriteBench, timed } from './lib.mjs';

const SIZE_MIB = Number(process.env.BENCH_MIB ?? 1024);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CONTAINER = 'bench';
const SIZE = SIZE_MIB * MiB;

const {
  azurite,
  account: AZURITE_ACCOUNT,
  container,
  source,
  env,
} = await startAzuriteBench({ containerName: CONTAINER, sizeMiB: SIZE_MIB, memoryLimitMiB: 8 * SIZE_MIB + 1024 });
const mount = () =>
  mountForeground(
    process.execPath,
    [
      join(root, 'bin/objmount.js'),
      'mount',
      `az://${AZURITE_ACCOUNT}/${CONTAINER}`,
      '--endpoint',
      azurite.endpoint,
      '--foreground',
      '--log-level',
      'warn',
      '--memory-limit',
      '1G',
    ],
    env,
  );
const rate = (seconds) => SIZE / MiB / seconds;

const sdkWrite = [];
const sdkRead = [];
/** The SDK read as the mount reads: 8 MiB ranges, 8 at once (Azurite serves ranges slower). */
const sdkRangedRead = [];
const mountWrite = [];
const mountRead = [];
/** CPU seconds (user + system) the daemon spent on each read. */
const mountReadCpu = [];
for (let run = 0; run < RUNS; run++) {
  const blob = container.getBlockBlobClient(`sdk-${run}.bin`);
  sdkWrite.push(await timed(() => blob.uploadFile(source, { blockSize: 8 * MiB, concurrency: 8 })));
  const streamed = await timed(async () => {
    const out = await blob.download(0);
    for await (const _chunk of out.readableStreamBody) {
      // discard
    }
  });
  const ranged = await timed(() => blob.downloadToBuffer(0, undefined, { blockSize: 8 * MiB, concurrency: 8 }));
  sdkRead.push(Math.min(streamed, ranged));
  sdkRangedRead.push(ranged);
  await blob.delete();

  const writer = await mount();
  mountWrite.push(await timed(() => sh(`dd if=${source} of=mount-${run}.bin bs=1M status=none`, writer.dir)));
  await writer.unmount();
  dropCaches();
  const reader = await mount();
  const cpu0 = cpuSeconds(reader.pid);
  mountRead.push(await timed(() => sh(`dd if=mount-${run}.bin of=/dev/null bs=1M status=none`, reader.dir)));
  mountReadCpu.push(cpuSeconds(reader.pid) - cpu0);
  await reader.unmount();
  await container.getBlobClient(`mount-${run}.bin`).delete();
}

const row = (name, write, read) => `| ${name} | ${rate(median(write)).toFixed(0)} | ${rate(median(read)).toFixed(0)} |`;
console.log(
  `\nAzure on Azurite 3.37 (in memory), ${SIZE_MIB} MiB file, sequential, median of ${RUNS}, ${new Date().toISOString().slice(0, 10)}\n`,
);
console.log('| client | write MB/s | read MB/s |');
console.log('| --- | ---: | ---: |');
console.log(row('@azure/storage-blob 12.34 (8 MiB blocks, 8 at once)', sdkWrite, sdkRead));
console.log(row('objmount (dd bs=1M)', mountWrite, mountRead));
console.log(
  `| ratio objmount / SDK | ${(median(sdkWrite) / median(mountWrite)).toFixed(2)} | ${(median(sdkRead) / median(mountRead)).toFixed(2)} |`,
);
console.log(
  `\nThe SDK's read is the faster of one streamed GET and 8 MiB ranges 8 at once; the ranges alone (the mount's pattern): ` +
    `${rate(median(sdkRangedRead)).toFixed(0)} MB/s, objmount / that ${(median(sdkRangedRead) / median(mountRead)).toFixed(2)}.`,
);
console.log(
  `\nobjmount's daemon during the read: ${((median(mountReadCpu) * 1024) / SIZE_MIB).toFixed(2)} CPU s/GiB (median); load average at the end ${loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
await azurite.close();
