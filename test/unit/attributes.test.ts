import { describe, expect, it } from 'vitest';

import {
  type AttributeDefaults,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  attributesOfObject,
  formatTime,
  implicitDirectory,
  kindOfMode,
  metadataOf,
  newAttributes,
  parseTime,
} from '../../src/fs/attributes.js';

const defaults: AttributeDefaults = { uid: 1000, gid: 1001, fileMode: 0o644, dirMode: 0o755 };
const lastModified = new Date('2024-03-01T12:00:00.000Z');

describe('parseTime / formatTime (s3fs time format)', () => {
  it('writes whole seconds without a fraction, and reads them back', () => {
    expect(formatTime(1_700_000_000_000)).toBe('1700000000');
    expect(parseTime('1700000000')).toBe(1_700_000_000_000);
    expect(formatTime(0)).toBe('0');
    expect(parseTime('0')).toBe(0);
  });

  it('writes a fraction of a second as nine digits, and reads it back', () => {
    expect(formatTime(1_700_000_000_250)).toBe('1700000000.250000000');
    expect(formatTime(1_700_000_000_001)).toBe('1700000000.001000000');
    expect(formatTime(1_700_000_000_999)).toBe('1700000000.999000000');
    expect(parseTime('1700000000.250000000')).toBe(1_700_000_000_250);
    expect(parseTime('1700000000.001000000')).toBe(1_700_000_000_001);
  });

  it('round-trips every millisecond of a second exactly', () => {
    for (let ms = 0; ms < 1000; ms++) {
      const time = 1_700_000_000_000 + ms;
      const text = formatTime(time);
      expect(text).toMatch(ms === 0 ? /^\d+$/ : /^\d+\.\d{9}$/);
      expect(parseTime(text)).toBe(time);
    }
  });

  it('reads shorter fractions (as other tools write them) and truncates below a millisecond', () => {
    expect(parseTime('1700000000.5')).toBe(1_700_000_000_500);
    expect(parseTime('1700000000.25')).toBe(1_700_000_000_250);
    expect(parseTime('1700000000.123456789')).toBe(1_700_000_000_123);
    expect(parseTime(' 1700000000 ')).toBe(1_700_000_000_000);
  });

  it('refuses what is not a time', () => {
    expect(parseTime(undefined)).toBeUndefined();
    expect(parseTime('')).toBeUndefined();
    expect(parseTime('yesterday')).toBeUndefined();
    expect(parseTime('2024-03-01T12:00:00Z')).toBeUndefined();
    expect(parseTime('-5')).toBeUndefined();
    expect(parseTime('1700000000.1234567890')).toBeUndefined();
  });
});

