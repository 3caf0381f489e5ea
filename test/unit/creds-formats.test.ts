/** The credential files providers hand out, read into one shape (src/creds/formats.ts). Keys are fake. */

import { generateKeyPairSync } from 'node:crypto';

import { describe, expect, it } from 'vitest';

import { CredentialFormatError, detectFormat, parseCredentials, parseEnvironment } from '../../src/creds/formats.js';

const ID = 'AKIAEXAMPLEKEY000001';
const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';

describe('detecting and reading each format', () => {
  it('reads a plain key/value file, as Storj documents a gateway key (CRLF, comments, quotes)', () => {
    const text = `# Storj S3 gateway credentials\r\naws_access_key_id = ${ID}\r\naws_secret_access_key="${SECRET}"\r\n\r\nendpoint = https://gateway.storjshare.io  # the gateway\r\n`;
    expect(detectFormat('storj.txt', text)).toBe('keyvalue');
    expect(parseCredentials('storj.txt', text)).toEqual([
      {
        provider: 's3',
        accessKeyId: ID,
        secretAccessKey: SECRET,
        sessionToken: undefined,
        endpoint: 'https://gateway.storjshare.io',
        region: undefined,
      },
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
    expect(parseCredentials('.s3cfg', text)[0]).toMatchObject({
      endpoint: 'https://gw.internal:8443',
      caBundle: '/etc/pki/gw-ca.pem',
      insecure: true,
    });
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
    expect(parseCredentials('ec2rc.sh', text)[0]).toMatchObject({
      accessKeyId: ID,
      secretAccessKey: SECRET,
      endpoint: 'https://s3.safedc.net',
      pathStyle: true,
    });
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
      parseEnvironment({
        AWS_ACCESS_KEY_ID: ID,
        AWS_SECRET_ACCESS_KEY: SECRET,
        AWS_ENDPOINT_URL: 'https://x.example',
        AWS_ENDPOINT_URL_S3: 'https://s3.example',
        AWS_REGION: 'r1',
      }),
    ).toEqual([expect.objectContaining({ provider: 's3', endpoint: 'https://s3.example', region: 'r1' })]);
  });

  it('reads AZURE_STORAGE_* and GOOGLE_APPLICATION_CREDENTIALS from the environment beside AWS_*', () => {
    const files: Record<string, string> = { '/keys/sa.json': serviceAccountKey() };
    const found = parseEnvironment(
      {
        AWS_ACCESS_KEY_ID: ID,
        AWS_SECRET_ACCESS_KEY: SECRET,
        AZURE_STORAGE_ACCOUNT: 'myaccount',
        AZURE_STORAGE_KEY: AZURE_KEY,
        GOOGLE_APPLICATION_CREDENTIALS: '/keys/sa.json',
      },
      'the environment',
      (path) => files[path]!,
    );
    expect(found.map((c) => c.provider)).toEqual(['s3', 'az', 'gs']);
    expect(found[1]).toEqual({ provider: 'az', account: 'myaccount', accountKey: AZURE_KEY });
    expect(found[2]).toMatchObject({
      provider: 'gs',
      clientEmail: 'objmount-test@my-project-123.iam.gserviceaccount.com',
      projectId: 'my-project-123',
    });
    expect(() => parseEnvironment({ HOME: '/root' })).toThrow(/has no credentials: expected AWS_ACCESS_KEY_ID/);
  });
});

/** A throwaway RSA key, so that key files in these tests hold a real (if useless) key. */
const PEM = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

/** A service-account key file as the Google Cloud console writes it. */
function serviceAccountKey(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify(
    {
      type: 'service_account',
      project_id: 'my-project-123',
      private_key_id: '0123456789abcdef0123456789abcdef01234567',
      private_key: PEM,
      client_email: 'objmount-test@my-project-123.iam.gserviceaccount.com',
      client_id: '123456789012345678901',
      auth_uri: 'https://accounts.google.com/o/oauth2/auth',
      token_uri: 'https://oauth2.googleapis.com/token',
      auth_provider_x509_cert_url: 'https://www.googleapis.com/oauth2/v1/certs',
      client_x509_cert_url: 'https://www.googleapis.com/robot/v1/metadata/x509/objmount-test%40my-project-123.iam.gserviceaccount.com',
      universe_domain: 'googleapis.com',
      ...overrides,
    },
    null,
    2,
  );
}

const AZURE_KEY = 'ZmFrZS1henVyZS1rZXktZm9yLW9iam1vdW50LXRlc3RzLW5vdC1yZWFsLWF0LWFsbA==';
const SAS = 'sv=2022-11-02&ss=b&srt=sco&sp=rwdlac&se=2030-01-01T00:00:00Z&st=2026-01-01T00:00:00Z&spr=https&sig=ZmFrZXNpZ25hdHVyZQ%3D%3D';

describe('Azure credentials', () => {
  it('reads a connection string, with an endpoint suffix of a sovereign cloud', () => {
    const text = `DefaultEndpointsProtocol=https;AccountName=myaccount;AccountKey=${AZURE_KEY};EndpointSuffix=core.usgovcloudapi.net\r\n`;
    expect(detectFormat('conn.txt', text)).toBe('azure');
    expect(parseCredentials('conn.txt', text)).toEqual([
      { provider: 'az', account: 'myaccount', accountKey: AZURE_KEY, endpoint: 'https://myaccount.blob.core.usgovcloudapi.net' },
    ]);
  });

  it("reads Azurite's connection strings: the development shortcut and an explicit BlobEndpoint with a SAS", () => {
    expect(parseCredentials('dev.txt', 'UseDevelopmentStorage=true')[0]).toMatchObject({
      account: 'devstoreaccount1',
      endpoint: 'http://127.0.0.1:10000/devstoreaccount1',
    });
    const text = `BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;SharedAccessSignature=?${SAS}`;
    expect(parseCredentials('sas.txt', text)).toEqual([
      { provider: 'az', account: 'devstoreaccount1', sas: SAS, endpoint: 'http://127.0.0.1:10000/devstoreaccount1' },
    ]);
  });

  it('reads an account SAS URL', () => {
    const text = `https://myaccount.blob.core.windows.net/?${SAS}\n`;
    expect(detectFormat('sas-url.txt', text)).toBe('azure');
    expect(parseCredentials('sas-url.txt', text)).toEqual([{ provider: 'az', account: 'myaccount', sas: SAS }]);
  });

  it('reads an AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_ACCESS_KEY file, with export and quotes', () => {
    const text = `# storage account for backups\nexport AZURE_STORAGE_ACCOUNT="backups01"\nexport AZURE_STORAGE_ACCESS_KEY='${AZURE_KEY}'\n`;
    expect(detectFormat('azure.env', text)).toBe('azure');
    expect(parseCredentials('azure.env', text)).toEqual([{ provider: 'az', account: 'backups01', accountKey: AZURE_KEY }]);
    expect(() => parseCredentials('azure.env', 'AZURE_STORAGE_ACCOUNT=backups01\n')).toThrow(
      /azure.env: expected AZURE_STORAGE_KEY .* for account 'backups01'/,
    );
  });

  it('reads rclone azureblob remotes (account and key, SAS URL, emulator) beside s3 ones', () => {
    const text = [
      '[blob]',
      'type = azureblob',
      'account = myaccount',
      `key = ${AZURE_KEY}`,
      '',
      '[blob-sas]',
      'type = azureblob',
      `sas_url = https://other.blob.core.windows.net/?${SAS}`,
      '',
      '[azurite]',
      'type = azureblob',
      'use_emulator = true',
    ].join('\n');
    expect(parseCredentials('rclone.conf', text)).toEqual([
      { provider: 'az', suggestedName: 'blob', account: 'myaccount', accountKey: AZURE_KEY },
      { provider: 'az', suggestedName: 'blob-sas', account: 'other', sas: SAS },
      expect.objectContaining({ provider: 'az', suggestedName: 'azurite', account: 'devstoreaccount1' }),
    ]);
  });

  it('says what is missing from a connection string, without quoting the key', () => {
    expect(() => parseCredentials('c.txt', 'DefaultEndpointsProtocol=https;AccountName=myaccount', 'azure')).toThrow(
      /c.txt: the connection string has neither AccountKey nor SharedAccessSignature/,
    );
    try {
      parseCredentials('c.txt', `DefaultEndpointsProtocol=https;AccountKey=${AZURE_KEY}`, 'azure');
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/names no AccountName/);
      expect((error as Error).message).not.toContain(AZURE_KEY);
    }
  });
});

