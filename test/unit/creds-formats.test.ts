/** The credential files providers hand out, read into one shape (src/creds/formats.ts). Keys are fake. */

import { describe, expect, it } from 'vitest';

import { CredentialFormatError, detectFormat, parseCredentials, parseEnvironment } from '../../src/creds/formats.js';

const ID = 'AKIAEXAMPLEKEY000001';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

describe('detecting and reading each format', () => {
  it('reads a plain key/value file, as Storj documents a gateway key (CRLF, comments, quotes)', () => {
    const text = `# Storj S3 gateway credentials\r\naws_access_key_id = ${ID}\r\naws_secret_access_key="${SECRET}"\r\n\r\nendpoint = https://gateway.storjshare.io  # the gateway\r\n`;
    expect(detectFormat('storj.txt', text)).toBe('keyvalue');
    expect(parseCredentials('storj.txt', text)).toEqual([
      { provider: 's3', accessKeyId: ID, secretAccessKey: SECRET, sessionToken: undefined, endpoint: 'https://gateway.storjshare.io', region: undefined },
    ]);
  });

  it('reads AWSAccessKeyId / AWSSecretKey files', () => {
    const [credential] = parseCredentials('rootkey.csv', `AWSAccessKeyId=${ID}\nAWSSecretKey=${SECRET}\n`);
    expect(credential).toMatchObject({ accessKeyId: ID, secretAccessKey: SECRET });
  });

  it('reads every profile of AWS shared files, with endpoint_url and region, or one --profile', () => {
    const text = [
      '[default]',
      `aws_access_key_id = ${ID}`,
      `aws_secret_access_key = ${SECRET}`,
      '',
      '[profile wasabi]',
      'aws_access_key_id=WASABIKEY',
      'aws_secret_access_key=WASABISECRET',
      'endpoint_url = https://s3.eu-central-1.wasabisys.com',
      'region = eu-central-1',
      '',
      '[profile sso-only]',
      'sso_start_url = https://example.awsapps.com/start',
    ].join('\n');
    expect(detectFormat('credentials', text)).toBe('aws');
    const all = parseCredentials('credentials', text);
    expect(all.map((c) => c.suggestedName)).toEqual(['default', 'wasabi']);
    expect(all[1]).toMatchObject({ endpoint: 'https://s3.eu-central-1.wasabisys.com', region: 'eu-central-1', accessKeyId: 'WASABIKEY' });
    expect(parseCredentials('credentials', text, 'aws', 'wasabi')).toHaveLength(1);
    expect(() => parseCredentials('credentials', text, 'aws', 'nope')).toThrow(/no profile 'nope'/);
  });

  it("reads s3cmd's .s3cfg: host_base, use_https, host_bucket, signature_v2, bucket_location", () => {
    const text = [
      '[default]',
      `access_key = ${ID}`,
      `secret_key = ${SECRET}`,
      'host_base = objects.dc-sto1.glesys.net',
      'host_bucket = objects.dc-sto1.glesys.net',
      'use_https = False',
      'signature_v2 = True',
      'bucket_location = sto1',
      'check_ssl_certificate = True',
    ].join('\n');
    expect(detectFormat('.s3cfg', text)).toBe('s3cfg');
    expect(parseCredentials('.s3cfg', text)[0]).toMatchObject({
      endpoint: 'http://objects.dc-sto1.glesys.net',
      region: 'sto1',
      pathStyle: true,
      signatureVersion: 'v2',
    });
    expect(parseCredentials('.s3cfg', text)[0]).not.toHaveProperty('insecure');
  });

  it("reads .s3cfg's TLS settings: ca_certs_file and check_ssl_certificate = False", () => {
    const text = `[default]\naccess_key = ${ID}\nsecret_key = ${SECRET}\nhost_base = gw.internal:8443\nca_certs_file = /etc/pki/gw-ca.pem\ncheck_ssl_certificate = False\n`;
    expect(parseCredentials('.s3cfg', text)[0]).toMatchObject({ endpoint: 'https://gw.internal:8443', caBundle: '/etc/pki/gw-ca.pem', insecure: true });
  });

  it('reads the s3 remotes of an rclone config and skips the others', () => {
    const text = [
      '[local]',
      'type = local',
      '',
      '[ceph]',
      'type = s3',
      'provider = Ceph',
      `access_key_id = ${ID}`,
      `secret_access_key = ${SECRET}`,
      'endpoint = https://rgw.example.org:8080',
      'force_path_style = true',
      '',
      '[b2]',
      'type = s3',
      'provider = Other',
      'access_key_id = B2KEY',
      'secret_access_key = B2SECRET',
      'endpoint = s3.us-west-004.backblazeb2.com',
      'region = us-west-004',
    ].join('\n');
    expect(detectFormat('rclone.conf', text)).toBe('rclone');
    const remotes = parseCredentials('rclone.conf', text);
    expect(remotes.map((r) => r.suggestedName)).toEqual(['ceph', 'b2']);
    expect(remotes[0]).toMatchObject({ endpoint: 'https://rgw.example.org:8080', pathStyle: true });
    expect(remotes[1]).toMatchObject({ endpoint: 'https://s3.us-west-004.backblazeb2.com', region: 'us-west-004' });
  });

  it("reads the MinIO client's config.json aliases that have keys", () => {
    const text = JSON.stringify({
      version: '10',
      aliases: {
        local: { url: 'http://localhost:9000', accessKey: ID, secretKey: SECRET, api: 'S3v4', path: 'auto' },
        play: { url: 'https://play.min.io', accessKey: '', secretKey: '', api: 'S3v4', path: 'auto' },
        s3: { url: 'https://s3.amazonaws.com', accessKey: 'AWSKEY', secretKey: 'AWSSECRET', api: 'S3v4', path: 'dns' },
      },
    });
    expect(detectFormat('config.json', text)).toBe('mc');
    const aliases = parseCredentials('config.json', text);
    expect(aliases.map((a) => a.suggestedName)).toEqual(['local', 's3']);
    expect(aliases[0]).toMatchObject({ endpoint: 'http://localhost:9000', pathStyle: undefined });
    expect(aliases[1]).toMatchObject({ endpoint: undefined, pathStyle: false });
  });

  it("reads OpenStack's ec2rc.sh, with or without export", () => {
    const text = [
      '#!/bin/bash',
      `export EC2_ACCESS_KEY=${ID}`,
      `EC2_SECRET_KEY="${SECRET}"`,
      'export EC2_URL=https://compute.example.org:8773/services/Cloud',
      'export S3_URL=https://s3.safedc.net',
      'alias ec2-bundle-image="ec2-bundle-image --cert $EC2_CERT"',
    ].join('\n');
    expect(detectFormat('ec2rc.sh', text)).toBe('ec2rc');
    expect(parseCredentials('ec2rc.sh', text)[0]).toMatchObject({ accessKeyId: ID, secretAccessKey: SECRET, endpoint: 'https://s3.safedc.net', pathStyle: true });
  });

  it('reads the tables `openstack ec2 credentials create` and `list` print', () => {
    const created = [
      '+------------+----------------------------------+',
      '| Field      | Value                            |',
      '+------------+----------------------------------+',
      `| access     | ${ID}             |`,
      '| links      | {...}                            |',
      '| project_id | 0123456789abcdef0123456789abcdef |',
      `| secret     | ${SECRET} |`,
      '| user_id    | fedcba9876543210fedcba9876543210 |',
      '+------------+----------------------------------+',
    ].join('\n');
    expect(detectFormat('create.txt', created)).toBe('openstack-table');
    expect(parseCredentials('create.txt', created)[0]).toMatchObject({ accessKeyId: ID, secretAccessKey: SECRET });
    const listed = [
      '+----------+----------+------------+---------+',
      '| Access   | Secret   | Project ID | User ID |',
      '+----------+----------+------------+---------+',
      '| KEYONE   | SECRET1  | p1         | u1      |',
      '| KEYTWO   | SECRET2  | p1         | u1      |',
      '+----------+----------+------------+---------+',
    ].join('\n');
    expect(parseCredentials('list.txt', listed).map((c) => c.accessKeyId)).toEqual(['KEYONE', 'KEYTWO']);
  });

  it('reads AWS_* from the environment, including AWS_ENDPOINT_URL_S3', () => {
    expect(
      parseEnvironment({ AWS_ACCESS_KEY_ID: ID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_ENDPOINT_URL: 'https://x.example', AWS_ENDPOINT_URL_S3: 'https://s3.example', AWS_REGION: 'r1' }),
    ).toMatchObject({ endpoint: 'https://s3.example', region: 'r1' });
  });
});

