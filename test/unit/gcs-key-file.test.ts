/** Service-account key files: what is accepted, and the one line for each way a file is wrong. */

import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { parseServiceAccountKey, readServiceAccountKey } from '../../src/creds/gcs-key-file.js';
import { CredentialError } from '../../src/creds/credential-error.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

function key(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    type: 'service_account',
    project_id: 'my-project',
    private_key_id: 'abc123',
    private_key: pem,
    client_email: 'mounter@my-project.iam.gserviceaccount.com',
    client_id: '1',
    token_uri: 'https://oauth2.googleapis.com/token',
    ...overrides,
  };
}

const parse = (value: unknown) =>
  parseServiceAccountKey(typeof value === 'string' ? value : JSON.stringify(value), '/etc/objmount/key.json');

describe('parseServiceAccountKey', () => {
  it('reads a service-account key as the Cloud Console writes it', () => {
    expect(parse(key())).toEqual({
      clientEmail: 'mounter@my-project.iam.gserviceaccount.com',
      privateKey: pem,
      projectId: 'my-project',
      privateKeyId: 'abc123',
      tokenUri: 'https://oauth2.googleapis.com/token',
    });
  });

  it.each([
    ['{"type": "service_account",', /^the GCS key file \/etc\/objmount\/key\.json is not valid JSON/],
    [[1, 2], /is not a JSON object: expected a service-account key$/],
    [key({ type: 'authorized_user' }), /holds a user's gcloud login \(type authorized_user\), not a service-account key/],
    [key({ type: 'external_account' }), /workload identity federation/],
    [key({ type: undefined }), /its "type" is missing, expected "service_account"/],
    [key({ client_email: undefined }), /has no "client_email"/],
    [key({ private_key: '' }), /has no "private_key"/],
    [key({ private_key: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC' }), /is not a PEM key \(no -----BEGIN line\)/],
    [key({ private_key: pem.slice(0, 200) }), /cannot be read as a PEM private key \(truncated, or its line breaks lost\?\)/],
  ])('explains in one line what is wrong (%#)', (value, message) => {
    let error: unknown;
    try {
      parse(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(CredentialError);
    const text = (error as Error).message;
    expect(text).toMatch(message);
    expect(text).toMatch(/^the GCS key file \/etc\/objmount\/key\.json /);
    expect(text).not.toContain('\n');
    expect(text).not.toContain('MII'); // never a piece of the key
  });

  it('names a file it cannot read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gcs-key-'));
    await expect(readServiceAccountKey(join(dir, 'missing.json'))).rejects.toThrow(
      `cannot read the GCS key file ${join(dir, 'missing.json')}: no such file`,
    );
    await expect(readServiceAccountKey(dir)).rejects.toThrow(/: it is a directory$/);
    const path = join(dir, 'key.json');
    writeFileSync(path, JSON.stringify(key()));
    expect((await readServiceAccountKey(path)).clientEmail).toBe('mounter@my-project.iam.gserviceaccount.com');
  });
});
