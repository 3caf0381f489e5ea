/** Staging copies in memory and on disk (fs/staging.ts). */

import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { Staging, StagingMemory } from '../../src/fs/staging.js';

const KiB = 1024;
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'objmount-staging-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function readAll(staging: Staging, size: number): Promise<Buffer> {
  const into = Buffer.alloc(size);
  const { bytesRead } = await staging.read(into, 0, size, 0);
  return into.subarray(0, bytesRead);
}

describe('a staging copy in memory', () => {
  it('reads back what was written, zeros in the holes, and zeros again after a truncate down and up', async () => {
    const budget = new StagingMemory(64 * KiB, 256 * KiB);
    const staging = Staging.inMemory(join(dir, 's'), budget)!;
    await staging.write(Buffer.from('hello'), 0, 5, 0);
    await staging.write(Buffer.from('world'), 0, 5, 10);
    expect((await readAll(staging, 100)).toString('latin1')).toBe('hello\0\0\0\0\0world');
    await staging.truncate(3);
    await staging.truncate(8);
    expect((await readAll(staging, 100)).toString('latin1')).toBe('hel\0\0\0\0\0');
    expect(staging.bytes(8)?.toString('latin1')).toBe('hel\0\0\0\0\0');
    expect(staging.inMemory).toBe(true);
    expect(await readdir(dir)).toEqual([]); // no file at all
    await staging.discard();
    expect(budget.inUse).toBe(0);
  });

  it('goes to its file past the largest size in memory, with every byte, and stays there', async () => {
    const budget = new StagingMemory(32 * KiB, 256 * KiB);
    const staging = Staging.inMemory(join(dir, 's'), budget)!;
    const data = randomBytes(40 * KiB);
    await staging.write(data, 0, 30 * KiB, 0);
    expect(staging.inMemory).toBe(true);
    await staging.write(data, 30 * KiB, 10 * KiB, 30 * KiB);
    expect(staging.inMemory).toBe(false);
    expect(budget.inUse).toBe(0);
    expect((await readFile(join(dir, 's'))).equals(data)).toBe(true);
    expect(staging.bytes(10)).toBeUndefined();
    await staging.truncate(KiB);
    expect(staging.inMemory).toBe(false);
    expect((await readAll(staging, 4 * KiB)).equals(data.subarray(0, KiB))).toBe(true);
    await staging.discard();
    expect(await readdir(dir)).toEqual([]);
  });

  it('is a file when the memory of all copies is spent, and grows into its file when it runs out', async () => {
    const budget = new StagingMemory(64 * KiB, 48 * KiB);
    const first = Staging.inMemory(join(dir, 'a'), budget)!;
    await first.write(randomBytes(32 * KiB), 0, 32 * KiB, 0); // 32 KiB of the 48
    const second = Staging.inMemory(join(dir, 'b'), budget)!; // 16 KiB more: all of it
    expect(Staging.inMemory(join(dir, 'c'), budget)).toBeUndefined();
    const data = randomBytes(20 * KiB);
    await second.write(data, 0, data.length, 0); // does not fit: to its file
    expect(second.inMemory).toBe(false);
    expect((await readFile(join(dir, 'b'))).equals(data)).toBe(true);
    await first.discard();
    await second.discard();
    expect(budget.inUse).toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it('leaves the bytes it handed out unchanged: a write after them goes to a copy', async () => {
    const budget = new StagingMemory(64 * KiB, 256 * KiB);
    const staging = Staging.inMemory(join(dir, 's'), budget)!;
    await staging.write(Buffer.from('first'), 0, 5, 0);
    const sent = staging.bytes(5)!; // a PUT that may outlive its deadline holds these
    await staging.write(Buffer.from('X'), 0, 1, 0);
    await staging.truncate(2);
    expect(sent.toString()).toBe('first');
    expect((await readAll(staging, 10)).toString()).toBe('Xi');
    await staging.discard();
    expect(budget.inUse).toBe(0);
  });

  it('is written to its file on demand (onDisk), for what needs a file', async () => {
    const budget = new StagingMemory(64 * KiB, 256 * KiB);
    const staging = Staging.inMemory(join(dir, 's'), budget)!;
    await staging.write(Buffer.from('on disk'), 0, 7, 0);
    const handle = await staging.onDisk();
    expect(handle).toBe(staging.fileHandle);
    expect((await readFile(join(dir, 's'))).toString()).toBe('on disk');
    await staging.write(Buffer.from('D'), 0, 1, 3);
    expect((await readAll(staging, 7)).toString()).toBe('on Disk');
    await staging.discard();
  });
});
