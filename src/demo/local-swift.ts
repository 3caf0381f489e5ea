/**
 * A single-node OpenStack Swift (Debian's packages) on 127.0.0.1, for tests and benchmarks of the
 * Swift backend: swift-node.py builds one-replica rings and the servers' configuration in a
 * temporary directory, starts memcached and the four servers on ports the kernel picked, and
 * prints the proxy's port. tempauth gives v1 auth with the users below. Never loaded by a mount.
 *
 * The Python side watches its standard input: however this process ends, the pipe closes and
 * every server stops. `close()` stops them at once and removes the directory.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** tempauth's users (swift-node.py): test:tester administers the account test. Not secrets. */
export const SWIFT_TEST_USER = 'test:tester';
export const SWIFT_TEST_KEY = 'testing';
/** A user of the same account with no rights of its own: it sees only containers whose ACLs name it. */
export const SWIFT_READER_USER = 'test:reader';
export const SWIFT_READER_KEY = 'reading';

export interface LocalSwift {
  /** v1 auth: `http://127.0.0.1:PORT/auth/v1.0`. */
  authUrl: string;
  /** The account's storage URL: `http://127.0.0.1:PORT/v1/AUTH_test`. */
  storageUrl: string;
  port: number;
  /** memcached's port (tempauth's tokens live there: flushing it revokes every token). */
  memcachedPort: number;
  /** Where configuration, the device and the logs are. */
  directory: string;
  /** With `keystone`: Keystone and the proxy that takes its tokens. */
  keystone?: {
    /** `http://127.0.0.1:PORT/v3`. */
    authUrl: string;
    /** The proxy of the catalog's object-store endpoint (RegionOne, public and internal). */
    proxyPort: number;
  };
  close(): Promise<void>;
}

export interface LocalSwiftOptions {
  /** Containers to create once it answers (through tempauth's account). */
  containers?: string[];
  /** Also run Keystone (sqlite, templated catalog) and a proxy that takes its tokens; some 15 s more. */
  keystone?: boolean;
}

/** Keystone's bootstrap user (swift-node.py): admin of the project admin in the domain Default. Not a secret. */
export const KEYSTONE_ADMIN_USER = 'admin';
export const KEYSTONE_ADMIN_PASSWORD = 'admin-password';

/** The Python that has Debian's swift modules (a pyenv or venv python3 on PATH does not). */
const PYTHON = '/usr/bin/python3';

export async function startLocalSwift(options: LocalSwiftOptions = {}): Promise<LocalSwift> {
  if (!existsSync('/usr/lib/python3/dist-packages/swift')) {
    throw new Error(
      "OpenStack Swift is not installed: run scripts/setup (it installs Debian's swift-proxy, swift-account, swift-container, swift-object and memcached)",
    );
  }
  if (options.keystone && !existsSync('/usr/bin/keystone-manage'))
    throw new Error("Keystone is not installed: run scripts/setup (it installs Debian's python3-keystone)");
  const directory = await mkdtemp(join(tmpdir(), 'objmount-swift-'));
  const child = spawn(PYTHON, [scriptPath(), directory, ...(options.keystone ? ['--keystone'] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
  // If this process ends without close(), its end of the pipe closes and the servers stop; a
  // SIGKILL of the Python parent itself is covered too.
  const orphanGuard = () => child.kill('SIGTERM');
  process.once('exit', orphanGuard);
  child.once('exit', () => process.removeListener('exit', orphanGuard));
  let ports: { proxy: number; memcached: number; keystone?: number; keystoneProxy?: number };
  try {
    ports = await new Promise((resolve, reject) => {
      let output = '';
      let errors = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        const line = output.split('\n').find((l) => l.startsWith('{'));
        if (line) resolve(JSON.parse(line));
      });
      child.stderr!.on('data', (chunk: Buffer) => (errors += chunk.toString()));
      child.once('exit', (code) => reject(new Error(`Swift exited with code ${code} before answering: ${errors.trim() || output.trim()}`)));
    });
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  child.stdout!.resume();
  child.stderr!.resume();
  const authUrl = `http://127.0.0.1:${ports.proxy}/auth/v1.0`;
  const swift: LocalSwift = {
    authUrl,
    storageUrl: `http://127.0.0.1:${ports.proxy}/v1/AUTH_test`,
    port: ports.proxy,
    memcachedPort: ports.memcached,
    directory,
    ...(ports.keystone && ports.keystoneProxy
      ? { keystone: { authUrl: `http://127.0.0.1:${ports.keystone}/v3`, proxyPort: ports.keystoneProxy } }
      : {}),
    close: async () => {
      await stop(child);
      await rm(directory, { recursive: true, force: true });
    },
  };
  try {
    if (options.containers?.length) {
      const token = await swiftToken(authUrl, SWIFT_TEST_USER, SWIFT_TEST_KEY);
      for (const container of options.containers) await createSwiftContainer(swift, token, container);
    }
  } catch (error) {
    await swift.close();
    throw error;
  }
  return swift;
}

/** A v1 token of a tempauth user. */
export async function swiftToken(authUrl: string, user: string, key: string): Promise<string> {
  const response = await fetch(authUrl, { headers: { 'x-auth-user': user, 'x-auth-key': key } });
  const token = response.headers.get('x-auth-token');
  if (!response.ok || !token) throw new Error(`Swift v1 auth of ${user} failed: HTTP ${response.status}`);
  return token;
}

/** Creates a container; `headers` may carry ACLs (X-Container-Read/Write). */
export async function createSwiftContainer(
  swift: LocalSwift,
  token: string,
  container: string,
  headers: Record<string, string> = {},
): Promise<void> {
  const response = await fetch(`${swift.storageUrl}/${encodeURIComponent(container)}`, {
    method: 'PUT',
    headers: { 'x-auth-token': token, ...headers },
  });
  if (!response.ok) throw new Error(`cannot create Swift container ${container}: HTTP ${response.status}`);
}

/** swift-node.py sits beside this file in src/demo; the compiled file in dist/demo finds it there. */
function scriptPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, 'swift-node.py'), join(here, '../../src/demo/swift-node.py')];
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error(`swift-node.py not found (looked in ${candidates.join(', ')})`);
  return found;
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}