describe('bad files', () => {
  it('name the file, the line and what was expected, and never show a secret whole', () => {
    const text = `[default]\naws_access_key_id = ${ID}\nthis line is not a setting ${SECRET}\n`;
    expect(() => parseCredentials('credentials', text)).toThrow(CredentialFormatError);
    expect(() => parseCredentials('credentials', text)).toThrow(/^credentials:3: expected 'key = value' or '\[section\]'/);
    try {
      parseCredentials('credentials', text);
    } catch (error) {
      expect((error as Error).message).not.toContain(SECRET);
    }
  });

  it('say which key is missing', () => {
    expect(() => parseCredentials('keys.txt', `aws_access_key_id = ${ID}\n`)).toThrow(/keys.txt: the file has no secret key/);
    expect(() => parseCredentials('config.json', '{"aliases": {}}')).toThrow(/no MinIO client alias/);
    expect(() => parseCredentials('x.json', '{"not": "mc"}')).toThrow(/not a MinIO client config.json/);
  });
});

describe('regressions found by the fuzzer (test/unit/fuzz-parsers.test.ts)', () => {
  it('a MinIO config that is not JSON fails on one line, without quoting the file', () => {
    expect(() => parseCredentials('config.json', '\n:', 'mc')).toThrow(/^config.json: not valid JSON( \(at character \d+\))?$/);
  });

  it('a MinIO config that is JSON null (or has non-object aliases) is a format error, not a crash', () => {
    expect(() => parseCredentials('config.json', 'null', 'mc')).toThrow(CredentialFormatError);
    expect(() => parseCredentials('config.json', '{"aliases": {"a": null, "b": 7}}', 'mc')).toThrow(/no MinIO client alias/);
  });
});
