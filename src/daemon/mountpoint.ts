/**
 * Mountpoint checks and kernel mount table queries, shared by mount and unmount.
 */

import { execFile } from 'node:child_process';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { UserError } from '../errors/user-error.js';

const run = promisify(execFile);

export interface MountEntry {
  mountpoint: string;
  fsType: string;
  source: string;
  /** The device number, "major:minor" (names the mount's backing device info in sysfs). */
  device: string;
}

/** The kernel's mount table (octal escapes in paths decoded). */
export async function readMounts(): Promise<MountEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields.length < dash + 3) continue;
    entries.push({ mountpoint: decode(fields[4]!), fsType: fields[dash + 1]!, source: decode(fields[dash + 2]!), device: fields[2]! });
  }
  return entries;
}

export async function findMount(mountpoint: string): Promise<MountEntry | undefined> {
  const mounts = await readMounts();
  return mounts.reverse().find((m) => m.mountpoint === mountpoint);
}

export function isFuseType(fsType: string): boolean {
  return fsType === 'fuse' || fsType.startsWith('fuse.');
}

/**
 * Returns the absolute mountpoint once it is an empty directory that nothing is mounted on.
 * A dead FUSE mount left by a crashed daemon ("Transport endpoint is not connected") is
 * detached first.
 */
export async function prepareMountpoint(path: string): Promise<string> {
  const mountpoint = resolve(path);
  let info;
  try {
    info = await stat(mountpoint);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`mountpoint ${mountpoint} does not exist: create it with mkdir -p ${mountpoint}`);
    if (code === 'ENOTCONN') {
      const mount = await findMount(mountpoint);
      if (!mount || !isFuseType(mount.fsType)) throw new UserError(`mountpoint ${mountpoint} is not reachable (${code})`);
      await detach(mountpoint, true);
      return prepareMountpoint(path);
    }
    if (code === 'EACCES') throw new UserError(`mountpoint ${mountpoint} is not accessible: permission denied`);
    throw new UserError(`mountpoint ${mountpoint} cannot be used: ${code ?? String(error)}`);
  }
  if (!info.isDirectory()) throw new UserError(`mountpoint ${mountpoint} is not a directory`);
  const mounted = await findMount(mountpoint);
  if (mounted) {
    throw new UserError(
      `mountpoint ${mountpoint} is already mounted (${mounted.source}, ${mounted.fsType}): ` +
        `run 'objmount unmount ${mountpoint}' first, or choose another directory`,
    );
  }
  if ((await readdir(mountpoint)).length > 0) {
    throw new UserError(`mountpoint ${mountpoint} is not empty: mount on an empty directory`);
  }
  return mountpoint;
}

/** Detaches a FUSE mount with fusermount3 (lazily when `lazy`). */
export async function detach(mountpoint: string, lazy: boolean): Promise<void> {
  try {
    await run('fusermount3', [lazy ? '-uz' : '-u', mountpoint]);
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? '').trim();
    if (/busy/i.test(stderr)) {
      throw new UserError(
        `${mountpoint} is busy: close the files and leave the directories open under it, or use --force to detach it lazily`,
      );
    }
    throw new UserError(`cannot unmount ${mountpoint}: ${stderr || (error as Error).message}`);
  }
}

/**
 * Lets the kernel read ahead `kib` KiB on the mount (its default for FUSE is 128 KiB), so it
 * keeps several 128 KiB reads in flight: reads the block cache serves are no longer bound by one
 * round trip through FUSE at a time (bench/RESULTS.md, Read path).
 * Needs root (sysfs); returns false when it could not be set.
 */
export async function setKernelReadAhead(mountpoint: string, kib: number): Promise<boolean> {
  const mount = await findMount(mountpoint);
  if (!mount) return false;
  try {
    await writeFile(`/sys/class/bdi/${mount.device}/read_ahead_kb`, String(kib));
    return true;
  } catch {
    return false;
  }
}
