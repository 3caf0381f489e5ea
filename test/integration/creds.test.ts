/**
 * `objmount creds` against the local S3 server: import, list/show masking, the store's modes,
 * pairing a key that may not list buckets, mounting by pairing alone, and bad input.
 */

import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CreateBucketCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { mountBucket, objmount, testEnv } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const RESTRICTED = { accessKeyId: 'RESTRICTEDKEY001', secretAccessKey: 'restricted-secret-value' };
let server: LocalS3Server;
let sdk: S3Client;
let scratch: string;

beforeAll(async () => {
  // creds-b takes anonymous requests, as a bucket with a public policy does; creds-a does not.
  server = await startLocalS3ServerProcess({ buckets: ['creds-a', 'creds-b'], restrictedKey: RESTRICTED, publicBuckets: ['creds-b'] });
  sdk = s3Client(server.endpoint);
  scratch = mkdtempSync(join(tmpdir(), 'objmount-creds-'));
});

afterAll(async () => {
  sdk?.destroy();
  await server?.close();
});

/** A fresh credential store, and an environment with no AWS key: only the store can help. */
function freshEnv(name: string): NodeJS.ProcessEnv {
  return testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, name), AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined });
}

function keyFile(name: string, id: string, secret: string): string {
  const path = join(scratch, name);
  writeFileSync(path, `# test key\naws_access_key_id = ${id}\naws_secret_access_key = ${secret}\nendpoint = ${server.endpoint}\n`);
  return path;
}

