/**
 * Bad input, generated: the credential parsers and the SOURCE parser never crash, never hang and
 * never leak a secret; they return a credential or throw their own one-line error.
 */

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { CredentialFormatError, FORMATS, parseCredentials } from '../../src/creds/formats.js';
import { OptionError, formatSource, parseSize, parseSource } from '../../src/config/mount-options.js';

const SECRET = 'Sup3rSecretValueThatMustNotLeak0123456789';

/** Lines that look like credential files: settings, sections, comments, junk, CRLF. */
const line = fc.oneof(
  fc.constantFrom(
    '[default]',
    '[profile x]',
    '[remote]',
    'type = s3',
    'type = azureblob',
    'type = google cloud storage',
    'type = swift',
    '# comment',
    '; comment',
    '',
    'export ',
    '+----+',
    '| access | a |',
    'read -sr OS_PASSWORD_INPUT',
    'export OS_PASSWORD=$OS_PASSWORD_INPUT',
  ),
  fc
    .tuple(
      fc.constantFrom(
        'aws_access_key_id',
        'aws_secret_access_key',
        'access_key',
        'secret_key',
        'endpoint',
        'host_base',
        'EC2_ACCESS_KEY',
        'EC2_SECRET_KEY',
        'S3_URL',
        'region',
        'use_https',
        'signature_v2',
        'AZURE_STORAGE_ACCOUNT',
        'AZURE_STORAGE_KEY',
        'AZURE_STORAGE_SAS_TOKEN',
        'AZURE_STORAGE_CONNECTION_STRING',
        'account',
        'key',
        'sas_url',
        'service_account_credentials',
        'export OS_AUTH_URL',
        'OS_USERNAME',
        'OS_PASSWORD',
        'OS_PROJECT_NAME',
        'OS_INTERFACE',
        'OS_AUTH_TYPE',
        'OS_APPLICATION_CREDENTIAL_ID',
        'OS_APPLICATION_CREDENTIAL_SECRET',
        'auth',
        'user',
        'env_auth',
        'endpoint_type',
        'auth_token',
        'storage_url',
      ),
      fc.constantFrom(' = ', '=', ': ', ' '),
      fc.oneof(
        fc.string(),
        fc.constant(SECRET),
        fc.constant(`AccountName=a;AccountKey=${SECRET}`),
        fc.constant(`https://a.blob.core.windows.net/?sv=1&sig=${SECRET}`),
      ),
    )
    .map(([k, sep, v]) => `${k}${sep}${v}`),
  fc.constantFrom(
    `DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=${SECRET}`,
    `{"type": "service_account", "private_key": "${SECRET}"`,
    `https://acct.blob.core.windows.net/?sig=${SECRET}`,
  ),
  fc.string(),
);
const file = fc.array(line, { maxLength: 12 }).chain((lines) => fc.constantFrom('\n', '\r\n').map((eol) => lines.join(eol)));

describe('credential parsers under generated input', () => {
  it('return credentials with both keys, or throw a CredentialFormatError without the secret', () => {
    fc.assert(
      fc.property(file, fc.option(fc.constantFrom(...FORMATS.filter((f) => f !== 'env')), { nil: undefined }), (text, format) => {
        try {
          const credentials = parseCredentials('fuzz.conf', text, format);
          expect(credentials.length).toBeGreaterThan(0);
          for (const credential of credentials) {
            if (credential.provider === 's3') {
              expect(credential.accessKeyId).toBeTruthy();
              expect(credential.secretAccessKey).toBeTruthy();
            } else if (credential.provider === 'swift') {
              expect(credential.authUrl || (credential.authToken && credential.storageUrl)).toBeTruthy();
            } else if (credential.provider === 'az') {
              expect(credential.account).toBeTruthy();
              expect(credential.accountKey || credential.sas).toBeTruthy();
            } else {
              expect(credential.clientEmail).toBeTruthy();
              expect(credential.privateKey).toContain('PRIVATE KEY-----');
            }
          }
        } catch (error) {
          expect(error).toBeInstanceOf(CredentialFormatError);
          const message = (error as Error).message;
          expect(message.split('\n')).toHaveLength(1);
          expect(message).toContain('fuzz.conf');
          expect(message).not.toContain(SECRET);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('survive arbitrary JSON for the MinIO client and service-account formats', () => {
    fc.assert(
      fc.property(fc.json(), fc.constantFrom('mc', 'gcs') as fc.Arbitrary<'mc' | 'gcs'>, (text, format) => {
        try {
          parseCredentials('config.json', text, format);
        } catch (error) {
          expect(error).toBeInstanceOf(CredentialFormatError);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('SOURCE and size parsing under generated input', () => {
  it('parse or throw an OptionError; what parses formats back to an equivalent source', () => {
    const source = fc.oneof(
      fc.string(),
      fc
        .tuple(fc.constantFrom('s3://', 'gs://', 'az://', 'S3://', 's3:/', ''), fc.string(), fc.constantFrom('', '/', '//'), fc.string())
        .map((parts) => parts.join('')),
      // Azure sources close to valid, so the container and prefix rules get exercised too.
      fc
        .tuple(fc.stringMatching(/^[a-z0-9]{2,25}$/), fc.stringMatching(/^[a-z0-9-]{2,8}$/), fc.constantFrom('', '/', '//'), fc.string())
        .map(([account, container, cut, prefix]) => `az://${account}/${container}${cut}${prefix}`),
    );
    fc.assert(
      fc.property(source, (text) => {
        try {
          const parsed = parseSource(text);
          expect(parseSource(formatSource(parsed))).toEqual(parsed);
          expect(parsed.prefix === '' || parsed.prefix.endsWith('/')).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(OptionError);
          expect((error as Error).message.split('\n')).toHaveLength(1);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('sizes are whole numbers of bytes or an OptionError', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.tuple(fc.nat(), fc.constantFrom('', 'k', 'M', 'GiB', 'tb', 'x')).map(([n, u]) => `${n}${u}`),
        ),
        (text) => {
          try {
            const bytes = parseSize(text);
            expect(Number.isSafeInteger(bytes) || bytes > Number.MAX_SAFE_INTEGER).toBe(true);
            expect(bytes).toBeGreaterThanOrEqual(0);
          } catch (error) {
            expect(error).toBeInstanceOf(OptionError);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
