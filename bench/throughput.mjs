#!/usr/bin/env node
/**
 * Sequential read and write throughput of objmount, s3fs and rclone mount, and of the AWS SDK
 * directly, against one local S3 server (the same embedded server the tests use), in one run.
 * Prints a Markdown table of MB/s (median of RUNS) and each one's ratio to the SDK.
 *
 *   node bench/throughput.mjs            # 256 MiB object, 3 runs (run scripts/setup first)
 *   BENCH_MIB=1024 BENCH_RUNS=5 node bench/throughput.mjs
 *
 * Needs root (FUSE, dropping the page cache) and Debian's s3fs and rclone (apt-get install s3fs
 * rclone); a tool that is missing is reported and skipped. Every mount is unmounted on exit.
 */

import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const {
  startLocalS3ServerProcess: startLocalS3Server,
  LOCAL_S3_ACCESS_KEY: KEY,
  LOCAL_S3_SECRET_KEY: SECRET,
} = await import(join(root, 'dist/demo/local-s3-server.js'));
const { S3Client, GetObjectCommand, PutObjectCommand } = await import('@aws-sdk/client-s3');

const MIB = Number(process.env.BENCH_MIB ?? 256);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BUCKET = 'bench';
const work = mkdtempSync(join(tmpdir(), 'objmount-bench-'));
const mounts = [];

function mounted(dir) {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === dir);
}
function unmountAll() {
  for (const dir of mounts) {
    if (mounted(dir)) {
      try {
        execFileSync('fusermount3', ['-u', dir], { stdio: 'ignore' });
      } catch {
        try {
          execFileSync('fusermount3', ['-uz', dir], { stdio: 'ignore' });
        } catch {}
      }
    }
  }
}
process.on('exit', unmountAll);
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(130));

function dropCaches() {
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    // Not allowed here: cold reads are then only as cold as a fresh mount makes them.
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mbps = (seconds) => (MIB * 1024 * 1024) / 1e6 / seconds;
async function timed(fn) {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}
async function waitMounted(dir, child) {
  for (let i = 0; i < 200; i++) {
    if (mounted(dir)) return;
    if (child && child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    await sleep(50);
  }
  throw new Error(`${dir} did not mount`);
}
function have(cmd) {
  try {
    execFileSync('which', [cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const server = await startLocalS3Server({ directory: join(work, 'store'), buckets: [BUCKET] });
const sdk = new S3Client({
  endpoint: server.endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: KEY, secretAccessKey: SECRET },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
});
const data = randomBytes(MIB * 1024 * 1024);
const source = join(work, 'source.bin');
writeFileSync(source, data);
await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'read.bin', Body: data }));

const results = [];
{
  const reads = [];
  const writes = [];
  for (let i = 0; i < RUNS; i++) {
    reads.push(
      await timed(async () => {
        const out = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'read.bin' }));
        for await (const _ of out.Body) {
          // drain
        }
      }),
    );
    writes.push(await timed(() => sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: `sdk-${i}.bin`, Body: data }))));
  }
  results.push({ name: 'AWS SDK v3 (one GET / one PUT)', read: mbps(median(reads)), write: mbps(median(writes)) });
}

const env = { ...process.env, AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_EC2_METADATA_DISABLED: 'true' };
const tools = [
  {
    name: 'objmount',
    available: true,
    mount: async (dir) => {
      execFileSync(
        process.execPath,
        [
          join(root, 'bin/objmount.js'),
          'mount',
          `s3://${BUCKET}`,
          dir,
          '--endpoint',
          server.endpoint,
          '--log-file',
          join(work, 'objmount.log'),
        ],
        { env },
      );
    },
  },
  {
    name: 's3fs 1.90 (Debian)',
    available: have('s3fs'),
    mount: async (dir) => {
      const passwd = join(work, 's3fs.passwd');
      writeFileSync(passwd, `${KEY}:${SECRET}\n`, { mode: 0o600 });
      execFileSync(
        's3fs',
        [BUCKET, dir, '-o', `url=${server.endpoint},use_path_request_style,passwd_file=${passwd},use_cache=,nosscache`],
        { env },
      );
      await waitMounted(dir);
    },
  },
  {
    name: 'rclone mount (Debian, --vfs-cache-mode off)',
    available: have('rclone'),
    mount: async (dir) => {
      // rclone's AWS SDK refuses to start with AWS_CA_BUNDLE set ("HTTPClient's transport
      // unsupported type"); the server is plain http on 127.0.0.1, so drop it for rclone.
      const { AWS_CA_BUNDLE: _ignored, ...rcloneEnv } = env;
      const child = spawn('rclone', ['mount', `bench:${BUCKET}`, dir, '--vfs-cache-mode', 'off'], {
        env: {
          ...rcloneEnv,
          RCLONE_CONFIG_BENCH_TYPE: 's3',
          RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
          RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
          RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: KEY,
          RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: SECRET,
          RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
        },
        stdio: 'ignore',
        detached: true,
      });
      child.unref();
      await waitMounted(dir, child);
    },
  },
];

for (const tool of tools) {
  if (!tool.available) {
    results.push({ name: tool.name, note: 'not installed' });
    continue;
  }
  const dir = join(work, `mnt-${results.length}`);
  mkdirSync(dir);
  mounts.push(dir);
  try {
    const reads = [];
    const writes = [];
    for (let i = 0; i < RUNS; i++) {
      await tool.mount(dir);
      dropCaches();
      reads.push(await timed(() => execFileSync('dd', [`if=${join(dir, 'read.bin')}`, 'of=/dev/null', 'bs=1M', 'status=none'])));
      writes.push(
        await timed(() =>
          execFileSync('dd', [
            `if=${source}`,
            `of=${join(dir, `${tool.name.split(' ')[0]}-${i}.bin`)}`,
            'bs=1M',
            'conv=fsync',
            'status=none',
          ]),
        ),
      );
      execFileSync('fusermount3', ['-u', dir]);
      while (mounted(dir)) await sleep(50);
    }
    results.push({ name: tool.name, read: mbps(median(reads)), write: mbps(median(writes)) });
  } catch (error) {
    results.push({ name: tool.name, note: `failed: ${String(error.message).split('\n')[0]}` });
  }
}

unmountAll();
sdk.destroy();
await server.close();
rmSync(work, { recursive: true, force: true });

const sdkRow = results[0];
console.log(
  `\nSequential ${MIB} MiB, median of ${RUNS}, local S3 server (s3rver) on 127.0.0.1, ${new Date().toISOString().slice(0, 10)}\n`,
);
console.log('| client | read MB/s | read vs SDK | write MB/s | write vs SDK |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of results) {
  if (r.note) console.log(`| ${r.name} | ${r.note} | | | |`);
  else
    console.log(
      `| ${r.name} | ${r.read.toFixed(0)} | ${(r.read / sdkRow.read).toFixed(2)} | ${r.write.toFixed(0)} | ${(r.write / sdkRow.write).toFixed(2)} |`,
    );
}
process.exit(0);
