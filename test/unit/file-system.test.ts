import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir as readLocalDir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import {
  type AttributeDefaults,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  formatTime,
} from '../../src/fs/attributes.js';
import { FileSystem, O_APPEND, O_CREAT, O_RDWR, O_TRUNC, O_WRONLY } from '../../src/fs/file-system.js';
import { readLogs } from '../../src/fs/write/journal-log.js';
import { PREFETCH } from '../../src/fs/namespace.js';
import { silentLogger } from '../../src/log/logger.js';
import { FaultyStore } from '../../src/storage/faulty-store.js';
import { MemoryStore } from '../../src/storage/memory-store.js';
import type { ObjectStore, StoreCapabilities } from '../../src/storage/object-store.js';

const KiB = 1024;
const O_RDONLY = 0;
const T0 = 1_700_000_000_000;
const FILE_TTL = 1_000;
const DIR_TTL = 2_000;
const NEGATIVE_TTL = 500;
const PART = 4 * KiB;

const defaults: AttributeDefaults = { uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755 };

/** A clock the tests move by hand; both the FileSystem and its MetadataCache read it. */
class TestClock {
  ms = T0;
  now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

let stagingDir: string;
let memory: MemoryStore;
let faulty: FaultyStore;
let clock: TestClock;
let fs: FileSystem;

/** Small parts, so multipart uploads need only a few KiB. */
const smallParts: Partial<StoreCapabilities> = { minPartSize: PART };

function mount(store: ObjectStore, overrides: Partial<ConstructorParameters<typeof FileSystem>[1]> = {}): FileSystem {
  return new FileSystem(store, {
    prefix: '',
    defaults,
    cache: { fileTtlMs: FILE_TTL, dirTtlMs: DIR_TTL, negativeTtlMs: NEGATIVE_TTL, maxEntries: 100_000, clock },
    stagingDir,
    partSize: PART,
    uploadConcurrency: 4,
    logger: silentLogger,
    now: clock.now,
    ...overrides,
  });
}

beforeEach(async () => {
  stagingDir = await mkdtemp(join(tmpdir(), 'objmount-fs-'));
  memory = new MemoryStore(smallParts);
  faulty = new FaultyStore(memory);
  clock = new TestClock();
  fs = mount(faulty);
});

afterEach(async () => {
  await rm(stagingDir, { recursive: true, force: true });
});

// ---- helpers ----

async function put(key: string, body: string | Buffer, metadata: Record<string, string> = {}): Promise<void> {
  await memory.put(key, typeof body === 'string' ? Buffer.from(body) : body, { metadata });
}

function stored(key: string): string | undefined {
  return memory.objects.get(key)?.body.toString();
}

function metadata(key: string): Record<string, string> | undefined {
  return memory.objects.get(key)?.metadata;
}

function calls(operation: string): number {
  return memory.calls.get(operation) ?? 0;
}

async function readHandle(fh: number, length: number, position = 0): Promise<Buffer> {
  const into = Buffer.alloc(length);
  const n = await fs.read(fh, into, length, position);
  return into.subarray(0, n);
}

/** Reads the whole file through a new read-only handle, as `cat` would. */
async function readFile(path: string, on: FileSystem = fs): Promise<Buffer> {
  const size = (await on.getattr(path)).size;
  const fh = await on.open(path, O_RDONLY);
  try {
    const into = Buffer.alloc(size);
    const n = await on.read(fh, into, size, 0);
    return into.subarray(0, n);
  } finally {
    await on.release(fh);
  }
}

async function writeNewFile(path: string, data: string | Buffer, permissions = 0o644): Promise<void> {
  const fh = await fs.create(path, permissions);
  await fs.write(fh, typeof data === 'string' ? Buffer.from(data) : data, 0);
  await fs.release(fh);
}

async function listing(path: string, on: FileSystem = fs): Promise<string[]> {
  return (await on.readdir(path)).filter((n) => n !== '.' && n !== '..').sort();
}

// ---- tests ----

describe('getattr', () => {
  it('shows a file with the POSIX metadata stored with it', async () => {
    await put('docs/report.txt', 'twelve bytes', {
      mode: String(S_IFREG | 0o600),
      uid: '501',
      gid: '20',
      mtime: '1600000000.250000000',
    });
    expect(await fs.getattr('/docs/report.txt')).toEqual({
      kind: 'file',
      mode: S_IFREG | 0o600,
      rdev: 0,
      uid: 501,
      gid: 20,
      size: 12,
      mtimeMs: 1_600_000_000_250,
      atimeMs: 1_600_000_000_250,
      ctimeMs: 1_600_000_000_250,
    });
  });

  it('gives an object written by another tool the defaults and its Last-Modified', async () => {
    await put('plain', 'abc');
    const lastModified = memory.objects.get('plain')!.lastModified.getTime();
    expect(await fs.getattr('/plain')).toMatchObject({
      kind: 'file',
      mode: S_IFREG | 0o644,
      uid: 1000,
      gid: 1000,
      size: 3,
      mtimeMs: lastModified,
    });
  });

  it('shows an explicit directory (a `d/` marker) with its stored mode', async () => {
    await put('d/', '', { mode: String(S_IFDIR | 0o700), uid: '7', gid: '8' });
    expect(await fs.getattr('/d')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o700, uid: 7, gid: 8, size: 0 });
  });

  it('shows implicit directories for every prefix of a key', async () => {
    await put('a/b/c', 'leaf');
    expect(await fs.getattr('/a')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o755, size: 0 });
    expect(await fs.getattr('/a/b')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o755 });
    expect(await fs.getattr('/a/b/c')).toMatchObject({ kind: 'file', size: 4 });
    expect(await listing('/a')).toEqual(['b']);
    expect(await listing('/a/b')).toEqual(['c']);
  });

  it('shows the directory when a file and a directory share a name, once their directory is listed', async () => {
    await put('twin', 'file');
    await put('twin/inside', 'x');
    // A cold lookup asks for the object alone (one request for a file), as s3fs does: the file.
    expect((await fs.getattr('/twin')).kind).toBe('file');
    // The listing shows the directory, and so do lookups after it.
    expect(await listing('/')).toEqual(['twin']);
    expect((await fs.getattr('/twin')).kind).toBe('directory');
    expect(await listing('/twin')).toEqual(['inside']);
  });

  it('answers ENOENT for what does not exist', async () => {
    await put('a/b/c', 'leaf');
    await expect(fs.getattr('/nope')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.getattr('/a/nope')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.getattr('/a/b/c/d')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('shows the root as a directory', async () => {
    expect(await fs.getattr('/')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o755, mtimeMs: T0 });
  });

  it('shows only the keys under the mount prefix', async () => {
    await put('other/secret', 's');
    await put('mine/file', 'f');
    const scoped = mount(faulty, { prefix: 'mine/' });
    expect(await listing('/', scoped)).toEqual(['file']);
    expect((await readFile('/file', scoped)).toString()).toBe('f');
    await expect(scoped.getattr('/secret')).rejects.toMatchObject({ code: 'ENOENT' });
    const fh = await scoped.create('/new', 0o644);
    await scoped.write(fh, Buffer.from('n'), 0);
    await scoped.release(fh);
    expect(stored('mine/new')).toBe('n');
  });
});

