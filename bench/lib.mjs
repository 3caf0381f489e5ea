/**
 * What the benchmarks share: the local S3 server, an SDK client and what is measured through it
 * (listings, the fastest direct upload and download), the three mounting tools (objmount, s3fs,
 * rclone mount) with objmount's own status and request counters, dropping the page cache,
 * timing, and unmounting every mount the script made, whatever happens.
 */

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const server$ = await import(join(root, 'dist/demo/local-s3-server.js'));
export const { LOCAL_S3_ACCESS_KEY: KEY, LOCAL_S3_SECRET_KEY: SECRET } = server$;
const sdk$ = await import('@aws-sdk/client-s3');
export const { S3Client, GetObjectCommand, PutObjectCommand } = sdk$;
const { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, HeadObjectCommand, ListObjectsV2Command, UploadPartCommand } = sdk$;

export const MiB = 1024 * 1024;
export const work = mkdtempSync(join(tmpdir(), 'objmount-bench-'));
const mounts = new Set();
const children = new Set();

export function mounted(dir) {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[4] === dir);
}

function cleanUp() {
  for (const dir of mounts) {
    if (!mounted(dir)) continue;
    try {
      execFileSync('fusermount3', ['-u', dir], { stdio: 'ignore' });
    } catch {
      try {
        execFileSync('fusermount3', ['-uz', dir], { stdio: 'ignore' });
      } catch {}
    }
  }
  for (const child of children) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

export function dropCaches() {
  try {
    execFileSync('sync');
    writeFileSync('/proc/sys/vm/drop_caches', '3');
  } catch {
    // Not allowed here: cold reads are then only as cold as a fresh mount makes them.
  }
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function timed(fn) {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export function have(cmd) {
  try {
    execFileSync('which', [cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function waitMounted(dir, child) {
  for (let i = 0; i < 400; i++) {
    if (mounted(dir)) return;
    if (child && child.exitCode !== null) throw new Error(`exited with ${child.exitCode}`);
    await sleep(50);
  }
  throw new Error(`${dir} did not mount`);
}

/** Peak resident memory of a process, in MiB (VmHWM). */
export function peakRssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmHWM:'));
  return Number(line.split(/\s+/)[1]) / 1024;
}

export async function startServer(buckets) {
  const server = await server$.startLocalS3ServerProcess({ directory: join(work, 'store'), buckets });
  const sdk = new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: KEY, secretAccessKey: SECRET },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return { server, sdk };
}

// The bench's objmount mounts record themselves (and their control sockets) in a directory of
// their own, so `status()` finds each by its mountpoint and nothing is left behind.
process.env.OBJMOUNT_RUNTIME_DIR = join(work, 'run');
const registry = new (await import(join(root, 'dist/daemon/registry.js'))).MountRegistry(process.env.OBJMOUNT_RUNTIME_DIR);
const { queryStatus } = await import(join(root, 'dist/daemon/status.js'));
const env = { ...process.env, AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_EC2_METADATA_DISABLED: 'true' };
// objmount mounts here in the foreground: it gets the malloc settings its daemon mode gives itself.
const { DAEMON_MALLOC_ENV } = await import(join(root, 'dist/daemon/malloc-env.js'));
export const withDaemonMalloc = (e) => ({ ...DAEMON_MALLOC_ENV, ...e });

/**
 * The tools, each mounting `bucket` of `server` on a fresh directory in the foreground as a child
 * of this script (so its pid is known); `unmount()` waits until the tool has exited.
 */
export function tools(server, bucket, objmountArgs = []) {
  const objmount = {
    name: 'objmount',
    available: true,
    command: () => [
      process.execPath,
      [
        // BENCH_PROFILE=DIR: each objmount daemon writes a V8 CPU profile there when it exits.
        ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []),
        join(root, 'bin/objmount.js'),
        'mount',
        `s3://${bucket}`,
        '--endpoint',
        server.endpoint,
        '--foreground',
        '--log-level',
        'warn',
        // Files' metadata is kept across mounts (as by default), in this run's own directory: a
        // run starts with none kept and leaves nothing behind.
        '--metadata-dir',
        join(work, 'metadata'),
        ...objmountArgs,
      ],
      withDaemonMalloc(env),
      { counters: true },
    ],
  };
  const passwd = join(work, 's3fs.passwd');
  writeFileSync(passwd, `${KEY}:${SECRET}\n`, { mode: 0o600 });
  const s3fs = {
    name: 's3fs 1.90 (Debian)',
    available: have('s3fs'),
    command: () => ['s3fs', ['-f', '-o', `url=${server.endpoint},use_path_request_style,passwd_file=${passwd}`, bucket], env],
  };
  // rclone's AWS SDK refuses to start with AWS_CA_BUNDLE set; the server is plain http.
  const { AWS_CA_BUNDLE: _ignored, ...rcloneEnv } = env;
  const rclone = {
    name: 'rclone mount (Debian, --vfs-cache-mode off)',
    available: have('rclone'),
    command: () => [
      'rclone',
      ['mount', '--vfs-cache-mode', 'off', `bench:${bucket}`],
      {
        ...rcloneEnv,
        RCLONE_CONFIG_BENCH_TYPE: 's3',
        RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
        RCLONE_CONFIG_BENCH_ENDPOINT: server.endpoint,
        RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: KEY,
        RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: SECRET,
        RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
      },
    ],
  };
  return [objmount, s3fs, rclone].map((tool) => ({
    ...tool,
    mount: () => spawnMount(...tool.command()),
  }));
}

// ---- the store through the SDK: what the mounts are measured against -------------------------------

/** Every object under `prefix`, as { Key, Size }, through ListObjectsV2 pages. */
export async function listObjects(sdk, bucket, prefix) {
  const objects = [];
  let ContinuationToken;
  do {
    const page = await sdk.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken }));
    objects.push(...(page.Contents ?? []));
    ContinuationToken = page.NextContinuationToken;
  } while (ContinuationToken);
  return objects;
}

/** The object's size in the store, or -1 if it is not there. */
export async function sizeInStore(sdk, bucket, key) {
  try {
    return (await sdk.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))).ContentLength;
  } catch {
    return -1;
  }
}

