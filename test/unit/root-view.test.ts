/** The root view over buckets of in-memory stores: routing, made-up directories, handles, EXDEV. */

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { S_IFDIR } from '../../src/fs/attributes.js';
import { FileSystem, O_WRONLY } from '../../src/fs/file-system.js';
import { RootView, type Space } from '../../src/fs/root-view.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import { StoreError } from '../../src/storage/object-store.js';

let stagingDir: string;
let stores: Record<string, MemoryStore>;
let opened: string[];
let catalogCalls: number;
let now: number;

function space(path: string[], fail = false): Space {
  return {
    path,
    async open() {
      opened.push(path.join('/'));
      if (fail) throw new StoreError('InvalidCredentials', `${path.join('/')}: the store rejected the key`);
      const store = (stores[path.join('/')] ??= new MemoryStore());
      return new FileSystem(store, {
        prefix: '',
        defaults: { uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755 },
        cache: { fileTtlMs: 1000, dirTtlMs: 1000, negativeTtlMs: 0, maxEntries: 1000 },
        stagingDir,
        partSize: 5 * 1024 * 1024,
        uploadConcurrency: 2,
        logger: silentLogger,
      });
    },
  };
}

function view(spaces: Space[]): RootView {
  return new RootView({
    catalog: async () => {
      catalogCalls += 1;
      return spaces;
    },
    catalogTtlMs: 60_000,
    uid: 0,
    gid: 0,
    statfs: { blockSize: 4096, blocks: 1, blocksFree: 1, files: 1, filesFree: 1, nameMax: 255 },
    now: () => now,
  });
}

beforeEach(async () => {
  stagingDir = await mkdtemp(join(tmpdir(), 'objmount-root-'));
  stores = {};
  opened = [];
  catalogCalls = 0;
  now = 1_000_000;
});

afterEach(async () => {
  await rm(stagingDir, { recursive: true, force: true });
});

async function writeFile(root: RootView, path: string, text: string): Promise<void> {
  const fh = await root.create(path, 0o644);
  await root.write(fh, Buffer.from(text), 0);
  await root.flush(fh);
  await root.release(fh);
}

async function readFile(root: RootView, path: string): Promise<string> {
  const fh = await root.open(path, 0);
  const size = (await root.getattr(path)).size;
  const into = Buffer.alloc(size);
  const n = await root.read(fh, into, size, 0);
  await root.release(fh);
  return into.subarray(0, n).toString();
}

describe('the root view', () => {
  it('shows providers, accounts and buckets as read-only directories, opening no bucket to list them', async () => {
    const root = view([space(['s3', 'alpha']), space(['s3', 'beta']), space(['az', 'acct', 'box']), space(['gs', 'gamma'])]);
    expect(await root.readdir('/')).toEqual(['.', '..', 'az', 'gs', 's3']);
    expect(await root.readdir('/s3')).toEqual(['.', '..', 'alpha', 'beta']);
    expect(await root.readdir('/az')).toEqual(['.', '..', 'acct']);
    expect(await root.readdir('/az/acct')).toEqual(['.', '..', 'box']);
    expect(await root.getattr('/az/acct')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o555 });
    await expect(root.getattr('/s3/nope')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(root.getattr('/ftp')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(opened).toEqual([]);
    expect(catalogCalls).toBe(1);
  });

  it('routes paths inside a bucket to its own file system, with handles of its own', async () => {
    const root = view([space(['s3', 'alpha']), space(['az', 'acct', 'box'])]);
    await root.mkdir('/s3/alpha/docs', 0o755);
    await writeFile(root, '/s3/alpha/docs/a.txt', 'in alpha');
    await writeFile(root, '/az/acct/box/b.txt', 'in the box');
    expect(await root.readdir('/s3/alpha')).toEqual(['.', '..', 'docs']);
    expect(await readFile(root, '/s3/alpha/docs/a.txt')).toBe('in alpha');
    expect(await readFile(root, '/az/acct/box/b.txt')).toBe('in the box');
    expect([...stores['s3/alpha']!.objects.keys()].sort()).toEqual(['docs/', 'docs/a.txt']);
    expect([...stores['az/acct/box']!.objects.keys()]).toEqual(['b.txt']);
    expect(root.stats.bytesWritten).toBe('in alpha'.length + 'in the box'.length);
    expect(opened.sort()).toEqual(['az/acct/box', 's3/alpha']);

    // Two handles of different buckets with the same number underneath stay apart.
    const a = await root.open('/s3/alpha/docs/a.txt', O_WRONLY);
    const b = await root.open('/az/acct/box/b.txt', O_WRONLY);
    expect(a).not.toBe(b);
    await root.release(a);
    await root.release(b);
    await expect(root.read(a, Buffer.alloc(1), 1, 0)).rejects.toMatchObject({ code: 'EBADF' });
  });

  it("reads directories with attributes: names alone in the made-up ones, a bucket's own answer inside it", async () => {
    const root = view([space(['s3', 'one']), space(['s3', 'two'])]);
    expect(await root.readdirPlus('/s3')).toEqual([{ name: '.' }, { name: '..' }, { name: 'one' }, { name: 'two' }]);
    expect(opened).toEqual([]);
    await writeFile(root, '/s3/one/f', 'written here');
    const inside = await root.readdirPlus('/s3/one');
    expect(inside.map((e) => e.name)).toEqual(['.', '..', 'f']);
    expect(inside[2]!.attrs).toEqual(await root.getattr('/s3/one/f'));
  });

  it('renames within a bucket, and answers EXDEV between buckets and EPERM on the made-up directories', async () => {
    const root = view([space(['s3', 'alpha']), space(['s3', 'beta'])]);
    await writeFile(root, '/s3/alpha/f', 'x');
    await root.rename('/s3/alpha/f', '/s3/alpha/g');
    expect(await readFile(root, '/s3/alpha/g')).toBe('x');
    await expect(root.rename('/s3/alpha/g', '/s3/beta/g')).rejects.toMatchObject({ code: 'EXDEV' });
    await expect(root.mkdir('/s3/new-bucket', 0o755)).rejects.toMatchObject({ code: 'EPERM' });
    await expect(root.create('/s3/file', 0o644)).rejects.toMatchObject({ code: 'EPERM' });
    await expect(root.rmdir('/s3/alpha')).rejects.toMatchObject({ code: 'EPERM' });
    await expect(root.open('/s3', 0)).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('answers a bucket that cannot be opened with its error, tries again later, and still lists the rest', async () => {
    const root = view([space(['s3', 'broken'], true), space(['s3', 'fine'])]);
    await expect(root.readdir('/s3/broken')).rejects.toMatchObject({ code: 'EACCES' });
    await expect(root.readdir('/s3/broken')).rejects.toMatchObject({ code: 'EACCES' });
    expect(opened).toEqual(['s3/broken']); // not retried at once
    now += 10_000;
    await expect(root.getattr('/s3/broken/x')).rejects.toMatchObject({ code: 'EACCES' });
    expect(opened).toEqual(['s3/broken', 's3/broken']);
    expect(await root.readdir('/s3')).toEqual(['.', '..', 'broken', 'fine']);
    expect(await root.readdir('/s3/fine')).toEqual(['.', '..']);
  });

  it('counts failed operations of its own beside the buckets', async () => {
    const root = view([space(['s3', 'alpha'])]);
    root.stats.failedOperations += 1;
    root.stats.failedOperations += 1;
    expect(root.stats.failedOperations).toBe(2);
  });
});
