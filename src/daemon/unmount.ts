/**
 * `objmount unmount`: detach the kernel mount (which fails while files are open, unless forced),
 * then let the daemon that served it finish and exit.
 */

import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { detach, findMount, isFuseType } from './mountpoint.js';
import { MountRegistry, isAlive } from './registry.js';
import { UserError } from './user-error.js';

export async function unmount(path: string, options: { force: boolean; registry: MountRegistry; waitMs?: number }): Promise<void> {
  const mountpoint = resolve(path);
  const mount = await findMount(mountpoint);
  if (!mount) throw new UserError(`${mountpoint} is not mounted`);
  if (!isFuseType(mount.fsType)) throw new UserError(`${mountpoint} is not an objmount mount (${mount.fsType})`);
  const record = await options.registry.find(mountpoint);
  await detach(mountpoint, options.force);
  if (!record || !isAlive(record.pid)) return;
  // The daemon notices the mount is gone, uploads anything pending and exits; nudge it too.
  process.kill(record.pid, 'SIGTERM');
  const deadline = Date.now() + (options.waitMs ?? 120_000);
  while (isAlive(record.pid)) {
    if (Date.now() > deadline) {
      throw new UserError(`${mountpoint} is unmounted, but its daemon (pid ${record.pid}) is still finishing uploads; see ${record.logFile ?? 'its log'}`);
    }
    await sleep(100);
  }
}