describe('objmount creds', () => {
  it('imports a key, detects and pairs its buckets, masks it, and mounts by pairing alone', async () => {
    const env = freshEnv('store-1');
    const imported = await objmount(
      ['creds', 'import', keyFile('local.txt', LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY), '--name', 'local'],
      env,
    );
    expect(imported.stderr).toBe('');
    expect(imported.stdout).toMatch(/Imported 'local' .*Detected 2 buckets, paired 2: creds-a, creds-b/);

    const dir = env.OBJMOUNT_CONFIG_DIR!;
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'credentials.json')).mode & 0o777).toBe(0o600);

    const list = await objmount(['creds', 'list'], env);
    const show = await objmount(['creds', 'show', 'local', '--json'], env);
    for (const output of [list.stdout, show.stdout])
      expect(output).not.toContain(LOCAL_S3_SECRET_KEY.slice(0, 4) + LOCAL_S3_SECRET_KEY.slice(4));
    expect(list.stdout).toMatch(/s3:\/\/creds-a -> local/);
    expect(JSON.parse(show.stdout)).toMatchObject({
      name: 'local',
      secret: '********',
      endpoint: server.endpoint,
      buckets: ['s3://creds-a', 's3://creds-b'],
    });

    // No --endpoint, no AWS_* variables: the pairing says which key and which store.
    const mount = await mountBucket('', 's3://creds-a', [], env);
    try {
      writeFileSync(join(mount.mountpoint, 'via-pairing'), 'ok');
      expect((await sdk.send(new HeadObjectCommand({ Bucket: 'creds-a', Key: 'via-pairing' }))).ContentLength).toBe(2);
      const removal = await objmount(['creds', 'remove', 'local'], env);
      expect(removal.code).not.toBe(0);
      expect(removal.stderr).toMatch(/'local' is used by a running mount of s3:\/\/creds-a: unmount it first/);
    } finally {
      await mount.unmount();
    }
    const removed = await objmount(['creds', 'remove', 'local'], env);
    expect(removed.stdout).toMatch(/removed 'local' and 2 pairing\(s\)/);
  });

  it('imports a key that may not list buckets, and pairing makes its bucket mountable', async () => {
    const env = freshEnv('store-2');
    const imported = await objmount(
      ['creds', 'import', keyFile('restricted.txt', RESTRICTED.accessKeyId, RESTRICTED.secretAccessKey), '--name', 'partner'],
      env,
    );
    expect(imported.code).toBe(0);
    expect(imported.stdout).toMatch(/It may not list buckets: pair each bucket with 'objmount creds pair s3:\/\/BUCKET partner'/);

    const missing = await objmount(['creds', 'pair', 's3://no-such-bucket', 'partner'], env);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/cannot pair s3:\/\/no-such-bucket with 'partner': bucket 'no-such-bucket' does not exist/);

    expect((await objmount(['creds', 'pair', 's3://creds-b', 'partner'], env)).stdout).toMatch(/paired s3:\/\/creds-b with 'partner'/);
    const verify = await objmount(['creds', 'verify', 'partner'], env);
    expect(verify.stdout).toMatch(/partner: authenticates, may not list buckets; creds-b ok/);

    const mount = await mountBucket('', 's3://creds-b', [], env);
    try {
      writeFileSync(join(mount.mountpoint, 'partner-file'), 'p');
      expect(readFileSync(mount.logFile, 'utf8')).toContain(`access key ${RESTRICTED.accessKeyId} from the stored credential 'partner'`);
    } finally {
      await mount.unmount();
    }
    expect((await objmount(['creds', 'unpair', 's3://creds-b'], env)).stdout).toMatch(/unpaired s3:\/\/creds-b/);
    const again = await objmount(['creds', 'unpair', 's3://creds-b'], env);
    expect(again.stderr).toMatch(/s3:\/\/creds-b is not paired/);

    // Unpaired, and not listable by it: --creds names the credential (fstab: creds=NAME).
    const named = await mountBucket('', 's3://creds-b', ['--creds', 'partner'], env);
    try {
      expect(readFileSync(named.logFile, 'utf8')).toContain("from the stored credential 'partner'");
    } finally {
      await named.unmount();
    }
    const unknown = await objmount(['mount', 's3://creds-b', mkdtempSync(join(tmpdir(), 'objmount-unknown-')), '--creds', 'nobody'], env);
    expect(unknown.stderr.trim()).toBe("objmount: no stored credential named 'nobody' (see 'objmount creds list')");
  });

  it('refuses a wrong secret, a malformed file and a duplicate name, storing nothing', async () => {
    const env = freshEnv('store-3');
    const wrong = await objmount(['creds', 'import', keyFile('wrong.txt', LOCAL_S3_ACCESS_KEY, 'not-the-secret')], env);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/the store rejected credential .*SignatureDoesNotMatch/);
    expect(wrong.stderr).not.toContain('not-the-secret');

    const bad = join(scratch, 'bad.conf');
    // A secret key whose '=' is missing: the message names the line, and shows none of it.
    writeFileSync(bad, '[default]\naws_access_key_id = X\naws_secret_access_key wJalrXUtnFEMIK7MDENG\n');
    const malformed = await objmount(['creds', 'import', bad], env);
    expect(malformed.stderr.trim()).toBe(`objmount: ${bad}:3: expected 'key = value' or '[section]'`);
    expect(malformed.stderr).not.toContain('wJalr');

    // A damaged credentials file: where, never what is around the fault (a secret, most likely).
    const damaged = freshEnv('store-damaged');
    mkdirSync(damaged.OBJMOUNT_CONFIG_DIR!, { recursive: true, mode: 0o700 });
    writeFileSync(
      join(damaged.OBJMOUNT_CONFIG_DIR!, 'credentials.json'),
      '{"credentials": {"x": {"secretAccessKey": "wJalrXUtnFEMIK7MDENG" x}}}',
      { mode: 0o600 },
    );
    const listed = await objmount(['creds', 'list'], damaged);
    expect(listed.code).not.toBe(0);
    expect(listed.stderr).toMatch(/credentials.json is damaged \(not valid JSON at character \d+\); move it away/);
    expect(listed.stderr).not.toMatch(/wJalr|secretAccessKey/);

    expect((await objmount(['creds', 'list'], env)).stdout).toMatch(/no credentials/);
    await objmount(['creds', 'import', keyFile('ok.txt', LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY), '--name', 'dup'], env);
    const duplicate = await objmount(
      ['creds', 'import', keyFile('ok.txt', LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY), '--name', 'dup'],
      env,
    );
    expect(duplicate.stderr).toMatch(/a credential named 'dup' exists: choose another with --name, or replace it with --force/);
  });

  it('without a pairing, uses the one credential that lists the bucket; detect pairs again; two are ambiguous', async () => {
    const env = freshEnv('store-5');
    const file = keyFile('lister.txt', LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY);
    await objmount(['creds', 'import', file, '--name', 'lister'], env);
    await objmount(['creds', 'unpair', 's3://creds-a'], env);
    const mount = await mountBucket('', 's3://creds-a', [], env);
    try {
      expect(readFileSync(mount.logFile, 'utf8')).toContain("from the stored credential 'lister'");
    } finally {
      await mount.unmount();
    }
    expect((await objmount(['creds', 'detect'], env)).stdout).toMatch(/lister: detected \d+ bucket\(s\), paired 1: creds-a/);

    await objmount(['creds', 'import', file, '--name', 'twin'], env);
    await objmount(['creds', 'unpair', 's3://creds-a'], env);
    const mnt = mkdtempSync(join(tmpdir(), 'objmount-ambiguous-'));
    const ambiguous = await objmount(['mount', 's3://creds-a', mnt], env);
    expect(ambiguous.code).not.toBe(0);
    expect(ambiguous.stderr.trim()).toBe(
      "objmount: s3://creds-a is listed by several stored credentials (lister, twin): choose one with 'objmount creds pair s3://creds-a NAME'",
    );
  });

  it('keeps every import when several run at once', async () => {
    const env = freshEnv('store-4');
    await sdk.send(new CreateBucketCommand({ Bucket: 'creds-c' }));
    const file = keyFile('many.txt', LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY);
    const results = await Promise.all([1, 2, 3, 4, 5].map((i) => objmount(['creds', 'import', file, '--name', `k${i}`], env)));
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0, 0]);
    const { credentials } = JSON.parse((await objmount(['creds', 'list', '--json'], env)).stdout) as {
      credentials: Array<{ name: string }>;
    };
    expect(credentials.map((c) => c.name).sort()).toEqual(['k1', 'k2', 'k3', 'k4', 'k5']);
  });
});

