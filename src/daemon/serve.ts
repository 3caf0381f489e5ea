/**
 * Serving a mount in this process until it is stopped: SIGINT/SIGTERM upload what is pending and
 * unmount; a second signal detaches at once; an unmount from outside ends it too.
 */

import { detach } from './mountpoint.js';
import type { RunningMount } from './mount.js';
import type { MountRegistry } from './registry.js';
import type { Logger } from '../log/logger.js';

/** Resolves once the mount is stopped by a signal or from outside. */
export async function serveUntilStopped(mount: RunningMount, logger: Logger): Promise<void> {
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        logger.warn(`${signal} again: detaching ${mount.mountpoint} without waiting for uploads`);
        void detach(mount.mountpoint, true).finally(() => process.exit(130));
        return;
      }
      logger.info(`${signal}: unmounting ${mount.mountpoint}`);
      void mount.stop().then(resolve);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    void mount.gone.then(resolve);
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
  const mount = await options.start();
  await options.registry.record({ pid: process.pid, mountpoint: mount.mountpoint, source: mount.source, logFile: options.logFile });
  options.onReady?.();
  await serveUntilStopped(mount, options.logger);
  await options.registry.remove(mount.mountpoint, process.pid);
  // fuse-native keeps a libuv handle open after unmount; nothing is left to do, so leave.
  process.exit(0);
}
