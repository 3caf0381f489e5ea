#!/usr/bin/env node
/**
 * What people do all day in a mounted bucket (issue 15), side by side in one run on one local S3
 * server: objmount (defaults; and --write-mode async for the writes), s3fs and rclone mount
 * (Debian's), and the AWS SDK one request at a time where that means something.
 *
 *   node bench/metadata.mjs                       # 1,000 files, 1 GiB for fio and dd (~10 min)
 *   BENCH_QUICK=1 node bench/metadata.mjs         # 100 files, 64 MiB fio for 3 s, no 1 GiB dd
 *   BENCH_ONLY=stat,ls BENCH_TOOLS=objmount,s3fs node bench/metadata.mjs
 *
 * Workloads (ids for BENCH_ONLY), each on a fresh mount; "cold" adds a dropped page cache:
 *   write       FILES x 4 KiB files written by one shell loop, until the SDK lists them all
 *   writeAsync  the same through objmount --write-mode async
 *   ls          cold `ls -l` of that directory (written through the same tool's mount)
 *   cat         cold `cat dir/*` of it
 *   stat        cold `stat` of FILES names given on the command line (no readdir first), of
 *               objects put by the SDK
 *   find        cold `find DIR -type f -printf %s` over 10 directories x FILES/10 objects
 *   statAgain, findAgain
 *               the same two again, each on a fresh mount after the one above (objmount keeps
 *               files' metadata on disk across mounts, by object version; the others do not)
 *   tar         `tar xf` of a generated source tree (bench/source-tree.mjs: 1,578 files, 360
 *               directories, ~4 MB at FILES=1000, scaled with FILES), until the tool has exited
 *               after the unmount; then every file is checked in the store
 *   tarAsync    the same through objmount --write-mode async
 *   iops        fio random 4 KiB reads (psync, buffered) in a FIO_MIB file for FIO_SECONDS
 *   largeWrite  LARGE_MIB `dd bs=1M` write until the object is complete in the store, against the
 *               fastest direct multipart upload
 *   largeRead   LARGE_MIB cold `dd bs=1M` read, against the fastest direct ranged download; cold
 *               for the client only: the server's copy is read back into its page cache after the
 *               drop, as the direct download found it (a remote store's cache never sees our drop)
 * Beside each: objmount's store requests per file (per IO for fio, in all for dd), by type, from
 * the daemon's own counters (its control socket, as `objmount status --json` shows them); the
 * ratio to s3fs, the issue's goal for the row, and whether it is met.
 *
 * Environment: BENCH_FILES (1000), BENCH_FIO_MIB (1024), BENCH_FIO_SECONDS (20), BENCH_LARGE_MIB
 * (1024; 0 skips the dd rows), BENCH_RUNS (1; medians of more), BENCH_ONLY, BENCH_TOOLS, BENCH_PROFILE
 * (a directory: each objmount daemon writes a V8 CPU profile there).
 * Needs root (FUSE, drop_caches); a missing s3fs, rclone or fio is skipped with a line saying so.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';

import {
  MiB,
  dropCaches,
  fastestDownload,
  fastestUpload,
  have,
  listObjects,
  median,
  putMany,
  sizeInStore,
  startServer,
  timed,
  tools,
  waitFor,
  work,
} from './lib.mjs';
import { makeSourceTree } from './source-tree.mjs';

const env = process.env;
const QUICK = env.BENCH_QUICK === '1';
const FILES = Number(env.BENCH_FILES ?? (QUICK ? 100 : 1000));
const FIO_MIB = Number(env.BENCH_FIO_MIB ?? (QUICK ? 64 : 1024));
const FIO_SECONDS = Number(env.BENCH_FIO_SECONDS ?? (QUICK ? 3 : 20));
const LARGE_MIB = Number(env.BENCH_LARGE_MIB ?? (QUICK ? 0 : 1024));
const RUNS = Number(env.BENCH_RUNS ?? 1);
const BUCKET = 'bench';
const started = Date.now();
const log = (line) => process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);
const hasFio = have('fio');

// ---- what is measured, and the issue's goal for each ------------------------------------------------
const tree = { files: Math.round((1578 * FILES) / 1000), dirs: Math.round((360 * FILES) / 1000) };
// goal: objmount's time at most `max` x s3fs's (or IOPS at least `min` x), or at least `direct` x the SDK's best.
const WORKLOADS = [
  { id: 'ls', what: `cold \`ls -l\` of ${FILES} x 4 KiB files written through the mount`, unit: 's', goal: { max: 0.5 } },
  { id: 'stat', what: `cold \`stat\` of ${FILES} files named on the command line, put by another client`, unit: 's', goal: { max: 0.5 } },
  { id: 'find', what: `cold \`find -type f -printf %s\`, 10 dirs x ${FILES / 10} files`, unit: 's', goal: { max: 0.5 } },
  { id: 'statAgain', what: 'the same `stat`, cold again on the next mount (objmount: metadata kept)', unit: 's', goal: { max: 0.5 } },
  { id: 'findAgain', what: 'the same `find`, cold again on the next mount (objmount: metadata kept)', unit: 's', goal: { max: 0.5 } },
  { id: 'cat', what: `cold \`cat dir/*\` of the ${FILES} x 4 KiB files`, unit: 's', goal: { max: 0.5 } },
  { id: 'write', what: `${FILES} x 4 KiB files by one shell loop, until listed (sync)`, unit: 's', goal: { max: 0.5 } },
  { id: 'writeAsync', what: `the same, objmount async (s3fs: its only mode)`, unit: 's', goal: { max: 0.2 }, async: true },
  { id: 'tar', what: `\`tar xf\` of ${tree.files} files, ${tree.dirs} dirs, durable at unmount (sync)`, unit: 's', goal: { max: 0.5 } },
  { id: 'tarAsync', what: `the same, objmount async (s3fs: its only mode)`, unit: 's', goal: { max: 0.2 }, async: true },
  {
    id: 'iops',
    what: `fio random 4 KiB reads (psync, buffered, ${FIO_SECONDS} s) in ${FIO_MIB} MiB`,
    unit: 'IOPS',
    goal: { min: 1.5 },
    needs: hasFio ? undefined : 'fio',
  },
  { id: 'largeWrite', what: `${LARGE_MIB} MiB \`dd bs=1M\` write, until durable`, unit: 's', goal: { direct: 0.9 }, large: true },
  { id: 'largeRead', what: `${LARGE_MIB} MiB cold read, \`dd bs=1M\``, unit: 'MB/s', goal: { direct: 0.9 }, large: true },
];
const only = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',')) : undefined;
const wanted = (id) => (only ? only.has(id) : true) && !(WORKLOADS.find((w) => w.id === id)?.large && LARGE_MIB === 0);
for (const id of only ?? []) {
  if (WORKLOADS.some((w) => w.id === id)) continue;
  console.error(`BENCH_ONLY: there is no workload ${id}; the workloads are ${WORKLOADS.map((w) => w.id).join(', ')}`);
  process.exit(2);
}
// results[workload][tool] = [{ value, requests?, note? }, ...] (one per run)
const results = Object.fromEntries(WORKLOADS.map((w) => [w.id, {}]));
const record = (id, tool, measurement) => (results[id][tool] ??= []).push(measurement);

// ---- the server, and what other clients put there -------------------------------------------------
const { server, sdk } = await startServer([BUCKET]);
const fourKiB = randomBytes(4096);
const named = Array.from({ length: FILES }, (_, i) => `named/f${String(i).padStart(5, '0')}`);
const inFind = Array.from({ length: FILES }, (_, i) => `find/d${i % 10}/f${Math.floor(i / 10)}`);
await putMany(
  sdk,
  BUCKET,
  FILES,
  (i) => named[i],
  () => fourKiB,
);
await putMany(
  sdk,
  BUCKET,
  FILES,
  (i) => inFind[i],
  () => fourKiB,
);
const FIO_SIZE = FIO_MIB * MiB;
if (hasFio && wanted('iops')) await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'fio.bin', Body: randomBytes(FIO_SIZE) }));
const LARGE = LARGE_MIB * MiB;
const largeSource = join(work, 'large.bin');
if (wanted('largeWrite') || wanted('largeRead')) {
  writeFileSync(largeSource, randomBytes(LARGE));
  await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'large.bin', Body: readFileSync(largeSource) }));
}
const tarFile = join(work, 'tree.tar');
const treeRoot = join(work, 'tree');
const source = makeSourceTree({ root: treeRoot, tarFile, files: tree.files, dirs: tree.dirs });
// The shell loop writes this, a 4 KiB line of text without a newline, with printf (a builtin).
const loopData = join(work, 'loop-data');
writeFileSync(loopData, Buffer.from(randomBytes(3072).toString('base64')));
log(
  `server ${server.endpoint}; ${FILES} + ${FILES} objects put; tree of ${source.files.length} files, ${source.directories} dirs, ${(source.bytes / 1e6).toFixed(1)} MB`,
);

// ---- how results are shown ------------------------------------------------------------------------
function format(value, unit) {
  if (value === undefined) return '-';
  if (unit === 'IOPS' || unit === 'MB/s') return value.toFixed(0);
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}
const OPERATION_NAMES = {
  head: 'HEAD',
  get: 'GET',
  list: 'LIST',
  put: 'PUT',
  delete: 'DELETE',
  copy: 'COPY',
  'upload part': 'PART',
  'create multipart upload': 'MPU-CREATE',
  'complete multipart upload': 'MPU-COMPLETE',
  'abort multipart upload': 'MPU-ABORT',
  'copy part': 'PART-COPY',
  'head bucket': 'HEAD-BUCKET',
};
function describeRequests(requests) {
  if (!requests) return '';
  const entries = Object.entries(requests).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return 'none';
  return entries.map(([op, n]) => `${OPERATION_NAMES[op] ?? op} ${n < 10 ? n.toFixed(2) : n.toFixed(0)}`).join(', ');
}

// ---- running on a mount ---------------------------------------------------------------------------
const run = promisify(execFile);
/** Runs `command` in sh in `cwd`, killed after `timeoutSeconds`; rejects with its stderr's last line. */
async function shell(command, cwd, timeoutSeconds = 600) {
  try {
    await run('sh', ['-c', command], { cwd, timeout: timeoutSeconds * 1000, killSignal: 'SIGKILL', maxBuffer: 64 * MiB });
  } catch (error) {
    const last = String(error.stderr ?? '')
      .trim()
      .split('\n')
      .pop();
    throw new Error(
      `${command.slice(0, 60)}: ${error.killed ? `killed after ${timeoutSeconds} s` : `exit ${error.code}`}${last ? `: ${last}` : ''}`,
    );
  }
}
const since = (start) => Number(process.hrtime.bigint() - start) / 1e9;
const counters = async (m) => (m.status ? { ...(await m.status()).requestsByOperation } : undefined);
/** Store requests made between two counter readings, per `per` operations: { head: 1.0, ... }. */
function perOperation(before, after, per) {
  if (!before || !after) return undefined;
  const out = {};
  for (const [op, n] of Object.entries(after)) if (n - (before[op] ?? 0) > 0) out[op] = (n - (before[op] ?? 0)) / per;
  return out;
}