/**
 * Polls `check` every 50 ms; resolves with the seconds from `start` (a process.hrtime.bigint())
 * until it held, or with undefined if it did not within `timeoutSeconds` of the call.
 */
export async function waitFor(check, start, timeoutSeconds = Infinity) {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    if (await check()) return Number(process.hrtime.bigint() - start) / 1e9;
    if (Date.now() > deadline) return undefined;
    await sleep(50);
  }
}

/** Puts `count` objects (`body(i)`, under `key(i)`), `parallel` at a time. */
export async function putMany(sdk, bucket, count, key, body, parallel = 32) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      await sdk.send(new PutObjectCommand({ Bucket: bucket, Key: key(i), Body: body(i) }));
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
}

/** Uploads `bytes` to `key` as one multipart upload of `partSize` parts, `concurrency` at once. */
export async function directUpload(sdk, bucket, key, bytes, partSize, concurrency) {
  const { UploadId } = await sdk.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const parts = [];
  let next = 0;
  const worker = async () => {
    while (next * partSize < bytes.length) {
      const index = next++;
      const body = bytes.subarray(index * partSize, Math.min(bytes.length, (index + 1) * partSize));
      const { ETag } = await sdk.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: index + 1, Body: body }));
      parts[index] = { PartNumber: index + 1, ETag };
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await sdk.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
}

/**
 * The write limit: the fastest direct multipart upload of `bytes` (median of `runs` for each part
 * size and concurrency tried), as { seconds, how }. Uploads to keys `limit-*`.
 */
export async function fastestUpload(sdk, bucket, bytes, runs, { partsMiB = [8, 16], concurrencies = [4, 8, 16] } = {}) {
  const limit = { seconds: Infinity, how: '' };
  for (const partMiB of partsMiB) {
    for (const concurrency of concurrencies) {
      const times = [];
      for (let i = 0; i < runs; i++)
        times.push(await timed(() => directUpload(sdk, bucket, `limit-${partMiB}-${concurrency}-${i}`, bytes, partMiB * MiB, concurrency)));
      if (median(times) < limit.seconds)
        Object.assign(limit, { seconds: median(times), how: `${partMiB} MiB parts, ${concurrency} at once` });
    }
  }
  return limit;
}