describe('readdir', () => {
  it('pages through more than 1,000 entries without a HEAD per entry', async () => {
    const names: string[] = [];
    for (let i = 0; i < 2_500; i++) {
      const name = `file-${String(i).padStart(5, '0')}`;
      names.push(name);
      await put(name, String(i));
    }
    for (const dir of ['dir-a', 'dir-b']) {
      await put(`${dir}/child`, 'c');
      names.push(dir);
    }
    memory.calls.clear();

    const entries = await fs.readdir('/');

    expect(entries.slice(0, 2)).toEqual(['.', '..']);
    expect(entries.slice(2).sort()).toEqual(names.sort());
    expect(new Set(entries).size).toBe(entries.length);
    expect(calls('head')).toBe(0);
    expect(calls('list')).toBe(3); // pages of at most 1,000

    // A subdirectory the same: HEADs only to find the directory itself, none per entry. (Made
    // by another client after / was listed: the mount sees it once the negative TTL has passed.)
    for (let i = 0; i < 1_500; i++) await put(`big/${i}`, 'x');
    clock.advance(NEGATIVE_TTL + 1);
    memory.calls.clear();
    expect(await fs.readdir('/big')).toHaveLength(1_502);
    expect(calls('head')).toBeLessThanOrEqual(2);
    expect(calls('list')).toBeLessThanOrEqual(3);
  });

  it('once one entry of a listing is looked up, fetches the next ones in parallel, paced by the lookups', async () => {
    const name = (i: number) => `f${String(i).padStart(2, '0')}`;
    for (let i = 0; i < 100; i++) await put(`lsl/${name(i)}`, 'x', { mode: String(S_IFREG | 0o600) });
    await put('lsl/sub/inner', 'x');
    await fs.readdir('/lsl');
    memory.calls.clear();
    expect(await fs.getattr('/lsl/f00')).toMatchObject({ mode: S_IFREG | 0o600 });
    // Small files are read whole (a GET instead of a HEAD). The entries up to the window past
    // the one looked up are fetched, no further until the lookups move on.
    await vi.waitFor(() => expect(calls('head') + calls('get')).toBe(PREFETCH.window + 1));
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(calls('head') + calls('get')).toBe(PREFETCH.window + 1);
    for (let i = 0; i < 100; i++) expect((await fs.getattr(`/lsl/${name(i)}`)).mode).toBe(S_IFREG | 0o600);
    // The marker of sub/ is a HEAD: every entry was fetched once.
    expect((await fs.getattr('/lsl/sub')).kind).toBe('directory');
    expect(calls('head') + calls('get')).toBe(101);
    // ...and reading one costs nothing more: its bytes came with its metadata.
    const fh = await fs.open('/lsl/f07', O_RDONLY);
    expect((await readHandle(fh, 1)).toString()).toBe('x');
    await fs.release(fh);
    expect(calls('head') + calls('get')).toBe(101);
  });

  it('fetches the metadata a listing lacks when getattr asks for it', async () => {
    await put('secret', 'x', { mode: String(S_IFREG | 0o600), uid: '0' });
    expect(await listing('/')).toEqual(['secret']);
    expect(await fs.getattr('/secret')).toMatchObject({ mode: S_IFREG | 0o600, uid: 0 });
  });

  it('hides keys that cannot be shown as names', async () => {
    await put('a//b', 'double slash');
    await put('.', 'dot');
    await put('..', 'dotdot');
    await put('x/./y', 'dot component');
    await put('ok', 'fine');
    await put(`${'n'.repeat(256)}`, 'too long a name');
    await put('nul\0name', 'a NUL in a name');
    await put('dir\0nul/inner', 'a NUL in a directory');

    expect(await listing('/')).toEqual(['a', 'ok', 'x']);
    expect(await listing('/a')).toEqual([]);
    expect(await listing('/x')).toEqual([]);
    // Not reachable either: not by its name, nor by the name C would cut it to.
    for (const path of ['/nul\0name', '/nul', '/dir\0nul', '/dir\0nul/inner', '/dir'])
      await expect(fs.getattr(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('logs each key it cannot show once, with the reason, and shows the directory of a key that is also a prefix', async () => {
    const warnings: string[] = [];
    const logged = mount(memory, { logger: { ...silentLogger, warn: (message: string) => warnings.push(message) } });
    await put('both', 'a file');
    await put('both/inner', 'and a prefix');
    await put('a//b', 'double slash');
    await put('..', 'dotdot');
    await put('n'.repeat(256), 'long');
    await put('nul\0name', 'a NUL');
    for (let i = 0; i < 3; i++) {
      clock.advance(DIR_TTL + 1);
      expect(await logged.readdir('/')).toEqual(['.', '..', 'a', 'both']);
      expect(await logged.readdir('/a')).toEqual(['.', '..']);
    }
    expect(warnings.sort()).toEqual(
      [
        "key '..' is not shown in the mount: '..' cannot be a file name",
        "key 'a//' is not shown in the mount: it has an empty path component (//)",
        "key 'both' is not shown in the mount: a directory 'both' of the same name hides it",
        `key '${'n'.repeat(256)}' is not shown in the mount: a path component is longer than 255 bytes`,
        "key 'nul\\x00name' is not shown in the mount: it contains a NUL byte, which no file name can hold",
      ].sort(),
    );
    expect(await logged.readdir('/both')).toEqual(['.', '..', 'inner']);
  });

  it('lists files created but not yet flushed, once', async () => {
    await fs.mkdir('/d', 0o755);
    await put('d/old', 'o');
    const fh = await fs.create('/d/new', 0o644);
    await fs.write(fh, Buffer.from('not yet in the store'), 0);
    expect(memory.objects.has('d/new')).toBe(false);

    expect(await listing('/d')).toEqual(['new', 'old']);
    expect(await listing('/')).toEqual(['d']);

    await fs.flush(fh);
    expect(await listing('/d')).toEqual(['new', 'old']);
    await fs.release(fh);
    expect(await listing('/d')).toEqual(['new', 'old']);
  });

  it('answers ENOTDIR for a file and ENOENT for nothing', async () => {
    await put('f', 'x');
    await expect(fs.readdir('/f')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(fs.readdir('/missing')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('reports a failed listing as EIO', async () => {
    await put('d/f', 'x');
    faulty.fail('list', { code: 'Transient', times: 10 });
    await expect(fs.readdir('/')).rejects.toMatchObject({ name: 'FsError', code: 'EIO' });
  });
});

describe('create, write, flush', () => {
  it('stores the bytes and s3fs metadata (mode, uid, gid, mtime) on flush', async () => {
    const fh = await fs.create('/new.txt', 0o640);
    clock.advance(5_000);
    await fs.write(fh, Buffer.from('hello'), 0);
    await fs.write(fh, Buffer.from(' world'), 5);
    expect(memory.objects.has('new.txt')).toBe(false);

    await fs.flush(fh);

    expect(stored('new.txt')).toBe('hello world');
    expect(metadata('new.txt')).toMatchObject({
      mode: String(S_IFREG | 0o640),
      uid: '1000',
      gid: '1000',
      mtime: formatTime(T0 + 5_000),
    });
    expect(memory.objects.get('new.txt')?.contentType).toBe('application/octet-stream');
    expect(await fs.getattr('/new.txt')).toMatchObject({ kind: 'file', size: 11, mode: S_IFREG | 0o640 });
    await fs.release(fh);

    // Another mount (no shared cache) sees the same file.
    const other = mount(memory);
    expect(await other.getattr('/new.txt')).toMatchObject({ size: 11, mode: S_IFREG | 0o640, mtimeMs: T0 + 5_000 });
    expect((await readFile('/new.txt', other)).toString()).toBe('hello world');
  });

  it('uploads on release without an explicit flush, and leaves no staging file behind', async () => {
    const fh = await fs.create('/r', 0o644);
    await fs.write(fh, Buffer.from('released'), 0);
    await fs.release(fh);
    expect(stored('r')).toBe('released');
    expect(await readLocalDir(stagingDir)).toEqual([]);
    await expect(fs.read(fh, Buffer.alloc(1), 1, 0)).rejects.toMatchObject({ code: 'EBADF' });
  });

  it('creates an empty file when nothing is written', async () => {
    const fh = await fs.create('/empty', 0o600);
    await fs.release(fh);
    expect(stored('empty')).toBe('');
    expect(metadata('empty')?.mode).toBe(String(S_IFREG | 0o600));
  });

  it('uploads a file larger than one part as a multipart upload with the right bytes', async () => {
    const data = randomBytes(PART * 3 + 100);
    const fh = await fs.create('/big.bin', 0o644);
    // Written out of order, in odd-sized pieces.
    await fs.write(fh, data.subarray(5_000), 5_000);
    await fs.write(fh, data.subarray(0, 5_000), 0);
    await fs.release(fh);

    expect(memory.objects.get('big.bin')?.body.equals(data)).toBe(true);
    expect(calls('createMultipartUpload')).toBe(1);
    expect(calls('uploadPart')).toBe(4);
    expect(memory.uploads.size).toBe(0);
    expect((await readFile('/big.bin')).equals(data)).toBe(true);
  });

  it('reads back what was written before it is flushed', async () => {
    const fh = await fs.create('/draft', 0o644);
    await fs.write(fh, Buffer.from('0123456789'), 0);
    expect((await readHandle(fh, 4, 3)).toString()).toBe('3456');
    expect((await readHandle(fh, 100, 8)).toString()).toBe('89');
    expect(await readHandle(fh, 10, 10)).toHaveLength(0);
    expect(await fs.getattr('/draft')).toMatchObject({ size: 10 });
    await fs.release(fh);
  });

  it('refuses to grow a file past the largest object the store can hold (EFBIG)', async () => {
    const tiny = mount(new MemoryStore({ minPartSize: PART, maxPartSize: PART, maxParts: 4 })); // 16 KiB at most
    const fh = await tiny.create('/f', 0o644);
    await tiny.write(fh, Buffer.from('ok'), 0);
    await expect(tiny.write(fh, Buffer.from('x'), PART * 4)).rejects.toMatchObject({ code: 'EFBIG' });
    await expect(tiny.ftruncate(fh, PART * 4 + 1)).rejects.toMatchObject({ code: 'EFBIG' });
    await tiny.write(fh, Buffer.from('x'), PART * 4 - 1);
    expect((await tiny.getattr('/f')).size).toBe(PART * 4);
    await tiny.release(fh);
  });

  it('refuses names longer than 255 bytes', async () => {
    await expect(fs.create(`/${'x'.repeat(256)}`, 0o644)).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    await expect(fs.mkdir(`/${'é'.repeat(128)}`, 0o755)).rejects.toMatchObject({ code: 'ENAMETOOLONG' });
    expect(memory.objects.size).toBe(0);
  });
});

describe('open and write existing files', () => {
  beforeEach(async () => {
    await put('f', '0123456789', { mode: String(S_IFREG | 0o600), uid: '42', gid: '43' });
  });

  it('reads ranges of an unchanged file from the store', async () => {
    const fh = await fs.open('/f', O_RDONLY);
    expect((await readHandle(fh, 3, 2)).toString()).toBe('234');
    expect((await readHandle(fh, 100, 7)).toString()).toBe('789');
    expect(await readHandle(fh, 5, 10)).toHaveLength(0);
    await fs.release(fh);
    expect(calls('put') + calls('copy')).toBe(1); // only the fixture's put: reading writes nothing
  });

  it('overwrites part of a file and keeps the rest and its metadata', async () => {
    const fh = await fs.open('/f', O_RDWR);
    await fs.write(fh, Buffer.from('ab'), 3);
    expect((await readHandle(fh, 10)).toString()).toBe('012ab56789');
    await fs.release(fh);
    expect(stored('f')).toBe('012ab56789');
    expect(metadata('f')).toMatchObject({ mode: String(S_IFREG | 0o600), uid: '42', gid: '43' });
  });

  it('writes past the end, leaving a hole of zeros', async () => {
    const fh = await fs.open('/f', O_WRONLY);
    await fs.write(fh, Buffer.from('!'), 12);
    await fs.release(fh);
    expect(memory.objects.get('f')?.body).toEqual(Buffer.from('0123456789\0\0!'));
  });

  it('appends with O_APPEND wherever the write says it goes', async () => {
    const fh = await fs.open('/f', O_WRONLY | O_APPEND);
    await fs.write(fh, Buffer.from('XY'), 0);
    await fs.write(fh, Buffer.from('Z'), 0);
    await fs.release(fh);
    expect(stored('f')).toBe('0123456789XYZ');
  });

  it('empties the file with O_TRUNC', async () => {
    const fh = await fs.open('/f', O_WRONLY | O_TRUNC);
    expect((await fs.getattr('/f')).size).toBe(0);
    await fs.write(fh, Buffer.from('new'), 0);
    await fs.release(fh);
    expect(stored('f')).toBe('new');

    const again = await fs.open('/f', O_RDWR | O_TRUNC);
    await fs.release(again);
    expect(stored('f')).toBe('');
  });

  it('does not rewrite a file opened for writing and closed unchanged', async () => {
    const fh = await fs.open('/f', O_RDWR);
    await fs.flush(fh);
    await fs.release(fh);
    expect(calls('put') + calls('copy') + calls('createMultipartUpload')).toBe(1); // the fixture's put
    expect(stored('f')).toBe('0123456789');
  });

  it('overwrites a few bytes in the middle of a multipart object', async () => {
    const data = randomBytes(PART * 3 + 7);
    await writeNewFile('/large', data);
    const fh = await fs.open('/large', O_RDWR);
    await fs.write(fh, Buffer.from('PATCH'), PART + 1);
    await fs.release(fh);
    Buffer.from('PATCH').copy(data, PART + 1);
    expect(memory.objects.get('large')?.body.equals(data)).toBe(true);
    expect(memory.uploads.size).toBe(0);
  });

  it('refuses writes through a read-only handle', async () => {
    const fh = await fs.open('/f', O_RDONLY);
    await expect(fs.write(fh, Buffer.from('x'), 0)).rejects.toMatchObject({ code: 'EBADF' });
    await expect(fs.ftruncate(fh, 0)).rejects.toMatchObject({ code: 'EBADF' });
    await fs.release(fh);
    expect(stored('f')).toBe('0123456789');
  });

  it('answers ENOENT when opening what does not exist, and EISDIR when writing a directory', async () => {
    await expect(fs.open('/missing', O_RDONLY)).rejects.toMatchObject({ code: 'ENOENT' });
    await put('dir/', '');
    await expect(fs.open('/dir', O_WRONLY)).rejects.toMatchObject({ code: 'EISDIR' });
  });

  it('gives ESTALE, never mixed bytes, when the object changed in the store after open', async () => {
    const fh = await fs.open('/f', O_RDONLY);
    await put('f', 'ABCDEFGHIJ');
    await expect(readHandle(fh, 2, 2)).rejects.toMatchObject({ name: 'FsError', code: 'ESTALE' });
    await fs.release(fh);

    // What the cache holds of the version opened is still that version: consistent, not mixed.
    const cached = await fs.open('/f', O_RDONLY);
    expect((await readHandle(cached, 2)).toString()).toBe('AB');
    await put('f', 'abcdefghij');
    expect((await readHandle(cached, 2, 2)).toString()).toBe('CD');
    await fs.release(cached);

    const writer = await fs.open('/f', O_RDWR);
    await put('f', 'changed again');
    await expect(fs.write(writer, Buffer.from('x'), 0)).rejects.toMatchObject({ code: 'ESTALE' });
    await fs.release(writer);
    expect(stored('f')).toBe('changed again');
  });

  it('forgets the cached version after ESTALE, so the next open reads the new object', async () => {
    expect((await fs.getattr('/f')).size).toBe(10); // cached for the TTL
    await put('f', 'a newer, longer body');
    const stale = await fs.open('/f', O_RDONLY);
    await expect(readHandle(stale, 4)).rejects.toMatchObject({ code: 'ESTALE' });
    await fs.release(stale);
    expect((await fs.getattr('/f')).size).toBe(20);
    const fresh = await fs.open('/f', O_RDONLY);
    expect((await readHandle(fresh, 20)).toString()).toBe('a newer, longer body');
    await fs.release(fresh);
  });

  it('shares one file between handles: a second handle reads what the first wrote', async () => {
    const writer = await fs.open('/f', O_RDWR);
    const reader = await fs.open('/f', O_RDONLY);
    await fs.write(writer, Buffer.from('WW'), 0);
    expect((await readHandle(reader, 4)).toString()).toBe('WW23');
    await fs.release(writer);
    expect(stored('f')).toBe('WW23456789');
    expect((await readHandle(reader, 4)).toString()).toBe('WW23');
    await fs.release(reader);
  });
});

describe('truncate', () => {
  beforeEach(async () => {
    await put('t', '0123456789', { mode: String(S_IFREG | 0o640) });
  });

  it('shrinks a file that is not open', async () => {
    await fs.truncate('/t', 4);
    expect(stored('t')).toBe('0123');
    expect(metadata('t')?.mode).toBe(String(S_IFREG | 0o640));
    expect((await fs.getattr('/t')).size).toBe(4);
    expect(await readLocalDir(stagingDir)).toEqual([]);
  });

  it('records the time of the truncate as the mtime', async () => {
    clock.advance(60_000);
    await fs.truncate('/t', 1);
    expect(metadata('t')?.mtime).toBe(formatTime(T0 + 60_000));
    expect((await fs.getattr('/t')).mtimeMs).toBe(T0 + 60_000);
  });

  it('grows a file that is not open with zeros', async () => {
    await fs.truncate('/t', 12);
    expect(memory.objects.get('t')?.body).toEqual(Buffer.from('0123456789\0\0'));
    expect((await fs.getattr('/t')).size).toBe(12);
  });

  it('truncates to nothing', async () => {
    await fs.truncate('/t', 0);
    expect(stored('t')).toBe('');
  });

  it('changes an open file, which reaches the store at flush', async () => {
    const fh = await fs.open('/t', O_RDWR);
    await fs.truncate('/t', 3);
    expect((await fs.getattr('/t')).size).toBe(3);
    expect((await readHandle(fh, 10)).toString()).toBe('012');
    expect(stored('t')).toBe('0123456789');
    await fs.flush(fh);
    expect(stored('t')).toBe('012');

    await fs.ftruncate(fh, 5);
    expect((await readHandle(fh, 10)).toString()).toBe('012\0\0');
    await fs.release(fh);
    expect(memory.objects.get('t')?.body).toEqual(Buffer.from('012\0\0'));
  });

  it('answers EISDIR for a directory and ENOENT for nothing', async () => {
    await put('d/x', 'x');
    await expect(fs.truncate('/d', 0)).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(fs.truncate('/none', 0)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(memory.objects.has('none')).toBe(false);
  });
});

describe('mkdir and rmdir', () => {
  it('writes a marker with the directory metadata', async () => {
    await fs.mkdir('/d', 0o750);
    expect(stored('d/')).toBe('');
    expect(memory.objects.get('d/')?.contentType).toBe('application/x-directory');
    expect(metadata('d/')).toMatchObject({ mode: String(S_IFDIR | 0o750), uid: '1000', mtime: formatTime(T0) });
    expect(await fs.getattr('/d')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o750 });
    expect(await listing('/')).toEqual(['d']);
    expect(await listing('/d')).toEqual([]);
    expect(await listing('/d', mount(memory))).toEqual([]);
  });

  it('refuses to make what exists', async () => {
    await fs.mkdir('/d', 0o755);
    await put('f', 'x');
    await put('imp/x', 'x');
    await expect(fs.mkdir('/d', 0o755)).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(fs.mkdir('/f', 0o755)).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(fs.mkdir('/imp', 0o755)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(memory.objects.has('f/')).toBe(false);
    expect(memory.objects.has('imp/')).toBe(false);
  });

  it('removes an empty directory', async () => {
    await fs.mkdir('/d', 0o755);
    await fs.rmdir('/d');
    expect(memory.objects.has('d/')).toBe(false);
    await expect(fs.getattr('/d')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await listing('/')).toEqual([]);
  });

  it('refuses to remove a directory that is not empty (ENOTEMPTY)', async () => {
    await fs.mkdir('/d', 0o755);
    await put('d/f', 'x');
    await put('imp/deep/f', 'x');
    await expect(fs.rmdir('/d')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await expect(fs.rmdir('/imp')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    expect(memory.objects.has('d/')).toBe(true);
    expect(stored('d/f')).toBe('x');
    expect(stored('imp/deep/f')).toBe('x');

    // A file created but not yet in the store counts too.
    await fs.mkdir('/e', 0o755);
    const fh = await fs.create('/e/pending', 0o644);
    await expect(fs.rmdir('/e')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    await fs.release(fh);
  });

  it('answers ENOTDIR for a file, ENOENT for nothing, EPERM for the root', async () => {
    await put('f', 'x');
    await expect(fs.rmdir('/f')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(fs.rmdir('/none')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.rmdir('/')).rejects.toMatchObject({ code: 'EPERM' });
    expect(stored('f')).toBe('x');
  });

  it('keeps an implicit parent after its last subdirectory is removed', async () => {
    await put('p/sub/', '');
    await fs.rmdir('/p/sub');
    expect(memory.objects.has('p/sub/')).toBe(false);
    expect(memory.objects.has('p/')).toBe(true);
    expect((await fs.getattr('/p')).kind).toBe('directory');
    expect(await listing('/p')).toEqual([]);
  });
});

describe('unlink', () => {
  it('deletes a file', async () => {
    await put('f', 'x');
    await put('g', 'y');
    await fs.unlink('/f');
    expect(memory.objects.has('f')).toBe(false);
    await expect(fs.getattr('/f')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await listing('/')).toEqual(['g']);
  });

  it('answers EISDIR for a directory and ENOENT for nothing', async () => {
    await fs.mkdir('/d', 0o755);
    await put('imp/x', 'x');
    await expect(fs.unlink('/d')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(fs.unlink('/imp')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(fs.unlink('/none')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(memory.objects.has('d/')).toBe(true);
    expect(stored('imp/x')).toBe('x');
  });

  it('keeps an implicit directory after its last file is unlinked, by writing its marker', async () => {
    await put('a/b/only', 'x');
    await fs.unlink('/a/b/only');
    expect(memory.objects.has('a/b/only')).toBe(false);
    expect(memory.objects.has('a/b/')).toBe(true);
    expect(metadata('a/b/')?.mode).toBe(String(S_IFDIR | 0o755));
    expect((await fs.getattr('/a/b')).kind).toBe('directory');
    expect(await listing('/a/b')).toEqual([]);
    expect(await listing('/a')).toEqual(['b']);
    // Another mount sees the directory too.
    expect((await mount(memory).getattr('/a/b')).kind).toBe('directory');
  });

  it('does not write a marker while the directory still has entries', async () => {
    await put('a/one', '1');
    await put('a/two', '2');
    await fs.unlink('/a/one');
    expect(memory.objects.has('a/')).toBe(false);
    expect(await listing('/a')).toEqual(['two']);
  });

  it('never uploads a file unlinked while open', async () => {
    const fh = await fs.create('/tmpfile', 0o644);
    await fs.write(fh, Buffer.from('scratch'), 0);
    await fs.unlink('/tmpfile');
    await expect(fs.getattr('/tmpfile')).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.flush(fh);
    await fs.release(fh);
    expect(memory.objects.has('tmpfile')).toBe(false);
    expect(calls('put')).toBe(0);

    await put('kept', 'old');
    const writer = await fs.open('/kept', O_RDWR);
    await fs.write(writer, Buffer.from('new'), 0);
    await fs.unlink('/kept');
    await fs.release(writer);
    expect(memory.objects.has('kept')).toBe(false);
  });
});

describe('rename', () => {
  it('moves a file over an existing file, bytes and metadata included', async () => {
    await put('x', 'from x', { mode: String(S_IFREG | 0o600) });
    await put('y', 'old y');
    await fs.getattr('/y');
    await fs.rename('/x', '/y');
    expect(stored('y')).toBe('from x');
    expect(metadata('y')?.mode).toBe(String(S_IFREG | 0o600));
    expect(memory.objects.has('x')).toBe(false);
    await expect(fs.getattr('/x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.getattr('/y')).toMatchObject({ size: 6, mode: S_IFREG | 0o600 });
    expect((await readFile('/y')).toString()).toBe('from x');
    expect(await listing('/')).toEqual(['y']);
  });

  it('moves a file into another directory and keeps the implicit source directory', async () => {
    await put('src/only', 'o');
    await fs.mkdir('/dst', 0o755);
    await fs.rename('/src/only', '/dst/moved');
    expect(stored('dst/moved')).toBe('o');
    expect(memory.objects.has('src/only')).toBe(false);
    expect((await fs.getattr('/src')).kind).toBe('directory');
    expect(await listing('/dst')).toEqual(['moved']);
  });

  it('refuses to move a file onto a directory (EISDIR) and a directory onto a file (ENOTDIR)', async () => {
    await put('f', 'x');
    await fs.mkdir('/d', 0o755);
    await expect(fs.rename('/f', '/d')).rejects.toMatchObject({ code: 'EISDIR' });
    await expect(fs.rename('/d', '/f')).rejects.toMatchObject({ code: 'ENOTDIR' });
    expect(stored('f')).toBe('x');
    expect(memory.objects.has('d/')).toBe(true);
    expect(memory.objects.has('d/f')).toBe(false);
  });

  it('answers ENOENT for a missing source and EINVAL for a directory moved into itself', async () => {
    await expect(fs.rename('/none', '/other')).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.mkdir('/d', 0o755);
    await expect(fs.rename('/d', '/d/inside')).rejects.toMatchObject({ code: 'EINVAL' });
    expect(memory.objects.has('d/')).toBe(true);
    expect(memory.objects.has('other')).toBe(false);
  });

  it('moves a directory with many keys: every key moved, the source gone', async () => {
    const expected = new Map<string, string>();
    await put('src/', '', { mode: String(S_IFDIR | 0o700) });
    for (let i = 0; i < 1_200; i++) {
      const rest = i % 3 === 0 ? `sub/deeper/${i}` : `${i}`;
      await put(`src/${rest}`, `body ${i}`);
      expected.set(`dst/${rest}`, `body ${i}`);
    }
    await put('srcfile', 'not under src/');
    expected.set('dst/', '');
    expected.set('srcfile', 'not under src/');
    await fs.getattr('/src/sub/deeper/0');

    await fs.rename('/src', '/dst');

    expect(new Map([...memory.objects].map(([k, v]) => [k, v.body.toString()]))).toEqual(expected);
    expect(metadata('dst/')?.mode).toBe(String(S_IFDIR | 0o700));
    await expect(fs.getattr('/src')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.getattr('/src/sub/deeper/0')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.getattr('/dst')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o700 });
    expect((await readFile('/dst/sub/deeper/0')).toString()).toBe('body 0');
    expect(await listing('/')).toEqual(['dst', 'srcfile']);
    expect(await fs.readdir('/dst')).toHaveLength(2 + 800 + 1);
  });

  it('moves a directory over an empty one, and refuses a non-empty one', async () => {
    await put('a/f', 'f');
    await fs.mkdir('/empty', 0o755);
    await fs.rename('/a', '/empty');
    expect(stored('empty/f')).toBe('f');
    expect(memory.objects.has('a/f')).toBe(false);

    await put('b/g', 'g'); // another client's, after the mount listed / (see 'directories listed in full')
    clock.advance(NEGATIVE_TTL + 1);
    await expect(fs.rename('/b', '/empty')).rejects.toMatchObject({ code: 'ENOTEMPTY' });
    expect(stored('b/g')).toBe('g');
    expect(stored('empty/f')).toBe('f');
  });

  it('moves an open file with unsaved writes, and later writes go to the new name', async () => {
    const fh = await fs.create('/draft', 0o644);
    await fs.write(fh, Buffer.from('abc'), 0);
    await fs.rename('/draft', '/final');
    expect(stored('final')).toBe('abc');
    expect(memory.objects.has('draft')).toBe(false);
    await expect(fs.getattr('/draft')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fs.getattr('/final')).size).toBe(3);

    await fs.write(fh, Buffer.from('def'), 3);
    await fs.release(fh);
    expect(stored('final')).toBe('abcdef');
    expect(memory.objects.has('draft')).toBe(false);
    expect(await listing('/')).toEqual(['final']);
  });

  it('moves a directory holding an open file with unsaved writes', async () => {
    await fs.mkdir('/proj', 0o755);
    const fh = await fs.create('/proj/notes', 0o644);
    await fs.write(fh, Buffer.from('v1'), 0);
    await fs.rename('/proj', '/proj2');
    expect(stored('proj2/notes')).toBe('v1');
    await fs.write(fh, Buffer.from('v2'), 0);
    await fs.release(fh);
    expect(stored('proj2/notes')).toBe('v2');
    expect([...memory.objects.keys()].filter((k) => k.startsWith('proj/'))).toEqual([]);
  });

  it('keeps reading a file through a handle opened before the file was moved', async () => {
    // A multipart object, whose copy gets a new ETag as on S3 (log rotation: `mv app.log app.log.1`
    // while a reader has it open).
    const data = randomBytes(PART * 2 + 10);
    await writeNewFile('/app.log', data);
    expect(memory.objects.get('app.log')?.etag).toMatch(/-3"$/);
    const reader = await fs.open('/app.log', O_RDONLY);
    expect((await readHandle(reader, 10)).equals(data.subarray(0, 10))).toBe(true);

    await fs.rename('/app.log', '/app.log.1');

    expect((await readHandle(reader, 10, PART)).equals(data.subarray(PART, PART + 10))).toBe(true);
    await fs.release(reader);
    expect(memory.objects.get('app.log.1')?.body.equals(data)).toBe(true);
  });

  it('keeps reading a file through a handle opened before its directory was moved', async () => {
    const data = randomBytes(PART * 2 + 10);
    await fs.mkdir('/logs', 0o755);
    await writeNewFile('/logs/app.log', data);
    const reader = await fs.open('/logs/app.log', O_RDONLY);

    await fs.rename('/logs', '/old-logs');

    expect((await readHandle(reader, 10, PART)).equals(data.subarray(PART, PART + 10))).toBe(true);
    await fs.release(reader);
    expect(memory.objects.get('old-logs/app.log')?.body.equals(data)).toBe(true);
  });

  it('moves a symlink', async () => {
    await fs.symlink('target', '/l1');
    await fs.rename('/l1', '/l2');
    expect(await fs.readlink('/l2')).toBe('target');
    expect((await fs.getattr('/l2')).kind).toBe('symlink');
    await expect(fs.readlink('/l1')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('replaces a file that is open elsewhere: the name then shows the moved file', async () => {
    await put('new', 'new content');
    await put('live', 'old');
    const oldHandle = await fs.open('/live', O_RDONLY);

    await fs.rename('/new', '/live');

    expect(stored('live')).toBe('new content');
    expect((await fs.getattr('/live')).size).toBe(11);
    expect((await readFile('/live')).toString()).toBe('new content');
    await fs.release(oldHandle);
    expect(stored('live')).toBe('new content');
  });
});

describe('symlink and readlink', () => {
  it('stores a symlink as an object whose body is the target, with S_IFLNK in its mode', async () => {
    await fs.symlink('../target/file.txt', '/link');
    expect(stored('link')).toBe('../target/file.txt');
    expect(metadata('link')?.mode).toBe(String(S_IFLNK | 0o777));
    expect(await fs.getattr('/link')).toMatchObject({ kind: 'symlink', size: 18 });
    expect(await fs.readlink('/link')).toBe('../target/file.txt');
    expect(await listing('/')).toEqual(['link']);

    const other = mount(memory);
    expect((await other.getattr('/link')).kind).toBe('symlink');
    expect(await other.readlink('/link')).toBe('../target/file.txt');
  });

  it('reads symlinks written by s3fs, also after a listing (which carries no mode)', async () => {
    await put('s3fs-link', '/absolute/path', { mode: String(S_IFLNK | 0o777), mtime: '1600000000' });
    expect(await listing('/')).toEqual(['s3fs-link']);
    expect(await fs.getattr('/s3fs-link')).toMatchObject({ kind: 'symlink', mode: S_IFLNK | 0o777, mtimeMs: 1_600_000_000_000 });
    expect(await fs.readlink('/s3fs-link')).toBe('/absolute/path');
  });

  it('answers EEXIST, EINVAL and ENOENT as a disk would', async () => {
    await put('f', 'x');
    await expect(fs.symlink('t', '/f')).rejects.toMatchObject({ code: 'EEXIST' });
    await expect(fs.readlink('/f')).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.readlink('/none')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(stored('f')).toBe('x');
  });
});

describe('chmod, chown, utimens', () => {
  it('persists changes to a closed file in its metadata, bytes untouched', async () => {
    await put('f', 'content', { mode: String(S_IFREG | 0o644), uid: '1', gid: '2' });
    clock.advance(1_000);
    await fs.chmod('/f', 0o600);
    expect(metadata('f')).toMatchObject({ mode: String(S_IFREG | 0o600), uid: '1', gid: '2', ctime: formatTime(T0 + 1_000) });

    await fs.chown('/f', 501, 20);
    expect(metadata('f')).toMatchObject({ mode: String(S_IFREG | 0o600), uid: '501', gid: '20' });
    await fs.chown('/f', -1, 30);
    expect(metadata('f')).toMatchObject({ uid: '501', gid: '30' });

    await fs.utimens('/f', 1_500_000_000_000, 1_600_000_000_123);
    expect(metadata('f')).toMatchObject({ atime: '1500000000', mtime: '1600000000.123000000' });
    expect(stored('f')).toBe('content');

    expect(await fs.getattr('/f')).toMatchObject({ mode: S_IFREG | 0o600, uid: 501, gid: 30, mtimeMs: 1_600_000_000_123 });
    expect(await mount(memory).getattr('/f')).toMatchObject({
      mode: S_IFREG | 0o600,
      uid: 501,
      gid: 30,
      mtimeMs: 1_600_000_000_123,
      atimeMs: 1_500_000_000_000,
    });
  });

  it('persists changes to explicit and implicit directories', async () => {
    await fs.mkdir('/d', 0o755);
    await fs.chmod('/d', 0o700);
    expect(metadata('d/')?.mode).toBe(String(S_IFDIR | 0o700));

    await put('imp/child', 'c');
    await fs.chown('/imp', 5, 6);
    expect(metadata('imp/')).toMatchObject({ mode: String(S_IFDIR | 0o755), uid: '5', gid: '6' });
    expect(stored('imp/child')).toBe('c');
    expect(await mount(memory).getattr('/imp')).toMatchObject({ kind: 'directory', uid: 5, gid: 6 });
  });

  it('gives a dirty open file its new attributes at flush', async () => {
    const fh = await fs.create('/w', 0o644);
    await fs.write(fh, Buffer.from('data'), 0);
    await fs.chmod('/w', 0o640);
    await fs.chown('/w', 7, 8);
    await fs.utimens('/w', 1_400_000_000_000, 1_400_000_000_000);
    expect(memory.objects.has('w')).toBe(false);
    expect(await fs.getattr('/w')).toMatchObject({ mode: S_IFREG | 0o640, uid: 7, gid: 8, mtimeMs: 1_400_000_000_000 });

    await fs.flush(fh);

    expect(stored('w')).toBe('data');
    expect(metadata('w')).toMatchObject({ mode: String(S_IFREG | 0o640), uid: '7', gid: '8', mtime: '1400000000' });
    await fs.release(fh);
    expect(metadata('w')?.mode).toBe(String(S_IFREG | 0o640));
  });

  it('saves attributes of a clean open file right away', async () => {
    await put('c', 'clean');
    const fh = await fs.open('/c', O_RDONLY);
    await fs.chmod('/c', 0o400);
    expect(metadata('c')?.mode).toBe(String(S_IFREG | 0o400));
    expect((await readHandle(fh, 5)).toString()).toBe('clean');
    await fs.release(fh);
    expect(stored('c')).toBe('clean');
  });

  it('answers ENOENT for nothing', async () => {
    await expect(fs.chmod('/none', 0o600)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.chown('/none', 1, 1)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.utimens('/none', 0, 0)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(memory.objects.size).toBe(0);
  });
});

describe('unsupported operations', () => {
  it('refuses hard links with EPERM', async () => {
    await put('f', 'x');
    await expect(fs.link('/f', '/g')).rejects.toMatchObject({ code: 'EPERM' });
    expect([...memory.objects.keys()]).toEqual(['f']);
  });
});

describe('mknod: FIFOs, sockets and devices, stored as s3fs stores them', () => {
  const alice = { uid: 1001, gid: 1002 };
  const chr13 = (1 << 8) | 3; // 1,3 in the kernel's encoding

  it('stores each as an empty object whose mode has the type, a device with its number, owned by its maker', async () => {
    await fs.mknod('/fifo', S_IFIFO | 0o644, 0, alice);
    await fs.mknod('/sock', S_IFSOCK | 0o755, 0, alice);
    await fs.mknod('/chr', S_IFCHR | 0o644, chr13);
    await fs.mknod('/blk', S_IFBLK | 0o660, (8 << 8) | 1);
    expect(stored('fifo')).toBe('');
    expect(metadata('fifo')).toMatchObject({ mode: '4516', uid: '1001', gid: '1002', mtime: formatTime(T0) });
    expect(metadata('fifo')).not.toHaveProperty('rdev');
    expect(metadata('sock')).toMatchObject({ mode: String(S_IFSOCK | 0o755) });
    expect(metadata('chr')).toMatchObject({ mode: '8612', rdev: String(chr13), uid: '1000', gid: '1000' });
    expect(metadata('blk')).toMatchObject({ mode: String(S_IFBLK | 0o660), rdev: '2049' });

    // This mount and a fresh one (from the store alone) show the same.
    for (const on of [fs, mount(memory)]) {
      expect(await on.getattr('/fifo')).toMatchObject({ kind: 'special', mode: S_IFIFO | 0o644, rdev: 0, size: 0, ...alice });
      expect(await on.getattr('/sock')).toMatchObject({ kind: 'special', mode: S_IFSOCK | 0o755, rdev: 0 });
      expect(await on.getattr('/chr')).toMatchObject({ kind: 'special', mode: S_IFCHR | 0o644, rdev: chr13, uid: 1000 });
      expect(await on.getattr('/blk')).toMatchObject({ kind: 'special', mode: S_IFBLK | 0o660, rdev: 2049 });
    }
  });

  it('makes an empty regular file for S_IFREG or no type, and refuses other types, bad numbers and names taken', async () => {
    await fs.mknod('/plain', S_IFREG | 0o600, 0, alice);
    await fs.mknod('/typeless', 0o640, 0);
    expect(await fs.getattr('/plain')).toMatchObject({ kind: 'file', mode: S_IFREG | 0o600, size: 0, ...alice });
    expect(metadata('typeless')).toMatchObject({ mode: String(S_IFREG | 0o640) });
    await expect(fs.mknod('/d', S_IFDIR | 0o755, 0)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.mknod('/l', S_IFLNK | 0o777, 0)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.mknod('/big', S_IFCHR | 0o644, 2 ** 32)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.mknod('/neg', S_IFCHR | 0o644, -1)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.mknod('/plain', S_IFIFO | 0o644, 0)).rejects.toMatchObject({ code: 'EEXIST' });
    expect([...memory.objects.keys()].sort()).toEqual(['plain', 'typeless']);
  });

  it('changes mode (keeping the type), owner and times in place, and renames and unlinks them as files', async () => {
    await fs.mknod('/chr', S_IFCHR | 0o644, chr13);
    await fs.chmod('/chr', 0o1600);
    await fs.chown('/chr', 42, 43);
    await fs.utimens('/chr', T0 - 5_000, T0 - 10_000);
    const expected = { kind: 'special', mode: S_IFCHR | 0o1600, rdev: chr13, uid: 42, gid: 43, mtimeMs: T0 - 10_000 };
    expect(await fs.getattr('/chr')).toMatchObject(expected);
    expect(metadata('chr')).toMatchObject({ mode: String(S_IFCHR | 0o1600), rdev: String(chr13), uid: '42' });
    expect(await mount(memory).getattr('/chr')).toMatchObject(expected);

    await fs.mkdir('/d', 0o755);
    await fs.rename('/chr', '/d/moved');
    await expect(fs.getattr('/chr')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await fs.getattr('/d/moved')).toMatchObject(expected);
    expect(await mount(memory).getattr('/d/moved')).toMatchObject(expected);
    // Renamed over a file, and a file over it.
    await fs.mknod('/fifo', S_IFIFO | 0o644, 0);
    await writeNewFile('/f', 'data');
    await fs.rename('/fifo', '/f');
    expect(await mount(memory).getattr('/f')).toMatchObject({ kind: 'special', mode: S_IFIFO | 0o644, size: 0 });
    await fs.unlink('/f');
    await fs.unlink('/d/moved');
    expect([...memory.objects.keys()]).toEqual(['d/']);
  });

  it('serves no data for them: open answers ENXIO, truncate EINVAL, readlink EINVAL', async () => {
    await put('fifo', '', { mode: '4516' }); // as s3fs 1.90 writes it
    await expect(fs.open('/fifo', O_RDONLY)).rejects.toMatchObject({ code: 'ENXIO' });
    await expect(fs.open('/fifo', O_WRONLY)).rejects.toMatchObject({ code: 'ENXIO' });
    await expect(fs.truncate('/fifo', 0)).rejects.toMatchObject({ code: 'EINVAL' });
    await expect(fs.readlink('/fifo')).rejects.toMatchObject({ code: 'EINVAL' });
    expect(stored('fifo')).toBe('');
  });

  it('lists them with their type once known (readdirplus), and an s3fs FIFO once looked up', async () => {
    await fs.mknod('/sock', S_IFSOCK | 0o755, 0);
    await put('s3fs-fifo', '', { mode: '4516', uid: '0', gid: '0' });
    await fs.getattr('/s3fs-fifo');
    const entries = await fs.readdirPlus('/');
    const modes = Object.fromEntries(entries.filter((e) => e.attrs).map((e) => [e.name, e.attrs!.mode]));
    expect(modes).toEqual({ sock: S_IFSOCK | 0o755, 's3fs-fifo': S_IFIFO | 0o644 });
  });

  it('gives new files, directories and symlinks to their maker too', async () => {
    await fs.release(await fs.create('/made', 0o644, alice));
    await fs.mkdir('/dir', 0o755, alice);
    await fs.symlink('made', '/link', alice);
    for (const key of ['made', 'dir/', 'link']) expect(metadata(key), key).toMatchObject({ uid: '1001', gid: '1002' });
    // Without a maker (a caller that is not FUSE), the mount's defaults.
    await fs.mkdir('/mine', 0o755);
    expect(metadata('mine/')).toMatchObject({ uid: '1000', gid: '1000' });
  });
});

describe('request budget of small files', () => {
  const total = () => [...memory.calls.values()].reduce((sum, n) => sum + n, 0);

  it('costs a sync close its PUT and nothing else: no HEAD after, no copy, no journal', async () => {
    memory.calls.clear();
    for (let i = 0; i < 10; i++) await writeNewFile(`/small-${i}`, randomBytes(4 * KiB - 1)); // under one part
    expect(calls('put')).toBe(10);
    expect(total()).toBe(10);
    expect(fs.journalStats).toEqual({ rounds: 0, fsyncs: 0, records: 0 });
    expect(await readLocalDir(stagingDir)).toEqual([]); // staging copies dropped at release
  });

  it('saves times and mode set on the open file (as tar does) in the same PUT', async () => {
    memory.calls.clear();
    const fh = await fs.create('/extracted', 0o600);
    await fs.write(fh, Buffer.from('from a tarball'), 0);
    await fs.utimens('/extracted', T0 - 86_400_000, T0 - 86_400_000);
    await fs.chmod('/extracted', 0o644);
    await fs.release(fh);
    expect(total()).toBe(1);
    expect(metadata('extracted')).toMatchObject({ mode: String(S_IFREG | 0o644), mtime: formatTime(T0 - 86_400_000) });
  });

  it('costs an async close no request, and its upload one PUT', async () => {
    const async = mount(faulty, { writeMode: 'async' });
    memory.calls.clear();
    const fh = await async.create('/later', 0o644);
    await async.write(fh, Buffer.from('journaled'), 0);
    await async.flush(fh);
    await async.release(fh);
    expect(async.journalStats).toEqual({ rounds: 1, fsyncs: 2, records: 1 }); // its record, bytes and all, in the journal log (and the new log's directory entry)
    await vi.waitFor(() => expect(stored('later')).toBe('journaled'));
    expect(total()).toBe(1);
  });
});

describe('directories in async mode (markers journaled, PUT in the background)', () => {
  const total = () => [...memory.calls.values()].reduce((sum, n) => sum + n, 0);
  const records = async () => (await readLogs(stagingDir)).records;

  it("costs tar's mkdir, then a directory's times and mode, one PUT in the background and none waited for", async () => {
    const async = mount(faulty, { writeMode: 'async' });
    await expect(async.getattr('/t')).rejects.toMatchObject({ code: 'ENOENT' }); // tar's lookup first
    memory.calls.clear();
    await async.mkdir('/t', 0o700);
    expect(total()).toBe(0);
    expect(await records()).toHaveLength(1); // journaled: a crash now leaves it to the next mount
    expect(await async.getattr('/t')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o700 });
    expect(await listing('/', async)).toEqual(['t']);
    await async.utimens('/t', 1_000_000, 2_000_000);
    await async.chmod('/t', 0o750);
    expect(calls('copy') + calls('put')).toBe(0);
    expect(await async.getattr('/t')).toMatchObject({ mode: S_IFDIR | 0o750, mtimeMs: 2_000_000 });
    await vi.waitFor(() => expect(metadata('t/')).toMatchObject({ mode: String(S_IFDIR | 0o750), mtime: formatTime(2_000_000) }));
    expect(calls('put')).toBe(1);
    expect(calls('copy')).toBe(0);
    await vi.waitFor(async () => expect(await records()).toEqual([]));
    expect(async.backgroundUploadCount).toBe(0);
    // Once saved, a change of an existing directory's metadata is journaled and PUT again.
    memory.calls.clear();
    await async.chmod('/t', 0o755);
    expect(total()).toBe(0);
    await vi.waitFor(() => expect(metadata('t/')).toMatchObject({ mode: String(S_IFDIR | 0o755) }));
    expect(calls('put')).toBe(1);
  });

  it('never saves the marker of a directory removed before it was saved, nor its journal record', async () => {
    const async = mount(faulty, { writeMode: 'async' });
    await async.mkdir('/gone', 0o755);
    await async.mkdir('/gone/inner', 0o755);
    await expect(async.rmdir('/gone')).rejects.toMatchObject({ code: 'ENOTEMPTY' }); // its subdirectory is on its way
    await async.rmdir('/gone/inner');
    await async.rmdir('/gone');
    expect(await records()).toEqual([]);
    await expect(async.getattr('/gone')).rejects.toMatchObject({ code: 'ENOENT' });
    await async.drain();
    expect([...memory.objects.keys()].filter((k) => k.startsWith('gone'))).toEqual([]);
  });

  it('moves directories whose markers wait, and their subdirectories, with their metadata', async () => {
    const async = mount(faulty, { writeMode: 'async' });
    await async.mkdir('/a', 0o755);
    await async.mkdir('/a/b', 0o755);
    await async.chmod('/a/b', 0o700);
    const fh = await async.create('/a/b/f', 0o644);
    await async.write(fh, Buffer.from('inside'), 0);
    await async.release(fh);
    await async.rename('/a', '/c');
    expect(await async.getattr('/c/b')).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o700 });
    expect((await readFile('/c/b/f', async)).toString()).toBe('inside');
    await async.drain();
    expect([...memory.objects.keys()].sort()).toEqual(['c/', 'c/b/', 'c/b/f']);
    expect(metadata('c/b/')).toMatchObject({ mode: String(S_IFDIR | 0o700) });
    await vi.waitFor(async () => expect(await records()).toEqual([]));
  });
});

describe('closes of a new file before anything is written (FLUSH of a duplicate descriptor)', () => {
  const total = () => [...memory.calls.values()].reduce((sum, n) => sum + n, 0);
  const stillOpen = async () => true;
  const lastClose = async () => false;

  it("costs a shell's `echo x > f` one PUT: the duplicate's close before the write is left to the last close", async () => {
    memory.calls.clear();
    const fh = await fs.create('/echoed', 0o644);
    await fs.flush(fh, stillOpen); // the shell closes the descriptor it dup'ed onto stdout
    expect(total()).toBe(0);
    expect(stored('echoed')).toBeUndefined();
    await fs.write(fh, Buffer.from('x\n'), 0);
    await fs.flush(fh, lastClose);
    expect(stored('echoed')).toBe('x\n'); // durable when the last close returns
    await fs.release(fh);
    expect(calls('put')).toBe(1);
    expect(total()).toBe(1);
  });

  it('makes a file created and closed with nothing written (touch) exist in the store when its close returns', async () => {
    const fh = await fs.create('/touched', 0o600);
    await fs.flush(fh, lastClose);
    expect(stored('touched')).toBe('');
    expect(metadata('touched')).toMatchObject({ mode: String(S_IFREG | 0o600) });
    await fs.release(fh);
    expect(calls('put')).toBe(1);
  });

  it('makes `: > f` (two closes, nothing written) exist after the last close, with one PUT', async () => {
    memory.calls.clear();
    const fh = await fs.create('/emptied', 0o644);
    await fs.flush(fh, stillOpen);
    await fs.flush(fh, lastClose);
    expect(stored('emptied')).toBe('');
    await fs.release(fh);
    expect(total()).toBe(1);
  });

  it('saves at the close of a duplicate once something was written, or when nothing tells whether another descriptor is open', async () => {
    const written = await fs.create('/written', 0o644);
    await fs.write(written, Buffer.from('data'), 0);
    await fs.flush(written, stillOpen); // bytes written before a close are durable at that close
    expect(stored('written')).toBe('data');
    await fs.release(written);

    const unknown = await fs.create('/unknown', 0o644);
    await fs.flush(unknown); // no way to ask (a release's flush): save
    expect(stored('unknown')).toBe('');
    await fs.release(unknown);

    const truncated = await fs.create('/truncated', 0o644);
    await fs.ftruncate(truncated, 3);
    await fs.flush(truncated, stillOpen);
    expect(stored('truncated')).toBe('\0\0\0');
    await fs.release(truncated);
  });

  it('asks whether another descriptor is open only for a file nothing was written to', async () => {
    const asked = vi.fn(stillOpen);
    const fh = await fs.create('/asked', 0o644);
    await fs.write(fh, Buffer.from('data'), 0);
    await fs.flush(fh, asked);
    await fs.release(fh);
    expect(asked).not.toHaveBeenCalled();
  });

  it('journals an async close once: a release after its flush, with nothing changed since, adds no record', async () => {
    const async = mount(faulty, { writeMode: 'async', retryDelayMs: 600_000 });
    faulty.fail('put', { times: 1 }); // the background upload fails, and waits (long) for its next try
    const fh = await async.create('/once', 0o644);
    await async.flush(fh, stillOpen);
    await async.write(fh, Buffer.from('journaled once'), 0);
    await async.flush(fh, lastClose);
    await vi.waitFor(() => expect(async.backgroundUploadCount).toBe(0)); // tried, failed, waiting
    await async.release(fh);
    expect(async.journalStats.records).toBe(1);
    expect(stored('once')).toBeUndefined();
    await async.drain();
    expect(stored('once')).toBe('journaled once');
  });
});

describe('changes made while an upload runs', () => {
  it('saves times set while the background upload of an async close was running (as tar sets them after close)', async () => {
    let letPutsGo!: () => void;
    const held = new Promise<void>((resolve) => (letPutsGo = resolve));
    let putStarted!: () => void;
    const started = new Promise<void>((resolve) => (putStarted = resolve));
    const holding: ObjectStore = Object.assign(Object.create(faulty) as ObjectStore, {
      put: async (...args: Parameters<ObjectStore['put']>) => {
        putStarted();
        await held;
        return faulty.put(...args);
      },
    });
    const async = mount(holding, { writeMode: 'async' });
    const fh = await async.create('/extracted', 0o644);
    await async.write(fh, Buffer.from('from a tarball'), 0);
    await async.flush(fh);
    const released = async.release(fh); // waits for the upload, which holds the file
    await started; // the upload has read the metadata it sends
    await async.utimens('/extracted', T0 - 86_400_000, T0 - 86_400_000);
    letPutsGo();
    await released;
    await vi.waitFor(() => expect(metadata('extracted')).toMatchObject({ mtime: formatTime(T0 - 86_400_000) }));
    expect((await async.getattr('/extracted')).mtimeMs).toBe(T0 - 86_400_000);
  });

  it('saves a chmod made while the background upload of a closed and released file was running', async () => {
    let letPutsGo!: () => void;
    const held = new Promise<void>((resolve) => (letPutsGo = resolve));
    let putStarted!: () => void;
    const started = new Promise<void>((resolve) => (putStarted = resolve));
    let puts = 0;
    const holding: ObjectStore = Object.assign(Object.create(faulty) as ObjectStore, {
      put: async (...args: Parameters<ObjectStore['put']>) => {
        puts += 1;
        if (puts === 1) throw new Error('refused once'); // the release finds the file journaled and returns
        putStarted();
        await held;
        return faulty.put(...args);
      },
    });
    const async = mount(holding, { writeMode: 'async', retryDelayMs: 1 });
    const fh = await async.create('/closed', 0o644);
    await async.write(fh, Buffer.from('data'), 0);
    await async.flush(fh);
    await async.release(fh);
    await started; // the second try, with the mode of the close
    await async.chmod('/closed', 0o600);
    letPutsGo();
    await vi.waitFor(() => expect(metadata('closed')).toMatchObject({ mode: String(S_IFREG | 0o600) }));
    expect(stored('closed')).toBe('data');
  });
});

describe('upload failures', () => {
  it('keeps the staged copy of a failed close, serves it, and uploads it once the store takes it', async () => {
    const retrying = mount(faulty, { retryDelayMs: 0 });
    faulty.fail('put', { times: 2, code: 'Transient' }); // the close's upload, then the release's
    const fh = await retrying.create('/kept', 0o644);
    await retrying.write(fh, Buffer.from('acknowledged? no, but kept'), 0);
    await expect(retrying.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    await expect(retrying.release(fh)).rejects.toMatchObject({ code: 'EIO' });
    // The third try, in the background, goes through; then the staged copy goes.
    await vi.waitFor(() => expect(stored('kept')).toBe('acknowledged? no, but kept'));
    await vi.waitFor(async () => expect(await readLocalDir(stagingDir)).toEqual([]));
    expect(retrying.pendingFiles).toEqual([]);
  });

  it('serves a failed close from its staged copy until the store takes it, also at drain', async () => {
    faulty.fail('put', { times: 1_000, code: 'Transient' });
    const fh = await fs.create('/waiting', 0o644);
    await fs.write(fh, Buffer.from('not lost'), 0);
    await expect(fs.release(fh)).rejects.toMatchObject({ code: 'EIO' });
    expect(await readLocalDir(stagingDir)).toEqual([]); // a small new file's copy is kept in memory
    expect((await fs.getattr('/waiting')).size).toBe(8);
    expect((await readFile('/waiting')).toString()).toBe('not lost');
    expect(await listing('/')).toEqual(['waiting']);
    expect(fs.pendingFiles).toEqual(['/waiting']);
    await expect(fs.drain()).rejects.toMatchObject({ code: 'EIO' });
    faulty.clear();
    await fs.drain();
    expect(stored('waiting')).toBe('not lost');
    expect(await readLocalDir(stagingDir)).toEqual([]);
  });

  it('drops the staged copy of a failed close when the file is deleted, and never uploads it', async () => {
    faulty.fail('put', { times: 1_000, code: 'Transient' });
    const fh = await fs.create('/doomed', 0o644);
    await fs.write(fh, Buffer.from('bye'), 0);
    await expect(fs.release(fh)).rejects.toMatchObject({ code: 'EIO' });
    await fs.unlink('/doomed');
    expect(await readLocalDir(stagingDir)).toEqual([]);
    faulty.clear();
    await fs.drain();
    expect(memory.objects.has('doomed')).toBe(false);
    await expect(fs.getattr('/doomed')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('lets a failed close be written again, and never uploads the rewrite half done', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout'] });
    try {
      faulty.fail('put', { code: 'Transient' });
      const first = await fs.create('/again', 0o644);
      await fs.write(first, Buffer.from('first try'), 0);
      await expect(fs.release(first)).rejects.toMatchObject({ code: 'EIO' });
      memory.calls.clear();
      const second = await fs.open('/again', O_RDWR | O_TRUNC);
      await fs.write(second, Buffer.from('half'), 0);
      await vi.runAllTimersAsync(); // the background try comes while the rewrite is open
      await fs.write(second, Buffer.from(' and the rest'), 4);
      await fs.release(second);
      expect(stored('again')).toBe('half and the rest');
      expect(calls('put')).toBe(1); // the rewrite's close alone
    } finally {
      vi.useRealTimers();
    }
  });

  it('answers a full staging disk with ENOSPC, not EIO', async () => {
    const { toFsError } = await import('../../src/fs/errors.js');
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    expect(toFsError(full, '/f')).toMatchObject({ code: 'ENOSPC' });
    expect(toFsError(new Error('something else'), '/f')).toMatchObject({ code: 'EIO' });
  });

  it('reports a failed flush as EIO, keeps the data, and succeeds on retry', async () => {
    faulty.fail('put', { code: 'Transient' });
    const fh = await fs.create('/f', 0o644);
    await fs.write(fh, Buffer.from('precious'), 0);
    await expect(fs.flush(fh)).rejects.toMatchObject({ name: 'FsError', code: 'EIO' });
    expect(memory.objects.has('f')).toBe(false);
    expect(fs.pendingFiles).toEqual(['/f']);

    await fs.flush(fh);
    expect(stored('f')).toBe('precious');
    expect(fs.pendingFiles).toEqual([]);
    await fs.release(fh);
  });

  it('reports a refused upload as EACCES', async () => {
    faulty.fail('put', { code: 'AccessDenied' });
    const fh = await fs.create('/f', 0o644);
    await fs.write(fh, Buffer.from('x'), 0);
    await expect(fs.release(fh)).rejects.toMatchObject({ code: 'EACCES' });
    expect(memory.objects.has('f')).toBe(false);
  });

  it('leaves no multipart upload behind after a failed part', async () => {
    faulty.fail('uploadPart', { nth: 2, times: 1_000, code: 'Transient' });
    const data = randomBytes(PART * 3 + 1);
    const fh = await fs.create('/big', 0o644);
    await fs.write(fh, data, 0);
    await expect(fs.flush(fh)).rejects.toMatchObject({ code: 'EIO' });
    expect(memory.uploads.size).toBe(0);
    expect(memory.objects.has('big')).toBe(false);

    faulty.clear();
    await fs.release(fh);
    expect(memory.objects.get('big')?.body.equals(data)).toBe(true);
    expect(memory.uploads.size).toBe(0);
  });

  it('leaves no multipart upload behind after a failed completion', async () => {
    faulty.fail('completeMultipartUpload', { times: 2, code: 'Transient' }); // the stream's, then the retry's
    const fh = await fs.create('/big', 0o644);
    await fs.write(fh, randomBytes(PART * 2 + 1), 0);
    await expect(fs.fsync(fh)).rejects.toMatchObject({ code: 'EIO' });
    expect(memory.uploads.size).toBe(0);
    expect(memory.objects.has('big')).toBe(false);
    await fs.release(fh);
  });

  it('recovers from a streamed part that failed by uploading the whole file at close', async () => {
    faulty.fail('uploadPart', { nth: 2, code: 'Transient' });
    const data = randomBytes(PART * 3 + 1);
    const fh = await fs.create('/big', 0o644);
    for (let at = 0; at < data.length; at += 128 * 1024) await fs.write(fh, data.subarray(at, at + 128 * 1024), at);
    await fs.release(fh);
    expect(memory.objects.get('big')?.body.equals(data)).toBe(true);
    expect(memory.uploads.size).toBe(0);
  });

  it('leaves the source of a failed directory rename where it was', async () => {
    for (let i = 0; i < 20; i++) await put(`src/${i}`, `${i}`);
    faulty.fail('copy', { nth: 5, code: 'Transient' });
    await expect(fs.rename('/src', '/dst')).rejects.toMatchObject({ code: 'EIO' });
    for (let i = 0; i < 20; i++) expect(stored(`src/${i}`)).toBe(`${i}`);
    expect(await listing('/src')).toHaveLength(20);
  });

  it('keeps an open file under its old name when its upload fails during rename', async () => {
    const fh = await fs.create('/draft', 0o644);
    await fs.write(fh, Buffer.from('unsaved'), 0);
    faulty.fail('put', { code: 'Transient' });
    await expect(fs.rename('/draft', '/final')).rejects.toMatchObject({ code: 'EIO' });
    expect(memory.objects.has('final')).toBe(false);
    expect((await fs.getattr('/draft')).size).toBe(7);
    await fs.release(fh);
    expect(stored('draft')).toBe('unsaved');
    expect(memory.objects.has('final')).toBe(false);
  });

  it('drains every pending file for unmount', async () => {
    const a = await fs.create('/a', 0o644);
    const b = await fs.create('/b', 0o644);
    await fs.write(a, Buffer.from('A'), 0);
    await fs.write(b, Buffer.from('B'), 0);
    expect(fs.pendingFiles.sort()).toEqual(['/a', '/b']);
    await fs.drain();
    expect(stored('a')).toBe('A');
    expect(stored('b')).toBe('B');
    expect(fs.pendingFiles).toEqual([]);
    await fs.release(a);
    await fs.release(b);
  });
});

describe('metadata cache TTL', () => {
  it('shows a change made directly in the store only after the file TTL', async () => {
    await put('f', '123');
    expect((await fs.getattr('/f')).size).toBe(3);
    await put('f', '1234567');

    expect((await fs.getattr('/f')).size).toBe(3);
    clock.advance(FILE_TTL - 1);
    expect((await fs.getattr('/f')).size).toBe(3);
    clock.advance(2);
    expect((await fs.getattr('/f')).size).toBe(7);
    expect((await readFile('/f')).toString()).toBe('1234567');
  });

  it('keeps "no such file" for the negative TTL', async () => {
    await expect(fs.getattr('/late')).rejects.toMatchObject({ code: 'ENOENT' });
    await put('late', 'here now');
    await expect(fs.getattr('/late')).rejects.toMatchObject({ code: 'ENOENT' });
    clock.advance(NEGATIVE_TTL + 1);
    expect((await fs.getattr('/late')).size).toBe(8);
  });

  it('keeps a directory for the directory TTL after another client removed it', async () => {
    await put('d/', '');
    expect((await fs.getattr('/d')).kind).toBe('directory');
    await memory.deleteMany(['d/']);
    clock.advance(FILE_TTL + 1);
    expect((await fs.getattr('/d')).kind).toBe('directory');
    clock.advance(DIR_TTL);
    await expect(fs.getattr('/d')).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('shows changes made through the mount at once', async () => {
    await put('f', '123');
    expect((await fs.getattr('/f')).size).toBe(3);
    const fh = await fs.open('/f', O_WRONLY | O_APPEND);
    await fs.write(fh, Buffer.from('45'), 0);
    await fs.release(fh);
    expect((await fs.getattr('/f')).size).toBe(5);

    await expect(fs.getattr('/made')).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.mkdir('/made', 0o755);
    expect((await fs.getattr('/made')).kind).toBe('directory');
  });

  it('shares one lookup between concurrent getattr calls', async () => {
    await put('f', 'x');
    memory.calls.clear();
    const all = await Promise.all(Array.from({ length: 8 }, () => fs.getattr('/f')));
    expect(all.map((a) => a.size)).toEqual(Array(8).fill(1));
    expect(calls('head')).toBe(1); // a file that exists: its HEAD alone
    expect(calls('list')).toBe(0);
  });

  it('looks up a file whose entry expired with one request, and finds what replaced it all the same', async () => {
    await put('big', Buffer.alloc(100 * KiB));
    await put('gone', 'x');
    await put('now-dir', 'x');
    for (const path of ['/big', '/gone', '/now-dir']) await fs.getattr(path);
    clock.advance(FILE_TTL + 1);
    memory.calls.clear();
    expect((await fs.getattr('/big')).size).toBe(100 * KiB);
    expect(calls('head') + calls('get') + calls('list')).toBe(1); // not HEAD key, HEAD key/ and LIST

    await memory.deleteMany(['gone', 'now-dir']);
    await put('now-dir/inner', 'x');
    await expect(fs.getattr('/gone')).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await fs.getattr('/now-dir')).kind).toBe('directory');
  });

  it('reads at most 64 KiB of a file listed as small, even if it has grown since', async () => {
    await put('grows/f', 'small');
    await fs.readdir('/grows');
    await put('grows/f', Buffer.alloc(5 * 1024 * KiB, 1));
    const read: number[] = [];
    const get = memory.get.bind(memory);
    memory.get = async (key, options) => {
      const result = await get(key, options);
      read.push(result.body.length);
      return result;
    };
    expect((await fs.getattr('/grows/f')).size).toBe(5 * 1024 * KiB);
    expect(read).toEqual([64 * KiB]);
  });

  it('serves repeated lookups from the cache', async () => {
    await put('f', 'x');
    await fs.getattr('/f');
    memory.calls.clear();
    for (let i = 0; i < 10; i++) await fs.getattr('/f');
    expect(calls('head') + calls('list')).toBe(0);
  });
});

describe('stopping', () => {
  it('refuses changes with EROFS once writes are stopped, and still serves reads and closes', async () => {
    await put('kept', 'data');
    const writer = await fs.create('/late', 0o644);
    await fs.write(writer, Buffer.from('before'), 0);
    fs.stopWrites();
    await expect(fs.write(writer, Buffer.from('after'), 6)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(fs.create('/new', 0o644)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(fs.mkdir('/dir', 0o755)).rejects.toMatchObject({ code: 'EROFS' });
    await expect(fs.unlink('/kept')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(fs.rename('/kept', '/moved')).rejects.toMatchObject({ code: 'EROFS' });
    await expect(fs.open('/kept', O_RDWR)).rejects.toMatchObject({ code: 'EROFS' });
    await fs.release(writer); // what was written before is still uploaded
    expect(stored('late')).toBe('before');
    const reader = await fs.open('/kept', O_RDONLY);
    expect((await readHandle(reader, 4)).toString()).toBe('data');
    await fs.release(reader);
  });
});

describe('directories made by this mount', () => {
  it('answer lookups of names never made in them without asking the store', async () => {
    await fs.mkdir('/fresh', 0o755);
    memory.calls.clear();
    await expect(fs.getattr('/fresh/nothing')).rejects.toMatchObject({ code: 'ENOENT' });
    await fs.mkdir('/fresh/sub', 0o755); // mkdir -p: its own EEXIST check is free too
    const fh = await fs.create('/fresh/sub/file', 0o644);
    await fs.write(fh, Buffer.from('x'), 0);
    await fs.release(fh);
    expect(calls('head') + calls('list') + calls('get')).toBe(0);
    expect(calls('put')).toBe(2); // the marker of sub/ and the file
    expect((await fs.getattr('/fresh/sub/file')).size).toBe(1);
    expect(await listing('/fresh/sub')).toEqual(['file']);
  });

  it('ask the store again once the directory TTL has passed', async () => {
    await fs.mkdir('/aging', 0o755);
    await put('aging/from-elsewhere', 'e'); // another client
    await expect(fs.getattr('/aging/from-elsewhere')).rejects.toMatchObject({ code: 'ENOENT' });
    clock.advance(DIR_TTL + NEGATIVE_TTL + 1);
    expect((await fs.getattr('/aging/from-elsewhere')).size).toBe(1);
  });
});

describe('readdirPlus: the names with the attributes known now', () => {
  const total = () => calls('head') + calls('get') + calls('list');
  /** The entries of `path` but '.' and '..', by name: the attributes, or null where none. */
  async function plus(path: string, on: FileSystem = fs) {
    const entries = await on.readdirPlus(path);
    expect(entries.slice(0, 2)).toEqual([{ name: '.' }, { name: '..' }]);
    return Object.fromEntries(entries.slice(2).map((e) => [e.name, e.attrs ?? null]));
  }

  it('gives a fresh listing no attributes and asks nothing per entry: it lacks the POSIX metadata', async () => {
    for (let i = 0; i < 20; i++) await put(`d/f${i}`, 'x', { mode: String(S_IFREG | 0o600) });
    await put('d/sub/inner', 'x');
    await fs.getattr('/d');
    memory.calls.clear();
    const entries = await plus('/d');
    expect(Object.keys(entries).sort()).toEqual([...Array.from({ length: 20 }, (_, i) => `f${i}`), 'sub'].sort());
    expect(Object.values(entries).every((attrs) => attrs === null)).toBe(true);
    expect(total()).toBe(1); // the LIST
  });

  it('gives the attributes a lookup would answer at once: looked up, written here, open, or revalidated by the listing', async () => {
    await put('d/looked', 'x', { mode: String(S_IFREG | 0o600), uid: '7', gid: '8' });
    await put('d/other', 'yy', { mode: String(S_IFREG | 0o640) });
    await fs.readdir('/d');
    await fs.getattr('/d/looked');
    await vi.waitFor(() => expect(calls('head') + calls('get')).toBeGreaterThanOrEqual(2)); // other, fetched ahead
    const written = await fs.create('/d/written', 0o604);
    await fs.write(written, Buffer.from('abc'), 0);
    await fs.release(written);
    const open = await fs.create('/d/open', 0o600);
    await fs.write(open, Buffer.from('not yet stored'), 0);

    const entries = await plus('/d');
    expect(Object.keys(entries).sort()).toEqual(['looked', 'open', 'other', 'written']);
    for (const name of Object.keys(entries)) expect(entries[name]).toEqual(await fs.getattr(`/d/${name}`));
    expect(entries.looked).toMatchObject({ kind: 'file', mode: S_IFREG | 0o600, uid: 7, gid: 8, size: 1 });
    expect(entries.other).toMatchObject({ mode: S_IFREG | 0o640, size: 2 });
    expect(entries.written).toMatchObject({ mode: S_IFREG | 0o604, size: 3 });
    expect(entries.open).toMatchObject({ mode: S_IFREG | 0o600, size: 14 });
    await fs.release(open);

    // Expired: the listing shows the same versions, which revalidates them, with no request per entry.
    clock.advance(DIR_TTL + 1);
    memory.calls.clear();
    const again = await plus('/d');
    expect(again.looked).toMatchObject({ mode: S_IFREG | 0o600, uid: 7 });
    expect(again.other).toMatchObject({ mode: S_IFREG | 0o640 });
    // A file written here too: its ETag, and a Last-Modified no later than the write's answer.
    expect(again.written).toMatchObject({ mode: S_IFREG | 0o604, size: 3 });
    expect(calls('head') + calls('get')).toBeLessThanOrEqual(1); // /d itself (its entry expired too)
  });

  it('gives no attributes for an entry another client changed, and drops one it deleted, once the TTL has passed', async () => {
    await put('d/changed', 'x', { mode: String(S_IFREG | 0o600) });
    await put('d/deleted', 'x');
    await fs.readdir('/d');
    await fs.getattr('/d/changed');
    await fs.getattr('/d/deleted');
    expect(Object.keys(await plus('/d')).sort()).toEqual(['changed', 'deleted']);
    // A chmod by another client copies the object onto itself: same ETag, new Last-Modified.
    await memory.copy('d/changed', 'd/changed', { metadata: { mode: String(S_IFREG | 0o644) } });
    memory.objects.get('d/changed')!.lastModified = new Date(Date.now() + 5_000);
    await memory.deleteMany(['d/deleted']);
    clock.advance(DIR_TTL + 1);
    expect(await plus('/d')).toEqual({ changed: null });
    expect((await fs.getattr('/d/changed')).mode).toBe(S_IFREG | 0o644);
    expect((await plus('/d')).changed).toMatchObject({ mode: S_IFREG | 0o644 });
  });

  it('answers ENOTDIR for a file and ENOENT for nothing, as readdir does', async () => {
    await put('f', 'x');
    await expect(fs.readdirPlus('/f')).rejects.toMatchObject({ code: 'ENOTDIR' });
    await expect(fs.readdirPlus('/missing')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('request budget of lookups', () => {
  const total = () => calls('head') + calls('get') + calls('list');

  it('a cold stat of a file that exists costs one request; of a directory or a missing name, three', async () => {
    await put('there', 'x', { mode: String(S_IFREG | 0o600) });
    await put('dir/inner', 'x');
    memory.calls.clear();
    expect(await fs.getattr('/there')).toMatchObject({ kind: 'file', mode: S_IFREG | 0o600 });
    expect(calls('head')).toBe(1);
    expect(total()).toBe(1);

    fs = mount(faulty); // nothing known of /
    memory.calls.clear();
    expect((await fs.getattr('/dir')).kind).toBe('directory');
    expect(total()).toBe(3); // HEAD dir (missing), then HEAD dir/ and LIST dir/ at once
    fs = mount(faulty);
    memory.calls.clear();
    await expect(fs.getattr('/nothing')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(total()).toBe(3);
  });

  it('revalidates a directory whose entries were all looked up with its LIST, not a HEAD per entry', async () => {
    for (let i = 0; i < 50; i++) await put(`d/f${i}`, 'x', { mode: String(S_IFREG | 0o640), uid: '7' });
    await fs.readdir('/d');
    for (let i = 0; i < 50; i++) await fs.getattr(`/d/f${i}`);
    await vi.waitFor(() => expect(calls('head') + calls('get')).toBeGreaterThanOrEqual(50));
    clock.advance(DIR_TTL + 1); // every entry has expired
    memory.calls.clear();

    await fs.readdir('/d');
    for (let i = 0; i < 50; i++) expect(await fs.getattr(`/d/f${i}`)).toMatchObject({ mode: S_IFREG | 0o640, uid: 7 });
    // Nothing per entry: /d itself (its entry expired too) is its marker's HEAD and first key.
    expect(calls('head') + calls('get')).toBe(1);
    expect(calls('list')).toBe(2);
  });

  it('still sees another client change metadata: a new version is asked for again', async () => {
    await put('d/f', 'x', { mode: String(S_IFREG | 0o600) });
    await fs.readdir('/d');
    expect((await fs.getattr('/d/f')).mode).toBe(S_IFREG | 0o600);
    // A chmod by s3fs copies the object onto itself: same ETag (same body), new Last-Modified.
    await memory.copy('d/f', 'd/f', { metadata: { mode: String(S_IFREG | 0o644) } });
    memory.objects.get('d/f')!.lastModified = new Date(Date.now() + 5_000);
    clock.advance(DIR_TTL + 1);
    await fs.readdir('/d');
    expect((await fs.getattr('/d/f')).mode).toBe(S_IFREG | 0o644);
  });

  it('answers the stat of many named files in one directory from one listing (a small first page, then the rest) and parallel HEADs', async () => {
    const name = (i: number) => `/many/f${String(i).padStart(3, '0')}`;
    for (let i = 0; i < 200; i++) await put(name(i).slice(1), 'x');
    await fs.getattr('/many');
    memory.calls.clear();
    for (let i = 0; i < 200; i++) expect((await fs.getattr(name(i))).size).toBe(1);
    // Two cold lookups, then a listing of the directory (a first page of 100 entries, then the
    // rest); the others one request each at most, most of them sent in parallel ahead of the
    // stat that asks.
    expect(calls('list')).toBe(2);
    expect(total()).toBeLessThanOrEqual(200 + 2);

    // The listing's other entries are fetched ahead of the stats, paced by them: after each
    // stat, the next window's are asked for; in all, one request per file.
    fs = mount(faulty);
    await fs.getattr('/many');
    memory.calls.clear();
    const fetched = () => calls('head') + calls('get');
    for (let i = 0; i < 200; i++) {
      await fs.getattr(name(i));
      // The first cold lookups list the directory; the prefetch starts at the first stat of an
      // entry that listing left without metadata.
      if (i >= 3) await vi.waitFor(() => expect(fetched()).toBeGreaterThanOrEqual(Math.min(200, i + PREFETCH.window)));
    }
    expect(fetched()).toBe(200);
    expect(calls('list')).toBe(2);
  });

  it('answers a name missing from a directory listed in full without a request, until the negative TTL', async () => {
    await put('listed/a', 'x');
    await fs.readdir('/listed');
    memory.calls.clear();
    await expect(fs.getattr('/listed/b')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(total()).toBe(0); // the listing showed every name there
    // Made here since: it exists, with no request.
    const fh = await fs.create('/listed/new', 0o644);
    await fs.release(fh);
    memory.calls.clear();
    expect((await fs.getattr('/listed/new')).size).toBe(0);
    expect(total()).toBe(0);
    // Another client's new file and directory show once the negative TTL has passed, as a
    // cached "missing" would.
    await put('listed/c', 'y');
    await put('listed/dir/inner', 'z');
    await expect(fs.getattr('/listed/c')).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(fs.getattr('/listed/dir')).rejects.toMatchObject({ code: 'ENOENT' });
    clock.advance(NEGATIVE_TTL + 1);
    expect((await fs.getattr('/listed/c')).size).toBe(1);
    expect((await fs.getattr('/listed/dir')).kind).toBe('directory');
  });

  it('lists a directory after two cold lookups in it, so a loop creating files asks no HEAD per file', async () => {
    await put('loop/existing', 'x');
    await fs.getattr('/loop');
    memory.calls.clear();
    for (let i = 0; i < 20; i++) {
      await expect(fs.getattr(`/loop/new${i}`)).rejects.toMatchObject({ code: 'ENOENT' });
      const fh = await fs.create(`/loop/new${i}`, 0o644, undefined, O_WRONLY | O_CREAT | O_TRUNC);
      await fs.write(fh, Buffer.from('data'), 0);
      await fs.release(fh);
    }
    expect(calls('put')).toBe(20);
    // Two cold lookups (three requests each), during which the second starts the listing; then
    // nothing but the PUTs.
    expect(calls('head')).toBe(4);
    expect(calls('list')).toBe(3);
    expect(await listing('/loop')).toEqual(['existing', ...Array.from({ length: 20 }, (_, i) => `new${i}`)].sort());
  });

  it('1,000 creates in a directory this mount made cost no HEAD, over many TTLs: one LIST every half TTL', async () => {
    await fs.mkdir('/made', 0o755);
    memory.calls.clear();
    for (let i = 0; i < 1000; i++) {
      await expect(fs.getattr(`/made/f${i}`)).rejects.toMatchObject({ code: 'ENOENT' });
      const fh = await fs.create(`/made/f${i}`, 0o644, undefined, O_WRONLY | O_CREAT | O_TRUNC);
      await fs.write(fh, Buffer.from(`file ${i}`), 0);
      await fs.flush(fh);
      await fs.release(fh);
      clock.advance(5); // 5 s in all: ten negative TTLs, more than two directory TTLs
    }
    expect(calls('put')).toBe(1000);
    // No HEAD per file: only the directory's own entry, revalidated once a directory TTL (its
    // marker's HEAD and first key) by the listings that renew what is known of its names, each
    // once half of that knowledge's time has passed.
    expect(calls('head') + calls('get')).toBe(Math.floor(5000 / DIR_TTL));
    const renewals = calls('list') - Math.floor(5000 / DIR_TTL);
    expect(renewals).toBeGreaterThanOrEqual(5000 / NEGATIVE_TTL - 1);
    expect(renewals).toBeLessThanOrEqual(5000 / (NEGATIVE_TTL / 2) + 1);
    expect((await listing('/made')).length).toBe(1000);
  });

  it('keeps the data of a file another client put within the TTL when a create appends to it', async () => {
    await fs.mkdir('/made', 0o755);
    await put('made/log', 'theirs\n');
    // The directory is known to hold nothing but what this mount made: "missing", no request.
    memory.calls.clear();
    await expect(fs.getattr('/made/log')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(total()).toBe(0);
    // `>> log`: a create that keeps what is there asks the store, and opens the file it finds.
    const fh = await fs.create('/made/log', 0o644, undefined, O_WRONLY | O_CREAT | O_APPEND);
    expect(calls('head')).toBe(1);
    await fs.write(fh, Buffer.from('mine\n'), 0);
    await fs.release(fh);
    expect(stored('made/log')).toBe('theirs\nmine\n');
    // One that must make a new file, or truncates, replaces it without asking (as if the other
    // client's put had come first): `>`, `cp`, `tar x`.
    await put('made/other', 'theirs');
    memory.calls.clear();
    const truncating = await fs.create('/made/other', 0o644, undefined, O_WRONLY | O_CREAT | O_TRUNC);
    await fs.write(truncating, Buffer.from('mine'), 0);
    await fs.release(truncating);
    expect(calls('head')).toBe(0);
    expect(stored('made/other')).toBe('mine');
    // A create that keeps what is there, of a name that is new indeed, makes it: one HEAD.
    memory.calls.clear();
    const fresh = await fs.create('/made/fresh', 0o644, undefined, O_RDWR | O_CREAT);
    await fs.write(fresh, Buffer.from('new'), 0);
    await fs.release(fresh);
    expect(calls('head')).toBe(1);
    expect(stored('made/fresh')).toBe('new');
  });
});
