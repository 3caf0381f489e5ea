/**
 * objmount as a service: the systemd units verify, the system unit's own ExecStart/ExecStop run
 * a real mount that notifies a (fake) systemd, and SIGTERM during a large write waits for it.
 */

import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { CLI, forceUnmount, isMounted, mountBucket, objmount, statWhenShown, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const ROOT = join(__dirname, '..', '..');
const run = promisify(execFile);
const BUCKET = 'service';
const MiB = 1024 * 1024;
let server: LocalS3Server;
let sdk: S3Client;
let scratch: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET], writeFaults: { keys: '^slow/', delayMs: 250 } });
  sdk = s3Client(server.endpoint);
  scratch = mkdtempSync(join(tmpdir(), 'objmount-service-'));
  // `objmount` on the PATH, as the unit's `/usr/bin/env objmount` expects.
  mkdirSync(join(scratch, 'bin'));
  symlinkSync(CLI, join(scratch, 'bin', 'objmount'));
  env = testEnv({ PATH: `${join(scratch, 'bin')}:${process.env.PATH}`, OBJMOUNT_CONFIG_DIR: join(scratch, 'config') });
});

afterAll(async () => {
  sdk?.destroy();
  await server?.close();
});

/** A datagram socket standing in for systemd's NOTIFY_SOCKET; collects what is sent to it. */
function fakeNotifySocket(path: string): { messages: string[]; child: ChildProcess } {
  const script = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    'print("listening", flush=True)',
    'while True:',
    '    print(s.recv(4096).decode().replace("\\n", " ").strip(), flush=True)',
  ].join('\n');
  const child = spawn('python3', ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => messages.push(...chunk.toString().split('\n').filter(Boolean)));
  return { messages, child };
}

