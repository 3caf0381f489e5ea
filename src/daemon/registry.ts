/**
 * Where running mounts record themselves, so `objmount unmount` can find the daemon that serves a
 * mountpoint: one JSON file per mount in the runtime directory (/run/objmount for root,
 * $XDG_RUNTIME_DIR/objmount otherwise, else /run/user/UID/objmount), removed when the daemon
 * stops. The daemon's control socket is there too.
 *
 * The directory must be private to this user: a record names the pid `unmount` signals, and the
 * socket answers status. So it is never in a shared directory (/tmp), where another user could
 * create it first; without a private runtime directory the commands refuse, in one line. Before
 * a record or the socket is used, the directory is checked (a real directory, ours, not open to
 * others), and `unmount` signals a recorded pid only if it is this user's objmount.
 */

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { UserError } from '../errors/user-error.js';

export interface MountRecord {
  pid: number;
  /** When that process started (/proc/PID/stat, clock ticks since boot): a reused pid has another. */
  startTime?: string;
  mountpoint: string;
  source: string;
  logFile?: string;
}

export class MountRegistry {
  constructor(private readonly directory: string) {}

  /** Throws `UserError` when this user has no private runtime directory. */
  static defaultDirectory(env: NodeJS.ProcessEnv, uid: number): string {
    if (env.OBJMOUNT_RUNTIME_DIR) return env.OBJMOUNT_RUNTIME_DIR;
    if (uid === 0) return '/run/objmount';
    if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'objmount');
    // What a login session makes (systemd-logind), when the variable did not come along (sudo, su).
    const session = `/run/user/${uid}`;
    try {
      const info = statSync(session);
      if (info.isDirectory() && info.uid === uid && (info.mode & 0o077) === 0) return join(session, 'objmount');
    } catch {
      // none
    }
    throw new UserError(
      `no private runtime directory for the mount records: set XDG_RUNTIME_DIR (or OBJMOUNT_RUNTIME_DIR) to a directory only you can write, such as /run/user/${uid} of a login session`,
    );
  }

  async record(entry: MountRecord): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    await this.checkPrivate();
    const startTime = entry.startTime ?? processStartTime(entry.pid);
    await writeFile(this.file(entry.mountpoint), JSON.stringify({ ...entry, startTime }), { mode: 0o600 });
  }

  /**
   * Refuses a runtime directory that another user could have made or may write: a symlink, not
   * ours, or writable by group or others. (A missing one is fine: there is nothing in it to trust.)
   */
  async checkPrivate(): Promise<void> {
    const info = await lstat(this.directory).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!info) return;
    const uid = process.geteuid?.() ?? 0;
    const problem = !info.isDirectory()
      ? 'is not a directory (a symlink?)'
      : info.uid !== uid
        ? `belongs to uid ${info.uid}, not you (${uid})`
        : (info.mode & 0o022) !== 0
          ? `may be written by other users (mode ${(info.mode & 0o777).toString(8)})`
          : undefined;
    if (problem)
      throw new UserError(`the runtime directory ${this.directory} ${problem}: remove it, or set XDG_RUNTIME_DIR to a private directory`);
  }

  async find(mountpoint: string): Promise<MountRecord | undefined> {
    await this.checkPrivate();
    try {
      return JSON.parse(await readFile(this.file(mountpoint), 'utf8')) as MountRecord;
    } catch {
      return undefined;
    }
  }

  /** Every recorded mount whose daemon is alive. */
  async all(): Promise<MountRecord[]> {
    await this.checkPrivate();
    const names = await readdir(this.directory).catch((): string[] => []);
    const records = await Promise.all(
      names
        .filter((name) => name.endsWith('.json'))
        .map(async (name) => {
          try {
            return JSON.parse(await readFile(join(this.directory, name), 'utf8')) as MountRecord;
          } catch {
            return undefined;
          }
        }),
    );
    return records.filter((record): record is MountRecord => record !== undefined && isAlive(record.pid));
  }

  async remove(mountpoint: string, pid: number): Promise<void> {
    const current = await this.find(mountpoint);
    if (current?.pid === pid) await rm(this.file(mountpoint), { force: true });
  }

  /** The control socket of the daemon serving `mountpoint` (see status.ts). */
  socketPath(mountpoint: string): string {
    return join(this.directory, `${this.id(mountpoint)}.sock`);
  }

  private file(mountpoint: string): string {
    return join(this.directory, `${this.id(mountpoint)}.json`);
  }

  private id(mountpoint: string): string {
    return createHash('sha256').update(mountpoint).digest('hex').slice(0, 24);
  }
}

/**
 * Whether the recorded daemon is still the process with that pid, and this user's (so a stale
 * record whose pid now belongs to another program, or to another user, is never signalled): its
 * effective uid is ours, and it started when the record says (a record without a start time, from
 * an older version: its command line runs node or objmount).
 */
export function isRecordedDaemon(record: Pick<MountRecord, 'pid' | 'startTime'>): boolean {
  try {
    const status = readFileSync(`/proc/${record.pid}/status`, 'utf8');
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    if (!uids || Number(uids[2]) !== (process.geteuid?.() ?? 0)) return false;
    if (record.startTime !== undefined) return processStartTime(record.pid) === record.startTime;
    const argv = readFileSync(`/proc/${record.pid}/cmdline`, 'utf8').split('\0');
    return argv.some((arg) => /(^|\/)(node|nodejs|objmount|mount\.objmount)(\.js)?$/.test(arg));
  } catch {
    return false; // gone, or not ours to read
  }
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; // gone meanwhile
  }
}
