import { closeSync, mkdtempSync, openSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { holdsWritableDescriptor, parseFdinfo } from '../../src/fuse/descriptors.js';

let dir: string;
const opened: number[] = [];

beforeEach(() => {
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'objmount-fds-')));
});

afterEach(() => {
  for (const fd of opened.splice(0)) closeSync(fd);
  rmSync(dir, { recursive: true, force: true });
});

describe('holdsWritableDescriptor (what /proc says of a process that closed a descriptor)', () => {
  it('is true only while the process holds the file open for writing, at that inode', () => {
    const file = join(dir, 'f');
    writeFileSync(file, '');
    const { ino } = statSync(file);
    expect(holdsWritableDescriptor(process.pid, file, ino)).toBe(false);

    opened.push(openSync(file, 'r'));
    expect(holdsWritableDescriptor(process.pid, file, ino)).toBe(false); // a reader's close saves nothing

    const writer = openSync(file, 'a');
    opened.push(writer);
    expect(holdsWritableDescriptor(process.pid, file, ino)).toBe(true);
    expect(holdsWritableDescriptor(process.pid, file, ino + 1)).toBe(false); // another file at that path
    expect(holdsWritableDescriptor(process.pid, join(dir, 'other'), ino)).toBe(false);

    closeSync(opened.pop()!);
    expect(holdsWritableDescriptor(process.pid, file, ino)).toBe(false);
  });

  it('is false for a process it cannot ask about', () => {
    expect(holdsWritableDescriptor(0, '/x', 1)).toBe(false); // the kernel gave no pid
    expect(holdsWritableDescriptor(2 ** 22 + 1, '/x', 1)).toBe(false); // above pid_max: no such process
  });
});

describe('parseFdinfo', () => {
  it('reads the access flags (octal) and the inode number', () => {
    expect(parseFdinfo('pos:\t0\nflags:\t0100001\nmnt_id:\t29\nino:\t1234\n')).toEqual({ flags: 0o100001, ino: 1234 });
    expect(parseFdinfo('pos:\t0\n')).toBeUndefined();
  });
});
