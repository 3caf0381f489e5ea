#!/usr/bin/env node
/**
 * A bounded load run: 8 writers and 8 readers, each a process of its own, on one objmount mount
 * of the local S3 server for LOAD_SECONDS (default 180). Writers write files of 64 KiB to 24 MiB
 * into `incoming/` and rename each, once closed, to `done/<sha256>-<writer>-<n>`; readers read
 * random files of `done/` and check the bytes against the name. The daemon's resident memory is
 * sampled every second against --memory-limit (LOAD_MEMORY_LIMIT, default 256M).
 *
 * Passes when no operation failed, every read matched, every file is in the store with its bytes,
 * what the daemon holds by its own count (cached blocks and upload part buffers, sampled through
 * `objmount status`) never exceeded the limit, and its peak RSS stayed within its size at start
 * plus 1.25 x the limit (the budget follows the resident size four times a second; a peak
 * between two readings may overshoot). Prints one summary; record it in bench/RESULTS.md.
 *
 *   node bench/load.mjs                     # after ./scripts/setup, as root
 *   LOAD_SECONDS=600 LOAD_WRITERS=8 LOAD_READERS=8 node bench/load.mjs
 */

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { GetObjectCommand, MiB, startServer, tools } from './lib.mjs';

const seconds = Number(process.env.LOAD_SECONDS ?? 180);
const writers = Number(process.env.LOAD_WRITERS ?? 8);
const readers = Number(process.env.LOAD_READERS ?? 8);
const memoryLimit = process.env.LOAD_MEMORY_LIMIT ?? '256M';
const limitMiB = Number(memoryLimit.replace(/M$/i, ''));
const BUCKET = 'load';

const WRITER = `
const { createHash, randomBytes, randomInt } = require('node:crypto');
const { renameSync, writeFileSync } = require('node:fs');
const [dir, id, until] = process.argv.slice(1);
for (let n = 0; Date.now() < Number(until); n++) {
  const size = randomInt(0, 4) === 0 ? randomInt(4 << 20, 24 << 20) : randomInt(64 << 10, 1 << 20);
  const data = randomBytes(size);
  const sha = createHash('sha256').update(data).digest('hex');
  const started = Date.now();
  try {
    writeFileSync(dir + '/incoming/' + id + '-' + n, data);
    renameSync(dir + '/incoming/' + id + '-' + n, dir + '/done/' + sha + '-' + id + '-' + n);
    console.log(JSON.stringify({ op: 'write', bytes: size, ms: Date.now() - started }));
  } catch (error) {
    console.log(JSON.stringify({ op: 'write', error: error.code + ' ' + error.message }));
  }
}
`;

const READER = `
const { createHash } = require('node:crypto');
const { readdirSync, readFileSync } = require('node:fs');
const [dir, until] = process.argv.slice(1);
while (Date.now() < Number(until)) {
  let names;
  try {
    names = readdirSync(dir + '/done');
  } catch (error) {
    console.log(JSON.stringify({ op: 'list', error: error.code + ' ' + error.message }));
    continue;
  }
  if (names.length === 0) { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); continue; }
  const name = names[Math.floor(Math.random() * names.length)];
  const started = Date.now();
  try {
    const data = readFileSync(dir + '/done/' + name);
    const ok = createHash('sha256').update(data).digest('hex') === name.split('-')[0];
    console.log(JSON.stringify(ok ? { op: 'read', bytes: data.length, ms: Date.now() - started } : { op: 'read', error: 'wrong bytes in ' + name }));
  } catch (error) {
    console.log(JSON.stringify({ op: 'read', error: error.code + ' ' + error.message }));
  }
}
`;

function rssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line.split(/\s+/)[1]) / 1024;
}

function worker(script, args, totals) {
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  let rest = '';
  child.stdout.on('data', (chunk) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop();
    for (const line of lines) {
      const event = JSON.parse(line);
      const t = (totals[event.op] ??= { ops: 0, bytes: 0, errors: [] });
      if (event.error) t.errors.push(event.error);
      else {
        t.ops += 1;
        t.bytes += event.bytes ?? 0;
      }
    }
  });
  return new Promise((resolve) => child.on('exit', resolve));
}

