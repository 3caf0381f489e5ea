/**
 * Swift with Keystone v3 (scripts/test-keystone): a real Keystone (sqlite, fernet, templated
 * catalog) beside the single-node Swift. The store passes the conformance suite with v3 tokens;
 * each way of naming the user, project and domain authenticates; an application credential
 * does; the five mistakes each give their one line; and a swift:// mount from OS_* (as a sourced
 * RC file leaves them) and from an imported RC file works.
 *
 * Keystone is provisioned through its API: a domain, a project and a user with the member role,
 * and an application credential of that user.
 */

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { KEYSTONE_ADMIN_PASSWORD, KEYSTONE_ADMIN_USER, type LocalSwift, startLocalSwift } from '../../src/demo/local-swift.js';
import type { SwiftCredentials } from '../../src/storage/swift-auth.js';
import { SwiftStore } from '../../src/storage/swift-store.js';
import { describeObjectStore } from '../conformance/object-store.conformance.js';
import { CLI, isMounted, mountBucket, objmount, testEnv } from '../helpers/objmount.js';

const DOMAIN = 'objmount';
const PROJECT = 'demo';
const USER = 'demo';
const PASSWORD = 'demo-password';
const WRONG_PASSWORD = 'not-the-demo-password';

interface Provisioned {
  domainId: string;
  projectId: string;
  userId: string;
  appCredential: { id: string; name: string; secret: string };
}

let swift: LocalSwift;
let ids: Provisioned;
let authUrl: string;
const stores: SwiftStore[] = [];

/** Keystone's JSON answers, read field by field by the set-up below. */
// biome-ignore lint/suspicious/noExplicitAny: an answer of Keystone's API, shaped as its documentation says
type KeystoneJson = Record<string, any>;

async function keystone(
  method: string,
  path: string,
  token: string | undefined,
  body?: unknown,
): Promise<{ status: number; json: KeystoneJson; token?: string }> {
  const response = await fetch(`${authUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { 'x-auth-token': token } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : {}, token: response.headers.get('x-subject-token') ?? undefined };
}

async function projectToken(user: Record<string, unknown>, password: string, project: Record<string, unknown>): Promise<string> {
  const answer = await keystone('POST', '/auth/tokens', undefined, {
    auth: { identity: { methods: ['password'], password: { user: { ...user, password } } }, scope: { project } },
  });
  if (answer.status !== 201 || !answer.token) throw new Error(`Keystone token: HTTP ${answer.status} ${JSON.stringify(answer.json)}`);
  return answer.token;
}

async function provision(): Promise<Provisioned> {
  const admin = await projectToken({ name: KEYSTONE_ADMIN_USER, domain: { id: 'default' } }, KEYSTONE_ADMIN_PASSWORD, {
    name: 'admin',
    domain: { id: 'default' },
  });
  const created = async (path: string, body: unknown) => {
    const answer = await keystone('POST', path, admin, body);
    if (answer.status !== 201) throw new Error(`Keystone ${path}: HTTP ${answer.status} ${JSON.stringify(answer.json)}`);
    return answer.json;
  };
  const domainId = (await created('/domains', { domain: { name: DOMAIN } })).domain.id as string;
  const projectId = (await created('/projects', { project: { name: PROJECT, domain_id: domainId } })).project.id as string;
  const userId = (await created('/users', { user: { name: USER, domain_id: domainId, password: PASSWORD } })).user.id as string;
  const member = (await keystone('GET', '/roles?name=member', admin)).json.roles[0].id as string;
  const granted = await keystone('PUT', `/projects/${projectId}/users/${userId}/roles/${member}`, admin);
  if (granted.status !== 204) throw new Error(`Keystone role assignment: HTTP ${granted.status}`);
  const demo = await projectToken({ id: userId }, PASSWORD, { id: projectId });
  const app = await keystone('POST', `/users/${userId}/application_credentials`, demo, {
    application_credential: { name: 'objmount-test' },
  });
  if (app.status !== 201) throw new Error(`Keystone application credential: HTTP ${app.status} ${JSON.stringify(app.json)}`);
  const { id, name, secret } = app.json.application_credential;
  return { domainId, projectId, userId, appCredential: { id, name, secret } };
}

/** The demo user by names: what a Horizon RC file says. */
function byNames(overrides: Partial<SwiftCredentials> = {}): SwiftCredentials {
  return { authUrl, user: USER, key: PASSWORD, domain: DOMAIN, tenant: PROJECT, tenantDomain: DOMAIN, ...overrides };
}

function storeOf(credentials: SwiftCredentials, container = 'keystone'): SwiftStore {
  const store = new SwiftStore({ container, credentials, credentialDescription: 'the test user', maxAttempts: 2 });
  stores.push(store);
  return store;
}

/** Creates a container in the demo project's account (the v3 store's first write needs one). */
async function createContainer(name: string): Promise<void> {
  const token = await projectToken({ id: ids.userId }, PASSWORD, { id: ids.projectId });
  const response = await fetch(`http://127.0.0.1:${swift.keystone!.proxyPort}/v1/AUTH_${ids.projectId}/${name}`, {
    method: 'PUT',
    headers: { 'x-auth-token': token },
  });
  if (!response.ok) throw new Error(`cannot create container ${name}: HTTP ${response.status}`);
}

