import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { S_IFREG } from '../../src/fs/attributes.js';
import { FileSystem } from '../../src/fs/file-system.js';
import { KeptMetadata } from '../../src/fs/kept-metadata.js';
import { isSameVersion, versionOf } from '../../src/fs/metadata-cache.js';
import { PREFETCH } from '../../src/fs/namespace.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { ObjectStore, PutOptions, WrittenObject } from '../../src/storage/object-store.js';

const O_RDONLY = 0;
let dir: string;
let file: string;
let memory: MemoryStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'objmount-kept-'));
  file = join(dir, 'kept.jsonl');
  memory = new MemoryStore();
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (maxRecords = 1000) => KeptMetadata.open({ file, maxRecords, logger: silentLogger });
const at = (seconds: number, ms = 0) => new Date(seconds * 1000 + ms);
const calls = (operation: string) => memory.calls.get(operation) ?? 0;
const perFile = () => calls('head') + calls('get');

describe('isSameVersion', () => {
  it('matches a version read from the store exactly, to the second', () => {
    const known = { etag: '"e"', version: versionOf({ etag: '"e"', lastModified: at(100) }) };
    expect(isSameVersion(known, { etag: '"e"', lastModified: at(100, 700) })).toBe(true);
    expect(isSameVersion(known, { etag: '"e"', lastModified: at(101) })).toBe(false); // copied onto itself: new metadata
    expect(isSameVersion(known, { etag: '"f"', lastModified: at(100) })).toBe(false);
  });

  it('matches an object written here by its ETag and a Last-Modified no later than the write was answered', () => {
    const written = { etag: '"e"', modifiedBy: 100 };
    expect(isSameVersion(written, { etag: '"e"', lastModified: at(99, 900) })).toBe(true);
    expect(isSameVersion(written, { etag: '"e"', lastModified: at(100, 999) })).toBe(true);
    expect(isSameVersion(written, { etag: '"e"', lastModified: at(101) })).toBe(false); // rewritten since
    expect(isSameVersion(written, { etag: '"x"', lastModified: at(99) })).toBe(false);
    expect(isSameVersion({ etag: '"e"' }, { etag: '"e"', lastModified: at(1) })).toBe(false); // nothing to match by
  });
});

describe('KeptMetadata', () => {
  it('keeps records across opens, the latest of a key winning', async () => {
    const kept = await open();
    kept.remember('a', { etag: '"1"', version: '"1"@100', metadata: { mode: '33188' } });
    kept.remember('a', { etag: '"2"', version: '"2"@200', metadata: { mode: '33216' } });
    kept.remember('b', { etag: '"3"', modifiedBy: 300, metadata: {}, contentType: 'text/plain' });
    await kept.close();

    const again = await open();
    expect(again.size).toBe(2);
    expect(again.find('a', { etag: '"2"', lastModified: at(200, 5) })?.metadata).toEqual({ mode: '33216' });
    expect(again.find('a', { etag: '"1"', lastModified: at(100) })).toBeUndefined();
    expect(again.find('b', { etag: '"3"', lastModified: at(299) })).toMatchObject({ metadata: {}, contentType: 'text/plain' });
    await again.close();
  });

  it('pins a record written here to the version the first listing shows', async () => {
    const kept = await open();
    kept.remember('w', { etag: '"e"', modifiedBy: 100, metadata: { mode: '33188' } });
    expect(kept.find('w', { etag: '"e"', lastModified: at(99, 500) })).toBeDefined();
    // From now on only that version matches, not any other no later than the write.
    expect(kept.find('w', { etag: '"e"', lastModified: at(98) })).toBeUndefined();
    await kept.close();
    const again = await open();
    expect(again.find('w', { etag: '"e"', lastModified: at(99) })).toBeDefined();
    expect(again.find('w', { etag: '"e"', lastModified: at(100) })).toBeUndefined();
    await again.close();
  });

  it('skips a line torn by a crash and lines that are not records', async () => {
    const good = JSON.stringify({ k: 'a', e: '"1"', v: '"1"@100', m: { uid: '7' } });
    const noVersion = JSON.stringify({ k: 'b', e: '"2"', m: {} });
    const badMetadata = JSON.stringify({ k: 'c', e: '"3"', v: '"3"@1', m: { uid: 7 } });
    await writeFile(file, `${good}\n${noVersion}\n${badMetadata}\nnot json\n{"k":"d","e":"\\"4\\"","v":"\\"4\\"@1","m":{`);
    const kept = await open();
    expect(kept.size).toBe(1);
    expect(kept.find('a', { etag: '"1"', lastModified: at(100) })?.metadata).toEqual({ uid: '7' });
    await kept.close();
  });

  it('holds at most maxRecords, and compacts a file of mostly stale lines when it opens it', async () => {
    const kept = await open(10);
    for (let i = 0; i < 2000; i++) kept.remember(`k${i % 20}`, { etag: `"${i}"`, version: `"${i}"@1`, metadata: {} });
    expect(kept.size).toBe(10);
    await kept.close();
    expect((await readFile(file, 'utf8')).trim().split('\n')).toHaveLength(2000);

    const again = await open(10);
    expect(again.size).toBe(10);
    expect(again.find('k19', { etag: '"1999"', lastModified: at(1) })).toBeDefined();
    await again.close();
    expect((await readFile(file, 'utf8')).trim().split('\n')).toHaveLength(10);
  });

  it('writes no line for what it already holds', async () => {
    const kept = await open();
    for (let i = 0; i < 5; i++) kept.remember('same', { etag: '"1"', version: '"1"@1', metadata: { mode: '1' } });
    await kept.close();
    expect((await readFile(file, 'utf8')).trim().split('\n')).toHaveLength(1);
  });
});

