/**
 * A store behind TLS with a self-signed certificate, as on-premises gateways often are: refused
 * with one line that says what to do, trusted with --ca-bundle (or a stored credential's bundle),
 * or not checked with --insecure.
 */

import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { plainHttpWarning } from '../../src/daemon/mount.js';
import { forceUnmount, mountBucket, objmount, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const BUCKET = 'tls';
let server: LocalS3Server;
let sdk: S3Client;
let proxy: ChildProcess;
let endpoint: string;
let scratch: string;
let cert: string;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  sdk = s3Client(server.endpoint);
  scratch = mkdtempSync(join(tmpdir(), 'objmount-tls-'));
  cert = join(scratch, 'cert.pem');
  const key = join(scratch, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  proxy = fork(resolve(__dirname, '../helpers/tls-proxy-main.mjs'), [String(server.port), key, cert], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const { port } = await new Promise<{ port: number }>((done) => proxy.once('message', (m) => done(m as { port: number })));
  endpoint = `https://127.0.0.1:${port}`;
});

afterAll(async () => {
  proxy?.kill();
  sdk?.destroy();
  await server?.close();
});

function mountpoint(name: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir);
  return dir;
}

describe('a store behind a self-signed certificate', () => {
  it('is refused in one line that names --ca-bundle and --insecure', async () => {
    const result = await objmount(['mount', `s3://${BUCKET}`, mountpoint('refused'), '--endpoint', endpoint]);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(
      /cannot verify the TLS certificate of https:\/\/127\.0\.0\.1:\d+ \(\w+\): give its CA with --ca-bundle FILE, or skip the check with --insecure/,
    );
  });

  it('mounts with --ca-bundle, and with --insecure', async () => {
    for (const [name, args] of [
      ['ca', ['--ca-bundle', cert]],
      ['insecure', ['--insecure']],
    ] as const) {
      const mount = await mountBucket(endpoint, `s3://${BUCKET}`, [...args]);
      try {
        writeFileSync(join(mount.mountpoint, `via-${name}`), `over TLS (${name})`);
        expect(readFileSync(join(mount.mountpoint, `via-${name}`), 'utf8')).toBe(`over TLS (${name})`);
        expect((await sdk.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `via-${name}` }))).ContentLength).toBeGreaterThan(0);
        if (name === 'insecure') expect(readFileSync(mount.logFile, 'utf8')).toMatch(/are not verified \(--insecure\)/);
      } finally {
        await mount.unmount();
      }
    }
  });

  it('fails a --ca-bundle that cannot be read or holds no certificate, in one line', async () => {
    const notPem = join(scratch, 'not.pem');
    writeFileSync(notPem, 'hello\n');
    for (const [file, message] of [
      [join(scratch, 'missing.pem'), /cannot read the CA bundle .*missing\.pem \(--ca-bundle\): no such file/],
      [notPem, /the CA bundle .*not\.pem \(--ca-bundle\) holds no PEM certificate/],
    ] as const) {
      const result = await objmount([
        'mount',
        `s3://${BUCKET}`,
        mountpoint(`bad-${file.length}`),
        '--endpoint',
        endpoint,
        '--ca-bundle',
        file,
      ]);
      expect(result.code).not.toBe(0);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(message);
    }
  });

  it("imports a credential with its gateway's CA bundle, and mounts by pairing alone", async () => {
    const env = testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'store'), AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined });
    const file = join(scratch, 'gateway.txt');
    writeFileSync(file, `aws_access_key_id=${LOCAL_S3_ACCESS_KEY}\naws_secret_access_key=${LOCAL_S3_SECRET_KEY}\nendpoint=${endpoint}\n`);
    const refused = await objmount(['creds', 'import', file, '--name', 'gateway'], env);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/cannot verify the TLS certificate/);

    const imported = await objmount(['creds', 'import', file, '--name', 'gateway', '--ca-bundle', cert], env);
    expect(imported.stderr).toBe('');
    expect(imported.stdout).toMatch(/paired 1: tls/);
    const mount = await mountBucket('', `s3://${BUCKET}`, [], env);
    try {
      writeFileSync(join(mount.mountpoint, 'via-pairing'), 'paired over TLS');
      expect(readFileSync(join(mount.mountpoint, 'via-pairing'), 'utf8')).toBe('paired over TLS');
    } finally {
      await mount.unmount();
    }
  });

  it('says on the terminal that TLS is not verified, for --insecure and for a credential imported insecure', async () => {
    const env = testEnv({
      OBJMOUNT_CONFIG_DIR: join(scratch, 'insecure-store'),
      AWS_ACCESS_KEY_ID: undefined,
      AWS_SECRET_ACCESS_KEY: undefined,
    });
    const file = join(scratch, 'insecure-gateway.txt');
    writeFileSync(file, `aws_access_key_id=${LOCAL_S3_ACCESS_KEY}\naws_secret_access_key=${LOCAL_S3_SECRET_KEY}\nendpoint=${endpoint}\n`);
    expect((await objmount(['creds', 'import', file, '--name', 'insecure-gateway', '--insecure'], env)).code).toBe(0);
    for (const [name, args, why] of [
      ['flag', ['--endpoint', endpoint, '--insecure'], /\(--insecure\)/],
      ['inherited', [], /\(the stored credential says so/],
    ] as const) {
      const mnt = mountpoint(`warned-${name}`);
      const mounted = await objmount(['mount', `s3://${BUCKET}`, mnt, ...args], name === 'flag' ? testEnv() : env);
      try {
        expect(mounted.code, mounted.stderr).toBe(0);
        const warning = mounted.stderr.trim().split('\n');
        expect(warning).toHaveLength(1);
        expect(warning[0]).toMatch(/^objmount: warning: TLS certificates of https:\/\/127\.0\.0\.1:\d+ are not verified /);
        expect(warning[0]).toMatch(why);
      } finally {
        await objmount(['unmount', mnt], name === 'flag' ? testEnv() : env);
        forceUnmount(mnt);
      }
    }
  });

  it('refuses --insecure and --ca-bundle for az:// and gs:// sources, which always verify', async () => {
    for (const [source, args] of [
      ['az://account/container', ['--insecure']],
      ['gs://bucket', ['--ca-bundle', cert]],
    ] as const) {
      const result = await objmount(['mount', source, mountpoint(`refused-${source.slice(0, 2)}`), ...args]);
      expect(result.code).not.toBe(0);
      expect(result.stderr.trim()).toBe(
        `objmount: ${args[0]} is for s3:// sources: the ${source.slice(0, 2)}:// backend always verifies TLS with the system's certificates`,
      );
    }
  });
});

describe('credentials over plain http', () => {
  it('are warned about when the host is not this machine', () => {
    expect(plainHttpWarning('http://10.1.2.3:9000', 'the signature')).toBe(
      'the signature goes to 10.1.2.3:9000 over plain http: anyone on the path can read it and the data; use https',
    );
    expect(plainHttpWarning('http://s3.example.com', 'x')).toMatch(/s3\.example\.com over plain http/);
    for (const quiet of ['https://s3.example.com', 'http://127.0.0.1:9000', 'http://localhost:9000', 'http://[::1]:9000', undefined]) {
      expect(plainHttpWarning(quiet, 'x')).toBeUndefined();
    }
  });
});
