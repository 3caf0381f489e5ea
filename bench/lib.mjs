/**
 * What the benchmarks share: the local S3 server, an SDK client, the three mounting tools
 * (objmount, s3fs, rclone mount), dropping the page cache, timing, and unmounting every mount
 * the script made, whatever happens.
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

export const MiB = 1024 * 1024;
export const work = mkdtempSync(join(tmpdir(), 'objmount-bench-'));
const mounts = new Set();
const children = new Set();

export function mounted(dir) {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((line) => line.split(' ')[4] === dir);
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
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmHWM:'));
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
    command: (dir) => [process.execPath, [join(root, 'bin/objmount.js'), 'mount', `s3://${bucket}`, dir, '--endpoint', server.endpoint, '--foreground', '--log-level', 'warn', ...objmountArgs], withDaemonMalloc(env)],
  };
  const passwd = join(work, 's3fs.passwd');
  writeFileSync(passwd, `${KEY}:${SECRET}\n`, { mode: 0o600 });
  const s3fs = {
    name: 's3fs 1.90 (Debian)',
    available: have('s3fs'),
    command: (dir) => ['s3fs', [bucket, dir, '-f', '-o', `url=${server.endpoint},use_path_request_style,passwd_file=${passwd}`], env],
  };
  // rclone's AWS SDK refuses to start with AWS_CA_BUNDLE set; the server is plain http.
  const { AWS_CA_BUNDLE: _ignored, ...rcloneEnv } = env;
  const rclone = {
    name: 'rclone mount (Debian, --vfs-cache-mode off)',
    available: have('rclone'),
    command: (dir) => [
      'rclone',
      ['mount', `bench:${bucket}`, dir, '--vfs-cache-mode', 'off'],
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
    async mount() {
      const dir = join(work, `mnt-${mounts.size}`);
      mkdirSync(dir);
      mounts.add(dir);
      const [command, args, toolEnv] = tool.command(dir);
      const child = spawn(command, args, { env: toolEnv, stdio: 'ignore' });
      children.add(child);
      await waitMounted(dir, child);
      return {
        dir,
        pid: child.pid,
        async unmount() {
          if (mounted(dir)) execFileSync('fusermount3', ['-u', dir]);
          for (let i = 0; i < 600 && child.exitCode === null && child.signalCode === null; i++) await sleep(50);
          children.delete(child);
        },
      };
    },
  }));
}

export function sh(command, cwd) {
  execFileSync('sh', ['-c', command], { cwd, stdio: 'ignore' });
}

export function listDir(dir) {
  return readdirSync(dir);
}

/**
 * Runs `command args` (objmount in the foreground, with its daemon's malloc settings) on a fresh
 * directory, as a child of this script, and returns once it is mounted; `unmount()` waits until the tool has exited. Every
 * mount is also unmounted on exit.
 */
export async function mountForeground(command, args, env) {
  const dir = join(work, `mnt-${mounts.size}`);
  mkdirSync(dir);
  mounts.add(dir);
  const child = spawn(command, [...args, dir], { env: withDaemonMalloc(env), stdio: 'ignore' });
  children.add(child);
  await waitMounted(dir, child);
  return {
    dir,
    pid: child.pid,
    async unmount() {
      if (mounted(dir)) execFileSync('fusermount3', ['-u', dir]);
      for (let i = 0; i < 600 && child.exitCode === null && child.signalCode === null; i++) await sleep(50);
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
