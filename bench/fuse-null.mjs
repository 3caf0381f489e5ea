/**
 * What FUSE itself costs through each binding, with a file system that does nothing
 * (bench/fuse-null/): (a) C on libfuse 3's high-level API with its multithreaded loop, the
 * limit the issue names (null.c); (a') C on the low-level API, one thread (null-ll.c); (b) the
 * same in JS on our libfuse 3 addon; (c) on fuse-native (libfuse 2.9), when it is installed.
 *
 *   node bench/fuse-null.mjs            (after `npx tsc`; as root, to raise the kernel read-ahead)
 *
 * Sequential read and write of 2 GiB with `dd bs=1M`, and a metadata storm: stat of 10,000
 * distinct entries with attribute and entry caching off (timeouts 0), from one process.
 * Median of 3 runs each (FUSE_NULL_RUNS), on a fresh mount, the variants taking turns; prints
 * ratios to C. Every mount is unmounted in every
 * outcome (fusermount3 -uz as the last resort).
 */

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), 'fuse-null');
const RUNS = Number(process.env.FUSE_NULL_RUNS ?? 3);
const GiB = 1024 ** 3;
const STATS = 10_000;
const work = mkdtempSync(join(tmpdir(), 'objmount-fuse-null-'));
const live = new Set();

function mountedDevice(dir) {
  const line = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .find((l) => l.split(' ')[4] === dir);
  return line?.split(' ')[2];
}

function detachAll() {
  for (const { dir, child } of live) {
    if (mountedDevice(dir)) {
      try {
        execFileSync('fusermount3', ['-uz', dir], { stdio: 'ignore' });
      } catch {}
    }
    child.kill('SIGKILL');
  }
  live.clear();
}
process.on('exit', () => {
  detachAll();
  rmSync(work, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

function buildC(source) {
  const binary = join(work, source.replace(/\.c$/, ''));
  const flags = execFileSync('pkg-config', ['--cflags', '--libs', 'fuse3'], { encoding: 'utf8' }).trim().split(/\s+/);
  if (!existsSync(binary)) execFileSync('gcc', ['-O2', '-o', binary, join(here, source), ...flags], { stdio: 'inherit' });
  return binary;
}

const variants = [
  { name: 'C, libfuse 3 high-level, 16 threads (the limit)', c: true, command: (mnt) => [buildC('null.c'), mnt, '0'] },
  { name: 'C, libfuse 3 low-level, 1 thread', c: true, command: (mnt) => [buildC('null-ll.c'), mnt, '0'] },
];
variants.push({
  name: 'JS, objmount addon (libfuse 3)',
  command: (mnt) => [process.execPath, join(here, 'null-fs.mjs'), 'fuse3', mnt, '0'],
});
try {
  createRequire(import.meta.url).resolve('fuse-native');
  variants.push({
    name: 'JS, fuse-native 2.2.6 (libfuse 2.9)',
    command: (mnt) => [process.execPath, join(here, 'null-fs.mjs'), 'fuse-native', mnt, '0'],
  });
} catch {
  console.log('fuse-native is not installed: its row is skipped');
}

/** Starts a null file system on a fresh mountpoint; resolves once the kernel has the mount. */
async function start(variant) {
  const dir = mkdtempSync(join(work, 'mnt-'));
  const [command, ...args] = variant.command(dir);
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const entry = { dir, child };
  live.add(entry);
  const deadline = Date.now() + 10_000;
  while (!mountedDevice(dir)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${variant.name} did not mount on ${dir}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  // Let the kernel ask for 1 MiB per read (its default read-ahead is 128 KiB); needs root.
  const [major, minor] = mountedDevice(dir).split(':');
  try {
    writeFileSync(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, '1024');
  } catch {}
  return {
    dir,
    async stop() {
      const exited = new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      if (variant.c) execFileSync('fusermount3', ['-u', dir]);
      else child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (mountedDevice(dir)) execFileSync('fusermount3', ['-uz', dir]);
      child.kill('SIGKILL');
      live.delete(entry);
    },
  };
}

function seconds(fn) {
  const t = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const dd = (args) => execFileSync('dd', [...args, 'bs=1M', 'status=none']);
const statStorm = join(work, 'stat-storm.mjs');
writeFileSync(
  statStorm,
  `import { statSync } from 'node:fs';
const [dir, from, count] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const t = process.hrtime.bigint();
for (let i = from; i < from + count; i++) statSync(dir + '/e' + i);
console.log(count / (Number(process.hrtime.bigint() - t) / 1e9));
`,
);

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
// Rounds interleave the variants, so a load that comes and goes on a shared machine hits each.
const samples = variants.map(() => ({ read: [], write: [], stats: [] }));
for (let run = 0; run < RUNS; run++) {
  for (const [i, variant] of variants.entries()) {
    const mount = await start(variant);
    try {
      samples[i].read.push((2 * GiB) / 1e6 / seconds(() => dd([`if=${mount.dir}/zero`, 'of=/dev/null'])));
      samples[i].write.push((2 * GiB) / 1e6 / seconds(() => dd(['if=/dev/zero', `of=${mount.dir}/null`, 'count=2048'])));
      const out = execFileSync(process.execPath, [statStorm, mount.dir, String(run * STATS), String(STATS)], { encoding: 'utf8' });
      samples[i].stats.push(Number(out.trim()));
    } finally {
      await mount.stop();
    }
  }
}
const results = variants.map((variant, i) => {
  const { read, write, stats } = samples[i];
  console.log(
    `${variant.name}: read ${read.map((x) => x.toFixed(0)).join('/')} MB/s, write ${write.map((x) => x.toFixed(0)).join('/')} MB/s, stat ${stats.map((x) => x.toFixed(0)).join('/')} ops/s`,
  );
  return { name: variant.name, read: median(read), write: median(write), stats: median(stats) };
});
console.log(`load average at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);

// Each column against the faster of the two C file systems.
const cs = results.filter((_r, i) => variants[i].c);
const c = {
  read: Math.max(...cs.map((r) => r.read)),
  write: Math.max(...cs.map((r) => r.write)),
  stats: Math.max(...cs.map((r) => r.stats)),
};
console.log('\nRatios are to the faster C variant of each column.');
console.log('\n| binding | read MB/s | read vs C | write MB/s | write vs C | stat ops/s | stat vs C |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of results) {
  const ratio = (x, y) => (x / y).toFixed(2);
  console.log(
    `| ${r.name} | ${r.read.toFixed(0)} | ${ratio(r.read, c.read)} | ${r.write.toFixed(0)} | ${ratio(r.write, c.write)} | ${r.stats.toFixed(0)} | ${ratio(r.stats, c.stats)} |`,
  );
}
if (existsSync(work)) detachAll();
