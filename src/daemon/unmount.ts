/**
 * `objmount unmount`: detach the kernel mount (which fails while files are open, unless forced),
 * then let the daemon that served it finish and exit.
 */

import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { Presets, SingleBar } from 'cli-progress';

import { UserError } from '../errors/user-error.js';
import { detach, findMount, isFuseType } from './mountpoint.js';
import { type MountRegistry, isAlive, isRecordedDaemon } from './registry.js';
import { queryStatus } from './status.js';

export async function unmount(
  path: string,
  options: { force: boolean; registry: MountRegistry; waitMs?: number; output?: NodeJS.WriteStream | NodeJS.WritableStream },
): Promise<void> {
  const mountpoint = resolve(path);
  const mount = await findMount(mountpoint);
  if (!mount) throw new UserError(`${mountpoint} is not mounted`);
  if (!isFuseType(mount.fsType)) throw new UserError(`${mountpoint} is not an objmount mount (${mount.fsType})`);
  const record = await options.registry.find(mountpoint);
  await detach(mountpoint, options.force);
  if (!record || record.mountpoint !== mountpoint || !isAlive(record.pid)) return;
  // Only this user's daemon that made the record is signalled: a pid reused since is left alone.
  if (!isRecordedDaemon(record)) return;
  const output = options.output ?? process.stdout;
  if (options.force) {
    // At once: the daemon's second signal detaches without waiting; say what that leaves.
    const status = await queryStatus(options.registry.socketPath(mountpoint), 1000).catch(() => undefined);
    process.kill(record.pid, 'SIGTERM');
    await sleep(20);
    if (isAlive(record.pid)) process.kill(record.pid, 'SIGTERM');
    for (let i = 0; i < 100 && isAlive(record.pid); i++) await sleep(50);
    const pending = status?.pendingUploads ?? 0;
    if (pending > 0) {
      output.write(
        status?.journal
          ? `${pending} file(s) were not uploaded yet; those closed are in the journal ${status.journal} and are uploaded by the next mount of ${mountpoint}\n`
          : `${pending} file(s) with changes not yet uploaded were lost\n`,
      );
    }
    return;
  }
  // The daemon notices the mount is gone, uploads anything pending and exits; nudge it too.
  process.kill(record.pid, 'SIGTERM');
  const progress = new DrainProgress(options.registry.socketPath(mountpoint), options.output ?? process.stdout);
  const deadline = Date.now() + (options.waitMs ?? 120_000);
  try {
    while (isAlive(record.pid)) {
      if (Date.now() > deadline) {
        throw new UserError(
          `${mountpoint} is unmounted, but its daemon (pid ${record.pid}) is still finishing uploads; see ${record.logFile ?? 'its log'}`,
        );
      }
      await progress.update();
      await sleep(100);
    }
  } finally {
    progress.stop();
  }
}

/**
 * Shows the daemon's pending uploads going down while it drains: a progress bar on a terminal,
 * one line otherwise.
 */
class DrainProgress {
  private bar?: SingleBar;
  private total = 0;
  private announced = false;

  constructor(
    private readonly socketPath: string,
    private readonly output: NodeJS.WriteStream | NodeJS.WritableStream,
  ) {}

  async update(): Promise<void> {
    const pending = await queryStatus(this.socketPath, 500).then(
      (status) => status.pendingUploads,
      () => undefined, // the daemon is between states or gone
    );
    if (pending === undefined || (pending === 0 && this.total === 0)) return;
    this.total = Math.max(this.total, pending);
    if ('isTTY' in this.output && this.output.isTTY) {
      this.bar ??= new SingleBar(
        { format: 'uploading pending files [{bar}] {value}/{total}', stream: this.output, hideCursor: true },
        Presets.shades_classic,
      );
      if (!this.bar.isActive) this.bar.start(this.total, 0);
      this.bar.setTotal(this.total);
      this.bar.update(this.total - pending);
    } else if (!this.announced) {
      this.announced = true;
      this.output.write(`uploading ${pending} pending file(s) before the daemon exits\n`);
    }
  }

  stop(): void {
    if (this.bar?.isActive) {
      this.bar.update(this.total);
      this.bar.stop();
    }
  }
}