/** Mounts with `tool`, runs `body(mount)`, and unmounts in every outcome. */
async function onMount(tool, cold, body, warmInServer) {
  let start = process.hrtime.bigint();
  const m = await tool.mount();
  if (env.BENCH_VERBOSE) log(`  mounted in ${since(start).toFixed(2)} s`);
  try {
    if (cold) dropCaches();
    // The object read back into the server's page cache: the drop above is this machine's, and a
    // remote store's cache would not see it (nor did the direct download this is compared with).
    if (warmInServer) await shell(`cat '${join(server.directory, BUCKET, `${warmInServer}._S3rver_object`)}' > /dev/null`, work);
    return await body(m);
  } finally {
    start = process.hrtime.bigint();
    await m.unmount();
    if (env.BENCH_VERBOSE) log(`  unmounted in ${since(start).toFixed(2)} s`);
  }
}

/** A cold read-only step: `command` timed on a fresh mount, with objmount's requests per file. */
const coldStep = (tool, command, per = FILES, warmInServer = undefined) =>
  onMount(
    tool,
    true,
    async (m) => {
      const before = await counters(m);
      const value = await timed(() => command(m.dir));
      return { value, requests: perOperation(before, await counters(m), per) };
    },
    warmInServer,
  );

async function writeSmallFiles(tool, dir) {
  return onMount(tool, false, async (m) => {
    await shell(`mkdir ${dir}`, m.dir);
    const before = await counters(m);
    const start = process.hrtime.bigint();
    await shell(`data=$(cat ${loopData}); i=0; while [ $i -lt ${FILES} ]; do printf %s "$data" > ${dir}/f$i; i=$((i+1)); done`, m.dir);
    const exited = since(start);
    if (env.BENCH_VERBOSE) log(`  the loop ended after ${exited.toFixed(2)} s`);
    let listed = 0;
    const value = await waitFor(
      async () => (listed = (await listObjects(sdk, BUCKET, `${dir}/f`)).length) >= FILES,
      start,
      Math.max(120, 10 * exited),
    );
    const requests = perOperation(before, await counters(m), FILES);
    if (value === undefined)
      return { value: since(start), requests, note: `only ${listed} of ${FILES} listed ${since(start).toFixed(0)} s after the loop began` };
    return { value, requests };
  });
}