async function until(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The unit's `Key=` command line with ${VAR} and $VAR taken from the instance's configuration. */
function unitCommand(key: 'ExecStart' | 'ExecStop', conf: Record<string, string>): string[] {
  const line = readFileSync(join(ROOT, 'systemd', 'objmount@.service'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${key}=`))!;
  return line
    .slice(key.length + 1)
    .split(/\s+/)
    .flatMap((word) => {
      const braced = /^\$\{(\w+)\}$/.exec(word);
      if (braced) return [conf[braced[1]!] ?? ''];
      const bare = /^\$(\w+)$/.exec(word);
      return bare ? (conf[bare[1]!] ?? '').split(/\s+/).filter(Boolean) : [word];
    });
}

describe('systemd units', () => {
  it('pass systemd-analyze verify', () => {
    const dir = mkdtempSync(join(scratch, 'units-'));
    writeFileSync(join(dir, 'objmount@check.service'), readFileSync(join(ROOT, 'systemd', 'objmount@.service')));
    writeFileSync(join(dir, 'objmount@user.service'), readFileSync(join(ROOT, 'systemd', 'user', 'objmount@.service')));
    const system = spawnSyncText('systemd-analyze', ['verify', '--man=no', join(dir, 'objmount@check.service')]);
    expect(system).toEqual({ status: 0, output: '' });
    const runtime = mkdtempSync(join(scratch, 'xdg-'));
    const user = spawnSyncText('systemd-analyze', ['--user', 'verify', '--man=no', join(dir, 'objmount@user.service')], {
      XDG_RUNTIME_DIR: runtime,
    });
    expect(user).toEqual({ status: 0, output: '' });
  });

  it("the system unit's sandbox scores as systemd-analyze security reads it (7.4 before the hardening)", () => {
    const dir = mkdtempSync(join(scratch, 'security-'));
    writeFileSync(join(dir, 'objmount@check.service'), readFileSync(join(ROOT, 'systemd', 'objmount@.service')));
    const { output } = spawnSyncText('systemd-analyze', ['security', '--offline=yes', '--no-pager', join(dir, 'objmount@check.service')]);
    const score = Number(/Overall exposure level for .*: ([\d.]+)/.exec(output)?.[1]);
    expect(score, output).toBeLessThanOrEqual(3.5);
    for (const setting of ['NoNewPrivileges=', 'UMask=', 'RestrictAddressFamilies=~AF_PACKET', 'CapabilityBoundingSet=~CAP_SYS_PTRACE']) {
      expect(
        output.split('\n').find((line) => line.includes(setting)),
        setting,
      ).toMatch(/✓/);
    }
  });

  it('install-service keeps the configuration directory that holds credentials private (0700)', async () => {
    const config = join(mkdtempSync(join(scratch, 'etc-')), 'objmount');
    const installed = await objmount(
      ['install-service', 'private', `s3://${BUCKET}`, '/mnt/private', '--unit-dir', mkdtempSync(join(scratch, 'unit-'))],
      testEnv({ OBJMOUNT_CONFIG_DIR: config }),
    );
    expect(installed.code, installed.stderr).toBe(0);
    expect(statSync(config).mode & 0o777).toBe(0o700);
    // One made open by hand, with credentials in it, is closed again, and that is said.
    chmodSync(config, 0o755);
    writeFileSync(join(config, 'credentials.json'), '{}', { mode: 0o600 });
    const again = await objmount(
      ['install-service', 'private', `s3://${BUCKET}`, '/mnt/private', '--unit-dir', mkdtempSync(join(scratch, 'unit-'))],
      testEnv({ OBJMOUNT_CONFIG_DIR: config }),
    );
    expect(again.code, again.stderr).toBe(0);
    expect(statSync(config).mode & 0o777).toBe(0o700);
    expect(again.stdout).toContain(`${config} holds credentials and was open to other users: made it 0700`);
  });

  it("install-service writes the instance's configuration; the unit's ExecStart mounts and notifies, ExecStop drains and unmounts", async () => {
    const mountpoint = mkdtempSync(join(scratch, 'mnt-'));
    const unitDir = join(scratch, 'units');
    const installed = await objmount(
      [
        'install-service',
        'data',
        `s3://${BUCKET}`,
        mountpoint,
        '--unit-dir',
        unitDir,
        '--',
        '--endpoint',
        server.endpoint,
        '--write-mode',
        'async',
      ],
      env,
    );
    expect(installed.stdout).toMatch(/systemctl daemon-reload && systemctl enable --now objmount@data/);
    const conf = Object.fromEntries(
      readFileSync(join(scratch, 'config', 'mounts', 'data.conf'), 'utf8')
        .split('\n')
        .filter((l) => /^\w+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(conf).toMatchObject({ SOURCE: `s3://${BUCKET}`, MOUNTPOINT: mountpoint });

    const socketPath = join(scratch, 'notify.sock');
    const notify = fakeNotifySocket(socketPath);
    const [command, ...args] = unitCommand('ExecStart', conf);
    const daemon = spawn(command!, args, { env: { ...env, NOTIFY_SOCKET: socketPath }, stdio: 'ignore' });
    try {
      await until(() => notify.messages.includes('listening'), 'the fake socket');
      // (Bounded generously: a mount takes seconds on a loaded 2-core machine.)
      await until(() => notify.messages.some((m) => m.includes('READY=1')), 'READY=1', 60_000);
      expect(isMounted(mountpoint)).toBe(true); // READY only once the mount is live
      writeFileSync(join(mountpoint, 'from-service'), 'served');

      const [stop, ...stopArgs] = unitCommand('ExecStop', conf);
      await run(stop!, stopArgs, { env }); // not execFileSync: this process must reap the daemon
      await until(() => daemon.exitCode !== null, 'the daemon to exit');
      expect(daemon.exitCode).toBe(0);
      await until(() => notify.messages.some((m) => m.includes('STOPPING=1')), 'STOPPING=1', 5_000);
      expect((await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'from-service' }))).ContentLength).toBe(6);
    } finally {
      daemon.kill('SIGKILL');
      notify.child.kill();
      forceUnmount(mountpoint);
    }
  });

  it('SIGTERM during a large write waits until the object is complete in the store', async () => {
    const mountpoint = mkdtempSync(join(scratch, 'mnt-'));
    const daemon = spawn(process.execPath, [CLI, 'mount', `s3://${BUCKET}`, mountpoint, '--endpoint', server.endpoint, '--foreground'], {
      env,
      stdio: 'ignore',
    });
    try {
      await until(() => isMounted(mountpoint), 'the mount');
      mkdirSync(join(mountpoint, 'slow'));
      const data = randomBytes(40 * MiB);
      const handle = await open(join(mountpoint, 'slow', 'big'), 'w');
      await handle.write(data); // parts go up at 250 ms each while this runs
      const closed = handle.close(); // waits for the last parts and the completion
      await sleep(100);
      daemon.kill('SIGTERM');
      await closed;
      await until(() => daemon.exitCode !== null, 'the daemon to exit', 60_000);
      const head = await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'slow/big' }));
      expect(head.ContentLength).toBe(data.length);
    } finally {
      daemon.kill('SIGKILL');
      forceUnmount(mountpoint);
    }
  });
});

