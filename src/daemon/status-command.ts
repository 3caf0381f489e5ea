/** `objmount status [MOUNTPOINT] [--json]`: asks each running mount's control socket. */

import { UserError } from '../errors/user-error.js';
import type { MountRegistry } from './registry.js';
import { type MountStatus, queryStatus } from './status.js';

export async function showStatus(
  registry: MountRegistry,
  mountpoint: string | undefined,
  json: boolean,
  print: (line: string) => void,
): Promise<void> {
  const records = (await registry.all()).filter((record) => mountpoint === undefined || record.mountpoint === mountpoint);
  if (mountpoint !== undefined && records.length === 0) throw new UserError(`nothing is mounted by objmount on ${mountpoint}`);
  const statuses: Array<MountStatus | { mountpoint: string; source: string; error: string }> = await Promise.all(
    records.map((record) =>
      queryStatus(registry.socketPath(record.mountpoint)).catch((error: Error) => ({
        mountpoint: record.mountpoint,
        source: record.source,
        error: `no answer from its daemon (pid ${record.pid}): ${error.message}`,
      })),
    ),
  );
  if (json) {
    print(JSON.stringify(statuses, null, 2));
    return;
  }
  if (statuses.length === 0) {
    print('no objmount mounts');
    return;
  }
  for (const status of statuses) {
    if ('error' in status) {
      print(`${status.source} on ${status.mountpoint}: ${status.error}`);
      continue;
    }
    const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
    const ops = status.requestsByOperation;
    print(`${status.source} on ${status.mountpoint} (pid ${status.pid}, up ${status.uptimeSeconds} s)`);
    print(`  read ${mib(status.bytesRead)}, written ${mib(status.bytesWritten)}`);
    print(
      `  store: ${status.requests} requests (${ops.get ?? 0} GET, ${(ops.put ?? 0) + (ops['upload part'] ?? 0)} PUT/parts), ${status.retries} retries, ${status.failedRequests} failed`,
    );
    print(
      `  cache: ${(status.cache.hitRate * 100).toFixed(0)} % hits (${status.cache.hits}/${status.cache.hits + status.cache.misses}), ${mib(status.cache.memoryBytes)} in memory, ${mib(status.cache.diskBytes)} on disk, ${mib(status.cache.kernelStoredBytes ?? 0)} handed to the kernel's page cache`,
    );
    print(
      `  pending uploads: ${status.pendingUploads}; failed operations: ${status.failedOperations}; inodes the kernel holds: ${status.kernelInodes}`,
    );
  }
}