async function untar(tool, dir) {
  let note;
  let start;
  const requests = await onMount(tool, false, async (m) => {
    await shell(`mkdir ${dir}`, m.dir);
    const before = await counters(m);
    start = process.hrtime.bigint();
    // --no-same-owner: what a user who is not root gets; as root, tar would chown every file.
    await shell(`tar --no-same-owner -xf ${tarFile} -C ${dir}`, m.dir).catch((error) => (note = error.message));
    // The daemon's counters end with the mount: read them once its async uploads are done.
    if (m.status) for (let i = 0; i < 6000 && (await m.status()).pendingUploads > 0; i++) await new Promise((r) => setTimeout(r, 50));
    return perOperation(before, await counters(m), source.files.length);
  });
  const value = since(start); // the tool has exited: what it uploads at unmount is done
  const stored = new Map((await listObjects(sdk, BUCKET, `${dir}/`)).map((o) => [o.Key.slice(dir.length + 1), o.Size]));
  const complete = source.files.filter((f) => stored.get(f.path) === f.size).length;
  if (complete < source.files.length)
    note = `${note ? `${note}; ` : ''}only ${complete} of ${source.files.length} files in the store after unmount`;
  return { value, requests, note };
}

async function fio(tool) {
  return onMount(tool, true, async (m) => {
    const before = await counters(m);
    const { stdout } = await run(
      'fio',
      [
        '--name=rand',
        `--filename=${join(m.dir, 'fio.bin')}`,
        '--rw=randread',
        '--bs=4k',
        '--ioengine=psync',
        `--runtime=${FIO_SECONDS}`,
        '--time_based',
        '--readonly',
        '--output-format=json',
        `--size=${FIO_SIZE}`,
      ],
      { timeout: (FIO_SECONDS + 120) * 1000, maxBuffer: 64 * MiB },
    );
    const { iops, total_ios: ios } = JSON.parse(stdout).jobs[0].read;
    return { value: iops, requests: perOperation(before, await counters(m), ios) };
  });
}

