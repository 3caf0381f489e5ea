/**
 * Where running mounts record themselves, so `objmount unmount` can find the daemon that serves a
 * mountpoint: one JSON file per mount in the runtime directory (/run/objmount for root,
 * $XDG_RUNTIME_DIR/objmount otherwise), removed when the daemon stops.
 */

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MountRecord {
  pid: number;
  mountpoint: string;
  source: string;
  logFile?: string;
}

export class MountRegistry {
  constructor(private readonly directory: string) {}

  static defaultDirectory(env: NodeJS.ProcessEnv, uid: number): string {
    if (env.OBJMOUNT_RUNTIME_DIR) return env.OBJMOUNT_RUNTIME_DIR;
    if (uid === 0) return '/run/objmount';
    if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'objmount');
    return join(tmpdir(), `objmount-${uid}`);
  }

  async record(entry: MountRecord): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    await writeFile(this.file(entry.mountpoint), JSON.stringify(entry), { mode: 0o600 });
  }

  async find(mountpoint: string): Promise<MountRecord | undefined> {
    try {
      return JSON.parse(await readFile(this.file(mountpoint), 'utf8')) as MountRecord;
    } catch {
      return undefined;
    }
  }

  /** Every recorded mount whose daemon is alive. */
  async all(): Promise<MountRecord[]> {
    const names = await readdir(this.directory).catch((): string[] => []);
    const records = await Promise.all(
      names.filter((name) => name.endsWith('.json')).map(async (name) => {
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
