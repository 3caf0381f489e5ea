/**
 * POSIX attributes and how they are stored with objects, compatibly with s3fs:
 * `x-amz-meta-mode` (decimal st_mode, file type bits included), `-uid`, `-gid` (decimal), and
 * `-mtime`, `-ctime`, `-atime` (seconds since the epoch, with a nine-digit fraction when the time
 * is not a whole second). Symlinks are objects whose body is the target and whose mode has
 * S_IFLNK. FIFOs, sockets and device nodes (mknod) are empty objects whose mode has their type
 * (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK), as s3fs writes them; a device's number is in
 * `x-amz-meta-rdev` (decimal, the kernel's 32-bit encoding, which is st_rdev for every device
 * number Linux has), which s3fs 1.90 neither writes nor reads: its devices read as 0,0. Objects
 * written by other tools have none of these: they get the mount's defaults.
 */

import type { ObjectInfo, ObjectMetadata } from '../storage/object-store.js';

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFSOCK = 0o140000;

/** 'special': a FIFO, socket or device node; which of them, its mode's type bits say. */
export type NodeKind = 'file' | 'directory' | 'symlink' | 'special';

export interface Attributes {
  kind: NodeKind;
  /** Full st_mode, type bits included. */
  mode: number;
  /** st_rdev: a device node's number (the kernel's 32-bit encoding); 0 for everything else. */
  rdev: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  atimeMs: number;
  ctimeMs: number;
}

/** What the mount shows for objects that carry no POSIX metadata. */
export interface AttributeDefaults {
  uid: number;
  gid: number;
  /** Permission bits for files, e.g. 0o644. */
  fileMode: number;
  /** Permission bits for directories, e.g. 0o755. */
  dirMode: number;
}

export function kindOfMode(mode: number): NodeKind | undefined {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return 'file';
    case S_IFDIR:
      return 'directory';
    case S_IFLNK:
      return 'symlink';
    case S_IFIFO:
    case S_IFSOCK:
    case S_IFCHR:
    case S_IFBLK:
      return 'special';
    default:
      return undefined;
  }
}

/** The type bits of a kind; a special node's come from its mode. */
function typeBits(kind: Exclude<NodeKind, 'special'>): number {
  return kind === 'directory' ? S_IFDIR : kind === 'symlink' ? S_IFLNK : S_IFREG;
}

/** A device node: the only kinds whose rdev means something. */
export function isDevice(mode: number): boolean {
  const type = mode & S_IFMT;
  return type === S_IFCHR || type === S_IFBLK;
}

/** Attributes of an object from its HEAD (metadata known) or listing (metadata absent). */
export function attributesOfObject(
  info: Pick<ObjectInfo, 'size' | 'lastModified' | 'metadata'>,
  expected: 'file' | 'directory',
  defaults: AttributeDefaults,
): Attributes {
  const meta = info.metadata ?? {};
  const storedMode = parseMode(meta.mode);
  let kind: NodeKind = expected;
  let mode: number;
  if (storedMode !== undefined) {
    const storedKind = kindOfMode(storedMode);
    // A file object may be a symlink, or (when empty: one with bytes is a file, and they stay
    // readable) a FIFO, socket or device; a directory marker is always a directory.
    if (expected === 'file' && storedKind === 'symlink') kind = 'symlink';
    if (expected === 'file' && storedKind === 'special' && info.size === 0) kind = 'special';
    mode = (kind === 'special' ? storedMode & S_IFMT : typeBits(kind)) | (storedMode & 0o7777);
  } else {
    mode = typeBits(kind) | (kind === 'directory' ? defaults.dirMode : defaults.fileMode);
  }
  const mtimeMs = parseTime(meta.mtime) ?? info.lastModified.getTime();
  return {
    kind,
    mode,
    rdev: kind === 'special' && isDevice(mode) ? (parseRdev(meta.rdev) ?? 0) : 0,
    uid: parseId(meta.uid) ?? defaults.uid,
    gid: parseId(meta.gid) ?? defaults.gid,
    size: kind === 'directory' ? 0 : info.size,
    mtimeMs,
    atimeMs: parseTime(meta.atime) ?? mtimeMs,
    ctimeMs: parseTime(meta.ctime) ?? mtimeMs,
  };
}

/** A directory known only from a common prefix (no marker object): defaults, time of the mount. */
export function implicitDirectory(defaults: AttributeDefaults, timeMs: number): Attributes {
  return {
    kind: 'directory',
    mode: S_IFDIR | defaults.dirMode,
    rdev: 0,
    uid: defaults.uid,
    gid: defaults.gid,
    size: 0,
    mtimeMs: timeMs,
    atimeMs: timeMs,
    ctimeMs: timeMs,
  };
}