async function largeWrite(tool, key) {
  return onMount(tool, false, async (m) => {
    const before = await counters(m);
    const start = process.hrtime.bigint();
    await shell(`dd if=${largeSource} of=${key} bs=1M status=none`, m.dir);
    const value = await waitFor(async () => (await sizeInStore(sdk, BUCKET, key)) === LARGE, start, 600);
    const requests = perOperation(before, await counters(m), 1);
    return value === undefined ? { value: since(start), requests, note: 'not complete in the store after 600 s' } : { value, requests };
  });
}

// ---- the SDK, one request at a time: what one request per file costs on this server ----------------
async function sdkBaseline(runIndex) {
  const recordSdk = (id, measurement) => {
    record(id, 'sdk', measurement);
    const { unit } = WORKLOADS.find((w) => w.id === id);
    log(
      `${'sdk'.padEnd(8)} ${id.padEnd(10)} ${format(measurement.value, unit).padStart(9)} ${unit}${measurement.how ? ` (${measurement.how})` : ''}`,
    );
  };
  const dir = `sdk-${runIndex}`;
  const one = async (n, send) =>
    timed(async () => {
      for (let i = 0; i < n; i++) await send(i);
    });
  const drain = async (out) => {
    for await (const _chunk of out.Body) {
      // drain
    }
  };
  if (wanted('write') || wanted('cat') || wanted('ls'))
    recordSdk('write', {
      value: await one(FILES, (i) => sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${dir}/f${i}`, Body: fourKiB }))),
    });
  if (wanted('ls')) recordSdk('ls', { value: await timed(() => listObjects(sdk, BUCKET, `${dir}/`)) });
  if (wanted('cat'))
    recordSdk('cat', {
      value: await one(FILES, async (i) => drain(await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${dir}/f${i}` })))),
    });
  if (wanted('stat'))
    recordSdk('stat', { value: await one(FILES, (i) => sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: named[i] }))) });
  if (wanted('find')) recordSdk('find', { value: await timed(() => listObjects(sdk, BUCKET, 'find/')) });
  if (wanted('tar')) {
    const files = source.files;
    recordSdk('tar', {
      value: await one(files.length, (i) =>
        sdk.send(
          new PutObjectCommand({ Bucket: BUCKET, Key: `${dir}-tree/${files[i].path}`, Body: readFileSync(join(treeRoot, files[i].path)) }),
        ),
      ),
    });
  }
  if (wanted('iops') && hasFio) {
    let ios = 0;
    const seconds = Math.min(FIO_SECONDS, 5);
    const deadline = Date.now() + seconds * 1000;
    const spent = await timed(async () => {
      while (Date.now() < deadline) {
        const offset = Math.floor(Math.random() * (FIO_SIZE / 4096)) * 4096;
        await drain(await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'fio.bin', Range: `bytes=${offset}-${offset + 4095}` })));
        ios++;
      }
    });
    recordSdk('iops', { value: ios / spent });
  }
}