describe('attributesOfObject', () => {
  it("reads rclone's octal mode as well as s3fs's decimal one", () => {
    const of = (mode: string, expected: 'file' | 'directory' = 'file') =>
      attributesOfObject({ size: 1, lastModified, metadata: { mode } }, expected, defaults).mode;
    expect(of('33188')).toBe(S_IFREG | 0o644); // s3fs
    expect(of('100644')).toBe(S_IFREG | 0o644); // rclone
    expect(of('100755')).toBe(S_IFREG | 0o755);
    expect(of('40750', 'directory')).toBe(S_IFDIR | 0o750); // rclone directory
    expect(of('16877', 'directory')).toBe(S_IFDIR | 0o755); // s3fs directory
  });

  it('uses x-amz-meta mode, uid, gid and times when present', () => {
    const attrs = attributesOfObject(
      {
        size: 42,
        lastModified,
        metadata: {
          mode: String(S_IFREG | 0o600),
          uid: '501',
          gid: '20',
          mtime: '1700000000.500000000',
          atime: '1700000100',
          ctime: '1700000200',
        },
      },
      'file',
      defaults,
    );
    expect(attrs).toEqual({
      kind: 'file',
      mode: S_IFREG | 0o600,
      rdev: 0,
      uid: 501,
      gid: 20,
      size: 42,
      mtimeMs: 1_700_000_000_500,
      atimeMs: 1_700_000_100_000,
      ctimeMs: 1_700_000_200_000,
    });
  });

  it('applies the defaults to an object written by another tool (no metadata)', () => {
    const attrs = attributesOfObject({ size: 7, lastModified }, 'file', defaults);
    expect(attrs).toEqual({
      kind: 'file',
      mode: S_IFREG | 0o644,
      rdev: 0,
      uid: 1000,
      gid: 1001,
      size: 7,
      mtimeMs: lastModified.getTime(),
      atimeMs: lastModified.getTime(),
      ctimeMs: lastModified.getTime(),
    });
  });

  it('applies defaults field by field when only some metadata is present or it is malformed', () => {
    const attrs = attributesOfObject(
      { size: 1, lastModified, metadata: { uid: '0', gid: 'wheel', mtime: 'not-a-time' } },
      'file',
      defaults,
    );
    expect(attrs.mode).toBe(S_IFREG | 0o644);
    expect(attrs.uid).toBe(0);
    expect(attrs.gid).toBe(1001);
    expect(attrs.mtimeMs).toBe(lastModified.getTime());
    // atime and ctime follow mtime when absent.
    const onlyMtime = attributesOfObject({ size: 1, lastModified, metadata: { mtime: '1600000000' } }, 'file', defaults);
    expect(onlyMtime.atimeMs).toBe(1_600_000_000_000);
    expect(onlyMtime.ctimeMs).toBe(1_600_000_000_000);
  });

  it('takes no number that would not fit its C type: a huge uid, gid, mode or time is a default', () => {
    const attrs = attributesOfObject(
      {
        size: 1,
        lastModified,
        metadata: {
          uid: '99999999999999999999',
          gid: '4294967295',
          mode: '999999999999',
          mtime: '99999999999999999999',
          atime: '253402300800',
        },
      },
      'file',
      defaults,
    );
    expect(attrs).toMatchObject({
      uid: 1000,
      gid: 1001,
      mode: S_IFREG | 0o644,
      mtimeMs: lastModified.getTime(),
      atimeMs: lastModified.getTime(),
    });
    // The largest that fit are kept.
    const edge = attributesOfObject({ size: 1, lastModified, metadata: { uid: '4294967294', mtime: '253402300799' } }, 'file', defaults);
    expect(edge).toMatchObject({ uid: 4_294_967_294, mtimeMs: 253_402_300_799_000 });
  });

  it('keeps the permission bits and special bits of the stored mode', () => {
    const attrs = attributesOfObject({ size: 1, lastModified, metadata: { mode: String(S_IFREG | 0o4755) } }, 'file', defaults);
    expect(attrs.mode).toBe(S_IFREG | 0o4755);
  });

  it('detects a symlink from S_IFLNK in the mode of a file object', () => {
    const attrs = attributesOfObject({ size: 11, lastModified, metadata: { mode: String(S_IFLNK | 0o777) } }, 'file', defaults);
    expect(attrs.kind).toBe('symlink');
    expect(attrs.mode).toBe(S_IFLNK | 0o777);
    expect(attrs.size).toBe(11);
  });

  it('treats a directory marker as a directory, whatever its mode or size says', () => {
    const marker = attributesOfObject(
      { size: 0, lastModified, metadata: { mode: String(S_IFDIR | 0o700), uid: '5', gid: '6' } },
      'directory',
      defaults,
    );
    expect(marker).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o700, uid: 5, gid: 6, size: 0 });

    // A marker some tool wrote with file type bits, or with a body, is still a directory of size 0.
    const odd = attributesOfObject({ size: 3, lastModified, metadata: { mode: String(S_IFREG | 0o644) } }, 'directory', defaults);
    expect(odd).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o644, size: 0 });
    const linkMarker = attributesOfObject({ size: 0, lastModified, metadata: { mode: String(S_IFLNK | 0o777) } }, 'directory', defaults);
    expect(linkMarker.kind).toBe('directory');

    // A marker without metadata gets the directory defaults.
    const bare = attributesOfObject({ size: 0, lastModified }, 'directory', defaults);
    expect(bare).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o755, uid: 1000, gid: 1001 });
  });

  it('keeps a file a file when its stored mode says directory', () => {
    const attrs = attributesOfObject({ size: 5, lastModified, metadata: { mode: String(S_IFDIR | 0o755) } }, 'file', defaults);
    expect(attrs).toMatchObject({ kind: 'file', mode: S_IFREG | 0o755, size: 5 });
  });

  it('takes a mode without type bits as permissions', () => {
    const attrs = attributesOfObject({ size: 5, lastModified, metadata: { mode: '420' } }, 'file', defaults);
    expect(attrs).toMatchObject({ kind: 'file', mode: S_IFREG | 0o644 });
  });
});

