/**
 * Files in the staging and cache directories are opened without following links, and a staging
 * file is made new: a link or file planted where one goes never redirects a write or feeds a read.
 * (The directories themselves are checked at mount: cli.test.ts.)
 */

import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { newAttributes } from '../../src/fs/attributes.js';
import { OpenFile } from '../../src/fs/open-file.js';
import { DiskCache } from '../../src/fs/read/disk-cache.js';
import { silentLogger } from '../../src/log/logger.js';
import { MemoryStore } from '../../src/storage/memory-store.js';

let dir: string;
let elsewhere: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'objmount-local-'));
  elsewhere = mkdtempSync(join(tmpdir(), 'objmount-elsewhere-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

describe('a staging file', () => {
  const attrs = newAttributes('file', 0o644, { uid: 0, gid: 0, fileMode: 0o644, dirMode: 0o755 }, Date.now());

  it('is never written through a link planted where it goes', async () => {
    const victim = join(elsewhere, 'victim');
    writeFileSync(victim, 'untouched');
    const path = join(dir, 'staging-1');
    symlinkSync(victim, path);
    const file = new OpenFile('/f', 'f', { ...attrs }, '', undefined, path);
    await expect(file.stage(new MemoryStore(), 0)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(victim, 'utf8')).toBe('untouched');
  });

  it('is never a file planted where it goes', async () => {
    const path = join(dir, 'staging-2');
    writeFileSync(path, 'planted');
    const file = new OpenFile('/f', 'f', { ...attrs }, '', undefined, path);
    await expect(file.stage(new MemoryStore(), 0)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(readFileSync(path, 'utf8')).toBe('planted');
  });
});

describe('a cached block', () => {
  it('is not read through a link that replaced its file', async () => {
    const cache = await DiskCache.open({ directory: dir, maxBytes: 1024 * 1024, store: 'test', logger: silentLogger });
    const version = { key: 'k', etag: 'e', size: 5 };
    cache.put(version, 0, Buffer.from('bytes'));
    await cache.settled();
    expect(await cache.get(version, 0, 5)).toEqual(Buffer.from('bytes'));
    // The same valid block file, elsewhere, and a link to it in its place.
    const blocks = join(dir, 'blocks');
    const sub = readdirSync(blocks)[0]!;
    const name = readdirSync(join(blocks, sub))[0]!;
    const path = join(blocks, sub, name);
    copyFileSync(path, join(elsewhere, 'copy'));
    unlinkSync(path);
    symlinkSync(join(elsewhere, 'copy'), path);
    expect(await cache.get(version, 0, 5)).toBeUndefined();
  });
});