/** A store that answers writes as S3 does: no Last-Modified, only the second it answered in. */
class AnsweredAtStore extends MemoryStore {
  private static bound(written: WrittenObject): WrittenObject {
    return { etag: written.etag, modifiedBy: written.modifiedBy && new Date(Math.floor(written.modifiedBy.getTime() / 1000) * 1000) };
  }
  override async put(key: string, body: Buffer, options?: PutOptions): Promise<WrittenObject> {
    return AnsweredAtStore.bound(await super.put(key, body, options));
  }
}

/** Makes the objects under `prefix` a minute old: a lookup now reads them in a later second than they were written. */
function backdate(prefix: string): void {
  for (const [key, object] of memory.objects) if (key.startsWith(prefix)) object.lastModified = new Date(Date.now() - 60_000);
}

describe('a mount that keeps metadata', () => {
  const mountOn = async (store: ObjectStore) => {
    const kept = await open();
    const fs = new FileSystem(store, {
      prefix: '',
      defaults: { uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755 },
      cache: { fileTtlMs: 1000, dirTtlMs: 1000, negativeTtlMs: 1000, maxEntries: 100_000 },
      stagingDir: dir,
      partSize: 8 * 1024 * 1024,
      uploadConcurrency: 4,
      logger: silentLogger,
      kept,
    });
    return { fs, unmount: () => kept.close() };
  };
  const names = async (fs: FileSystem, path: string) => (await fs.readdir(path)).filter((n) => n !== '.' && n !== '..').sort();

  it('answers `ls -l` of files it wrote, on the next mount, with the listing alone', async () => {
    const store = new AnsweredAtStore();
    memory = store;
    const first = await mountOn(store);
    await first.fs.mkdir('/d', 0o755);
    for (let i = 0; i < 20; i++) {
      const fh = await first.fs.create(`/d/f${i}`, 0o600, { uid: 7, gid: 8 });
      await first.fs.write(fh, Buffer.from(`file ${i}`), 0);
      await first.fs.release(fh);
    }
    await first.unmount();

    const second = await mountOn(store);
    await second.fs.getattr('/d');
    memory.calls.clear();
    for (const name of await names(second.fs, '/d')) {
      expect(await second.fs.getattr(`/d/${name}`)).toMatchObject({ kind: 'file', mode: S_IFREG | 0o600, uid: 7, gid: 8 });
    }
    expect(perFile()).toBe(0);
    expect(calls('list')).toBe(1);
    await second.unmount();
  });

  it('answers `ls -l` of files it looked up on an earlier mount with the listing alone, and sees what changed since', async () => {
    for (let i = 0; i < 20; i++)
      await memory.put(`d/f${i}`, Buffer.from('x'), { metadata: i === 0 ? { mode: String(S_IFREG | 0o600) } : {} });
    backdate('d/');
    const first = await mountOn(memory);
    for (const name of await names(first.fs, '/d')) await first.fs.getattr(`/d/${name}`);
    await vi.waitFor(() => expect(perFile()).toBeGreaterThanOrEqual(20));
    await first.unmount();
    // Another client changes one file's metadata (same bytes: same ETag, a later Last-Modified).
    await memory.copy('d/f0', 'd/f0', { metadata: { mode: String(S_IFREG | 0o640) } });
    memory.objects.get('d/f0')!.lastModified = new Date(Date.now() + 5_000);

    const second = await mountOn(memory);
    await second.fs.getattr('/d');
    memory.calls.clear();
    const modes = new Map<string, number>();
    for (const name of await names(second.fs, '/d')) modes.set(name, (await second.fs.getattr(`/d/${name}`)).mode);
    expect(modes.get('f0')).toBe(S_IFREG | 0o640);
    expect(modes.get('f1')).toBe(S_IFREG | 0o644);
    expect(perFile()).toBe(1); // f0: the one version not seen before
    expect(calls('list')).toBe(1);
    await second.unmount();
  });

  it('keeps nothing it read in the second its object was written: another version may share its ETag and time', async () => {
    await memory.put('d/f', Buffer.from('x'), { metadata: { mode: String(S_IFREG | 0o600) } });
    // Written in the second the lookup reads it, whenever that falls (the store's clock ahead).
    memory.objects.get('d/f')!.lastModified = new Date(Date.now() + 60_000);
    const first = await mountOn(memory);
    await first.fs.readdir('/d');
    await first.fs.getattr('/d/f');
    await first.unmount();
    const second = await mountOn(memory);
    await second.fs.readdir('/d');
    memory.calls.clear();
    expect((await second.fs.getattr('/d/f')).mode).toBe(S_IFREG | 0o600);
    expect(perFile()).toBe(1);
    await second.unmount();
  });

  it('keeps a chmod made through the mount for the next one', async () => {
    await memory.put('d/f', Buffer.from('x'));
    const first = await mountOn(memory);
    await first.fs.chmod('/d/f', 0o600);
    await first.unmount();
    const second = await mountOn(memory);
    await second.fs.readdir('/d');
    memory.calls.clear();
    expect((await second.fs.getattr('/d/f')).mode).toBe(S_IFREG | 0o600);
    expect(perFile()).toBe(0);
    await second.unmount();
  });

  it('fetches the bytes of the small files listed after the one a program opens, one GET each', async () => {
    const count = PREFETCH.window * 3;
    for (let i = 0; i < count; i++) await memory.put(`d/f${String(i).padStart(3, '0')}`, Buffer.from(`file ${i}`));
    backdate('d/');
    const first = await mountOn(memory);
    for (const name of await names(first.fs, '/d')) await first.fs.getattr(`/d/${name}`);
    await vi.waitFor(() => expect(perFile()).toBeGreaterThanOrEqual(count));
    await first.unmount();

    const second = await mountOn(memory);
    const listed = await names(second.fs, '/d');
    memory.calls.clear();
    // `ls -l` reads no bytes...
    for (const name of listed) await second.fs.getattr(`/d/${name}`);
    expect(perFile()).toBe(0);
    // ...`cat *` does: each open moves the fetches on, a window ahead of it.
    for (const [i, name] of listed.entries()) {
      const fh = await second.fs.open(`/d/${name}`, O_RDONLY);
      if (i === 0) await vi.waitFor(() => expect(calls('get')).toBeGreaterThanOrEqual(PREFETCH.window));
      const into = Buffer.alloc(64);
      const n = await second.fs.read(fh, into, 64, 0);
      expect(into.subarray(0, n).toString()).toBe(`file ${i}`);
      await second.fs.release(fh);
    }
    expect(calls('get')).toBe(count);
    expect(calls('head')).toBe(0);
    await second.unmount();
  });
});