/**
 * The limits of the dd rows, measured right before objmount's own dd steps (on a shared machine,
 * minutes apart is another machine). They are searched among the settings that won every
 * recorded write.mjs and read.mjs run (bench/RESULTS.md): each try moves a whole LARGE_MIB.
 */
async function sdkLimits() {
  const recordSdk = (id, measurement) => {
    record(id, 'sdk', measurement);
    log(
      `${'sdk'.padEnd(8)} ${id.padEnd(10)} ${format(measurement.value, WORKLOADS.find((w) => w.id === id).unit).padStart(9)} (${measurement.how})`,
    );
  };
  if (wanted('largeWrite')) {
    const limit = await fastestUpload(sdk, BUCKET, readFileSync(largeSource), 1, { partsMiB: [16], concurrencies: [8, 16] });
    recordSdk('largeWrite', { value: limit.seconds, how: `fastest direct multipart upload: ${limit.how}` });
  }
  if (wanted('largeRead')) {
    const limit = await fastestDownload(sdk, BUCKET, 'large.bin', LARGE, 1, { parallels: [8, 16] });
    recordSdk('largeRead', { value: limit.best, how: `fastest direct download: ${limit.parallel} ranged GETs of 8 MiB at once` });
  }
}

// ---- each tool ------------------------------------------------------------------------------------
const [objmount, s3fs, rclone] = tools(server, BUCKET);
const [objmountAsync] = tools(server, BUCKET, ['--write-mode', 'async', '--staging-dir', join(work, 'journal')]);
const TOOLS = [
  { key: 'objmount', tool: objmount },
  { key: 's3fs', tool: s3fs },
  { key: 'rclone', tool: rclone },
].filter((t) => (env.BENCH_TOOLS ? env.BENCH_TOOLS.split(',').includes(t.key) : true));
const skipped = [];
for (const { tool } of TOOLS) if (!tool.available) skipped.push(`${tool.name}: not installed, skipped (scripts/setup installs it)`);
if (!hasFio) skipped.push('fio: not installed, random-read IOPS skipped (apt-get install fio)');

