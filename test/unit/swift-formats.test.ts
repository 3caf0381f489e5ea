/** OpenStack RC files, rclone swift sections and OS_* variables, read into one Swift credential (src/creds/swift-formats.ts). */

import { describe, expect, it } from 'vitest';

import { CredentialFormatError, detectFormat, parseCredentials, parseEnvironment } from '../../src/creds/formats.js';
import { parseOpenStackRc } from '../../src/creds/swift-formats.js';
import { authVersionOf } from '../../src/storage/swift-auth.js';

/** The v3 RC file Horizon hands out (Project > API Access > OpenStack RC File), as it is. */
const HORIZON_V3 = `#!/usr/bin/env bash
# To use an OpenStack cloud you need to authenticate against the Identity
# service named keystone, which returns a **Token** and **Service Catalog**.
export OS_AUTH_URL=https://keystone.example.org:5000/v3
# With the addition of Keystone we have standardized on the term **project**
export OS_PROJECT_ID=0123456789abcdef0123456789abcdef
export OS_PROJECT_NAME="demo project"
export OS_USER_DOMAIN_NAME="Default"
if [ -z "$OS_USER_DOMAIN_NAME" ]; then unset OS_USER_DOMAIN_NAME; fi
export OS_PROJECT_DOMAIN_ID="default"
if [ -z "$OS_PROJECT_DOMAIN_ID" ]; then unset OS_PROJECT_DOMAIN_ID; fi
# unset v2.0 items in case set
unset OS_TENANT_ID
unset OS_TENANT_NAME
# In addition to the owning entity (tenant), OpenStack stores the entity
export OS_USERNAME="alice"
# With Keystone you pass the keystone password.
echo "Please enter your OpenStack Password for project $OS_PROJECT_NAME as user $OS_USERNAME: "
read -sr OS_PASSWORD_INPUT
export OS_PASSWORD=$OS_PASSWORD_INPUT
# If your configuration has multiple regions, we set that information here.
export OS_REGION_NAME="RegionOne"
# Don't leave a blank variable, unset it if it was empty
if [ -z "$OS_REGION_NAME" ]; then unset OS_REGION_NAME; fi
export OS_INTERFACE=public
export OS_IDENTITY_API_VERSION=3
`;

describe('OpenStack RC files', () => {
  it("reads Horizon's v3 file, and knows it asks for the password", () => {
    expect(detectFormat('openrc.sh', HORIZON_V3)).toBe('openrc');
    const { credential, needsPassword } = parseOpenStackRc('openrc.sh', HORIZON_V3);
    expect(needsPassword).toBe(true);
    expect(credential).toEqual({
      provider: 'swift',
      authVersion: '3',
      authUrl: 'https://keystone.example.org:5000/v3',
      user: 'alice',
      domain: 'Default',
      tenant: 'demo project',
      tenantId: '0123456789abcdef0123456789abcdef',
      tenantDomainId: 'default',
      region: 'RegionOne',
      endpointType: 'public',
    });
    expect(parseCredentials('openrc.sh', HORIZON_V3)).toEqual([credential]);
  });

  it('reads a v2 file with the password in it, without export, with single quotes and $VAR references', () => {
    const text = [
      "OS_AUTH_URL='http://keystone:5000/v2.0'",
      'OS_TENANT_NAME=tenant1',
      'OS_USERNAME=bob',
      'OS_PASSWORD="pa ss\\"word"',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the RC file's own shell variable, on purpose
      'OS_REGION_NAME=${OS_TENANT_NAME}-region',
      'OS_ENDPOINT_TYPE=internalURL',
    ].join('\r\n');
    const { credential, needsPassword } = parseOpenStackRc('v2rc', text);
    expect(needsPassword).toBe(false);
    expect(credential).toMatchObject({
      authUrl: 'http://keystone:5000/v2.0',
      tenant: 'tenant1',
      user: 'bob',
      key: 'pa ss"word',
      region: 'tenant1-region',
      endpointType: 'internal',
    });
    expect(authVersionOf(credential)).toBe('2');
  });

  it('reads application credentials, and refuses one without its secret', () => {
    const text =
      'export OS_AUTH_TYPE=v3applicationcredential\nexport OS_AUTH_URL=https://k/v3\nexport OS_APPLICATION_CREDENTIAL_ID=abc\nexport OS_APPLICATION_CREDENTIAL_SECRET=s3cr3t\n';
    expect(parseOpenStackRc('app.sh', text).credential).toMatchObject({
      applicationCredentialId: 'abc',
      applicationCredentialSecret: 's3cr3t',
    });
    expect(parseOpenStackRc('app.sh', text).needsPassword).toBe(false);
    expect(() => parseCredentials('app.sh', text.replace(/.*SECRET.*\n/, ''))).toThrow(
      new CredentialFormatError('app.sh: an application credential needs OS_APPLICATION_CREDENTIAL_SECRET'),
    );
  });

  it('says what is wrong with an interface it does not know', () => {
    expect(() => parseCredentials('x.sh', 'export OS_AUTH_URL=https://k/v3\nexport OS_INTERFACE=private\n')).toThrow(
      /x.sh: the interface 'private' is none of public, internal, admin/,
    );
  });
});