describe('status and metrics', () => {
  it('report numbers that match what was done', async () => {
    const port = await freePort();
    const mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, ['--metrics-port', String(port)], env);
    try {
      for (const name of ['s1', 's2', 's3']) writeFileSync(join(mount.mountpoint, name), Buffer.alloc(1000, 1));
      await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'for-status', Body: Buffer.alloc(5000, 2) }));
      await statWhenShown(join(mount.mountpoint, 'for-status')); // within --negative-ttl: the root was listed
      expect(readFileSync(join(mount.mountpoint, 'for-status')).length).toBe(5000);

      const [status] = JSON.parse((await objmount(['status', '--json'], env)).stdout) as Array<Record<string, never>>;
      expect(status).toMatchObject({
        source: `s3://${BUCKET}`,
        mountpoint: mount.mountpoint,
        bytesWritten: 3000,
        bytesRead: 5000,
        pendingUploads: 0,
        failedOperations: 0,
      });
      expect((status as { requestsByOperation: Record<string, number> }).requestsByOperation).toMatchObject({ put: 3, get: 1 });
      const text = (await objmount(['status', mount.mountpoint], env)).stdout;
      expect(text).toContain(`s3://${BUCKET} on ${mount.mountpoint}`);
      expect(text).toMatch(/store: \d+ requests \(1 GET, 3 PUT\/parts\)/);

      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const labels = `{source="s3://${BUCKET}",mountpoint="${mount.mountpoint}"}`;
      expect(metrics).toContain(`objmount_bytes_written_total${labels} 3000`);
      expect(metrics).toContain(`objmount_bytes_read_total${labels} 5000`);
      expect(metrics).toContain(`objmount_pending_uploads${labels} 0`);
    } finally {
      await mount.unmount();
    }
    expect((await objmount(['status'], env)).stdout).toMatch(/no objmount mounts/);
  });
});