beforeAll(async () => {
  swift = await startLocalSwift({ keystone: true });
  authUrl = swift.keystone!.authUrl;
  ids = await provision();
  await createContainer('keystone');
});

afterAll(async () => {
  for (const store of stores) store.destroy();
  await swift?.close();
});

describeObjectStore('SwiftStore with Keystone v3', async () => ({
  store: storeOf(byNames()),
  withWrongCredentials: () => storeOf(byNames({ key: WRONG_PASSWORD })),
  withMissingBucket: () => storeOf(byNames(), 'no-such-container'),
  wrongSecret: WRONG_PASSWORD,
  close: async () => {},
}));

describe('Keystone v3 authentication', () => {
  it('authenticates with the user, project and domains by name or by ID, and with an application credential', async () => {
    const variants: SwiftCredentials[] = [
      byNames(),
      byNames({ domain: undefined, userDomainId: ids.domainId, tenantDomain: undefined, tenantDomainId: ids.domainId }),
      { authUrl, userId: ids.userId, key: PASSWORD, tenantId: ids.projectId },
      // The project's domain defaults to the user's.
      { authUrl: `${authUrl}/`, user: USER, key: PASSWORD, domain: DOMAIN, tenant: PROJECT, region: 'RegionOne', endpointType: 'internal' },
      { authUrl, applicationCredentialId: ids.appCredential.id, applicationCredentialSecret: ids.appCredential.secret },
      {
        authUrl,
        applicationCredentialName: ids.appCredential.name,
        user: USER,
        domain: DOMAIN,
        applicationCredentialSecret: ids.appCredential.secret,
      },
    ];
    for (const [i, credentials] of variants.entries()) {
      const store = storeOf(credentials);
      await store.put(`variants/${i}`, Buffer.from(`variant ${i}`));
      expect((await storeOf(byNames()).get(`variants/${i}`)).body.toString()).toBe(`variant ${i}`);
    }
  });

  it('says in one line which of the five mistakes it is, naming no secret', async () => {
    const failure = async (credentials: SwiftCredentials, container = 'keystone') => {
      const error = await storeOf(credentials, container)
        .probe('')
        .catch((e: unknown) => e as Error);
      expect(error).toBeInstanceOf(Error);
      expect(error!.message).not.toContain(WRONG_PASSWORD);
      expect(error!.message).not.toContain(PASSWORD);
      expect(error!.message.split('\n')).toHaveLength(1);
      return error!.message;
    };
    expect(await failure(byNames({ key: WRONG_PASSWORD }))).toBe(
      `Keystone at ${authUrl} refused user 'demo' (domain 'objmount'): wrong user name, password or user domain`,
    );
    expect(await failure(byNames({ domain: 'no-such-domain', tenantDomain: DOMAIN }))).toMatch(
      /refused user 'demo' \(domain 'no-such-domain'\): wrong user name, password or user domain/,
    );
    expect(await failure(byNames({ tenant: 'no-such-project' }))).toMatch(
      /accepted user 'demo' \(domain 'objmount'\) but not project 'no-such-project' in domain 'objmount': check OS_PROJECT_NAME/,
    );
    expect(await failure(byNames({ region: 'Mars' }))).toMatch(
      /the service catalog of project 'demo' in domain 'objmount' has no object-store \(Swift\) endpoint for region 'Mars' and interface 'public' \(it offers: RegionOne\/public, RegionOne\/internal\)/,
    );
    expect(await failure(byNames({ endpointType: 'admin' }))).toMatch(
      /has no object-store \(Swift\) endpoint for any region and interface 'admin'/,
    );
    expect(await failure(byNames(), 'no-such-container')).toBe(
      `container 'no-such-container' does not exist at http://127.0.0.1:${swift.keystone!.proxyPort}/v1/AUTH_${ids.projectId}`,
    );
    expect(await failure(byNames({ authUrl: `http://127.0.0.1:${swift.port}/v3` }))).toMatch(
      /did not answer as Keystone v3 does \(HTTP \d+\): check the auth URL/,
    );
  });
});

