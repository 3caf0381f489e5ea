// The libfuse 3 addon on a real mount of a small in-memory file system (test/helpers/
// memory-fuse.ts), driven by other processes: how JS answers reach the kernel, 1 MiB writes,
// paged directories, both times of utimens, unmounting with operations in flight, a clean exit,
// and many concurrent operations from several processes.
import { createHash, randomBytes } from 'node:crypto';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { afterEach, describe, expect, it } from 'vitest';

import { isMounted } from '../helpers/objmount.js';
import { FuseSession, dropFromPageCache, largeBuffer, sha256OffThread } from '../../src/fuse/binding.js';
import { MemoryTree, mountMemory, type MemoryMount } from '../helpers/memory-fuse.js';

const execFileAsync = promisify(execFile);

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command in a process of its own (the test's JS thread serves the mount). */
async function sh(command: string, timeoutMs = 30_000): Promise<Result> {
  try {
    const { stdout, stderr } = await execFileAsync('sh', ['-c', command], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const mounts: MemoryMount[] = [];
afterEach(async () => {
  await Promise.all(mounts.splice(0).map((m) => m.unmount()));
});

async function mount(...args: Parameters<typeof mountMemory>): Promise<MemoryMount> {
  const m = await mountMemory(...args);
  mounts.push(m);
  return m;
}

describe('answers from JS', () => {
  it('pass a negative errno through, and turn a throwing op or a malformed answer into EIO', async () => {
    const tree = new MemoryTree();
    const thrown: string[] = [];
    const m = await mount(
      tree.operations({
        getattr: (path: string, cb: (code: unknown, stat?: unknown) => void) => {
          if (path === '/') return cb(0, { mode: 0o40755, nlink: 2 });
          if (path === '/throws') throw new Error('op bug');
          if (path === '/not-a-number') return cb('oops');
          if (path === '/not-a-stat') return cb(0, 'stat');
          // Numbers their C types cannot hold (a cast would be undefined behaviour).
          if (path === '/huge-uid') return cb(0, { mode: 0o100644, uid: 2 ** 40 });
          if (path === '/negative-size') return cb(0, { mode: 0o100644, size: -1 });
          if (path === '/far-mtime') return cb(0, { mode: 0o100644, mtime: 1e20 });
          if (path === '/huge-rdev') return cb(0, { mode: 0o20644, rdev: 2 ** 32 }); // FUSE carries 32 bits
          if (path === '/twice') {
            cb(0, { mode: 0o100644, size: 3 });
            return cb(0, { mode: 0o100644, size: 99 }); // ignored: the first answer stands
          }
          cb(-2);
        },
      }),
      { onOperationError: (op, error) => thrown.push(`${op}: ${(error as Error).message}`) },
    );
    const stat = (name: string) => sh(`stat -c %s ${join(m.mountpoint, name)}`);
    expect((await stat('missing')).stderr).toMatch(/No such file or directory/);
    expect((await stat('throws')).stderr).toMatch(/Input\/output error/);
    expect(thrown).toEqual(['getattr: op bug']);
    expect((await stat('not-a-number')).stderr).toMatch(/Input\/output error/);
    expect((await stat('not-a-stat')).stderr).toMatch(/Input\/output error/);
    for (const name of ['huge-uid', 'negative-size', 'far-mtime', 'huge-rdev'])
      expect((await stat(name)).stderr, name).toMatch(/Input\/output error/);
    expect((await stat('twice')).stdout.trim()).toBe('3');
    // ...and the mount keeps serving.
    expect((await sh(`ls -a ${m.mountpoint}`)).code).toBe(0);
  });

  it("pass mknod's mode and device, and the caller's uid and gid of what makes a node, and st_rdev back", async () => {
    const tree = new MemoryTree();
    const made: unknown[][] = [];
    const devices = new Map<string, { mode: number; rdev: number }>();
    const ops = tree.operations();
    const m = await mount(
      tree.operations({
        mknod: (path: string, mode: number, rdev: number, uid: number, gid: number, cb: (code: number) => void) => {
          made.push(['mknod', path, mode, rdev, uid, gid]);
          devices.set(path, { mode, rdev });
          cb(0);
        },
        mkdir: (path: string, mode: number, uid: number, gid: number, cb: (code: number) => void) => {
          made.push(['mkdir', path, uid, gid]);
          (ops.mkdir as (...a: unknown[]) => void)(path, mode, uid, gid, cb);
        },
        getattr: (path: string, cb: (code: number, stat?: unknown) => void) => {
          const device = devices.get(path);
          if (device) return cb(0, { mode: device.mode, rdev: device.rdev, nlink: 1, uid: 0, gid: 0 });
          (ops.getattr as (...a: unknown[]) => void)(path, cb);
        },
      }),
    );
    expect((await sh(`mknod ${join(m.mountpoint, 'chr')} c 1 3 && umask 022 && mkfifo ${join(m.mountpoint, 'fifo')}`)).stderr).toBe('');
    expect((await sh(`mkdir ${join(m.mountpoint, 'd')}`)).code).toBe(0);
    expect(made).toEqual([
      ['mknod', '/chr', 0o20644, 259, 0, 0],
      ['mknod', '/fifo', 0o10644, 0, 0, 0],
      ['mkdir', '/d', 0, 0],
    ]);
    expect(
      (await sh(`stat -c '%F %t:%T %a' ${join(m.mountpoint, 'chr')} ${join(m.mountpoint, 'fifo')}`)).stdout.trim().split('\n'),
    ).toEqual(['character special file 1:3 644', 'fifo 0:0 644']);
  });

  it('a JS op that never answers is answered ENOTCONN at unmount, which neither hangs nor crashes', async () => {
    const tree = new MemoryTree();
    let reached!: () => void;
    const inFlight = new Promise<void>((r) => (reached = r));
    const ops = tree.operations();
    const m = await mount({
      ...ops,
      getattr: (path: string, cb: (code: number, stat?: unknown) => void) => {
        if (path !== '/never') return (ops.getattr as (p: string, c: typeof cb) => void)(path, cb);
        reached(); // and never answer
      },
    });
    const stuck = sh(`stat ${join(m.mountpoint, 'never')}`);
    // A second process keeps the mount busy, so only aborting the connection can end the loop.
    // (Its shell changes directory after spawn returns: spawn's own chdir would wait for this
    // thread, which waits in spawn.)
    const holder = spawn('sh', ['-c', `cd ${m.mountpoint} && exec sleep 30`], { stdio: 'ignore' });
    try {
      await inFlight;
      const started = Date.now();
      await m.session.unmount();
      await m.session.ended;
      // Ended by stopping, not by the holder's 30 s running out.
      expect(Date.now() - started).toBeLessThan(10_000);
      const result = await stuck;
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/Transport endpoint is not connected|No such file|Input\/output error/);
      expect(isMounted(m.mountpoint)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('read buffers', () => {
  it('are cut off from JS once answered (reads and writes), and a failed or malformed read is an error', async () => {
    const tree = new MemoryTree();
    tree.file('/f', 'hello');
    tree.file('/w', '');
    tree.file('/fails', 'x');
    tree.file('/bad', 'x');
    const ops = tree.operations();
    const kept: Buffer[] = [];
    const m = await mount({
      ...ops,
      read: (path: string, fh: number, buffer: Buffer, length: number, position: number, cb: (n: unknown) => void) => {
        if (path === '/fails') return cb(-5);
        if (path === '/bad') return cb('five');
        kept.push(buffer);
        // Claims more than it was asked for: the kernel gets no more than `length`.
        (ops.read as (...a: unknown[]) => void)(path, fh, buffer, length, position, (n: number) => cb(n < 0 ? n : length + 10));
      },
      write: (path: string, fh: number, buffer: Buffer, length: number, position: number, cb: (n: number) => void) => {
        kept.push(buffer);
        (ops.write as (...a: unknown[]) => void)(path, fh, buffer, length, position, cb);
      },
    });
    const read = await sh(`head -c 5 ${join(m.mountpoint, 'f')}`);
    expect(read.stdout).toBe('hello');
    expect((await sh(`printf written > ${join(m.mountpoint, 'w')}`)).code).toBe(0);
    expect(tree.nodes.get('/w')?.data.toString()).toBe('written');
    expect(kept.length).toBeGreaterThan(1);
    // The memory went back to the addon's pool for the next request: the Buffers no longer reach it.
    for (const buffer of kept) expect(buffer.length).toBe(0);
    expect((await sh(`cat ${join(m.mountpoint, 'fails')}`)).stderr).toMatch(/Input\/output error/);
    expect((await sh(`cat ${join(m.mountpoint, 'bad')}`)).stderr).toMatch(/Input\/output error/);
  });
});

describe('the kernel interface', () => {
  it('with the writeback cache on, writes and reads back the same bytes', async () => {
    const tree = new MemoryTree();
    const m = await mount(tree.operations(), { writebackCache: true });
    const source = join(tmpdir(), 'fuse3-wb-src');
    const file = join(m.mountpoint, 'wb');
    const result = await sh(`head -c 3000001 /dev/urandom > ${source} && cp ${source} ${file} && sync && cmp ${source} ${file}`);
    expect(result.code, result.stderr).toBe(0);
    expect(tree.nodes.get('/wb')?.data.length).toBe(3_000_001);
  });

  it('carries 1 MiB per write and returns the bytes written', async () => {
    const tree = new MemoryTree();
    const ops = tree.operations();
    const writeSizes: number[] = [];
    const m = await mount({
      ...ops,
      write: (path: string, fh: number, buffer: Buffer, length: number, position: number, cb: (n: number) => void) => {
        writeSizes.push(length);
        (ops.write as (...a: unknown[]) => void)(path, fh, buffer, length, position, cb);
      },
    });
    const file = join(m.mountpoint, 'big');
    const result = await sh(
      `head -c 5242880 /dev/urandom > ${join(tmpdir(), 'fuse3-src')} && dd if=${join(tmpdir(), 'fuse3-src')} of=${file} bs=1M 2>&1 && cmp ${join(tmpdir(), 'fuse3-src')} ${file}`,
    );
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(Math.max(...writeSizes)).toBe(1024 * 1024);
    expect(tree.nodes.get('/big')?.data.length).toBe(5 * 1024 * 1024);
  });

  it('pages a directory of 5,000 entries from one JS listing', async () => {
    const tree = new MemoryTree();
    for (let i = 0; i < 5000; i++) tree.file(`/entry-with-a-longish-name-${String(i).padStart(5, '0')}`, '');
    const ops = tree.operations();
    let listings = 0;
    const m = await mount({
      ...ops,
      readdir: (path: string, cb: (code: number, names?: string[]) => void) => {
        listings += 1;
        (ops.readdir as (p: string, c: typeof cb) => void)(path, cb);
      },
    });
    const result = await sh(`ls -f ${m.mountpoint} | sort`);
    const names = result.stdout.split('\n').filter(Boolean);
    expect(names).toHaveLength(5000);
    expect(names[0]).toBe('entry-with-a-longish-name-00000');
    expect(names[4999]).toBe('entry-with-a-longish-name-04999');
    expect(listings).toBe(1);
  });

  it('sets both times with utimens, and leaves one alone when asked to (UTIME_OMIT)', async () => {
    const tree = new MemoryTree();
    tree.file('/f', 'x');
    const m = await mount(tree.operations());
    const file = join(m.mountpoint, 'f');
    expect((await sh(`touch -a -d @1000000000 ${file} && touch -m -d @1500000000 ${file}`)).code).toBe(0);
    expect(tree.nodes.get('/f')?.atimeMs).toBe(1_000_000_000_000);
    expect(tree.nodes.get('/f')?.mtimeMs).toBe(1_500_000_000_000);
    expect((await sh(`stat -c '%X %Y' ${file}`)).stdout.trim()).toBe('1000000000 1500000000');
  });

  it('drops the kernel cache of a path on invalidate', async () => {
    const tree = new MemoryTree();
    tree.file('/f', 'abc');
    const m = await mount(tree.operations(), { attrTimeoutSeconds: 600 });
    const size = async () => (await sh(`stat -c %s ${join(m.mountpoint, 'f')}`)).stdout.trim();
    expect(await size()).toBe('3');
    tree.file('/f', 'abcdef');
    expect(await size()).toBe('3'); // cached by the kernel for 600 s
    expect(await m.session.invalidate('/f')).toBe(0);
    expect(await size()).toBe('6');
    // A file removed elsewhere: its cached name goes too.
    tree.nodes.delete('/f');
    expect(await size()).toBe('6');
    expect(await m.session.invalidate('/f')).toBe(0);
    expect((await sh(`stat ${join(m.mountpoint, 'f')}`)).code).not.toBe(0);
    expect(await m.session.invalidate('/never-looked-up')).toBe(-2);
  });
});

describe('page stores (FUSE_NOTIFY_STORE)', () => {
  /**
   * A python3 process on the mount that runs one command per line from stdin and answers each with
   * a line: `open-ro` / `open-rw` (a descriptor; answers `ok`), `close-rw`, `read OFFSET` (4 KiB
   * through the read-only descriptor, as hex).
   */
  const CLIENT = `
import os, sys
path = sys.argv[1]
fds = {}
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == 'open-ro':
        fds['ro'] = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fds['ro'], 0, 0, os.POSIX_FADV_RANDOM)
    elif cmd[0] == 'open-rw':
        fds['rw'] = os.open(path, os.O_RDWR)
    elif cmd[0] == 'close-rw':
        os.close(fds.pop('rw'))
    elif cmd[0] == 'read':
        print(os.pread(fds['ro'], 4096, int(cmd[1])).hex(), flush=True)
        continue
    print('ok', flush=True)
`;
  function client(path: string) {
    const child = spawn('python3', ['-c', CLIENT, path], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    const waiting: Array<(line: string) => void> = [];
    let partial = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      for (let end = partial.indexOf('\n'); end >= 0; end = partial.indexOf('\n')) {
        const line = partial.slice(0, end);
        partial = partial.slice(end + 1);
        const next = waiting.shift();
        if (next) next(line);
        else lines.push(line);
      }
    });
    return {
      run: (command: string) =>
        new Promise<string>((resolve) => {
          waiting.push(resolve);
          child.stdin.write(`${command}\n`);
        }),
      end: () => new Promise<void>((resolve) => child.on('exit', () => resolve()).stdin.end()),
    };
  }

  it('serve reads of the stored bytes from the page cache; refused for a handle not open, and while the file may be written', async () => {
    const tree = new MemoryTree();
    tree.file('/f', Buffer.alloc(64 * 1024, 'a'));
    const ops = tree.operations();
    const opened: Array<{ fh: number; flags: number }> = [];
    const released: Array<() => void> = [];
    let reads = 0;
    let nextFh = 10;
    const m = await mount({
      ...ops,
      open: (_path: string, flags: number, cb: (code: number, fh?: number) => void) => {
        opened.push({ fh: nextFh, flags });
        cb(0, nextFh++);
      },
      read: (...args: unknown[]) => {
        reads += 1;
        (ops.read as (...a: unknown[]) => void)(...args);
      },
      release: (_path: string, _fh: number, cb: (code: number) => void) => {
        cb(0);
        released.shift()?.();
      },
    });
    const c = client(join(m.mountpoint, 'f'));
    try {
      expect(await c.run('open-ro')).toBe('ok');
      const ro = opened.at(-1)!.fh;
      expect(await m.session.storePages(ro, 8192, Buffer.alloc(8192, 's'))).toBe(0);
      expect(await c.run('read 8192')).toBe(Buffer.alloc(4096, 's').toString('hex')); // the stored bytes...
      expect(await c.run('read 12288')).toBe(Buffer.alloc(4096, 's').toString('hex'));
      expect(reads).toBe(0); // ...from the page cache
      expect(await c.run('read 0')).toBe(Buffer.alloc(4096, 'a').toString('hex'));
      expect(reads).toBe(1);
      expect(m.session.storesSent()).toBe(1);

      expect(await m.session.storePages(9999, 0, Buffer.alloc(4096))).toBe(-9); // EBADF
      expect(await c.run('open-rw')).toBe('ok');
      const rw = opened.at(-1)!.fh;
      expect(opened.at(-1)!.flags & 3).toBe(2);
      // EBUSY: through the handle that may write, and through any other while it is open.
      expect(await m.session.storePages(rw, 0, Buffer.alloc(4096, 'x'))).toBe(-16);
      expect(await m.session.storePages(ro, 0, Buffer.alloc(4096, 'x'))).toBe(-16);
      const releasedRw = new Promise<void>((resolve) => released.push(resolve));
      expect(await c.run('close-rw')).toBe('ok');
      await releasedRw;
      expect(await m.session.storePages(ro, 16384, Buffer.alloc(4096, 't'))).toBe(0);
      expect(await c.run('read 16384')).toBe(Buffer.alloc(4096, 't').toString('hex'));
      expect(m.session.storesSent()).toBe(2);
    } finally {
      await c.end();
    }
  });
});

describe('the inode table', () => {
  it('gives JS the path each cached inode has now, across directory renames, replacing renames and unlinks', async () => {
    const tree = new MemoryTree();
    tree.nodes.set('/d', { mode: 0o40755, data: Buffer.alloc(0), mtimeMs: Date.now(), atimeMs: Date.now() });
    tree.nodes.set('/d/sub', { mode: 0o40755, data: Buffer.alloc(0), mtimeMs: Date.now(), atimeMs: Date.now() });
    tree.file('/d/sub/f', 'hello');
    tree.file('/a', 'from a');
    tree.file('/b', 'from b');
    tree.file('/c', 'see');
    const fstatPaths: string[] = [];
    // Entries and attributes cached for 600 s: the kernel keeps using the inodes it looked up.
    const m = await mount(
      tree.operations({
        fgetattr: (path: string, _fh: number, cb: (code: number) => void) => {
          fstatPaths.push(path);
          cb(-2);
        },
      }),
      { attrTimeoutSeconds: 600 },
    );
    const at = (p: string) => join(m.mountpoint, p);
    expect((await sh(`cat ${at('d/sub/f')}`)).stdout).toBe('hello');
    expect((await sh(`mv ${at('d')} ${at('e')}`)).code).toBe(0);
    expect((await sh(`cat ${at('e/sub/f')}`)).stdout).toBe('hello');
    expect((await sh(`echo again >> ${at('e/sub/f')}`)).code).toBe(0);
    expect(tree.nodes.get('/e/sub/f')?.data.toString()).toBe('helloagain\n');
    expect((await sh(`stat ${at('d')}`)).code).not.toBe(0);

    // The kernel held both inodes; the one renamed over is detached, the other now named b.
    expect((await sh(`cat ${at('a')} ${at('b')} > /dev/null && mv ${at('a')} ${at('b')} && cat ${at('b')}`)).stdout).toBe('from a');
    expect((await sh(`echo more >> ${at('b')}`)).code).toBe(0);
    expect(tree.nodes.get('/b')?.data.toString()).toBe('from amore\n');
    expect((await sh(`ls ${at('')}`)).stdout.split('\n').filter(Boolean).sort()).toEqual(['b', 'c', 'e']);

    // A file unlinked while open: the kernel goes on using its inode, and JS gets the path it had.
    const unlinked = await sh(`exec 3< ${at('c')}; rm ${at('c')}; cat <&3`);
    expect(unlinked.code).not.toBe(0); // this tree forgets the file with its name...
    expect(fstatPaths).toEqual(['/c']); // ...but JS was asked about it, by the path it had
    expect((await sh(`ls ${at('')}`)).stdout.split('\n').filter(Boolean).sort()).toEqual(['b', 'e']);
  });

  it("keeps a file's pages across opens while its mtime and size are unchanged (auto_cache), and drops them when they change", async () => {
    const tree = new MemoryTree();
    tree.file('/f', 'first');
    let reads = 0;
    const read = tree.operations().read as unknown as (...args: unknown[]) => void;
    const m = await mount(
      tree.operations({
        read: (...args: unknown[]) => {
          reads++;
          read(...args);
        },
      }),
    );
    const file = join(m.mountpoint, 'f');
    expect((await sh(`cat ${file}`)).stdout).toBe('first');
    const afterFirst = reads;
    expect(afterFirst).toBeGreaterThan(0);
    expect((await sh(`cat ${file}`)).stdout).toBe('first');
    expect(reads).toBe(afterFirst); // served from the kernel's pages
    tree.file('/f', 'second, longer');
    tree.nodes.get('/f')!.mtimeMs += 5000;
    expect((await sh(`cat ${file}`)).stdout).toBe('second, longer');
    expect(reads).toBeGreaterThan(afterFirst);
  });
});

describe('readdirplus', () => {
  /** Drops the kernel's unused dentries and inodes (it sends FORGETs), then waits for one answer
   * from the mount: the kernel delivers queued FORGETs before the request that follows them. */
  const dropKernelEntries = async (mountpoint: string) => {
    writeFileSync('/proc/sys/vm/drop_caches', '2');
    await sh(`stat ${join(mountpoint, 'no-such-name')}`);
  };

  it('hands the kernel the entries JS gives attributes for, with no LOOKUP of them, and the kernel forgets every one', async () => {
    const tree = new MemoryTree();
    tree.nodes.set('/d', { mode: 0o40755, data: Buffer.alloc(0), mtimeMs: Date.now(), atimeMs: Date.now() });
    // Long names: a directory of several pages, so entries that did not fit one are sent in the next.
    const name = (i: number) => `a-name-long-enough-that-the-directory-needs-several-pages-${String(i).padStart(4, '0')}`;
    for (let i = 0; i < 500; i++) tree.file(`/d/${name(i)}`, 'x'.repeat(i));
    const ops = tree.operations();
    const getattr = ops.getattr as unknown as (path: string, cb: (code: number, stat?: object) => void) => void;
    const readdir = ops.readdir as unknown as (path: string, cb: (code: number, names: string[]) => void) => void;
    const statOf = (path: string) => {
      let stat: object | undefined;
      getattr(path, (_code, st) => (stat = st));
      return stat!;
    };
    const lookedUp: string[] = [];
    const m = await mount(
      tree.operations({
        getattr: (path: string, cb: (code: number, stat?: object) => void) => {
          lookedUp.push(path);
          getattr(path, cb);
        },
        // Attributes for the even entries, and for '.' and '..' (which the kernel never links).
        readdirplus: (path: string, cb: (code: number, entries: unknown[]) => void) =>
          readdir(path, (_code, names) =>
            cb(0, [
              { name: '.', ...statOf(path) },
              { name: '..', ...statOf('/') },
              ...names.map((n) => (Number(n.slice(-4)) % 2 === 0 ? { name: n, ...statOf(`${path}/${n}`) } : n)),
            ]),
          ),
      }),
      { attrTimeoutSeconds: 600 },
    );
    const listing = await sh(`ls -ln ${join(m.mountpoint, 'd')}`);
    expect(listing.code, listing.stderr).toBe(0);
    const lines = listing.stdout.split('\n').filter((line) => line.includes('a-name'));
    expect(lines).toHaveLength(500);
    for (const line of lines) {
      const [mode, , uid, gid, size] = line.split(/\s+/);
      const i = Number(line.slice(-4));
      expect([mode, uid, gid, Number(size)]).toEqual(['-rw-r--r--', '0', '0', i]);
    }
    // Only the entries without attributes were looked up.
    const children = lookedUp.filter((p) => p.startsWith('/d/'));
    expect(new Set(children)).toEqual(new Set(Array.from({ length: 250 }, (_, k) => `/d/${name(2 * k + 1)}`)));
    expect(m.session.inodeCount()).toBe(1 + 1 + 500); // the root, /d, its entries

    // Read again: the same inodes, each held once more by the kernel, and once more here.
    for (let i = 0; i < 3; i++) expect((await sh(`ls -l ${join(m.mountpoint, 'd')} | wc -l`)).stdout.trim()).toBe('501');
    expect(m.session.inodeCount()).toBe(502);
    // Every entry the kernel was given is forgotten by it in the end: nothing is left but the root.
    await dropKernelEntries(m.mountpoint);
    expect(m.session.inodeCount()).toBe(1);
    // ...and the entries work as before.
    expect((await sh(`cat ${join(m.mountpoint, 'd', name(3))} ${join(m.mountpoint, 'd', name(4))}`)).stdout).toBe('x'.repeat(7));
  });

  it('turns a malformed entry into EIO', async () => {
    const tree = new MemoryTree();
    const m = await mount(
      tree.operations({ readdirplus: (_path: string, cb: (code: number, entries: unknown[]) => void) => cb(0, [{ nameless: true }]) }),
    );
    expect((await sh(`ls ${m.mountpoint}`)).stderr).toMatch(/Input\/output error/);
  });
});

describe('polling for requests', () => {
  it('goes on while requests come, and stops once none has come for a moment (an idle mount costs no CPU)', async () => {
    const tree = new MemoryTree();
    const seen: boolean[] = [];
    const mounted: { session?: MemoryMount['session'] } = {};
    const m = await mount(
      tree.operations({
        getattr: (path: string, cb: (code: unknown, stat?: unknown) => void) => {
          if (mounted.session) seen.push(mounted.session.polling);
          cb(0, path === '/' ? { mode: 0o40755, nlink: 2 } : { mode: 0o100644, size: 1 });
        },
      }),
    );
    mounted.session = m.session;
    expect((await sh(`stat -c %s ${join(m.mountpoint, 'a')} ${join(m.mountpoint, 'b')}`)).stdout.trim().split('\n')).toEqual(['1', '1']);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((polling) => polling)).toBe(true);
    await m.session.notPolling();
    expect(m.session.polling).toBe(false);
  });
});

describe("large buffers (the block cache's memory)", () => {
  it('hold what is written to them, in huge pages where the kernel offers them; other sizes are left to Node', () => {
    const MiB = 1024 * 1024;
    const hugeKiB = () => Number(/AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? 0);
    const before = hugeKiB();
    const buffers = Array.from({ length: 4 }, (_, n) => {
      const buffer = largeBuffer(8 * MiB)!;
      expect(buffer.length).toBe(8 * MiB);
      buffer.fill(n + 1);
      return buffer;
    });
    for (const [n, buffer] of buffers.entries()) expect(buffer.every((byte) => byte === n + 1)).toBe(true);
    const thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    if (!thp.includes('[never]')) expect(hugeKiB() - before).toBeGreaterThanOrEqual(16 * 1024); // most of the 32 MiB
    expect(largeBuffer(8 * MiB + 4096)).toBeUndefined();
    expect(largeBuffer(0)).toBeUndefined();
  });

  it('stay in 4 KiB pages when asked to (the block cache: fresh huge pages can cost more)', () => {
    const MiB = 1024 * 1024;
    const hugeKiB = () => Number(/AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'))?.[1] ?? 0);
    const before = hugeKiB();
    const buffers = Array.from({ length: 4 }, (_, n) => largeBuffer(8 * MiB, false)!.fill(n + 1));
    for (const [n, buffer] of buffers.entries()) expect(buffer.every((byte) => byte === n + 1)).toBe(true);
    // With THP in `madvise` mode only mappings that ask get huge pages: these 32 MiB did not.
    const thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    if (thp.includes('[madvise]')) expect(hugeKiB() - before).toBeLessThan(8 * 1024);
  });
});

describe("a streamed upload's helpers", () => {
  it("write a file's range back and drop it from the page cache; its bytes stay", async () => {
    const MiB = 1024 * 1024;
    const dir = mkdtempSync(join(tmpdir(), 'objmount-fuse3-drop-'));
    const path = join(dir, 'staged');
    const data = randomBytes(16 * MiB);
    const file = await open(path, 'w+');
    try {
      await file.write(data, 0, data.length, 0); // dirty in the page cache
      await dropFromPageCache(file.fd, 0, 8 * MiB);
      // Resident bytes (fincore, util-linux): only the second half's, where the file system keeps
      // its files on a disk (tmpfs has nowhere to write them back to, and keeps them).
      const TMPFS_MAGIC = 0x01021994;
      if (statfsSync(dir).type !== TMPFS_MAGIC) {
        const resident = await sh(`fincore --bytes --noheadings --output RES ${path}`);
        expect(resident.code).toBe(0);
        expect(Number(resident.stdout.trim())).toBeLessThanOrEqual(8 * MiB);
      }
      const back = Buffer.alloc(data.length);
      await file.read(back, 0, back.length, 0);
      expect(back.equals(data)).toBe(true);
      await expect(dropFromPageCache(1_000_000, 0, MiB)).rejects.toThrow(/EBADF/);
    } finally {
      await file.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('hash a Buffer off the JS thread exactly as node:crypto does', async () => {
    for (const size of [0, 1, 64, 1024 * 1024 + 7, 8 * 1024 * 1024]) {
      const buffer = randomBytes(size);
      expect(await sha256OffThread(buffer)).toBe(createHash('sha256').update(buffer).digest('hex'));
    }
  });
});

describe('unmounting', () => {
  it('right after asking to mount leaves nothing mounted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'objmount-fuse3-early-'));
    const mountpoint = join(dir, 'mnt');
    mkdirSync(mountpoint);
    const session = new FuseSession(mountpoint, new MemoryTree().operations(), {
      fsName: 'early',
      allowOther: false,
      attrTimeoutSeconds: 0,
      debug: false,
    });
    try {
      const mounted = session.mount();
      await session.unmount();
      await mounted;
      await session.ended;
      expect(isMounted(session.mountpoint)).toBe(false);
    } finally {
      if (isMounted(session.mountpoint)) await sh(`fusermount3 -uz ${session.mountpoint}`);
    }
  });

  it('of a session never mounted does nothing', async () => {
    const session = new FuseSession(tmpdir(), new MemoryTree().operations(), {
      fsName: 'never',
      allowOther: false,
      attrTimeoutSeconds: 0,
      debug: false,
    });
    await expect(session.unmount()).resolves.toBeUndefined();
    expect(isMounted(tmpdir())).toBe(false);
  });
});

describe('a process serving a mount', () => {
  it('unmounts on SIGTERM and exits by itself, with nothing left mounted', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'objmount-fuse3-exit-'));
    const mountpoint = join(dir, 'mnt');
    const script = join(dir, 'serve.mjs');
    const binding = resolve(__dirname, '../../dist/fuse/binding.js');
    writeFileSync(
      script,
      `import { mkdirSync } from 'node:fs';
import { FuseSession } from ${JSON.stringify(binding)};
mkdirSync(${JSON.stringify(mountpoint)});
const ops = { getattr: (p, cb) => (p === '/' ? cb(0, { mode: 0o40755, nlink: 2 }) : cb(-2)), readdir: (p, cb) => cb(0, []) };
const session = new FuseSession(${JSON.stringify(mountpoint)}, ops, { fsName: 'exit-test', allowOther: false, attrTimeoutSeconds: 0, debug: false });
await session.mount();
process.once('SIGTERM', () => void session.unmount().then(() => console.log('unmounted')));
console.log('ready');
`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await new Promise<void>((r, reject) => {
        child.stdout.on('data', () => output.includes('ready') && r());
        child.on('exit', () => reject(new Error(`the child exited before mounting: ${output}`)));
      });
      expect(isMounted(mountpoint)).toBe(true);
      child.kill('SIGTERM');
      expect(await exited).toBe(0); // no process.exit: the event loop emptied
      expect(output).toContain('unmounted');
      expect(isMounted(mountpoint)).toBe(false);
    } finally {
      child.kill('SIGKILL');
      if (isMounted(mountpoint)) await sh(`fusermount3 -uz ${mountpoint}`);
    }
  });
});

describe('under load', () => {
  it('serves many concurrent stat/read/write operations from 4 processes', async () => {
    const tree = new MemoryTree();
    for (let i = 0; i < 20; i++) tree.file(`/shared-${i}`, Buffer.alloc(64 * 1024, i));
    const m = await mount(tree.operations());
    const dir = mkdtempSync(join(tmpdir(), 'objmount-fuse3-stress-'));
    const worker = join(dir, 'worker.mjs');
    // Each worker stats and reads the shared files, and writes then checks a file of its own.
    writeFileSync(
      worker,
      `import { promises as fs } from 'node:fs';
const [mnt, id] = [process.argv[2], Number(process.argv[3])];
const own = mnt + '/own-' + id;
const expected = Buffer.alloc(256 * 1024);
await fs.writeFile(own, '');
const handle = await fs.open(own, 'r+');
let ops = 0;
let end = 0;
for (let round = 0; round < 400; round++) {
  const i = (round * 7 + id) % 20;
  const st = await fs.stat(mnt + '/shared-' + i);
  if (st.size !== 65536) throw new Error('size ' + st.size);
  const data = await fs.readFile(mnt + '/shared-' + i);
  if (data.length !== 65536 || data[12345] !== i) throw new Error('bytes of shared-' + i);
  const chunk = Buffer.alloc(4096, (round + id) & 0xff);
  const at = (round * 4096 * 3) % (256 * 1024 - 4096);
  await handle.write(chunk, 0, chunk.length, at);
  chunk.copy(expected, at);
  end = Math.max(end, at + chunk.length);
  ops += 4;
}
await handle.close();
const back = await fs.readFile(own);
if (Buffer.compare(back, expected.subarray(0, end)) !== 0) throw new Error('own file differs');
console.log(ops);
`,
    );
    const started = Date.now();
    const results = await Promise.all([0, 1, 2, 3].map((id) => sh(`${process.execPath} ${worker} ${m.mountpoint} ${id}`, 60_000)));
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const total = results.reduce((sum, r) => sum + Number(r.stdout.trim()), 0);
    expect(total).toBe(4 * 400 * 4);
    expect(Date.now() - started).toBeLessThan(60_000);
    expect(isMounted(m.mountpoint)).toBe(true);
  });
});

describe('interrupts', () => {
  it('answer an interrupted readdir with EINTR at once, and drop its late answer once the kernel let go of the directory', async () => {
    const tree = new MemoryTree();
    tree.nodes.set('/d', { mode: 0o40755, data: Buffer.alloc(0), mtimeMs: Date.now(), atimeMs: Date.now() });
    tree.file('/d/a', 'a');
    const ops = tree.operations();
    let reached!: () => void;
    const readdirCalled = new Promise<void>((done) => (reached = done));
    let answer!: () => void;
    const answerable = new Promise<void>((done) => (answer = done));
    let released!: () => void;
    const dirReleased = new Promise<void>((done) => (released = done));
    let stuck = true;
    const m = await mount({
      ...ops,
      // The first listing of /d hangs until the test lets it answer (a hung store).
      readdir: (path: string, cb: (code: number, names?: string[]) => void) => {
        if (path !== '/d' || !stuck) return (ops.readdir as (...a: unknown[]) => void)(path, cb);
        stuck = false;
        reached();
        void answerable.then(() => cb(0, ['a', 'late']));
      },
      releasedir: (path: string, _fh: number, cb: (code: number) => void) => {
        if (path === '/d') released();
        cb(0);
      },
    });
    const child = spawn('ls', [join(m.mountpoint, 'd')], { stdio: 'ignore' });
    const exited = new Promise<string>((done) => child.once('exit', (code, signal) => done(signal ?? `exit ${code}`)));
    await readdirCalled;
    child.kill('SIGINT');
    expect(await exited).toBe('SIGINT'); // without the EINTR, ls would wait for the answer
    expect(m.session.interrupted).toBe(1);
    await dirReleased; // the kernel closed the directory: its handle is gone
    answer(); // the late answer must not reach it
    expect((await sh(`ls ${join(m.mountpoint, 'd')}`)).stdout).toBe('a\n');
  });
});