/** Runs one workload and records it; a failure is recorded as a note, and the run goes on. */
async function measure(id, key, fn) {
  if (!wanted(id)) return;
  const workload = WORKLOADS.find((w) => w.id === id);
  if (workload.needs) return;
  let result;
  try {
    result = await fn();
  } catch (error) {
    result = { value: undefined, note: `failed: ${String(error.message).split('\n')[0]}` };
  }
  record(id, key, result);
  log(
    `${key.padEnd(8)} ${id.padEnd(10)} ${format(result.value, workload.unit).padStart(9)} ${workload.unit} ${describeRequests(result.requests)}${result.note ? `  (${result.note})` : ''}`,
  );
}

for (let runIndex = 0; runIndex < RUNS; runIndex++) {
  await sdkBaseline(runIndex);
  if (!TOOLS.some((t) => t.key === 'objmount')) await sdkLimits();
  for (const { key, tool } of TOOLS.filter((t) => t.tool.available)) {
    const written = `w-${key}-${runIndex}`;
    if (wanted('write')) await measure('write', key, () => writeSmallFiles(tool, written));
    else if (wanted('ls') || wanted('cat'))
      await writeSmallFiles(tool, written).catch((error) => log(`${key}: writing ${written} failed: ${error.message}`));
    await measure('ls', key, () => coldStep(tool, (dir) => shell(`ls -l ${written} > /dev/null`, dir)));
    await measure('cat', key, () => coldStep(tool, (dir) => shell(`cat ${written}/* > /dev/null`, dir)));
    const statNamed = (dir) => run('stat', ['--', ...named], { cwd: dir, maxBuffer: 64 * MiB });
    const findAll = (dir) => shell('find find -type f -printf %s > /dev/null', dir);
    await measure('stat', key, () => coldStep(tool, statNamed));
    await measure('find', key, () => coldStep(tool, findAll));
    // A mount after one that saw the same objects: objmount keeps their metadata on disk.
    await measure('statAgain', key, () => coldStep(tool, statNamed));
    await measure('findAgain', key, () => coldStep(tool, findAll));
    await measure('tar', key, () => untar(tool, `t-${key}-${runIndex}`));
    await measure('iops', key, () => fio(tool));
    if (key === 'objmount') await sdkLimits();
    await measure('largeWrite', key, () => largeWrite(tool, `large-${key}-${runIndex}`));
    await measure('largeRead', key, () =>
      coldStep(tool, (dir) => shell('dd if=large.bin of=/dev/null bs=1M status=none', dir), 1, 'large.bin').then((r) => ({
        ...r,
        value: LARGE / 1e6 / r.value,
      })),
    );
    if (key === 'objmount') {
      await measure('writeAsync', key, () => writeSmallFiles(objmountAsync, `wa-${key}-${runIndex}`));
      await measure('tarAsync', key, () => untar(objmountAsync, `ta-${key}-${runIndex}`));
    }
  }
}
sdk.destroy();
await server.close();

