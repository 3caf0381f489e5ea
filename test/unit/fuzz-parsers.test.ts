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
  fc.constantFrom('[default]', '[profile x]', '[remote]', 'type = s3', '# comment', '; comment', '', 'export ', '+----+', '| access | a |'),
  fc.tuple(fc.constantFrom('aws_access_key_id', 'aws_secret_access_key', 'access_key', 'secret_key', 'endpoint', 'host_base', 'EC2_ACCESS_KEY', 'EC2_SECRET_KEY', 'S3_URL', 'region', 'use_https', 'signature_v2'), fc.constantFrom(' = ', '=', ': ', ' '), fc.oneof(fc.string(), fc.constant(SECRET))).map(([k, sep, v]) => `${k}${sep}${v}`),
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
            expect(credential.accessKeyId).toBeTruthy();
            expect(credential.secretAccessKey).toBeTruthy();
          }
        } catch (error) {
          expect(error).toBeInstanceOf(CredentialFormatError);
          const message = (error as Error).message;
          expect(message.split('\n')).toHaveLength(1);
          expect(message.startsWith('fuzz.conf')).toBe(true);
          expect(message).not.toContain(SECRET);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('survive arbitrary JSON for the MinIO client format', () => {
    fc.assert(
      fc.property(fc.json(), (text) => {
        try {
          parseCredentials('config.json', text, 'mc');
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
      fc.tuple(fc.constantFrom('s3://', 'gs://', 'az://', 'S3://', 's3:/', ''), fc.string(), fc.constantFrom('', '/', '//'), fc.string()).map((parts) => parts.join('')),
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
      fc.property(fc.oneof(fc.string(), fc.tuple(fc.nat(), fc.constantFrom('', 'k', 'M', 'GiB', 'tb', 'x')).map(([n, u]) => `${n}${u}`)), (text) => {
        try {
          const bytes = parseSize(text);
          expect(Number.isSafeInteger(bytes) || bytes > Number.MAX_SAFE_INTEGER).toBe(true);
          expect(bytes).toBeGreaterThanOrEqual(0);
        } catch (error) {
          expect(error).toBeInstanceOf(OptionError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
