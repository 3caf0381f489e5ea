/**
 * The credential store: named credentials and bucket pairings, in one JSON file.
 *
 * Location: `$OBJMOUNT_CONFIG_DIR`, else `$XDG_CONFIG_HOME/objmount`, else `~/.config/objmount`
 * (root: `/etc/objmount`). The directory is 0700 and the file 0600; every change is made under
 * a lock file (so two commands at once cannot lose each other's change) and written to a
 * temporary file that is renamed into place (so a crash never leaves half a file).
 */

import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

import type { ImportedAzureCredential, ImportedGcsCredential, ImportedS3Credential } from './formats.js';
import type { ImportedSwiftCredential } from './swift-formats.js';

type Stored<T> = Omit<T, 'suggestedName'> & {
  name: string;
  /** Where it was imported from, for `show` ("~/.aws/credentials, profile dev"). */
  origin: string;
  importedAt: string;
};

export type StoredS3Credential = Stored<ImportedS3Credential>;
export type StoredAzureCredential = Stored<ImportedAzureCredential>;
export type StoredGcsCredential = Stored<ImportedGcsCredential>;
export type StoredSwiftCredential = Stored<ImportedSwiftCredential>;
export type StoredCredential = StoredS3Credential | StoredAzureCredential | StoredGcsCredential | StoredSwiftCredential;

export interface StoreContents {
  version: 1;
  credentials: Record<string, StoredCredential>;
  /** `s3://bucket`, `az://account/container`, `gs://bucket`, `swift://container` → credential name, or 'public'. */
  pairings: Record<string, string>;
}

/** What resolvers read credentials from: the store itself, or the store loaded once (`LoadedCredentialStore`). */
export interface CredentialSource {
  read(): Promise<StoreContents>;
}

const FILE = 'credentials.json';
const LOCK = 'credentials.lock';

export class CredentialStore {
  constructor(readonly directory: string) {}

  static defaultDirectory(env: NodeJS.ProcessEnv, uid: number): string {
    if (env.OBJMOUNT_CONFIG_DIR) return env.OBJMOUNT_CONFIG_DIR;
    if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'objmount');
    return uid === 0 ? '/etc/objmount' : join(homedir(), '.config', 'objmount');
  }

  get file(): string {
    return join(this.directory, FILE);
  }

  async read(): Promise<StoreContents> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, credentials: {}, pairings: {} };
      throw error;
    }
    try {
      const contents = JSON.parse(text) as StoreContents;
      return { version: 1, credentials: contents.credentials ?? {}, pairings: contents.pairings ?? {} };
    } catch (error) {
      // JSON.parse's message quotes the text around the fault, which may be a secret: only say where.
      const at = /position (\d+)/.exec((error as Error).message)?.[1];
      throw new Error(
        `${this.file} is damaged (not valid JSON${at === undefined ? '' : ` at character ${at}`}); move it away and import the credentials again`,
      );
    }
  }

  /** Applies `change` to the contents under the lock and writes them back atomically. */
  async update<T>(change: (contents: StoreContents) => T | Promise<T>): Promise<T> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const release = await this.lock();
    try {
      const contents = await this.read();
      const result = await change(contents);
      const temporary = `${this.file}.${process.pid}.tmp`;
      await writeFile(temporary, `${JSON.stringify(contents, null, 2)}\n`, { mode: 0o600, flush: true });
      await rename(temporary, this.file);
      return result;
    } finally {
      await release();
    }
  }

  /** Takes the lock file, waiting up to 10 s; a lock left by a dead process is taken over. */
  private async lock(): Promise<() => Promise<void>> {
    const path = join(this.directory, LOCK);
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const handle = await open(path, 'wx', 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        return () => rm(path, { force: true });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const holder = Number(await readFile(path, 'utf8').catch(() => ''));
      if (holder > 0 && !isAlive(holder)) {
        await rm(path, { force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`${this.directory} is locked by process ${holder || 'unknown'}; try again when it is done`);
      await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 30));
    }
  }
}

/**
 * The credential store read once and kept, so that one read of credentials.json serves every
 * resolver of a mount (S3, Azure, GCS) and the root view's list of buckets. A failed read is not
 * kept (the next `read` tries again); `forget` drops what was read, so the next `read` reads the
 * file again (the root view does, when it looks for new pairings). The contents are shared: callers
 * must not change them.
 */
export class LoadedCredentialStore implements CredentialSource {
  private loaded?: Promise<StoreContents>;

  constructor(private readonly store: CredentialSource) {}

  read(): Promise<StoreContents> {
    if (!this.loaded) {
      const loading = this.store.read();
      this.loaded = loading;
      loading.catch(() => {
        if (this.loaded === loading) this.loaded = undefined;
      });
    }
    return this.loaded;
  }

  forget(): void {
    this.loaded = undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The access key id with its middle hidden, for listings: "AKIA…WXYZ". */
export function maskKey(accessKeyId: string): string {
  return accessKeyId.length <= 8 ? '…' : `${accessKeyId.slice(0, 4)}…${accessKeyId.slice(-4)}`;
}