// ---- the table ------------------------------------------------------------------------------------
/** The median run of one tool on one workload (the run with the median value), or undefined. */
function summary(id, key) {
  const runs = results[id][key]?.filter((r) => r.value !== undefined) ?? [];
  const failed = results[id][key]?.find((r) => r.value === undefined);
  if (runs.length === 0) return failed;
  const value = median(runs.map((r) => r.value));
  return runs.find((r) => r.value === value);
}
const cell = (r, unit) => (r === undefined ? '-' : r.value === undefined ? 'failed' : `${format(r.value, unit)}${r.note ? ' !' : ''}`);

const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
console.log(
  `\nMetadata and small files (issue 15), local S3 server on 127.0.0.1, ${date} UTC, ${RUNS === 1 ? 'one run' : `median of ${RUNS}`}; objmount with its defaults\n`,
);
console.log(
  '| workload | objmount | s3fs | rclone | SDK: one request at a time (dd: best direct) | objmount vs goal | met? | objmount store requests per file |',
);
console.log('| --- | ---: | ---: | ---: | ---: | --- | --- | --- |');
const notes = [];
let passed = 0;
let failedGoals = 0;
for (const w of WORKLOADS) {
  if (!wanted(w.id)) continue;
  if (w.needs) {
    console.log(`| ${w.what} | skipped: no ${w.needs} | | | | | | |`);
    continue;
  }
  const ours = summary(w.id, 'objmount');
  const s3 = summary(w.id, 's3fs');
  const rc = w.async ? undefined : summary(w.id, 'rclone');
  // The async rows compare with s3fs's sync time: s3fs has one mode.
  const s3Reference = w.async ? summary(w.id === 'writeAsync' ? 'write' : 'tar', 's3fs') : s3;
  const sdkRow = w.async ? undefined : summary(w.id, 'sdk');
  let versus = '-';
  let met = '-';
  if (ours?.value !== undefined) {
    let ratio;
    let holds;
    if (w.goal.direct !== undefined && sdkRow?.value !== undefined) {
      ratio = w.unit === 's' ? sdkRow.value / ours.value : ours.value / sdkRow.value;
      holds = ratio >= w.goal.direct;
      versus = `${ratio.toFixed(2)} x the best direct (goal >= ${w.goal.direct})`;
      if (s3?.value !== undefined) versus += `; ${(ours.value / s3.value).toFixed(2)} x s3fs's ${w.unit === 's' ? 'time' : 'rate'}`;
    } else if (w.goal.direct === undefined && s3Reference?.value !== undefined) {
      ratio = ours.value / s3Reference.value;
      holds = w.goal.max !== undefined ? ratio <= w.goal.max : ratio >= w.goal.min;
      versus = `${ratio.toFixed(2)} x s3fs (goal ${w.goal.max !== undefined ? `<= ${w.goal.max}` : `>= ${w.goal.min}`})`;
    }
    if (ratio !== undefined) {
      if (ours.note) holds = false; // incomplete or failed is not a pass, however fast
      met = holds ? 'PASS' : 'FAIL';
      if (holds) passed++;
      else failedGoals++;
    }
  }
  const requests = describeRequests(ours?.requests) + (w.id === 'iops' ? ' (per IO)' : w.large ? ' (for the whole file)' : '');
  console.log(
    `| ${w.what} | ${cell(ours, w.unit)} | ${cell(w.async ? s3Reference : s3, w.unit)} | ${cell(rc, w.unit)} | ${cell(sdkRow, w.unit)} | ${versus} | ${met} | ${ours?.requests ? requests : '-'} |`,
  );
  for (const [key, r] of [
    ['objmount', ours],
    ['s3fs', s3],
    ['rclone', rc],
    ['sdk', sdkRow],
  ])
    if (r?.note) notes.push(`${w.id}, ${key}: ${r.note}`);
}
console.log(`\nUnits: seconds, except IOPS and MB/s where the row says so. Goals met: ${passed}; not met: ${failedGoals}.`);
for (const w of WORKLOADS) if (summary(w.id, 'sdk')?.how) console.log(`- ${w.id}: ${summary(w.id, 'sdk').how}`);
for (const note of notes) console.log(`- ${note}`);
for (const line of skipped) console.log(`- ${line}`);
log('done');
process.exit(0);