describe('Google Cloud credentials', () => {
  it('reads a service-account key file', () => {
    const text = serviceAccountKey();
    expect(detectFormat('sa.json', text)).toBe('gcs');
    expect(parseCredentials('sa.json', text)).toEqual([
      expect.objectContaining({
        provider: 'gs',
        suggestedName: 'my-project-123',
        clientEmail: 'objmount-test@my-project-123.iam.gserviceaccount.com',
        projectId: 'my-project-123',
        tokenUri: 'https://oauth2.googleapis.com/token',
      }),
    ]);
  });

  it('fails a malformed key file on one line naming what is wrong, never quoting the key', () => {
    expect(() => parseCredentials('sa.json', serviceAccountKey({ client_email: undefined }))).toThrow(
      /^the GCS key file sa.json has no "client_email"/,
    );
    expect(() => parseCredentials('sa.json', serviceAccountKey({ private_key: 'not a key' }))).toThrow(
      /"private_key" that is not a PEM key/,
    );
    expect(() => parseCredentials('sa.json', serviceAccountKey({ type: 'authorized_user' }), 'gcs')).toThrow(/holds a user's gcloud login/);
    const broken = serviceAccountKey().slice(0, 200);
    expect(detectFormat('sa.json', broken)).toBe('gcs');
    try {
      parseCredentials('sa.json', broken);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/^the GCS key file sa.json is not valid JSON/);
      expect((error as Error).message).not.toContain('MII');
    }
  });

  it('reads rclone google cloud storage remotes with a key file or inline credentials, and skips OAuth ones', () => {
    const text = [
      '[gcs-file]',
      'type = google cloud storage',
      'service_account_file = /keys/sa.json',
      '',
      '[gcs-inline]',
      'type = google cloud storage',
      `service_account_credentials = ${JSON.stringify(JSON.parse(serviceAccountKey({ project_id: 'inline-project' })))}`,
      '',
      '[gcs-oauth]',
      'type = google cloud storage',
      'token = {"access_token":"x"}',
    ].join('\n');
    const found = parseCredentials('rclone.conf', text, undefined, undefined, (path) =>
      path === '/keys/sa.json' ? serviceAccountKey() : '',
    );
    expect(found.map((c) => [c.provider, c.suggestedName])).toEqual([
      ['gs', 'gcs-file'],
      ['gs', 'gcs-inline'],
    ]);
  });

  it('takes GCS HMAC keys as an S3 credential for storage.googleapis.com', () => {
    const text =
      'aws_access_key_id = GOOG1EXAMPLEHMACKEYID0000000000000000000000000\naws_secret_access_key = bGVhdmUtdGhpcy1zZWNyZXQtYWxvbmU\n';
    expect(parseCredentials('hmac.txt', text)[0]).toMatchObject({ provider: 's3', endpoint: 'https://storage.googleapis.com' });
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
    expect(() => parseCredentials('x.json', '{"not": "mc"}')).toThrow(/neither a MinIO client config.json .* nor a service-account key/);
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
