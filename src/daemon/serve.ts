/**
 * Serving a mount in this process until it is stopped: SIGINT/SIGTERM upload what is pending and
 * unmount; a second signal detaches at once; an unmount from outside ends it too.
 */

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { detach } from './mountpoint.js';
import { serveControlSocket } from './status.js';
import type { RunningMount } from './mount.js';
import type { MountRegistry } from './registry.js';
import type { Logger } from '../log/logger.js';

const run = promisify(execFile);

/**
 * A promise rejected with no handler (a bug: some code path forgot a catch) is logged and
 * counted instead of ending the process, which would leave the mountpoint dead ("Transport
 * endpoint is not connected") for every user of it. Returns the count so far.
 */
export function guardAgainstStrayRejections(logger: Logger): { readonly count: number } {
  const counter = { count: 0 };
  process.on('unhandledRejection', (reason) => {
    counter.count += 1;
    const detail = reason instanceof Error ? `${reason.name}: ${reason.message}${reason.stack ? `\n${reason.stack}` : ''}` : String(reason);
    logger.error(`a promise failed with no handler (${counter.count} so far; the mount goes on serving): ${detail}`);
  });
  return counter;
}

/** Resolves once the mount is stopped by a signal or from outside. */
export async function serveUntilStopped(mount: RunningMount, logger: Logger): Promise<void> {
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        const pending = mount.status().pendingUploads;
        const left =
          pending === 0
            ? 'nothing was left to upload'
            : mount.journal
              ? `${pending} file(s) not yet uploaded; those closed are in the journal ${mount.journal} and are uploaded at the next start`
              : `${pending} file(s) with changes not yet uploaded are lost`;
        logger.warn(`${signal} again: detaching ${mount.mountpoint} without waiting for uploads: ${left}`);
        void detach(mount.mountpoint, true).finally(() => process.exit(130));
        return;
      }
      // (Already stopping when the unmount came from outside, as `objmount unmount` does first.)
      if (!mount.stopping) logger.info(`${signal}: unmounting ${mount.mountpoint}`);
      // (systemd-notify 252, Debian 12's, has no --stopping: the assignment form works everywhere.)
      void notifySystemd(['STOPPING=1', 'STATUS=uploading what is pending, then unmounting'], logger)
        .then(() => mount.stop())
        .then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    // Unmounted from outside (umount, or `objmount unmount`, whose signal may then come too late
    // to matter): systemd is told the service is stopping all the same.
    void mount.gone.then(() => (signals === 0 ? notifySystemd(['STOPPING=1', 'STATUS=unmounted'], logger) : undefined)).then(resolve);
  });
  await stopped;
}

export interface ForegroundOptions {
  start: () => Promise<RunningMount>;
  logger: Logger;
  registry: MountRegistry;
  logFile?: string;
  /** Called once the mount is live (the daemon child tells its parent). */
  onReady?: () => void;
}

export async function runForeground(options: ForegroundOptions): Promise<void> {
  guardAgainstStrayRejections(options.logger);
  const mount = await options.start();
  try {
    await options.registry.record({ pid: process.pid, mountpoint: mount.mountpoint, source: mount.source, logFile: options.logFile });
  } catch (error) {
    // Unrecorded, `objmount unmount` could not find this daemon: do not serve the mount.
    await mount.stop().catch(() => undefined);
    throw error;
  }
  let closeControl: (() => Promise<void>) | undefined;
  try {
    closeControl = await serveControlSocket(options.registry.socketPath(mount.mountpoint), () => mount.status());
  } catch (error) {
    options.logger.warn(`no control socket, so 'objmount status' cannot ask this mount: ${(error as Error).message}`);
  }
  options.onReady?.();
  await notifySystemd(['--ready', `--status=serving ${mount.source} on ${mount.mountpoint}`], options.logger);
  await serveUntilStopped(mount, options.logger);
  await closeControl?.().catch(() => undefined);
  await options.registry.remove(mount.mountpoint, process.pid);
  // Nothing is left to do; leave without waiting for timers or sockets a library may hold.
  process.exit(0);
}

/**
 * Tells systemd (Type=notify units set NOTIFY_SOCKET) how the daemon is doing. Node cannot send
 * on a datagram socket, so Debian's `systemd-notify` does it on our behalf (the unit sets
 * NotifyAccess=all, since the message comes from its process).
 */
async function notifySystemd(args: string[], logger: Logger): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return;
  try {
    await run('systemd-notify', [...args, `--pid=${process.pid}`]);
  } catch (error) {
    logger.warn(`could not notify systemd: ${(error as Error).message.split('\n')[0]}`);
  }
}
