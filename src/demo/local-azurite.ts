/**
 * Azurite's blob service in a child process on 127.0.0.1, for tests and benchmarks of the Azure
 * backend. Azurite is a development dependency: this module is never loaded by a mount.
 *
 * It runs in its own process for the same reason the local S3 server does: a test makes blocking
 * file calls on a mount whose daemon talks to it. It listens on a port the kernel picks (the
 * port is read from its first lines), keeps blobs in memory, and is killed by `close()`.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

import { DEVELOPMENT_ACCOUNT, DEVELOPMENT_ACCOUNT_KEY } from '../creds/azure-credentials.js';

/** Azurite's built-in development account, documented by Microsoft; not a secret. */
export const AZURITE_ACCOUNT = DEVELOPMENT_ACCOUNT;
export const AZURITE_ACCOUNT_KEY = DEVELOPMENT_ACCOUNT_KEY;

export interface LocalAzurite {
  /** The blob service URL of the development account: `http://127.0.0.1:PORT/devstoreaccount1`. */
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

export interface LocalAzuriteOptions {
  /** Containers to create once it listens. */
  containers?: string[];
  /** In-memory extent limit in MiB (Azurite's default is half the machine's memory). */
  memoryLimitMiB?: number;
}

export async function startLocalAzurite(options: LocalAzuriteOptions = {}): Promise<LocalAzurite> {
  const require = createRequire(import.meta.url);
  let main: string;
  try {
    main = join(dirname(require.resolve('azurite/package.json')), 'dist/src/blob/main.js');
  } catch {
    throw new Error('Azurite is not installed: it is a development dependency (npm ci installs it)');
  }
  const args = [
    main,
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    '0',
    '--inMemoryPersistence',
    '--skipApiVersionCheck',
    '--loose',
    '--silent',
    '--disableProductStyleUrl',
  ];
  if (options.memoryLimitMiB) args.push('--extentMemoryLimit', String(options.memoryLimitMiB));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // If this process ends without close() (a crash, process.exit), Azurite must not outlive it.
  const orphanGuard = () => child.kill('SIGKILL');
  process.once('exit', orphanGuard);
  child.once('exit', () => process.removeListener('exit', orphanGuard));
  const port = await new Promise<number>((resolve, reject) => {
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listens on https?:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`Azurite exited with code ${code} before listening: ${output.trim()}`)));
  });
  // From here on its output is not needed; keep the pipes drained.
  child.stdout!.resume();
  child.stderr!.resume();
  const endpoint = `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
  const azurite: LocalAzurite = { endpoint, port, close: () => stop(child) };
  try {
    for (const container of options.containers ?? []) await createContainer(endpoint, container);
  } catch (error) {
    await azurite.close();
    throw error;
  }
  return azurite;
}

async function createContainer(endpoint: string, container: string): Promise<void> {
  const { BlobServiceClient, StorageSharedKeyCredential } = await import('@azure/storage-blob');
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY));
  await service.getContainerClient(container).createIfNotExists();
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    // Azurite closes gracefully on SIGTERM; a stuck one is killed.
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}