describe('fstab', () => {
  it('mount -T mounts an fstab entry of type objmount through mount.objmount, and umount stops it', async () => {
    const helper = '/sbin/mount.objmount';
    const ours = !existsSync(helper);
    if (ours) symlinkSync(join(ROOT, 'bin', 'mount.objmount.js'), helper);
    const mountpoint = mkdtempSync(join(scratch, 'fstab-'));
    const log = join(scratch, 'fstab.log');
    const fstab = join(scratch, 'fstab');
    writeFileSync(
      fstab,
      `# test fstab\ns3://${BUCKET}  ${mountpoint}  objmount  _netdev,nofail,endpoint=${server.endpoint},file_mode=600,log_file=${log},x-systemd.automount  0 0\n`,
    );
    try {
      await run('mount', ['-T', fstab, mountpoint], { env });
      expect(isMounted(mountpoint)).toBe(true); // mount(8) returned once the mount was live
      writeFileSync(join(mountpoint, 'from-fstab'), 'f');
      expect(statSync(join(mountpoint, 'from-fstab')).mode & 0o777).toBe(0o644); // created files keep their mode
      await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'plain-for-fstab', Body: 'p' }));
      expect(statSync(join(mountpoint, 'plain-for-fstab')).mode & 0o777).toBe(0o600); // file_mode=600
      await run('umount', [mountpoint]);
      await until(() => readFileSync(log, 'utf8').includes('unmounted'), 'the daemon to stop');
      expect((await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'from-fstab' }))).ContentLength).toBe(1);
    } finally {
      forceUnmount(mountpoint);
      if (ours) rmSync(helper, { force: true });
    }
  });

  it('mounts the root view from an fstab entry whose source is objmount, and mount -a sees it mounted', async () => {
    const helper = '/sbin/mount.objmount';
    const ours = !existsSync(helper);
    if (ours) symlinkSync(join(ROOT, 'bin', 'mount.objmount.js'), helper);
    // A credential store of its own, with the server's key imported and its bucket paired.
    const rootEnv = {
      ...env,
      OBJMOUNT_CONFIG_DIR: join(scratch, 'root-view-config'),
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
    };
    const keys = join(scratch, 'root-view-keys.txt');
    writeFileSync(
      keys,
      `aws_access_key_id=${LOCAL_S3_ACCESS_KEY}\naws_secret_access_key=${LOCAL_S3_SECRET_KEY}\nendpoint=${server.endpoint}\n`,
    );
    const imported = await objmount(['creds', 'import', keys, '--name', 'local'], rootEnv);
    expect(imported.stderr).toBe('');
    const mountpoint = mkdtempSync(join(scratch, 'fstab-all-'));
    const log = join(scratch, 'fstab-all.log');
    const fstab = join(scratch, 'fstab-all');
    writeFileSync(fstab, `objmount  ${mountpoint}  objmount  _netdev,nofail,log_file=${log}  0 0\n`);
    try {
      await run('mount', ['-T', fstab, mountpoint], { env: rootEnv });
      expect(isMounted(mountpoint)).toBe(true);
      await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'for-the-root-view', Body: 'all' }));
      expect(readFileSync(join(mountpoint, 's3', BUCKET, 'for-the-root-view'), 'utf8')).toBe('all');
      writeFileSync(join(mountpoint, 's3', BUCKET, 'via-root-view-fstab'), 'r');
      // The mount table names the source as fstab does, so mount -a leaves the entry alone.
      const source = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .find((line) => line.split(' ')[4] === mountpoint)!
        .split(' - ')[1]!
        .split(' ');
      expect(source.slice(0, 2)).toEqual(['fuse.objmount', 'objmount']);
      await run('mount', ['-a', '-T', fstab], { env: rootEnv });
      expect(
        readFileSync('/proc/self/mountinfo', 'utf8')
          .split('\n')
          .filter((line) => line.split(' ')[4] === mountpoint),
      ).toHaveLength(1);
      await run('umount', [mountpoint]);
      await until(() => readFileSync(log, 'utf8').includes('unmounted'), 'the daemon to stop');
      expect((await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'via-root-view-fstab' }))).ContentLength).toBe(1);
    } finally {
      forceUnmount(mountpoint);
      if (ours) rmSync(helper, { force: true });
    }
  });

  it('install-service takes the source objmount for the root view', async () => {
    const unitDir = join(scratch, 'units-all');
    const installed = await objmount(['install-service', 'all', 'objmount', '/mnt/all', '--unit-dir', unitDir], env);
    expect(installed.code).toBe(0);
    expect(readFileSync(join(scratch, 'config', 'mounts', 'all.conf'), 'utf8')).toContain('SOURCE=objmount\nMOUNTPOINT=/mnt/all\n');
    const bad = await objmount(['install-service', 'bad', 'everything', '/mnt/all', '--unit-dir', unitDir], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim()).toMatch(/^objmount: 'everything' is not a source: .* \(or objmount for every paired bucket\)$/);
  });
});

/** Runs a command; its exit status and everything it printed (stdout and stderr). */
function spawnSyncText(command: string, args: string[], extra: NodeJS.ProcessEnv = {}): { status: number | null; output: string } {
  const result = spawnSync(command, args, { env: { ...process.env, ...extra }, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}`.trim() };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