describe('special files (FIFOs, sockets, devices), as s3fs 1.90 stores them', () => {
  const read = (size: number, metadata: Record<string, string>) => attributesOfObject({ size, lastModified, metadata }, 'file', defaults);

  it("reads s3fs's decimal modes of each type, with the type kept", () => {
    // What s3fs 1.90 writes for mkfifo, mknod c and a bound socket, mode 0644 (no rdev: s3fs keeps none).
    expect(read(0, { mode: '4516' })).toMatchObject({ kind: 'special', mode: S_IFIFO | 0o644, rdev: 0, size: 0 });
    expect(read(0, { mode: '8612' })).toMatchObject({ kind: 'special', mode: S_IFCHR | 0o644, rdev: 0 });
    expect(read(0, { mode: String(S_IFBLK | 0o660) })).toMatchObject({ kind: 'special', mode: S_IFBLK | 0o660, rdev: 0 });
    expect(read(0, { mode: String(S_IFSOCK | 0o755) })).toMatchObject({ kind: 'special', mode: S_IFSOCK | 0o755 });
    expect(read(0, { mode: String(S_IFIFO | 0o1777) }).mode).toBe(S_IFIFO | 0o1777);
  });

  it("reads a device's number from rdev, for devices only, and only one FUSE can carry", () => {
    const dev = (major: number, minor: number) => (major << 8) | minor; // the kernel's encoding, small numbers
    expect(read(0, { mode: String(S_IFCHR | 0o600), rdev: String(dev(1, 3)) }).rdev).toBe(dev(1, 3));
    expect(read(0, { mode: String(S_IFBLK | 0o600), rdev: '4294967295' }).rdev).toBe(0xffff_ffff);
    for (const rdev of ['4294967296', '99999999999999999999', '-1', '1.5', 'sda', '']) {
      expect(read(0, { mode: String(S_IFCHR | 0o600), rdev }).rdev, rdev).toBe(0);
    }
    // A FIFO or socket has no device number, whatever the metadata says.
    expect(read(0, { mode: String(S_IFIFO | 0o644), rdev: '259' }).rdev).toBe(0);
    expect(read(0, { mode: String(S_IFREG | 0o644), rdev: '259' }).rdev).toBe(0);
  });

  it('never takes an object with bytes, a regular one or a directory marker for a special file', () => {
    // Bytes stay readable: an object that has some is a file, whatever its mode says.
    expect(read(5, { mode: '4516' })).toMatchObject({ kind: 'file', mode: S_IFREG | 0o644, size: 5 });
    expect(read(0, { mode: '33188' })).toMatchObject({ kind: 'file', mode: S_IFREG | 0o644 });
    expect(read(0, {})).toMatchObject({ kind: 'file', mode: S_IFREG | 0o644, rdev: 0 });
    const marker = attributesOfObject({ size: 0, lastModified, metadata: { mode: '4516' } }, 'directory', defaults);
    expect(marker).toMatchObject({ kind: 'directory', mode: S_IFDIR | 0o644 });
    // rclone's octal modes of files and directories are no special files in decimal.
    expect(read(0, { mode: '100644' }).kind).toBe('file');
    expect(attributesOfObject({ size: 0, lastModified, metadata: { mode: '40755' } }, 'directory', defaults).mode).toBe(S_IFDIR | 0o755);
  });

  it('records a new special node with its type, and rdev for a device only', () => {
    const fifo = newAttributes('special', S_IFIFO | 0o640, defaults, 1_700_000_000_000, { uid: 7, gid: 8 }, 259);
    expect(fifo).toMatchObject({ kind: 'special', mode: S_IFIFO | 0o640, rdev: 0, uid: 7, gid: 8, size: 0 });
    expect(metadataOf(fifo)).toEqual({ mode: '4512', uid: '7', gid: '8', mtime: '1700000000', ctime: '1700000000', atime: '1700000000' });
    const chr = newAttributes('special', S_IFCHR | 0o644, defaults, 1_700_000_000_000, defaults, 259);
    const metadata = metadataOf(chr);
    expect(metadata).toMatchObject({ mode: '8612', rdev: '259' });
    expect(read(0, metadata)).toEqual(chr);
    // A regular file's metadata has no rdev.
    expect(metadataOf(newAttributes('file', 0o644, defaults, 0))).not.toHaveProperty('rdev');
  });
});

describe('metadataOf', () => {
  it('records attributes in the format it reads back', () => {
    const attrs = newAttributes('file', 0o640, defaults, 1_700_000_000_125);
    attrs.size = 9;
    const metadata = metadataOf(attrs);
    expect(metadata).toEqual({
      mode: String(S_IFREG | 0o640),
      uid: '1000',
      gid: '1001',
      mtime: '1700000000.125000000',
      ctime: '1700000000.125000000',
      atime: '1700000000.125000000',
    });
    expect(attributesOfObject({ size: 9, lastModified, metadata }, 'file', defaults)).toEqual(attrs);
  });

  it('records a symlink so it reads back as a symlink', () => {
    const attrs = newAttributes('symlink', 0o777, defaults, 1_700_000_000_000);
    const metadata = metadataOf(attrs);
    expect(kindOfMode(Number(metadata.mode))).toBe('symlink');
    expect(attributesOfObject({ size: 0, lastModified, metadata }, 'file', defaults).kind).toBe('symlink');
  });

  it('gives an implicit directory the directory defaults', () => {
    expect(implicitDirectory(defaults, 1234)).toEqual({
      kind: 'directory',
      mode: S_IFDIR | 0o755,
      rdev: 0,
      uid: 1000,
      gid: 1001,
      size: 0,
      mtimeMs: 1234,
      atimeMs: 1234,
      ctimeMs: 1234,
    });
  });
});