/** Seconds to download `size` bytes of `key` as ranged GETs of 8 MiB, `parallel` at once. */
export function rangedDownload(sdk, bucket, key, size, parallel) {
  const part = 8 * MiB;
  let next = 0;
  const worker = async () => {
    for (let start = next; start < size; start = next) {
      next += part;
      const out = await sdk.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${Math.min(size, start + part) - 1}` }),
      );
      for await (const _chunk of out.Body) {
        // drain
      }
    }
  };
  return timed(() => Promise.all(Array.from({ length: parallel }, worker)));
}

/** The read limit: the fastest direct download of `key` (median of `runs` each), as { best: MB/s, parallel }. */
export async function fastestDownload(sdk, bucket, key, size, runs, { parallels = [1, 4, 8, 16] } = {}) {
  const limit = { best: 0, parallel: 0 };
  for (const parallel of parallels) {
    const times = [];
    for (let i = 0; i < runs; i++) times.push(await rangedDownload(sdk, bucket, key, size, parallel));
    const speed = size / 1e6 / median(times);
    if (speed > limit.best) Object.assign(limit, { best: speed, parallel });
  }
  return limit;
}

// ---- running things on a mount --------------------------------------------------------------------

export function sh(command, cwd) {
  execFileSync('sh', ['-c', command], { cwd, stdio: 'ignore' });
}

export function listDir(dir) {
  return readdirSync(dir);
}

/**
 * Runs `command args` (objmount in the foreground, with its daemon's malloc settings) on a fresh
 * directory, as a child of this script, and returns once it is mounted (see `spawnMount`).
 */
export function mountForeground(command, args, env) {
  return spawnMount(command, args, withDaemonMalloc(env), { counters: true });
}

/**
 * Runs `command args DIR` on a fresh directory DIR as a child of this script and resolves once
 * DIR is mounted (and, for objmount, once its control socket answers). The handle's `unmount()`
 * unmounts (lazily, `fusermount3 -uz`, if the plain unmount keeps failing) and waits until the
 * tool has exited, so what it uploads at unmount is in the store when it resolves; `status()`
 * (objmount only) is the daemon's own `objmount status --json` record. Every mount is also
 * unmounted when this script exits, however it exits.
 */
export async function spawnMount(command, args, env, { counters = false } = {}) {
  const dir = join(work, `mnt-${mounts.size}`);
  mkdirSync(dir);
  mounts.add(dir);
  const child = spawn(command, [...args, dir], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr = (stderr + chunk).slice(-4000)));
  try {
    await waitMounted(dir, child);
  } catch (error) {
    throw new Error(`${command} did not mount: ${error.message}${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`);
  }
  const status = counters ? () => queryStatus(registry.socketPath(dir)) : undefined;
  if (status) {
    for (let i = 0; ; i++) {
      try {
        await status();
        break;
      } catch (error) {
        if (i === 200) throw new Error(`objmount's control socket for ${dir} does not answer: ${error.message}`);
        await sleep(50);
      }
    }
  }
  return {
    dir,
    pid: child.pid,
    status,
    async unmount() {
      for (let attempt = 0; mounted(dir); attempt++) {
        try {
          execFileSync('fusermount3', [attempt < 20 ? '-u' : '-uz', dir], { stdio: 'ignore' });
        } catch (error) {
          if (attempt >= 30) throw new Error(`cannot unmount ${dir}: ${error.message}`);
          await sleep(100); // busy: a process of ours is still leaving it
        }
      }
      for (let i = 0; i < 6000 && child.exitCode === null && child.signalCode === null; i++) await sleep(50);
      children.delete(child);
    },
  };
}

/** CPU seconds (user + system) that process `pid` has used so far. */
export function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14, 15), in USER_HZ ticks
}

/**
 * Azurite's blob service in memory (closed on exit), its container `containerName` through the
 * SDK, a random file of `sizeMiB` in the work directory, and the environment that gives objmount
 * Azurite's account key.
 */
export async function startAzuriteBench({ containerName, sizeMiB, memoryLimitMiB }) {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob');
  const { startLocalAzurite, AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY } = await import(join(root, 'dist/demo/local-azurite.js'));
  const azurite = await startLocalAzurite({ containers: [containerName], memoryLimitMiB });
  process.on('exit', () => void azurite.close());
  const credential = new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY);
  const container = new BlobServiceClient(azurite.endpoint, credential).getContainerClient(containerName);
  const source = join(work, 'source.bin');
  writeFileSync(source, randomBytes(sizeMiB * MiB));
  const env = { ...process.env, AZURE_STORAGE_KEY: AZURITE_ACCOUNT_KEY };
  return { azurite, account: AZURITE_ACCOUNT, container, source, env };
}