describe('a store that only accepts Signature Version 2', () => {
  it('imports an .s3cfg with signature_v2 = True and mounts by pairing, signing V2', async () => {
    const old = await startLocalS3ServerProcess({ buckets: ['creds-v2'], signatureV2Only: true });
    const oldSdk = s3Client(old.endpoint);
    try {
      const env = freshEnv('store-v2');
      const host = old.endpoint.replace(/^http:\/\//, '');
      const s3cfg = join(scratch, 'old.s3cfg');
      writeFileSync(
        s3cfg,
        `[default]\r\naccess_key = ${LOCAL_S3_ACCESS_KEY}\r\nsecret_key = ${LOCAL_S3_SECRET_KEY}\r\nhost_base = ${host}\r\nhost_bucket = ${host}\r\nuse_https = False\r\nsignature_v2 = True\r\n`,
      );
      const imported = await objmount(['creds', 'import', s3cfg, '--name', 'old'], env);
      expect(imported.stderr).toBe('');
      expect(imported.stdout).toMatch(/Detected 1 bucket, paired 1: creds-v2/);
      expect(JSON.parse((await objmount(['creds', 'show', 'old', '--json'], env)).stdout)).toMatchObject({ signatureVersion: 'v2' });

      const mount = await mountBucket('', 's3://creds-v2', [], env);
      try {
        writeFileSync(join(mount.mountpoint, 'signed-v2'), 'old but fine');
        expect(readFileSync(join(mount.mountpoint, 'signed-v2'), 'utf8')).toBe('old but fine');
      } finally {
        await mount.unmount();
      }

      // The same bucket with V4 forced on the command line is refused, in one line.
      mkdirSync(join(scratch, 'v4-mnt'));
      const forced = await objmount(['mount', 's3://creds-v2', join(scratch, 'v4-mnt'), '--signature', 'v4'], env);
      expect(forced.code).not.toBe(0);
      expect(forced.stderr.trim().split('\n')).toHaveLength(1);
      expect(forced.stderr).toMatch(/denied/i);
    } finally {
      oldSdk.destroy();
      await old.close();
    }
  });
});

describe('public buckets', () => {
  it('pairs a bucket with public access: the mount sends unsigned requests and needs no key', async () => {
    const env = freshEnv('store-public');
    await sdk.send(new PutObjectCommand({ Bucket: 'creds-b', Key: 'published.txt', Body: 'for everyone' }));
    const paired = await objmount(['creds', 'pair', 's3://creds-b', 'public', '--endpoint', server.endpoint], env);
    expect(paired.stdout.trim()).toBe(`paired s3://creds-b with public (unsigned) access; mount it with --endpoint ${server.endpoint}`);
    expect((await objmount(['creds', 'list'], env)).stdout).toMatch(/s3:\/\/creds-b -> public/);
    const mount = await mountBucket(server.endpoint, 's3://creds-b', [], env);
    try {
      expect(readFileSync(join(mount.mountpoint, 'published.txt'), 'utf8')).toBe('for everyone');
      expect(readFileSync(mount.logFile, 'utf8')).toMatch(/public access \(unsigned requests\)/);
    } finally {
      await mount.unmount();
    }
    const refused = await objmount(['creds', 'pair', 'az://acct/container', 'public'], env);
    expect(refused.stderr).toMatch(/public pairing is for s3:\/\/ buckets/);
  });

  it('checks a public pairing with one unsigned request first: a private or missing bucket fails in one line, storing nothing', async () => {
    const env = freshEnv('store-not-public');
    const oneLine = (result: { code: number; stdout: string; stderr: string }) => {
      expect(result.code).not.toBe(0);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
      return result.stderr.trim();
    };
    const private_ = await objmount(['creds', 'pair', 's3://creds-a', 'public', '--endpoint', server.endpoint], env);
    expect(oneLine(private_)).toBe(
      `objmount: cannot pair s3://creds-a with public access: ${server.endpoint} does not let anyone list it without a key (AccessDenied): import a key for it ('objmount creds import FILE') and pair it with that`,
    );
    const missing = await objmount(['creds', 'pair', 's3://no-such-bucket', 'public', '--endpoint', server.endpoint], env);
    expect(oneLine(missing)).toBe(
      `objmount: cannot pair s3://no-such-bucket with public access: there is no bucket 'no-such-bucket' at ${server.endpoint}: check the name`,
    );
    const unreachable = await objmount(['creds', 'pair', 's3://creds-b', 'public', '--endpoint', 'http://127.0.0.1:1'], env);
    expect(oneLine(unreachable)).toMatch(
      /^objmount: cannot pair s3:\/\/creds-b with public access: cannot reach http:\/\/127.0.0.1:1 .*: check --endpoint and the network$/,
    );
    expect((await objmount(['creds', 'list'], env)).stdout).toMatch(/no credentials in/); // nothing paired
    expect(existsSync(join(env.OBJMOUNT_CONFIG_DIR!, 'credentials.json'))).toBe(false);
  });
});

describe('Google Cloud credentials', () => {
  it('verify a service-account key against Google before storing it: unreachable here, so one line and nothing stored', async () => {
    const env = freshEnv('store-gcs');
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const file = join(scratch, 'sa.json');
    writeFileSync(
      file,
      JSON.stringify({
        type: 'service_account',
        project_id: 'p-1',
        private_key: key,
        client_email: 'sa@p-1.iam.gserviceaccount.com',
        token_uri: 'https://oauth2.googleapis.com/token',
      }),
    );
    const imported = await objmount(['creds', 'import', file], env, 120_000);
    expect(imported.code).not.toBe(0);
    expect(imported.stderr.trim().split('\n')).toHaveLength(1);
    expect(imported.stderr).toMatch(/^objmount: cannot import p-1: /);
    expect(imported.stderr).not.toContain('PRIVATE KEY');
    expect((await objmount(['creds', 'list'], env)).stdout).toMatch(/no credentials in/);
  });
});