const { server, sdk } = await startServer([BUCKET]);
const [objmount] = tools(server, BUCKET, ['--memory-limit', memoryLimit]);
const mount = await objmount.mount();
let failed = false;
try {
  mkdirSync(join(mount.dir, 'incoming'));
  mkdirSync(join(mount.dir, 'done'));
  await sleep(1000);
  const baseline = rssMiB(mount.pid);
  const totals = {};
  const until = Date.now() + seconds * 1000;
  let peak = baseline;
  let worst;
  let held = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMiB(mount.pid));
    // What the daemon says it holds, at the largest resident size seen, to tell cache and
    // buffers from the runtime's own.
    mount.status().then(
      (s) => {
        if (!s?.memory) return;
        held = Math.max(held, (s.memory.cacheBytes + s.memory.uploadBytes) / MiB);
        if (s.memory.rss > (worst?.rss ?? 0)) worst = s.memory;
      },
      () => undefined, // a sample the busy daemon did not answer is only a sample missed
    );
  }, 1000);
  const started = Date.now();
  await Promise.all([
    ...Array.from({ length: writers }, (_, i) => worker(WRITER, [mount.dir, `w${i}`, String(until)], totals)),
    ...Array.from({ length: readers }, () => worker(READER, [mount.dir, String(until)], totals)),
  ]);
  clearInterval(sampler);
  const elapsed = (Date.now() - started) / 1000;

  // Every file a writer finished is in the store with the bytes its name promises.
  const names = readdirSync(join(mount.dir, 'done'));
  let wrong = 0;
  for (const name of names) {
    const { Body } = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: `done/${name}` }));
    const sha = createHash('sha256')
      .update(await Body.transformToByteArray())
      .digest('hex');
    if (sha !== name.split('-')[0]) wrong += 1;
  }

  const errors = Object.values(totals).flatMap((t) => t.errors);
  // What objmount holds (blocks and part buffers, by its own count) must stay within the limit,
  // and so must the process's growth: the budget reads the resident size four times a second and
  // gives the cache less room by what is held uncounted; a peak between two reads may pass the
  // limit by a little, hence the quarter.
  const allowed = baseline + 1.25 * limitMiB;
  failed = errors.length > 0 || wrong > 0 || held > limitMiB || peak > allowed || (totals.write?.ops ?? 0) !== names.length;
  const rate = (t) => ((t?.bytes ?? 0) / MiB / elapsed).toFixed(1);
  console.log(`objmount load run: ${writers} writers, ${readers} readers, ${elapsed.toFixed(0)} s, --memory-limit ${memoryLimit}`);
  console.log(`  writes: ${totals.write?.ops ?? 0} files, ${rate(totals.write)} MiB/s`);
  console.log(`  reads:  ${totals.read?.ops ?? 0} files, ${rate(totals.read)} MiB/s, all checked`);
  console.log(`  store:  ${names.length} files, ${wrong} with wrong bytes`);
  console.log(`  errors: ${errors.length}${errors.length ? `: ${[...new Set(errors)].slice(0, 5).join('; ')}` : ''}`);
  console.log(`  held by objmount (cache + upload buffers): peak ${held.toFixed(0)} MiB (allowed: the limit, ${limitMiB} MiB)`);
  console.log(
    `  daemon RSS: ${baseline.toFixed(0)} MiB at start, peak ${peak.toFixed(0)} MiB (allowed: start + 1.25 x limit = ${allowed.toFixed(0)} MiB)`,
  );
  if (worst) {
    const m = (bytes) => `${(bytes / MiB).toFixed(0)} MiB`;
    console.log(
      `  at the peak: cache ${m(worst.cacheBytes)}, upload buffers ${m(worst.uploadBytes)}, V8 heap ${m(worst.heapUsed)}, Buffers ${m(worst.external)}, resident ${m(worst.rss)}`,
    );
  }
  console.log(failed ? 'FAILED' : 'passed');
} finally {
  await mount.unmount();
  sdk.destroy();
  await server.close();
}
process.exit(failed ? 1 : 0);