/** Who made a new node: it is theirs, as on a local disk (FUSE's caller). */
export interface Owner {
  uid: number;
  gid: number;
}

/**
 * The attributes of a node made now, owned by `owner` (default: the mount's defaults). A special
 * node's `mode` must carry its type bits; `rdev` is kept for devices only.
 */
export function newAttributes(
  kind: NodeKind,
  mode: number,
  defaults: AttributeDefaults,
  nowMs: number,
  owner: Owner = defaults,
  rdev = 0,
): Attributes {
  const type = kind === 'special' ? mode & S_IFMT : typeBits(kind);
  return {
    kind,
    mode: type | (mode & 0o7777),
    rdev: kind === 'special' && isDevice(type) ? rdev : 0,
    uid: owner.uid,
    gid: owner.gid,
    size: 0,
    mtimeMs: nowMs,
    atimeMs: nowMs,
    ctimeMs: nowMs,
  };
}

/** The user metadata that records `attrs`, in s3fs's format (and `rdev` for a device). */
export function metadataOf(attrs: Attributes): ObjectMetadata {
  return {
    mode: String(attrs.mode),
    uid: String(attrs.uid),
    gid: String(attrs.gid),
    mtime: formatTime(attrs.mtimeMs),
    ctime: formatTime(attrs.ctimeMs),
    atime: formatTime(attrs.atimeMs),
    ...(attrs.kind === 'special' && isDevice(attrs.mode) ? { rdev: String(attrs.rdev) } : {}),
  };
}

/** The metadata of an object created before its content is final: no times, so it shows its LastModified. */
export function metadataWithoutTimes(attrs: Attributes): ObjectMetadata {
  const { mtime: _mtime, ctime: _ctime, atime: _atime, ...rest } = metadataOf(attrs);
  return rest;
}

export function contentTypeOf(kind: NodeKind): string {
  return kind === 'directory' ? 'application/x-directory' : 'application/octet-stream';
}

/**
 * s3fs writes the mode in decimal ("33188"); rclone writes it in octal ("100644"). A value whose
 * decimal reading has no valid file type but whose octal reading has one is octal.
 */
function parseMode(value: string | undefined): number | undefined {
  const valid = (mode: number) => mode <= 0o177777 && kindOfMode(mode) !== undefined;
  const decimal = parseInteger(value);
  // Any other tool's number may be stored here: one st_mode cannot hold is not a mode.
  if (decimal === undefined || decimal > 0xffff_ffff) return undefined;
  if (valid(decimal)) return decimal;
  const octal = /^[0-7]+$/.test(value!.trim()) ? parseInt(value!.trim(), 8) : undefined;
  return octal !== undefined && valid(octal) ? octal : decimal;
}

function parseInteger(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

/** The largest device number FUSE carries (its attributes' rdev is 32 bits). */
export const MAX_RDEV = 0xffff_ffff;

/** A device number that FUSE can carry; anything else is not one (the device reads as 0,0). */
function parseRdev(value: string | undefined): number | undefined {
  const rdev = parseInteger(value);
  return rdev !== undefined && rdev <= MAX_RDEV ? rdev : undefined;
}

/** The largest uid/gid: (uid_t)-1 means "none" to chown. */
const MAX_ID = 0xffff_fffe;

/** A uid or gid that fits uid_t; anything else (a huge number, -1) is not one. */
function parseId(value: string | undefined): number | undefined {
  const id = parseInteger(value);
  return id !== undefined && id <= MAX_ID ? id : undefined;
}

/** The last second of year 9999: later "times" are not times, and would overflow on their way to C. */
const MAX_TIME_SECONDS = 253_402_300_799;

/** Seconds since the epoch, "1700000000" or "1700000000.250000000". */
export function parseTime(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*(\d+)(?:\.(\d{1,9}))?\s*$/.exec(value);
  if (!match) return undefined;
  const fractionMs = match[2] ? Number(match[2].padEnd(9, '0')) / 1e6 : 0;
  const seconds = Number(match[1]);
  if (seconds > MAX_TIME_SECONDS) return undefined;
  return seconds * 1000 + Math.floor(fractionMs);
}

export function formatTime(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const remainderMs = ms - seconds * 1000;
  if (remainderMs === 0) return String(seconds);
  const nanos = Math.round(remainderMs * 1e6);
  return `${seconds}.${String(nanos).padStart(9, '0')}`;
}