describe('a swift:// mount with Keystone v3', () => {
  let scratch: string;
  beforeAll(() => {
    scratch = mkdtempSync(join(tmpdir(), 'objmount-keystone-'));
  });
  afterAll(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('mounts from the OS_* a sourced RC file leaves, and from an imported RC file whose password comes on stdin', async () => {
    const env = testEnv({ OBJMOUNT_CONFIG_DIR: join(scratch, 'store') });
    for (const name of Object.keys(env)) if (name.startsWith('OS_')) delete env[name];
    const rc = {
      OS_AUTH_URL: authUrl,
      OS_IDENTITY_API_VERSION: '3',
      OS_USERNAME: USER,
      OS_USER_DOMAIN_NAME: DOMAIN,
      OS_PROJECT_NAME: PROJECT,
      OS_PROJECT_DOMAIN_ID: ids.domainId,
      OS_REGION_NAME: 'RegionOne',
      OS_INTERFACE: 'public',
    };
    const mount = await mountBucket('', 'swift://keystone/mounted', [], { ...env, ...rc, OS_PASSWORD: PASSWORD });
    try {
      writeFileSync(join(mount.mountpoint, 'through-keystone.txt'), 'v3');
      expect(readFileSync(join(mount.mountpoint, 'through-keystone.txt'), 'utf8')).toBe('v3');
      expect(readFileSync(mount.logFile, 'utf8')).not.toContain(PASSWORD);
    } finally {
      await mount.unmount();
    }
    expect(isMounted(mount.mountpoint)).toBe(false);
    expect((await storeOf(byNames()).get('mounted/through-keystone.txt')).body.toString()).toBe('v3');

    const file = join(scratch, 'demo-openrc.sh');
    const lines = Object.entries(rc).map(([name, value]) => `export ${name}="${value}"`);
    writeFileSync(file, [...lines, 'read -sr OS_PASSWORD_INPUT', 'export OS_PASSWORD=$OS_PASSWORD_INPUT', ''].join('\n'));
    const imported = spawnSync(process.execPath, [CLI, 'creds', 'import', file, '--name', 'demo'], {
      input: `${PASSWORD}\n`,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(imported.status, imported.stderr).toBe(0);
    expect(imported.stdout).toMatch(
      /Imported 'demo' \(Swift user 'demo' \(auth v3\) at .*, project demo, region RegionOne\)\. Detected 1 bucket, paired 1: keystone/,
    );
    const shown = await objmount(['creds', 'show', 'demo'], env);
    expect(shown.stdout).toMatch(/key: \*{8}/);
    expect(shown.stdout).not.toContain(PASSWORD);
    const fromStore = await mountBucket('', 'swift://keystone', [], env);
    try {
      expect(readFileSync(join(fromStore.mountpoint, 'mounted/through-keystone.txt'), 'utf8')).toBe('v3');
    } finally {
      await fromStore.unmount();
    }
  });
});