describe('rclone swift sections and the environment', () => {
  it('reads swift remotes beside s3 ones, with every auth field rclone has', () => {
    const text = [
      '[ovh]',
      'type = swift',
      'user = user-abc',
      'key = the-password',
      'auth = https://auth.cloud.ovh.net/v3',
      'domain = Default',
      'tenant = 1234567',
      'tenant_domain = Default',
      'region = GRA',
      'endpoint_type = public',
      '',
      '[token]',
      'type = swift',
      'auth_token = gAAAA-token',
      'storage_url = https://storage.example.org/v1/AUTH_x',
    ].join('\n');
    expect(detectFormat('rclone.conf', text)).toBe('rclone');
    const [ovh, token] = parseCredentials('rclone.conf', text);
    expect(ovh).toEqual({
      provider: 'swift',
      suggestedName: 'ovh',
      authUrl: 'https://auth.cloud.ovh.net/v3',
      user: 'user-abc',
      key: 'the-password',
      domain: 'Default',
      tenant: '1234567',
      tenantDomain: 'Default',
      region: 'GRA',
      endpointType: 'public',
    });
    expect(authVersionOf(ovh as never)).toBe('3');
    expect(token).toMatchObject({ authVersion: 'token', authToken: 'gAAAA-token', storageUrl: 'https://storage.example.org/v1/AUTH_x' });
  });

  it('refuses a swift remote that takes its credentials from the environment, pointing at --from-env', () => {
    expect(() => parseCredentials('rclone.conf', '[e]\ntype = swift\nenv_auth = true\n')).toThrow(
      /env_auth = true\): import them with --from-env instead/,
    );
  });

  it('reads OS_* and the swift client ST_* variables from the environment', () => {
    const [fromOs] = parseEnvironment({
      OS_AUTH_URL: 'https://k:5000/v3',
      OS_USERNAME: 'u',
      OS_PASSWORD: 'p',
      OS_PROJECT_NAME: 'proj',
      OS_USER_DOMAIN_ID: 'default',
    });
    expect(fromOs).toMatchObject({ provider: 'swift', user: 'u', key: 'p', tenant: 'proj', userDomainId: 'default' });
    const [fromSt] = parseEnvironment({ ST_AUTH: 'http://127.0.0.1:8080/auth/v1.0', ST_USER: 'test:tester', ST_KEY: 'testing' });
    expect(fromSt).toEqual({
      provider: 'swift',
      authVersion: '1',
      authUrl: 'http://127.0.0.1:8080/auth/v1.0',
      user: 'test:tester',
      key: 'testing',
    });
  });
});

describe('the auth version, when none is given', () => {
  it('is read from the auth URL, else from what the credential holds', () => {
    expect(authVersionOf({ authUrl: 'http://h:8080/auth/v1.0' })).toBe('1');
    expect(authVersionOf({ authUrl: 'https://h/identity/v3' })).toBe('3');
    expect(authVersionOf({ authUrl: 'https://h:5000/v2.0/' })).toBe('2');
    expect(authVersionOf({ authUrl: 'https://h:5000', domain: 'Default' })).toBe('3');
    expect(authVersionOf({ authUrl: 'https://h:5000', tenant: 't' })).toBe('2');
    expect(authVersionOf({ authToken: 't', storageUrl: 'https://s/v1/AUTH_x' })).toBe('token');
  });
});
